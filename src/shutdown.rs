//! Graceful shutdown (DESIGN.md, "Who uses it": an operator's replicas behind a load
//! balancer).
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
//!
//! Shutting a listening socket resets every connection the kernel completed but the server
//! had not accepted yet, and a balancer may already have sent a request on one (issue 14).
//! So, on Linux, the door is closed first: a socket filter on the listener drops new
//! connection requests (a bare SYN; the client retransmits it a second later and is then
//! refused), the accept loop goes on taking the connections already completed or half-way
//! through their handshake until the kernel holds none (`/proc/net/tcp`), and only then is the
//! accept loop paused and the socket shut. Every connection a client saw complete is served.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::startup::Application;

/// Whether the service is draining: shared by the readiness route, the request log
/// middleware (which closes connections while draining) and the shutdown sequence.
#[derive(Debug, Clone, Default)]
pub struct Drain(Arc<AtomicBool>);

impl Drain {
    /// Marks the service as going away.
    pub fn start(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`Drain::start`] was called.
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

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

/// How long, at most, the accept loop gets to take the connections the kernel had queued
/// when the door closed.
const QUEUE_WAIT: Duration = Duration::from_secs(1);

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
        self.stop_accepting(deadline).await;
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

    /// Stops taking new connections on the main listener without resetting any that the
    /// kernel completed: the door is closed (see the module docs), the accept loop takes what
    /// is queued, then it is paused and the listening socket is shut so that connection
    /// attempts are refused rather than left waiting in its backlog. Connections already open
    /// are served on.
    async fn stop_accepting(&self, deadline: Instant) {
        let queued = door::close(&self.listener, deadline.min(Instant::now() + QUEUE_WAIT)).await;
        if queued > 0 {
            log::warn!(
                "{queued} connection(s) still queued by the kernel after {}ms: they are reset",
                QUEUE_WAIT.as_millis()
            );
        }
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

/// Closing the door of a listening socket: no new connection gets in, the ones already in
/// stay until accepted. Linux only; elsewhere [`close`](door::close) returns at once.
mod door {
    use std::net::TcpListener;
    use std::time::{Duration, Instant};

    /// How often the kernel's queue is looked at while the accept loop empties it.
    const POLL: Duration = Duration::from_millis(2);

    /// Drops new connection requests to `listener` from now on and waits, until `until` at
    /// the latest, for the accept loop to take every connection the kernel completed or is
    /// completing. Returns how many were still queued then (0: none will be reset).
    pub(super) async fn close(listener: &TcpListener, until: Instant) -> usize {
        if let Err(error) = drop_new_connections(listener) {
            log::warn!(
                "could not close the door of the listening socket ({error}): connections that arrive as it closes may be reset"
            );
            return 0;
        }
        loop {
            let queued = match queued(listener) {
                Ok(queued) => queued,
                Err(error) => {
                    log::warn!(
                        "cannot see the listening socket's queue ({error}): connections still in it when it closes are reset"
                    );
                    return 0;
                }
            };
            if queued == 0 || Instant::now() >= until {
                return queued;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// A classic BPF socket filter that drops TCP segments with SYN set and ACK clear: the
    /// first step of a new connection. A socket filter sees the segment from its TCP header
    /// on, so the flags are byte 13. The handshakes already answered (their last ACK), and the
    /// data of connections already made, pass.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(super) fn drop_new_connections(listener: &TcpListener) -> std::io::Result<()> {
        use socket2::SockFilter;
        const LD_B_ABS: u16 = 0x30;
        const AND_K: u16 = 0x54;
        const JEQ_K: u16 = 0x15;
        const RET_K: u16 = 0x06;
        const SYN: u32 = 0x02;
        const ACK: u32 = 0x10;
        let filter = [
            SockFilter::new(LD_B_ABS, 0, 0, 13),
            SockFilter::new(AND_K, 0, 0, SYN | ACK),
            SockFilter::new(JEQ_K, 0, 1, SYN),
            SockFilter::new(RET_K, 0, 0, 0),
            SockFilter::new(RET_K, 0, 0, u32::MAX),
        ];
        socket2::SockRef::from(listener).attach_filter(&filter)
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(super) fn drop_new_connections(_: &TcpListener) -> std::io::Result<()> {
        Err(std::io::Error::other("only on Linux"))
    }

    /// Connections the kernel holds for `listener` that the server has not accepted: those
    /// completed (the listening socket's receive queue in `/proc/net/tcp`) and those half-way
    /// through their handshake (`SYN_RECV` entries on its port).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(super) fn queued(listener: &TcpListener) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        let link = std::fs::read_link(format!("/proc/self/fd/{}", listener.as_raw_fd()))?;
        let inode = link
            .to_str()
            .and_then(|l| l.strip_prefix("socket:["))
            .and_then(|l| l.strip_suffix(']'))
            .ok_or_else(|| std::io::Error::other(format!("not a socket: {}", link.display())))?;
        let port = format!(":{:04X}", listener.local_addr()?.port());
        let mut found = false;
        let mut queued = 0;
        for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
            let text = match std::fs::read_to_string(table) {
                Ok(text) => text,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            };
            for line in text.lines().skip(1) {
                // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
                let fields: Vec<&str> = line.split_whitespace().collect();
                let [_, local, _, state, queues, _, _, _, _, entry_inode, ..] = fields[..] else {
                    continue;
                };
                if state == "0A" && entry_inode == inode {
                    found = true;
                    let rx = queues.split(':').nth(1).unwrap_or("0");
                    queued += usize::from_str_radix(rx, 16).unwrap_or(0);
                } else if state == "03" && local.ends_with(&port) {
                    queued += 1;
                }
            }
        }
        if found {
            Ok(queued)
        } else {
            Err(std::io::Error::other(
                "the listening socket is not in /proc/net/tcp",
            ))
        }
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(super) fn queued(_: &TcpListener) -> std::io::Result<usize> {
        Ok(0)
    }

    #[cfg(all(test, any(target_os = "linux", target_os = "android")))]
    mod tests {
        #![allow(clippy::unwrap_used)]
        use super::*;
        use std::net::TcpStream;

        fn state_of(client: &socket2::Socket) -> String {
            let local = client.local_addr().unwrap().as_socket().unwrap();
            let needle = format!("0100007F:{:04X}", local.port());
            let table = std::fs::read_to_string("/proc/self/net/tcp").unwrap();
            table
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .find(|f| f.get(1) == Some(&needle.as_str()))
                .map(|f| f[3].to_owned())
                .unwrap_or_default()
        }

        #[test]
        fn queued_counts_the_connections_the_kernel_completed_and_nobody_accepted() {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            assert_eq!(queued(&listener).unwrap(), 0);
            let addr = listener.local_addr().unwrap();
            let _a = TcpStream::connect(addr).unwrap();
            let _b = TcpStream::connect(addr).unwrap();
            assert_eq!(queued(&listener).unwrap(), 2);
            let _accepted = listener.accept().unwrap();
            assert_eq!(queued(&listener).unwrap(), 1);
        }

        #[tokio::test]
        async fn close_returns_once_the_accept_loop_took_the_queue_or_says_what_is_left() {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let clients: Vec<_> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
            // Nobody accepts: the three are still queued at the deadline.
            let until = Instant::now() + Duration::from_millis(100);
            assert_eq!(close(&listener, until).await, 3);
            // An accept loop takes them: it returns with none left.
            let accepting = listener.try_clone().unwrap();
            let acceptor = std::thread::spawn(move || {
                (0..3)
                    .map(|_| accepting.accept().unwrap().0)
                    .collect::<Vec<_>>()
            });
            let until = Instant::now() + Duration::from_secs(10);
            assert_eq!(close(&listener, until).await, 0);
            assert_eq!(acceptor.join().unwrap().len(), clients.len());
        }

        #[test]
        fn a_closed_door_keeps_new_connections_out_and_lets_the_queued_ones_be_accepted() {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let before = TcpStream::connect(addr).unwrap();
            drop_new_connections(&listener).unwrap();

            // A connection request after the door closed: its SYN is dropped, so the client
            // is still in SYN_SENT (2) once its connect returned, and nothing is queued.
            let client =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            client.set_nonblocking(true).unwrap();
            let refused_now = client.connect(&addr.into());
            assert!(
                matches!(&refused_now, Err(e) if e.raw_os_error() == Some(115)),
                "{refused_now:?}"
            );
            assert_eq!(state_of(&client), "02", "the new connection got through");
            assert_eq!(
                queued(&listener).unwrap(),
                1,
                "only the connection from before"
            );

            // The connection from before the door closed is accepted, and its data passes.
            let (mut accepted, peer) = listener.accept().unwrap();
            assert_eq!(peer, before.local_addr().unwrap());
            std::io::Write::write_all(&mut &before, b"ping").unwrap();
            let mut buf = [0u8; 4];
            std::io::Read::read_exact(&mut accepted, &mut buf).unwrap();
            assert_eq!(&buf, b"ping");
            assert_eq!(queued(&listener).unwrap(), 0);
        }
    }
}
