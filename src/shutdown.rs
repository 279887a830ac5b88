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
//!
//! Shutting a listening socket resets every connection the kernel completed but the server
//! had not accepted yet, and a balancer may already have sent a request on one (issue 14).
//! So, on Linux, the door is closed first: a socket filter on the listener drops new
//! connection requests (a bare SYN; the client retransmits it a second later and is then
//! refused), the accept loop goes on taking the connections already completed or half-way
//! through their handshake until the kernel has held none for a few milliseconds (a listening
//! socket is readable while it holds one), and only then is the accept loop paused and, once
//! it no longer watches the socket, the socket shut (shut while watched, the accept loop
//! would wake to a failed accept and log it as an error). Every connection a client saw complete is served: the process ends only once
//! no request is in flight and none waits unread on an open connection (`/proc/net/tcp`) for
//! a moment.

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
        let mut quiet_since: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = poll.tick() => {
                    // Quiet: no request in flight, and none waiting unread on a connection the
                    // server accepted (one of those queued at the end, or a pooled one the
                    // balancer has just used). A request leaves the count when its worker drops
                    // the written body, a moment before the same worker flushes it to the
                    // socket: quiet for FLUSH_GRACE lets that finish before the process exits.
                    let quiet = self.telemetry.in_flight() == 0 && !door::unread_requests(self.addr());
                    let now = Instant::now();
                    if !quiet {
                        quiet_since = None;
                    } else if now.duration_since(*quiet_since.get_or_insert(now)) >= FLUSH_GRACE {
                        log::info!("stopped: every request in flight finished");
                        return Ok(());
                    }
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
        if door::close(&self.listener, deadline.min(Instant::now() + QUEUE_WAIT)).await {
            log::warn!(
                "connections still queued by the kernel after {}ms: they are reset",
                QUEUE_WAIT.as_millis()
            );
        }
        self.handle().pause().await;
        // The pause command reaches the accept loop's thread a moment after `pause` returns.
        // Shutting the socket before that thread has stopped watching it wakes it with an
        // accept that fails (EINVAL), which actix-server logs as two errors.
        if !door::unwatched(&self.listener, Instant::now() + QUEUE_WAIT).await {
            log::warn!(
                "the accept loop still watched the listening socket after {}ms; shutting it anyway",
                QUEUE_WAIT.as_millis()
            );
        }
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
/// stay until accepted; and whether accepted connections still hold unread requests. Linux
/// only; elsewhere [`close`](door::close) warns and returns at once, and no request is seen
/// unread.
mod door {
    use std::net::{SocketAddr, TcpListener};
    use std::time::{Duration, Instant};

    /// How long the queue must stay empty before the socket may be shut: a handshake the
    /// kernel answered before the door closed completes within a round trip (well under this
    /// in a data centre), and its connection is queued then.
    const HANDSHAKE_GRACE: Duration = Duration::from_millis(5);

    /// How often the queue is looked at while the accept loop empties it.
    const LOOK: Duration = Duration::from_millis(1);

    /// Drops new connection requests to `listener` from now on and waits, until `until` at
    /// the latest, for the accept loop to take every connection the kernel completed or is
    /// completing: until the queue has stayed empty for [`HANDSHAKE_GRACE`]. Returns whether
    /// connections were still queued at `until` (they are reset when the socket is shut).
    pub(super) async fn close(listener: &TcpListener, until: Instant) -> bool {
        if let Err(error) = drop_new_connections(listener) {
            log::warn!(
                "could not close the door of the listening socket ({error}): connections that arrive as it closes may be reset"
            );
            return false;
        }
        let mut empty_since: Option<Instant> = None;
        loop {
            let queued = match has_queued(listener) {
                Ok(queued) => queued,
                Err(error) => {
                    log::warn!(
                        "cannot see the listening socket's queue ({error}): connections still in it when it closes are reset"
                    );
                    return false;
                }
            };
            let now = Instant::now();
            if queued {
                empty_since = None;
            } else if now.duration_since(*empty_since.get_or_insert(now)) >= HANDSHAKE_GRACE {
                return false;
            }
            if now >= until {
                return queued;
            }
            tokio::time::sleep(LOOK).await;
        }
    }

    /// Waits, until `until` at the latest, for no epoll instance of this process to watch
    /// `listener`'s socket any more (the accept loop's, once it has taken the pause command).
    /// Returns false if one still did at `until`; true at once where that cannot be seen.
    pub(super) async fn unwatched(listener: &TcpListener, until: Instant) -> bool {
        loop {
            match watched(listener) {
                Some(true) if Instant::now() < until => tokio::time::sleep(LOOK).await,
                Some(true) => return false,
                Some(false) | None => return true,
            }
        }
    }

    /// Whether an epoll instance of this process watches `listener`'s socket, from
    /// `/proc/self/fdinfo`. Matched by the socket's inode, since actix polls a duplicate of the
    /// descriptor. `None` where that cannot be read.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(super) fn watched(listener: &TcpListener) -> Option<bool> {
        use std::os::fd::AsRawFd;
        let link = std::fs::read_link(format!("/proc/self/fd/{}", listener.as_raw_fd())).ok()?;
        let inode: u64 = link
            .to_str()?
            .strip_prefix("socket:[")?
            .strip_suffix(']')?
            .parse()
            .ok()?;
        let needle = format!("ino:{inode:x}");
        let watches = |fd: &std::ffi::OsStr| {
            let epoll = std::fs::read_link(std::path::Path::new("/proc/self/fd").join(fd))
                .is_ok_and(|target| target.as_os_str() == "anon_inode:[eventpoll]");
            // "tfd: 7 events: 19 data: 7  pos:0 ino:2a8f sdev:8", a line a watched descriptor
            epoll
                && std::fs::read_to_string(std::path::Path::new("/proc/self/fdinfo").join(fd))
                    .is_ok_and(|info| {
                        info.lines().any(|line| {
                            line.starts_with("tfd:")
                                && line.split_whitespace().any(|word| word == needle)
                        })
                    })
        };
        let fds = std::fs::read_dir("/proc/self/fd").ok()?;
        Some(fds.flatten().any(|entry| watches(&entry.file_name())))
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(super) fn watched(_: &TcpListener) -> Option<bool> {
        None
    }

    /// Whether the kernel holds a connection for `listener` that nobody accepted yet: a
    /// listening socket is readable exactly then (`poll`, without waiting). It takes nothing
    /// from the queue; the accept loop polls the same socket on its own.
    pub(super) fn has_queued(listener: &TcpListener) -> std::io::Result<bool> {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let mut fds = [PollFd::new(listener, PollFlags::IN)];
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        Ok(poll(&mut fds, Some(&now))? > 0)
    }

    /// Whether an open connection to `addr`'s port holds bytes nobody has read yet: a request
    /// sent on a connection the server accepted, not yet in flight (the receive queue of an
    /// established connection in `/proc/net/tcp`, or `tcp6` for an IPv6 listener). False where
    /// that cannot be read.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(super) fn unread_requests(addr: SocketAddr) -> bool {
        let table = if addr.is_ipv4() {
            "/proc/self/net/tcp"
        } else {
            "/proc/self/net/tcp6"
        };
        let Ok(text) = std::fs::read_to_string(table) else {
            return false;
        };
        let port = format!(":{:04X}", addr.port());
        text.lines().skip(1).any(|line| {
            // sl local_address rem_address st tx_queue:rx_queue ...
            let mut fields = line.split_whitespace().skip(1);
            let (Some(local), Some(_), Some(state), Some(queues)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return false;
            };
            let unread = queues
                .split(':')
                .nth(1)
                .and_then(|rx| usize::from_str_radix(rx, 16).ok())
                .is_some_and(|rx| rx > 0);
            // ESTABLISHED or CLOSE_WAIT (the client sent its request, then its FIN)
            local.ends_with(&port) && (state == "01" || state == "08") && unread
        })
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(super) fn unread_requests(_: SocketAddr) -> bool {
        false
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

    #[cfg(all(test, any(target_os = "linux", target_os = "android")))]
    mod tests {
        #![allow(clippy::unwrap_used)]
        use super::*;
        use std::net::TcpStream;

        /// The TCP state of a loopback client socket, from `/proc/net/tcp` (`02`: SYN_SENT).
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
        fn has_queued_says_whether_a_completed_connection_waits_to_be_accepted() {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            assert!(!has_queued(&listener).unwrap());
            let addr = listener.local_addr().unwrap();
            let _a = TcpStream::connect(addr).unwrap();
            let _b = TcpStream::connect(addr).unwrap();
            assert!(has_queued(&listener).unwrap());
            let _first = listener.accept().unwrap();
            assert!(has_queued(&listener).unwrap(), "one is left");
            let _second = listener.accept().unwrap();
            assert!(!has_queued(&listener).unwrap());
        }

        #[tokio::test]
        async fn close_returns_once_the_accept_loop_took_the_queue_or_says_it_did_not() {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let clients: Vec<_> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
            // Nobody accepts: still queued at the deadline.
            let until = Instant::now() + Duration::from_millis(100);
            assert!(close(&listener, until).await);
            // An accept loop takes them: it returns with none left.
            let accepting = listener.try_clone().unwrap();
            let acceptor = std::thread::spawn(move || {
                (0..3)
                    .map(|_| accepting.accept().unwrap().0)
                    .collect::<Vec<_>>()
            });
            let until = Instant::now() + Duration::from_secs(10);
            assert!(!close(&listener, until).await);
            assert_eq!(acceptor.join().unwrap().len(), clients.len());
            assert!(!has_queued(&listener).unwrap());
        }

        #[test]
        fn unread_requests_sees_bytes_waiting_on_an_accepted_connection_and_only_then() {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let mut client = TcpStream::connect(addr).unwrap();
            let (mut accepted, _) = listener.accept().unwrap();
            assert!(!unread_requests(addr), "an idle connection");
            std::io::Write::write_all(&mut client, b"GET / HTTP/1.1\r\n\r\n").unwrap();
            assert!(unread_requests(addr), "a request nobody read");
            let mut buf = [0u8; 18];
            std::io::Read::read_exact(&mut accepted, &mut buf).unwrap();
            assert!(!unread_requests(addr), "read");
        }

        #[test]
        fn a_closed_door_keeps_new_connections_out_and_lets_the_queued_ones_be_accepted() {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let before = TcpStream::connect(addr).unwrap();
            drop_new_connections(&listener).unwrap();

            // A connection request after the door closed: its SYN is dropped, so the client
            // is still in SYN_SENT once its connect returned.
            let client =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            client.set_nonblocking(true).unwrap();
            let refused_now = client.connect(&addr.into());
            assert!(
                matches!(&refused_now, Err(e) if e.raw_os_error() == Some(115)),
                "{refused_now:?}"
            );
            assert_eq!(state_of(&client), "02", "the new connection got through");

            // The connection from before the door closed is accepted, and its data passes;
            // then nothing is queued.
            let (mut accepted, peer) = listener.accept().unwrap();
            assert_eq!(peer, before.local_addr().unwrap());
            std::io::Write::write_all(&mut &before, b"ping").unwrap();
            let mut buf = [0u8; 4];
            std::io::Read::read_exact(&mut accepted, &mut buf).unwrap();
            assert_eq!(&buf, b"ping");
            assert!(!has_queued(&listener).unwrap());
        }

        /// As the accept loop does: a duplicate of the listener registered with an epoll
        /// instance (Tokio's here) is seen through the original, and no longer once dropped.
        #[tokio::test]
        async fn watched_sees_a_duplicate_of_the_listener_registered_with_epoll_until_dropped() {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let other = TcpListener::bind("127.0.0.1:0").unwrap();
            assert_eq!(watched(&listener), Some(false));
            let duplicate = listener.try_clone().unwrap();
            duplicate.set_nonblocking(true).unwrap();
            let registered = tokio::net::TcpListener::from_std(duplicate).unwrap();
            assert_eq!(watched(&listener), Some(true));
            assert_eq!(
                watched(&other),
                Some(false),
                "another socket is not watched"
            );
            drop(registered);
            assert!(unwatched(&listener, Instant::now() + Duration::from_secs(1)).await);
            assert_eq!(watched(&listener), Some(false));
        }
    }
}
