//! Graceful shutdown of the real binary: SIGTERM turns readiness off at once, the service
//! keeps serving through the drain, a request in flight finishes, and the process exits 0
//! within SHUTDOWN_TIMEOUT_SECS even when a request never ends.
//!
//! The request in flight is a `whoami` whose token names a key the service does not have
//! yet: the service refetches the key set from a test issuer that holds that answer until
//! the test releases it.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use api_guard::Algorithm;
use api_guard_server::dev_issuer::{DevIssuer, DevIssuerSettings};
use serde_json::json;
use tokio::sync::watch;

use crate::helpers::{Reply, client, eventually, read};
use crate::process::Service;

/// An issuer whose JWKS endpoint answers the first fetch at once and holds every later one
/// until released.
struct HeldIssuer {
    dev: DevIssuer,
    kids: Arc<Mutex<Vec<String>>>,
    held: Arc<AtomicU64>,
    release: watch::Sender<bool>,
    jwks_uri: String,
    server: ServerHandle,
}

impl HeldIssuer {
    fn start() -> HeldIssuer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let dev = DevIssuer::new(DevIssuerSettings::new(format!("{base}/oauth2/default"))).unwrap();
        let kids = Arc::new(Mutex::new(vec![dev.signing_kid()]));
        let held = Arc::new(AtomicU64::new(0));
        let (release, released) = watch::channel(false);
        let fetches = Arc::new(AtomicU64::new(0));
        let state = (dev.clone(), kids.clone(), held.clone(), released, fetches);
        // Its own thread and runtime: the tests block theirs while they wait on the child.
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    let state = state.clone();
                    App::new().route(
                        "/keys",
                        web::get().to(move || {
                            let (dev, kids, held, mut released, fetches) = state.clone();
                            async move {
                                if fetches.fetch_add(1, Ordering::SeqCst) > 0 {
                                    held.fetch_add(1, Ordering::SeqCst);
                                    let _ = released.wait_for(|r| *r).await;
                                }
                                let keys: Vec<_> = kids
                                    .lock()
                                    .unwrap()
                                    .iter()
                                    .filter_map(|kid| dev.jwk(kid))
                                    .collect();
                                HttpResponse::Ok().json(json!({ "keys": keys }))
                            }
                        }),
                    )
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(1)
                .listen(listener)
                .unwrap()
                .run();
                let _ = handle_tx.send(server.handle());
                let _ = server.await;
            });
        });
        let handle = handle_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the test issuer starts");
        HeldIssuer {
            dev,
            kids,
            held,
            release,
            jwks_uri: format!("{base}/keys"),
            server: handle,
        }
    }

    /// A token signed with a new key, published only by the next (held) fetch.
    fn token_with_a_new_key(&self) -> String {
        let kid = self.dev.add_key(Algorithm::ES256);
        assert!(self.dev.use_key(&kid));
        self.kids.lock().unwrap().push(kid);
        self.dev.mint(&["AccessAll"])
    }

    /// The service trusting this issuer, with extra settings.
    fn service(&self, env: &[(&str, &str)]) -> Service {
        let mut all = vec![
            ("AUTH_ISSUER", self.dev.issuer()),
            ("AUTH_JWKS_URI", self.jwks_uri.as_str()),
            ("AUTH_JWKS_COOLDOWN_SECS", "1"),
            ("RUST_LOG", "info"),
        ];
        all.extend_from_slice(env);
        Service::start(&all, &[])
    }

    /// Starts `whoami` with a token whose key only the held fetch brings, and returns once
    /// the service is waiting on that fetch.
    async fn start_held_whoami(
        &self,
        service: &Service,
    ) -> actix_web::rt::task::JoinHandle<Option<Reply>> {
        let token = self.token_with_a_new_key();
        let url = format!("{}/api/whoami", service.base());
        let request = actix_web::rt::spawn(async move {
            let sent = client()
                .get(url)
                .insert_header(("Authorization", format!("Bearer {token}")))
                .send()
                .await;
            match sent {
                Ok(response) => Some(read(response).await),
                Err(_) => None,
            }
        });
        let held = eventually(Duration::from_secs(10), || async {
            self.held.load(Ordering::SeqCst) > 0
        })
        .await;
        assert!(held, "the service never refetched the key set");
        request
    }
}

impl Drop for HeldIssuer {
    fn drop(&mut self) {
        let _ = self.release.send(true);
        drop(self.server.stop(false));
    }
}

async fn get(service: &Service, path: &str) -> Option<Reply> {
    let response = client()
        .get(format!("{}{path}", service.base()))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    Some(read(response).await)
}

#[actix_web::test]
async fn sigterm_turns_ready_off_serves_through_the_drain_finishes_the_request_in_flight_and_exits_0()
 {
    let issuer = HeldIssuer::start();
    let mut service = issuer.service(&[
        ("SHUTDOWN_DRAIN_SECS", "2"),
        ("SHUTDOWN_TIMEOUT_SECS", "20"),
    ]);
    assert_eq!(
        get(&service, "/health/ready").await.map(|r| r.status),
        Some(200)
    );
    let in_flight = issuer.start_held_whoami(&service).await;

    service.signal("-TERM");
    let draining = eventually(Duration::from_secs(5), || async {
        get(&service, "/health/ready").await.map(|r| r.status) == Some(503)
    })
    .await;
    assert!(draining, "/health/ready did not turn 503 after SIGTERM");
    let ready = get(&service, "/health/ready").await.expect("ready answers");
    assert_eq!(ready.body["status"], "draining", "{}", ready.body);
    assert!(ready.body["reason"].as_str().is_some_and(|r| !r.is_empty()));
    let live = get(&service, "/health/live").await.map(|r| r.status);
    let hello = get(&service, "/api/hello").await.map(|r| r.status);
    assert_eq!((live, hello), (Some(200), Some(200)), "during the drain");

    // After the drain the listener closes, but the request in flight still gets its answer.
    service.wait_for_line("drain over", Duration::from_secs(10));
    let refused = eventually(Duration::from_secs(5), || async {
        std::net::TcpStream::connect(("127.0.0.1", service.port)).is_err()
    })
    .await;
    assert!(
        refused,
        "new connections are still accepted after the drain"
    );
    issuer.release.send(true).unwrap();
    let reply = in_flight
        .await
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(reply.status, 200, "{}", reply.body);

    let status = service.wait(Duration::from_secs(20));
    let stderr = service.stderr_text();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{stderr}");
    for step in [
        "SIGTERM received: /health/ready answers 503",
        "drain over: no longer accepting connections",
        "stopped: every request in flight finished",
    ] {
        assert!(stderr.contains(step), "no {step:?} in\n{stderr}");
    }
}

