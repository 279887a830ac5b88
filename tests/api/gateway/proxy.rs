//! The reverse proxy against the echo upstream: identity, headers, failures, limits.

use std::time::Duration;

use serde_json::json;

use super::upstream::{echo_upstream, raw_request, raw_upstream, seen, spawn_gateway};
use crate::helpers::{client, read, refused_port};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[actix_web::test]
async fn an_authenticated_request_reaches_the_upstream_with_its_identity_and_without_the_token() {
    let upstream = echo_upstream().await;
    let app = spawn_gateway(&upstream.origin, |_, _| {}).await;
    let token = app.issuer.mint(&["orders:read", "AccessAll"]);
    let reply = app
        .get(
            "/orders/7?x=1&y=%2F",
            &[
                ("Authorization", &format!("Bearer {token}")),
                ("traceparent", TRACEPARENT),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let echo = &reply.body;
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], "/orders/7");
    assert_eq!(echo["query"], "x=1&y=%2F");
    let client_id = &app.issuer.settings().client_id;
    assert_eq!(seen(echo, "x-auth-subject"), [client_id.as_str()]);
    assert_eq!(seen(echo, "x-auth-client-id"), [client_id.as_str()]);
    assert_eq!(seen(echo, "x-auth-scopes"), ["orders:read AccessAll"]);
    assert_eq!(
        seen(echo, "x-auth-issuer"),
        [app.issuer.issuer().to_owned()]
    );
    assert!(
        seen(echo, "authorization").is_empty(),
        "the token is removed"
    );
    assert_eq!(seen(echo, "traceparent"), [TRACEPARENT]);
    assert_eq!(seen(echo, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen(echo, "x-forwarded-proto"), ["http"]);
    let gateway_host = app.address.trim_start_matches("http://");
    assert_eq!(seen(echo, "x-forwarded-host"), [gateway_host]);
    let upstream_host = upstream.origin.trim_start_matches("http://");
    assert_eq!(
        seen(echo, "host"),
        [upstream_host],
        "Host is the upstream's own"
    );
    assert!(
        reply.header("x-request-id").is_some(),
        "api-guard's own headers are added"
    );
}

#[actix_web::test]
async fn spoofed_identity_headers_are_removed_in_every_spelling() {
    let upstream = echo_upstream().await;
    let app = spawn_gateway(&upstream.origin, |_, _| {}).await;
    let token = app.token();
    let reply = app
        .get(
            "/me",
            &[
                ("Authorization", &format!("Bearer {token}")),
                ("X-Auth-Subject", "admin"),
                ("x-auth-scopes", "admin:all"),
                ("X_Auth_Subject", "admin"),
                ("X-Auth-Role", "root"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let subject = app.issuer.settings().client_id.clone();
    assert_eq!(seen(&reply.body, "x-auth-subject"), [subject]);
    assert_eq!(seen(&reply.body, "x-auth-scopes"), ["AccessAll"]);
    for spoofed in ["x_auth_subject", "x-auth-role"] {
        assert!(seen(&reply.body, spoofed).is_empty(), "{spoofed}");
    }
}

#[actix_web::test]
async fn a_request_without_a_valid_token_gets_the_services_401_and_never_reaches_the_upstream() {
    let upstream = echo_upstream().await;
    let app = spawn_gateway(&upstream.origin, |_, _| {}).await;
    let missing = app.get("/orders", &[("X-Auth-Subject", "admin")]).await;
    missing.assert_auth_error(401, "unauthorized", "no token");
    assert_eq!(
        missing.header("www-authenticate"),
        Some(app.challenge("/orders", "").as_str())
    );
    let expired = super::upstream::expired_token(&app);
    let reply = app
        .get(
            "/orders",
            &[("Authorization", &format!("Bearer {expired}"))],
        )
        .await;
    reply.assert_auth_error(401, "invalid_token", "expired token");
    assert_eq!(upstream.hits(), 0);
}

#[actix_web::test]
async fn a_claim_that_cannot_be_a_header_value_is_refused_not_forwarded() {
    let upstream = echo_upstream().await;
    let app = spawn_gateway(&upstream.origin, |_, _| {}).await;
    for subject in ["alice\r\nX-Auth-Scopes: admin", "tab\there", "zoë"] {
        let mut claims = app.issuer.standard_claims(&["AccessAll"]);
        claims["sub"] = json!(subject);
        let token = app.issuer.mint_with(app.issuer.standard_header(), claims);
        let reply = app
            .get("/orders", &[("Authorization", &format!("Bearer {token}"))])
            .await;
        reply.assert_auth_error(401, "invalid_token", subject);
    }
    let mut claims = app.issuer.standard_claims(&[]);
    claims["scp"] = json!(["orders:read", "x\r\ny"]);
    let token = app.issuer.mint_with(app.issuer.standard_header(), claims);
    let reply = app
        .get("/orders", &[("Authorization", &format!("Bearer {token}"))])
        .await;
    reply.assert_auth_error(401, "invalid_token", "scope with a line break");
    assert_eq!(upstream.hits(), 0);
}

#[actix_web::test]
async fn hop_by_hop_headers_are_dropped_both_ways() {
    let upstream = echo_upstream().await;
    let app = spawn_gateway(&upstream.origin, |_, _| {}).await;
    let token = app.token();
    // awc writes its own Connection header: the request is written by hand.
    let request = format!(
        "GET /hop HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\n\
         Connection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n\
         Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic eDp5\r\nUpgrade: h2c\r\n\
         X-End-To-End: kept\r\n\r\n"
    );
    let (status, _, body) = raw_request(app.app.addr(), &request);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
    for gone in [
        "x-secret",
        "keep-alive",
        "te",
        "proxy-connection",
        "proxy-authorization",
        "upgrade",
    ] {
        assert!(seen(&echo, gone).is_empty(), "{gone} reached the upstream");
    }
    assert!(
        seen(&echo, "connection")
            .iter()
            .all(|v| !v.to_ascii_lowercase().contains("x-secret")),
        "{:?}",
        seen(&echo, "connection")
    );
    assert_eq!(seen(&echo, "x-end-to-end"), ["kept"]);

    let answer: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close, X-Hop\r\n\
        X-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nUpgrade: h2c\r\n\
        X-End: 1\r\n\r\nok";
    let raw = raw_upstream(Some(answer), 1);
    let app = spawn_gateway(&raw, |_, _| {}).await;
    let reply = client()
        .get(format!("{}/x", app.address))
        .insert_header(("Authorization", format!("Bearer {}", app.token())))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    for gone in ["x-hop", "keep-alive", "proxy-authenticate", "upgrade"] {
        assert!(
            !reply.headers().contains_key(gone),
            "{gone} reached the client"
        );
    }
    assert_eq!(reply.headers().get("x-end").unwrap(), "1");
}

#[actix_web::test]
async fn forwarding_headers_are_appended_only_for_trusted_proxies() {
    let upstream = echo_upstream().await;
    let forwarded = [
        ("X-Forwarded-For", "198.51.100.7"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "api.example.com"),
    ];
    let untrusted = spawn_gateway(&upstream.origin, |_, _| {}).await;
    let token = untrusted.token();
    let auth = ("Authorization", format!("Bearer {token}"));
    let mut headers: Vec<(&str, &str)> = forwarded.to_vec();
    headers.push((auth.0, &auth.1));
    let echo = untrusted.get("/", &headers).await.body;
    assert_eq!(seen(&echo, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen(&echo, "x-forwarded-proto"), ["http"]);
    assert_ne!(seen(&echo, "x-forwarded-host"), ["api.example.com"]);

    let trusted = spawn_gateway(&upstream.origin, |_, config| {
        config.trusted_proxies =
            api_guard_server::telemetry::TrustedProxies::parse("127.0.0.1").unwrap();
    })
    .await;
    let token = trusted.token();
    let auth = ("Authorization", format!("Bearer {token}"));
    let mut headers: Vec<(&str, &str)> = forwarded.to_vec();
    headers.push((auth.0, &auth.1));
    let echo = trusted.get("/", &headers).await.body;
    assert_eq!(seen(&echo, "x-forwarded-for"), ["198.51.100.7, 127.0.0.1"]);
    assert_eq!(seen(&echo, "x-forwarded-proto"), ["https"]);
    assert_eq!(seen(&echo, "x-forwarded-host"), ["api.example.com"]);
}

#[actix_web::test]
async fn the_token_and_the_host_are_kept_when_configured() {
    let upstream = echo_upstream().await;
    let app = spawn_gateway(&upstream.origin, |settings, _| {
        settings.forward_token = true;
        settings.preserve_host = true;
    })
    .await;
    let authorization = format!("Bearer {}", app.token());
    let reply = app
        .get(
            "/",
            &[
                ("Authorization", &authorization),
                ("Host", "api.example.com"),
            ],
        )
        .await;
    assert_eq!(seen(&reply.body, "authorization"), [authorization]);
    assert_eq!(seen(&reply.body, "host"), ["api.example.com"]);
}

#[actix_web::test]
async fn api_guards_own_routes_are_answered_by_it_and_the_sample_api_is_not_served() {
    let upstream = echo_upstream().await;
    let app = spawn_gateway(&upstream.origin, |_, _| {}).await;
    let ready = app.get("/health/ready", &[]).await;
    assert_eq!(
        (ready.status, &ready.body["status"]),
        (200, &json!("ready"))
    );
    let metadata = app.get("/.well-known/oauth-protected-resource", &[]).await;
    assert_eq!(
        metadata.body["authorization_servers"][0],
        app.issuer.issuer()
    );
    let metrics = client()
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    assert_eq!(upstream.hits(), 0);

    let token = app.token();
    for path in ["/api/hello", "/api/whoami", "/api/echo", "/openapi.json"] {
        let reply = app
            .get(path, &[("Authorization", &format!("Bearer {token}"))])
            .await;
        assert_eq!(reply.body["path"], path, "{path} goes upstream");
    }
    // Anonymous in the sample API, protected by the default policy here.
    app.get("/api/hello", &[])
        .await
        .assert_auth_error(401, "unauthorized", "/api/hello");
    assert_eq!(upstream.hits(), 4);
}

#[actix_web::test]
async fn an_upstream_that_refuses_connections_gives_502_with_a_json_body() {
    let (_reserved, port) = refused_port();
    let app = spawn_gateway(&format!("http://127.0.0.1:{port}"), |_, _| {}).await;
    let token = app.token();
    let reply = app
        .get("/x", &[("Authorization", &format!("Bearer {token}"))])
        .await;
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert_eq!(reply.body["error"], "bad_gateway");
}

#[actix_web::test]
async fn an_upstream_that_resets_the_connection_gives_502() {
    let raw = raw_upstream(None, 1);
    let app = spawn_gateway(&raw, |_, _| {}).await;
    let token = app.token();
    let reply = app
        .get("/x", &[("Authorization", &format!("Bearer {token}"))])
        .await;
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert_eq!(reply.body["error"], "bad_gateway");
}

#[actix_web::test]
async fn a_malformed_answer_gives_502() {
    for answer in [
        &b"this is not HTTP\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        b"HTTP/1.1 2000 Huge\r\n\r\n",
    ] {
        let raw = raw_upstream(Some(answer), 1);
        let app = spawn_gateway(&raw, |_, _| {}).await;
        let token = app.token();
        let reply = app
            .get("/x", &[("Authorization", &format!("Bearer {token}"))])
            .await;
        let context = String::from_utf8_lossy(answer);
        assert_eq!(reply.status, 502, "{context}: {}", reply.body);
        assert_eq!(reply.body["error"], "bad_gateway", "{context}");
    }
}

#[actix_web::test]
async fn an_upstream_slower_than_the_timeout_gives_504_and_a_stalled_body_is_cut_off() {
    let upstream = echo_upstream().await;
    let app = spawn_gateway(&upstream.origin, |settings, _| {
        settings.timeout = Duration::from_secs(1);
    })
    .await;
    let token = app.token();
    let started = std::time::Instant::now();
    let reply = app
        .get("/slow", &[("Authorization", &format!("Bearer {token}"))])
        .await;
    assert_eq!(reply.status, 504, "{}", reply.body);
    assert_eq!(reply.body["error"], "gateway_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered before the upstream"
    );

    // The body starts, then the upstream sends nothing more: after the idle timeout the
    // client's connection is closed before the chunked body's last chunk.
    let started = std::time::Instant::now();
    let request = format!(
        "GET /stall HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    let (status, head, body) = raw_request(app.app.addr(), &request);
    let waited = started.elapsed();
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    assert!(
        body.len() > 1024,
        "the first KiB was passed on: {} bytes",
        body.len()
    );
    assert!(
        !body.ends_with(b"0\r\n\r\n"),
        "a cut-off body must not look complete"
    );
    assert!(
        waited < Duration::from_secs(8),
        "cut off after {waited:?}, not at the read timeout"
    );
}

#[actix_web::test]
async fn a_websocket_upgrade_is_refused_with_501() {
    let upstream = echo_upstream().await;
    let app = spawn_gateway(&upstream.origin, |_, _| {}).await;
    let token = app.token();
    let request = format!(
        "GET /socket HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\n\
         Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    let (status, _, body) = raw_request(app.app.addr(), &request);
    assert_eq!(status, 501, "{}", String::from_utf8_lossy(&body));
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"], "not_implemented");
    assert_eq!(upstream.hits(), 0);
}

#[actix_web::test]
async fn bodies_over_the_limit_get_413_whether_declared_or_chunked() {
    let upstream = echo_upstream().await;
    let app = spawn_gateway(&upstream.origin, |settings, _| {
        settings.max_body_bytes = 1 << 20;
    })
    .await;
    let token = app.token();
    let post = || {
        client()
            .post(format!("{}/upload", app.address))
            .insert_header(("Authorization", format!("Bearer {token}")))
    };
    // Within the limit, chunked: passes whole.
    let reply = read(
        post()
            .send_stream(super::upstream::generated(1 << 20))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["body_bytes"], 1 << 20);
    assert_eq!(
        reply.body["body_sum"],
        super::upstream::pattern_sum(1 << 20)
    );
    assert_eq!(seen(&reply.body, "transfer-encoding"), ["chunked"]);

    // Declared too large: refused before a byte is read.
    let declared = read(post().send_body(vec![0u8; (1 << 20) + 1]).await.unwrap()).await;
    assert_eq!(declared.status, 413, "{}", declared.body);
    assert_eq!(declared.body["error"], "payload_too_large");

    // Chunked, growing past the limit on the way.
    let chunked = post()
        .send_stream(super::upstream::generated((1 << 20) + 65536))
        .await;
    match chunked {
        Ok(answer) => {
            let reply = read(answer).await;
            assert_eq!(reply.status, 413, "{}", reply.body);
            assert_eq!(reply.body["error"], "payload_too_large");
        }
        // The gateway may close before the client has written its last chunk.
        Err(error) => panic!("no answer to a chunked body over the limit: {error}"),
    }
}

#[actix_web::test]
async fn a_head_request_gets_the_upstreams_length_and_no_body() {
    let upstream = echo_upstream().await;
    let app = spawn_gateway(&upstream.origin, |_, _| {}).await;
    let token = app.token();
    let request = format!(
        "HEAD /orders HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    let (status, head, body) = raw_request(app.app.addr(), &request);
    assert_eq!(status, 200, "{head}");
    let length = head
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .and_then(|value| value.trim().parse::<u64>().ok());
    assert!(
        length.is_some_and(|n| n > 0),
        "the upstream's length is kept: {head}"
    );
    assert!(
        body.is_empty(),
        "no body after a HEAD: {} bytes",
        body.len()
    );
}

#[actix_web::test]
async fn an_upstream_that_accepts_no_connection_gives_504_after_the_connect_timeout() {
    // A listener with a backlog of one that never accepts, filled by one connection: the
    // kernel drops further connection requests, so connecting waits until the timeout.
    let listener =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    listener
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let filler: Vec<_> = (0..4)
        .filter_map(|_| {
            let socket =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
            socket.set_nonblocking(true).ok()?;
            let _ = socket.connect(&addr.into());
            Some(socket)
        })
        .collect();
    let app = spawn_gateway(&format!("http://{addr}"), |settings, _| {
        settings.connect_timeout = Duration::from_secs(1);
    })
    .await;
    let token = app.token();
    let started = std::time::Instant::now();
    let reply = app
        .get("/x", &[("Authorization", &format!("Bearer {token}"))])
        .await;
    assert_eq!(reply.status, 504, "{}", reply.body);
    assert_eq!(reply.body["error"], "gateway_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(filler);
}

#[actix_web::test]
async fn metrics_on_their_own_address_leave_the_path_to_the_upstream() {
    let upstream = echo_upstream().await;
    let app = spawn_gateway(&upstream.origin, |_, config| {
        config.metrics_addr = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    let token = app.token();
    let reply = app
        .get("/metrics", &[("Authorization", &format!("Bearer {token}"))])
        .await;
    assert_eq!(reply.body["path"], "/metrics", "{}", reply.body);
    let own = app.app.metrics_addr().expect("a metrics listener");
    let metrics = client()
        .get(format!("http://{own}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
}
