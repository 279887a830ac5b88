//! `api-guard healthcheck`: asks the service on this machine whether it is ready, for
//! Docker's and compose's `HEALTHCHECK`. The image is distroless (no shell, no curl), so the
//! binary probes itself: `GET /health/ready` on `BIND_ADDR`'s port over loopback, exit 0 on
//! 200 and 1 on anything else, all within 2 s.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The whole probe, connection to status line, takes at most this long.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Where to probe a service listening on `bind`: a wildcard address (`0.0.0.0`, `[::]`) is
/// reached over loopback, any other address as it is.
pub fn target(bind: SocketAddr) -> SocketAddr {
    let ip = match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bind.port())
}

/// `GET /health/ready` at `addr`: `Ok` on 200, else why not.
pub fn probe(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
            .ok_or_else(|| format!("no answer from {addr} within {} s", timeout.as_secs()))
    };
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_write_timeout(Some(left()?))
        .and_then(|()| {
            write!(
                stream,
                "GET /health/ready HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: api-guard-healthcheck\r\nConnection: close\r\n\r\n"
            )
        })
        .map_err(|e| format!("cannot send to {addr}: {e}"))?;
    // The status line is all we read: at most 256 bytes, each read within the deadline.
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 256 {
        stream
            .set_read_timeout(Some(left()?))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf[..256 - head.len()]) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(left().err().unwrap_or_else(|| e.to_string()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("cannot read from {addr}: {e}")),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let status_line = head.lines().next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    match (parts.next(), parts.next()) {
        (Some(version), Some("200")) if version.starts_with("HTTP/1.") => Ok(()),
        (Some(version), Some(_)) if version.starts_with("HTTP/1.") => {
            Err(format!("not ready: {status_line}"))
        }
        _ => Err(format!("{addr} did not answer HTTP: {status_line:?}")),
    }
}

/// Runs the probe for a service bound to `bind` and prints its outcome: the exit code
/// Docker reads (0 healthy, 1 unhealthy).
pub fn run(bind: SocketAddr) -> ExitCode {
    let addr = target(bind);
    match probe(addr, TIMEOUT) {
        Ok(()) => {
            println!("ready: {addr}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            println!("unhealthy: {why}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_addresses_are_probed_over_loopback_others_as_they_are() {
        let target = |bind: &str| target(bind.parse().unwrap()).to_string();
        assert_eq!(target("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(target("[::]:8080"), "[::1]:8080");
        assert_eq!(target("127.0.0.2:81"), "127.0.0.2:81");
    }
}