#[actix_web::test]
async fn a_request_that_never_ends_does_not_keep_the_process_past_the_shutdown_timeout() {
    let issuer = HeldIssuer::start();
    let mut service =
        issuer.service(&[("SHUTDOWN_DRAIN_SECS", "0"), ("SHUTDOWN_TIMEOUT_SECS", "2")]);
    let _stuck = issuer.start_held_whoami(&service).await;
    service.signal("-TERM");
    // The held fetch would last until the key store's own 10 s timeout: exiting well before
    // it shows the process gave up on the request at SHUTDOWN_TIMEOUT_SECS.
    let status = service.wait(Duration::from_secs(8));
    let stderr = service.stderr_text();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{stderr}");
    assert!(
        stderr.contains("SHUTDOWN_TIMEOUT_SECS (2s) passed with 1 request(s) still in flight"),
        "{stderr}"
    );
}

#[actix_web::test]
async fn a_second_signal_stops_at_once() {
    let issuer = HeldIssuer::start();
    let mut service = issuer.service(&[
        ("SHUTDOWN_DRAIN_SECS", "60"),
        ("SHUTDOWN_TIMEOUT_SECS", "120"),
    ]);
    service.signal("-TERM");
    service.wait_for_line("SIGTERM received", Duration::from_secs(10));
    service.signal("-INT");
    let status = service.wait(Duration::from_secs(10));
    let stderr = service.stderr_text();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{stderr}");
    assert!(
        stderr.contains("second signal (SIGINT): stopping now"),
        "{stderr}"
    );
}

/// Connections that the kernel completed while the service was not accepting (here: stopped
/// with SIGSTOP), each with its request sent, then the drain ends at once: every one is
/// answered, none is reset when the listening socket closes (issue 14: a balancer had sent a
/// request on such a connection, and lost it), nor closed at exit with its request unread
/// (this caught that: half of them were reset in 2 of 7 runs when the process ended as soon
/// as nothing was in flight). The accept loop races the stop here and mostly wins even
/// without the door; the door itself (new connections kept out, the queue waited for) is
/// tested in `shutdown::door`.
#[actix_web::test]
async fn connections_the_kernel_completed_before_the_listener_closed_are_answered_not_reset() {
    use std::io::{Read, Write};
    const COUNT: usize = 64;
    let issuer = HeldIssuer::start();
    let mut service = issuer.service(&[
        ("SHUTDOWN_DRAIN_SECS", "0"),
        ("SHUTDOWN_TIMEOUT_SECS", "10"),
    ]);
    service.signal("-STOP");
    let mut streams = Vec::with_capacity(COUNT);
    for i in 0..COUNT {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", service.port))
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        stream
            .write_all(b"GET /api/hello HTTP/1.1\r\nHost: api-guard\r\n\r\n")
            .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        streams.push(stream);
    }
    // The SIGTERM waits for the SIGCONT; then the service takes its queue and stops at once.
    service.signal("-TERM");
    service.signal("-CONT");
    let mut answered = 0;
    let mut lost = Vec::new();
    for (i, mut stream) in streams.into_iter().enumerate() {
        let mut response = Vec::new();
        match stream.read_to_end(&mut response) {
            Ok(_) if response.starts_with(b"HTTP/1.1 200") => answered += 1,
            Ok(_) => lost.push(format!("{i}: {:?}", String::from_utf8_lossy(&response))),
            Err(error) => lost.push(format!("{i}: {error}")),
        }
    }
    let status = service.wait(Duration::from_secs(20));
    let stderr = service.stderr_text();
    assert_eq!(answered, COUNT, "lost: {lost:?}\n{stderr}");
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{stderr}");
}

/// A clean stop reads as one: no ERROR line. actix-server logged two (`error accepting
/// connection: Invalid argument`, `can not deregister server socket`) whenever the listening
/// socket was shut before the accept loop had taken the pause command, which happened in
/// about one stop in three on a two-core machine; five stops in a row make a miss unlikely.
#[actix_web::test]
async fn a_clean_stop_logs_no_error() {
    let issuer = HeldIssuer::start();
    for round in 1..=5 {
        let mut service = issuer.service(&[
            ("SHUTDOWN_DRAIN_SECS", "0"),
            ("SHUTDOWN_TIMEOUT_SECS", "10"),
        ]);
        assert_eq!(
            get(&service, "/api/hello").await.map(|r| r.status),
            Some(200)
        );
        service.signal("-TERM");
        let status = service.wait(Duration::from_secs(20));
        let stderr = service.stderr_text();
        assert_eq!(status.and_then(|s| s.code()), Some(0), "{stderr}");
        assert!(
            stderr.contains("stopped: every request in flight finished"),
            "{stderr}"
        );
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
        assert!(
            errors.is_empty(),
            "stop {round} logged {errors:?}\n{stderr}"
        );
    }
}
