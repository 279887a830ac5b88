//! The real binary as a child process whose stdout and stderr are read line by line while it
//! runs, for the shutdown and logging tests.

use std::io::{BufRead, BufReader};
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::helpers::{binary_in, wait_at_most};

const LISTENING: &str = "api-guard is listening on http://127.0.0.1:";

/// `api-guard` with `env` and `args` on a free loopback port.
pub struct Service {
    pub child: Child,
    pub port: u16,
    lines: Receiver<String>,
    /// Every stderr line so far.
    pub stderr: Arc<Mutex<Vec<String>>>,
    stderr_closed: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

impl Service {
    /// Starts the binary and waits (at most 20 s) for the line naming its port.
    pub fn start(env: &[(&str, &str)], args: &[&str]) -> Service {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut child = binary_in(dir.path())
            .env("BIND_ADDR", "127.0.0.1:0")
            .envs(env.iter().copied())
            .args(args)
            .spawn()
            .expect("the binary starts");
        let (tx, lines) = channel();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("stdout is piped");
        let err = child.stderr.take().expect("stderr is piped");
        let out_tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = out_tx.send(line);
            }
        });
        let all = Arc::clone(&stderr);
        let stderr_closed = Arc::new(AtomicBool::new(false));
        let closed = Arc::clone(&stderr_closed);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                all.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
            closed.store(true, Ordering::SeqCst);
        });
        let mut service = Service {
            child,
            port: 0,
            lines,
            stderr,
            stderr_closed,
            _dir: dir,
        };
        let line = service.wait_for_line(LISTENING, Duration::from_secs(20));
        let at = line.find(LISTENING).unwrap() + LISTENING.len();
        let port: String = line[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        service.port = port.parse().expect("a port in the listening line");
        service
    }

    /// Reads lines (stdout and stderr) until one contains `needle`; panics after `limit`.
    pub fn wait_for_line(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!(
                    "no line with {needle:?} within {limit:?}; stderr:\n{}",
                    self.stderr_text()
                ),
            }
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sends `signal` (e.g. `-TERM`) to the child, by its PID.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(signal)
            .arg(self.child.id().to_string())
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill {signal} failed: {status}");
    }

    /// Waits at most `limit` for the exit; `None` if the child had to be killed.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let status = wait_at_most(&mut self.child, limit);
        // The reader thread may still hold the last lines; it ends with the pipe.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.stderr_closed.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        status
    }

    /// Stops with SIGTERM, waits at most 20 s, and returns the whole stderr.
    pub fn stop(&mut self) -> String {
        self.signal("-TERM");
        let status = self.wait(Duration::from_secs(20));
        let text = self.stderr_text();
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "exit after SIGTERM; stderr:\n{text}"
        );
        text
    }

    /// Every stderr line read so far, joined.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
