//! `DPOP_REPLAY_STORE=redis://host:port`: the DPoP replay store shared by every replica, in
//! Redis or Valkey. Each accepted proof is `SET api-guard:dpop:{id} 1 NX EX {ttl}`: `OK`
//! means first use, a nil reply means another replica (or this one) saw it.
//!
//! One thread owns the connection and speaks RESP (the Redis protocol) for these two
//! commands, `SET` and `PING`: requests queue in a bounded channel, are written together
//! (pipelined) and answered in order. The connection is opened on demand and again after any
//! failure, at most every [`RECONNECT_EVERY`]; while Redis cannot be reached every request
//! is answered [`ReplayStoreError::Unavailable`] (503), never accepted. When idle, a `PING`
//! every second keeps [`is_available`](ReplayStore::is_available) (and `/health/ready`) true
//! to the state of Redis.
//!
//! Why not the `redis` crate: it brings its own async runtime glue, connection manager and a
//! dozen dependencies for what is one command and one reply type here; a blocking socket on a
//! thread of its own, with timeouts, is small and cannot stall an actix worker.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use api_guard::{ProofId, Remembered, ReplayFuture, ReplayStore, ReplayStoreError};
use tokio::sync::oneshot;

/// Requests waiting for the connection thread at most; more answer 503 at once.
const QUEUE: usize = 8192;
/// Requests written in one pipelined batch at most.
const BATCH: usize = 256;
/// Connect, read and write timeouts: Redis answers a loopback `SET` in well under 1 ms.
const IO_TIMEOUT: Duration = Duration::from_secs(1);
/// Least time between two connection attempts while Redis is down.
pub const RECONNECT_EVERY: Duration = Duration::from_millis(500);
/// How often an idle connection is checked with `PING`.
const PING_EVERY: Duration = Duration::from_secs(1);
/// The prefix of every key, so the store can share a Redis with other data.
const KEY_PREFIX: &str = "api-guard:dpop:";

type Answer = oneshot::Sender<Result<Remembered, ReplayStoreError>>;

/// The shared replay store: a handle to the connection thread.
pub struct RedisReplayStore {
    requests: SyncSender<(ProofId, Duration, Answer)>,
    available: Arc<AtomicBool>,
}

impl RedisReplayStore {
    /// Starts the connection thread for Redis at `address` (`host:port`); it connects at
    /// once, and again whenever needed.
    pub fn start(address: String) -> std::io::Result<Self> {
        let (requests, queue) = mpsc::sync_channel(QUEUE);
        let available = Arc::new(AtomicBool::new(false));
        let connection = Connection {
            address,
            stream: None,
            last_attempt: None,
            available: Arc::clone(&available),
        };
        std::thread::Builder::new()
            .name("dpop-redis".into())
            .spawn(move || connection.run(&queue))?;
        Ok(RedisReplayStore {
            requests,
            available,
        })
    }
}

impl ReplayStore for RedisReplayStore {
    fn remember(&self, id: ProofId, ttl: Duration) -> ReplayFuture {
        let (answer, answered) = oneshot::channel();
        if let Err(refused) = self.requests.try_send((id, ttl, answer)) {
            let reason = match refused {
                TrySendError::Full(_) => "its queue is full",
                TrySendError::Disconnected(_) => "its connection thread stopped",
            };
            log::warn!("DPoP replay store: a proof is refused because {reason}");
            return Box::pin(std::future::ready(Err(ReplayStoreError::Unavailable)));
        }
        Box::pin(async move { answered.await.unwrap_or(Err(ReplayStoreError::Unavailable)) })
    }

    fn is_available(&self) -> bool {
        self.available.load(Ordering::Relaxed)
    }
}

/// The connection thread's state.
struct Connection {
    address: String,
    stream: Option<BufReader<TcpStream>>,
    last_attempt: Option<Instant>,
    available: Arc<AtomicBool>,
}

