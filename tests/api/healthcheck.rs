//! `api-guard healthcheck`, the real binary, against a service on loopback: ready, not
//! ready, draining, nothing listening and a listener that never answers.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::helpers::{binary_in, spawn_app, wait_at_most};

/// `BIND_ADDR={bind} api-guard healthcheck`: its exit code, stdout and how long it took.
async fn healthcheck(bind: String) -> (Option<i32>, String, Duration) {
    // Off the test's runtime: the service under test answers on it.
    actix_web::rt::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let started = Instant::now();
        let mut child = binary_in(dir.path())
            .env("BIND_ADDR", &bind)
            .arg("healthcheck")
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary starts");
        let status = wait_at_most(&mut child, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("healthcheck of {bind} ran past 10 s"));
        let mut stdout = String::new();
        if let Some(mut pipe) = child.stdout.take() {
            std::io::Read::read_to_string(&mut pipe, &mut stdout).expect("stdout is text");
        }
        (status.code(), stdout, started.elapsed())
    })
    .await
    .expect("the healthcheck thread ends")
}

#[actix_web::test]
async fn exits_0_when_ready_and_1_once_the_drain_starts() {
    let app = spawn_app().await;
    let port = app.app.port();
    let (code, out, _) = healthcheck(format!("127.0.0.1:{port}")).await;
    assert_eq!(code, Some(0), "{out}");
    // A wildcard BIND_ADDR, as in the image, is probed over loopback.
    let (code, out, _) = healthcheck(format!("0.0.0.0:{port}")).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("ready: 127.0.0.1:"), "{out}");

    app.app.telemetry().drain().start();
    let (code, out, _) = healthcheck(format!("0.0.0.0:{port}")).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("not ready: HTTP/1.1 503"), "{out}");
}

#[actix_web::test]
async fn exits_1_while_no_signing_keys_are_loaded() {
    let (app, _reserved) = crate::helpers::spawn_app_with_a_refusing_issuer().await;
    let (code, out, _) = healthcheck(format!("127.0.0.1:{}", app.app.port())).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("503"), "{out}");
}

#[actix_web::test]
async fn exits_1_when_nothing_listens_or_nothing_answers_within_2_s() {
    // Bound, not listening: the connection is refused.
    let (_reserved, port) = crate::helpers::refused_port();
    let (code, out, _) = healthcheck(format!("0.0.0.0:{port}")).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("cannot connect"), "{out}");

    // Listening, never accepting or answering: the kernel completes the handshake, the probe
    // waits for a status line and gives up at 2 s.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let (code, out, took) = healthcheck(format!("127.0.0.1:{port}")).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("within 2 s"), "{out}");
    assert!(
        (Duration::from_millis(1900)..Duration::from_secs(8)).contains(&took),
        "took {took:?}"
    );
    drop(silent);
}
