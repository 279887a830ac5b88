//! Graceful shutdown, for an operator's replicas behind a load balancer.
//!
//! On SIGTERM or SIGINT: `/health/ready` answers 503 at once and every response closes its
//! connection, while the service keeps serving for `SHUTDOWN_DRAIN_SECS` so balancers that
//! probe readiness stop sending. Then it stops accepting, lets the requests in flight
//! finish, and returns within `SHUTDOWN_TIMEOUT_SECS` of the signal, whatever they do. A
//! second signal stops at once.
//!
//! "Stops accepting" is done here rather than with actix's graceful `stop`: in actix-server
//! 2.6 a worker whose accept thread ends before the worker has seen the stop command exits at
//! once and drops its connections, answers in flight included. So the accept loop is paused
//! and the listening socket shut (new connections are refused), the workers keep serving the
//! connections they have, and the process ends once the count of requests in flight, which
//! a request leaves only after its response is written, is zero.

use std::time::{Duration, Instant};

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::startup::Application;

/// SIGTERM and SIGINT, listened to from [`Signals::listen`] on: create it before anything a
/// signal could interrupt (start-up), so that none falls on the default action and kills the
/// process before the shutdown sequence runs.
pub struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Starts listening. Needs a Tokio runtime (the actix one).
    pub fn listen() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// How often the last phase looks at the number of requests in flight.
const POLL: Duration = Duration::from_millis(20);

/// How long the last answers get to reach the socket once no request is in flight.
const FLUSH_GRACE: Duration = Duration::from_millis(200);

impl Application {
    /// Runs until SIGTERM or SIGINT, then shuts down gracefully (see the module docs).
    /// Returns `Ok` after a signal, whether or not every request finished in time.
    pub async fn run_until_signalled(mut self, mut signals: Signals) -> std::io::Result<()> {
        let first = tokio::select! {
            name = signals.next() => name,
            result = &mut self.server => return result.map_err(std::io::Error::other)?,
        };
        let settings = self.shutdown;
        let deadline = Instant::now() + settings.timeout;
        self.telemetry.drain().start();
        log::info!(
            "{first} received: /health/ready answers 503; still serving for {}s (SHUTDOWN_DRAIN_SECS), then finishing requests in flight; exit within {}s (SHUTDOWN_TIMEOUT_SECS)",
            settings.drain.as_secs(),
            settings.timeout.as_secs()
        );
        tokio::select! {
            () = tokio::time::sleep(settings.drain) => {}
            name = signals.next() => {
                    self.stop_now(name);
                    return Ok(());
                },
            result = &mut self.server => return result.map_err(std::io::Error::other)?,
        }
        let left = deadline.saturating_duration_since(Instant::now());
        log::info!(
            "drain over: no longer accepting connections; waiting up to {}s for {} request(s) in flight",
            left.as_secs(),
            self.telemetry.in_flight()
        );
        self.stop_accepting().await;
        let mut poll = tokio::time::interval(POLL);
        loop {
            tokio::select! {
                _ = poll.tick() => if self.telemetry.in_flight() == 0 {
                    // A request leaves the count when its worker drops the written body, a
                    // moment before the same worker flushes it to the socket: let that finish
                    // before the process exits.
                    let flushed = (Instant::now() + FLUSH_GRACE).min(deadline);
                    tokio::time::sleep_until(flushed.into()).await;
                    log::info!("stopped: every request in flight finished");
                    return Ok(());
                },
                () = tokio::time::sleep_until(deadline.into()) => {
                    log::warn!(
                        "stopped: SHUTDOWN_TIMEOUT_SECS ({}s) passed with {} request(s) still in flight; they are cut off",
                        settings.timeout.as_secs(),
                        self.telemetry.in_flight()
                    );
                    self.stop_servers(false);
                    return Ok(());
                }
                name = signals.next() => {
                    self.stop_now(name);
                    return Ok(());
                },
                result = &mut self.server => {
                    log::info!("stopped: every connection closed");
                    return result.map_err(std::io::Error::other)?;
                }
            }
        }
    }

    fn stop_now(&self, signal: &str) {
        log::warn!(
            "second signal ({signal}): stopping now; {} request(s) in flight are cut off",
            self.telemetry.in_flight()
        );
        self.stop_servers(false);
    }

    /// Stops taking new connections on the main listener: the accept loop is paused, then the
    /// listening socket is shut so that connection attempts are refused rather than left
    /// waiting in its backlog. Connections already open are served on.
    async fn stop_accepting(&self) {
        self.handle().pause().await;
        if let Err(error) =
            socket2::SockRef::from(&self.listener).shutdown(std::net::Shutdown::Read)
        {
            log::warn!(
                "could not close the listening socket ({error}); new connections wait in its backlog until exit"
            );
        }
    }

    /// Sends the stop command to every listener's server; the command is sent at once, so
    /// the completion futures are not awaited.
    fn stop_servers(&self, graceful: bool) {
        for handle in self.handles() {
            drop(handle.stop(graceful));
        }
    }
}