impl Connection {
    fn run(mut self, queue: &Receiver<(ProofId, Duration, Answer)>) {
        loop {
            let first = match queue.recv_timeout(PING_EVERY) {
                Ok(request) => request,
                Err(RecvTimeoutError::Timeout) => {
                    self.ping();
                    continue;
                }
                // Every handle is gone: the service is stopping.
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match queue.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.answer(batch);
        }
    }

    /// Sends the batch's `SET`s in one write and answers each from its reply, in order.
    fn answer(&mut self, batch: Vec<(ProofId, Duration, Answer)>) {
        let mut commands = Vec::with_capacity(batch.len() * 96);
        for (id, ttl, _) in &batch {
            let key = format!("{KEY_PREFIX}{}", id.to_hex());
            let ttl = ttl.as_secs().max(1).to_string();
            encode(&mut commands, &["SET", &key, "1", "NX", "EX", &ttl]);
        }
        let mut replies = self.exchange(&commands, batch.len()).into_iter();
        for (_, _, answer) in batch {
            let reply = replies.next().unwrap_or(Err(ReplayStoreError::Unavailable));
            // The request may have been dropped (the client went away): nothing to do.
            let _ = answer.send(reply);
        }
    }

    fn ping(&mut self) {
        let mut command = Vec::new();
        encode(&mut command, &["PING"]);
        let _ = self.exchange(&command, 1);
    }

    /// Writes `commands` and reads `count` replies; on any failure the connection is
    /// dropped and the replies not read are missing (the caller answers them unavailable).
    fn exchange(
        &mut self,
        commands: &[u8],
        count: usize,
    ) -> Vec<Result<Remembered, ReplayStoreError>> {
        let Some(stream) = self.connected() else {
            return Vec::new();
        };
        let mut replies = Vec::with_capacity(count);
        let result = stream.get_mut().write_all(commands).and_then(|()| {
            for _ in 0..count {
                replies.push(read_reply(stream)?);
            }
            Ok(())
        });
        match result {
            Ok(()) => self.available.store(true, Ordering::Relaxed),
            Err(error) => {
                if self.available.swap(false, Ordering::Relaxed) {
                    log::warn!(
                        "DPoP replay store: lost Redis at {}: {error}; DPoP requests answer 503 until it is back",
                        self.address
                    );
                }
                self.stream = None;
            }
        }
        replies
    }

    /// The open connection, or a new one if none is open and the last attempt is old enough.
    fn connected(&mut self) -> Option<&mut BufReader<TcpStream>> {
        if self.stream.is_none() {
            let now = Instant::now();
            if self
                .last_attempt
                .is_some_and(|last| now.duration_since(last) < RECONNECT_EVERY)
            {
                return None;
            }
            self.last_attempt = Some(now);
            match connect(&self.address) {
                Ok(stream) => {
                    log::info!("DPoP replay store: connected to Redis at {}", self.address);
                    self.stream = Some(BufReader::new(stream));
                }
                Err(error) => {
                    if self.available.swap(false, Ordering::Relaxed) {
                        log::warn!(
                            "DPoP replay store: cannot reach Redis at {}: {error}",
                            self.address
                        );
                    }
                    return None;
                }
            }
        }
        self.stream.as_mut()
    }
}

fn connect(address: &str) -> std::io::Result<TcpStream> {
    let mut last_error = None;
    for addr in address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
            Ok(stream) => {
                stream.set_read_timeout(Some(IO_TIMEOUT))?;
                stream.set_write_timeout(Some(IO_TIMEOUT))?;
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("the name resolves to no address")))
}

/// A RESP array of bulk strings (the form every Redis command takes).
fn encode(out: &mut Vec<u8>, args: &[&str]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
}

/// One reply: `+OK` (and `+PONG`) is a first use, the nil bulk string `$-1` a replay, an
/// error reply (`-...`) unavailable. Anything else is a protocol error: the connection is
/// not to be trusted further.
fn read_reply(
    stream: &mut BufReader<TcpStream>,
) -> std::io::Result<Result<Remembered, ReplayStoreError>> {
    let mut line = String::new();
    // A reply line is short; a longer one is not Redis.
    let read = stream.by_ref().take(512).read_line(&mut line)?;
    if read == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    match line.trim_end_matches("\r\n") {
        "+OK" | "+PONG" => Ok(Ok(Remembered::First)),
        "$-1" => Ok(Ok(Remembered::Replayed)),
        error if error.starts_with('-') => {
            // Text from the network: escaped by `Debug`, and short.
            let error: String = error.chars().take(120).collect();
            log::warn!("DPoP replay store: Redis refused a command: {error:?}");
            Ok(Err(ReplayStoreError::Unavailable))
        }
        _ => Err(std::io::Error::other("an unexpected reply")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_resp_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode(&mut out, &["SET", "k", "1", "NX", "EX", "60"]);
        assert_eq!(
            out,
            b"*6\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n$2\r\nNX\r\n$2\r\nEX\r\n$2\r\n60\r\n"
        );
    }
}
