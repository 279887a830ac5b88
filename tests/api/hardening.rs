//! Findings of the security review in the service: the development issuer behind `--dev`
//! (DNS rebinding, CORS), percent-encoded paths in `/metrics`, and the development issuer's
//! refusal of a non-loopback bind.

use std::net::SocketAddr;

use api_guard_server::dev_issuer::DevIssuer;
use api_guard_server::{Application, Cli, Config};

use crate::helpers::{Reply, client, read, spawn_app};

const ORIGIN: &str = "https://page.example";

/// `api-guard --dev` in process, on a free loopback port, with `CORS_ALLOWED_ORIGINS=*`.
async fn dev_service_allowing_any_origin() -> (Application, String) {
    let cli = Cli::from_args_only([
        "api-guard",
        "--dev",
        "--bind=127.0.0.1:0",
        "--cors-allowed-origins=*",
    ])
    .expect("valid flags");
    let mut config = Config::from_cli(cli).expect("valid settings");
    config.workers = 1;
    let app = Application::build(config)
        .await
        .expect("the service starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    (app, base)
}

async fn token_request(base: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = client()
        .post(format!("{base}/oauth2/default/v1/token"))
        .basic_auth("api-guard-dev", "api-guard-dev-secret")
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"));
    for (name, value) in headers {
        request = request.insert_header((*name, *value));
    }
    read(
        request
            .send_body("grant_type=client_credentials&scope=AccessAll")
            .await
            .expect("the service answers"),
    )
    .await
}

#[actix_web::test]
async fn under_dev_a_request_with_a_foreign_host_is_refused() {
    let (app, base) = dev_service_allowing_any_origin().await;
    let port = app.port();
    for host in [
        "attacker.example",
        &format!("attacker.example:{port}"),
        "192.0.2.1",
    ] {
        let reply = token_request(&base, &[("Host", host)]).await;
        // The message never prints the body: it would hold a token.
        assert_eq!(reply.status, 421, "Host {host}");
        assert!(
            reply.body.get("access_token").is_none(),
            "Host {host}: a token was issued"
        );
        let hello = read(
            client()
                .get(format!("{base}/api/hello"))
                .insert_header(("Host", host))
                .send()
                .await
                .expect("the service answers"),
        )
        .await;
        assert_eq!(hello.status, 421, "every route under --dev, Host {host}");
    }
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let reply = token_request(&base, &[("Host", &host)]).await;
        assert_eq!(reply.status, 200, "Host {host}");
        assert!(
            reply.body["access_token"].is_string(),
            "Host {host}: no token"
        );
    }
    drop(app.handle().stop(false));
}

#[actix_web::test]
async fn under_dev_the_issuer_routes_carry_no_cors_headers_even_with_any_origin_allowed() {
    let (app, base) = dev_service_allowing_any_origin().await;
    // The token endpoint, also when the path is percent-encoded.
    for path in ["/oauth2/default/v1/token", "/oauth2/default/v1/tok%65n"] {
        let reply = read(
            client()
                .post(format!("{base}{path}"))
                .basic_auth("api-guard-dev", "api-guard-dev-secret")
                .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
                .insert_header(("Origin", ORIGIN))
                .send_body("grant_type=client_credentials&scope=AccessAll")
                .await
                .expect("the service answers"),
        )
        .await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.header("access-control-allow-origin"), None, "{path}");
        let preflight = read(
            client()
                .request(awc::http::Method::OPTIONS, format!("{base}{path}"))
                .insert_header(("Origin", ORIGIN))
                .insert_header(("Access-Control-Request-Method", "POST"))
                .insert_header(("Access-Control-Request-Headers", "authorization"))
                .send()
                .await
                .expect("the service answers"),
        )
        .await;
        assert_eq!(
            preflight.header("access-control-allow-origin"),
            None,
            "{path}"
        );
    }
    for path in [
        "/oauth2/default/v1/keys",
        "/oauth2/default/.well-known/openid-configuration",
    ] {
        let reply = read(
            client()
                .get(format!("{base}{path}"))
                .insert_header(("Origin", ORIGIN))
                .send()
                .await
                .expect("the service answers"),
        )
        .await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.header("access-control-allow-origin"), None, "{path}");
    }
    // The API itself still answers cross-origin.
    let hello = read(
        client()
            .get(format!("{base}/api/hello"))
            .insert_header(("Origin", ORIGIN))
            .send()
            .await
            .expect("the service answers"),
    )
    .await;
    assert_eq!(hello.header("access-control-allow-origin"), Some(ORIGIN));
    drop(app.handle().stop(false));
}

#[actix_web::test]
async fn the_development_issuer_refuses_to_bind_a_non_loopback_address() {
    for addr in ["0.0.0.0:0", "[::]:0"] {
        let refused = DevIssuer::spawn(addr, |_| {}).await.err();
        assert_eq!(
            refused.as_ref().map(std::io::Error::kind),
            Some(std::io::ErrorKind::InvalidInput),
            "{addr}: {refused:?}"
        );
    }
    let (issuer, server) = DevIssuer::spawn("127.0.0.1:0", |_| {})
        .await
        .expect("loopback binds");
    let addr: SocketAddr = issuer
        .issuer()
        .trim_start_matches("http://")
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .expect("the issuer names its address");
    assert!(addr.ip().is_loopback());
    server.stop(false).await;
}

#[actix_web::test]
async fn percent_encoded_paths_are_counted_under_the_route_that_served_them() {
    let app = spawn_app().await;
    assert_eq!(app.get("/api/who%61mi", &[]).await.status, 401);
    assert_eq!(app.get("/api/%77hoami", &[]).await.status, 401);
    assert_eq!(app.get("/api/h%65llo", &[]).await.status, 200);
    let mut response = client()
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("the service answers");
    let body = response.body().await.expect("a body");
    let metrics = String::from_utf8_lossy(&body);
    for sample in [
        r#"api_guard_http_requests_total{route="/api/whoami",method="GET",status="401"} 2"#,
        r#"api_guard_http_requests_total{route="/api/hello",method="GET",status="200"} 1"#,
    ] {
        assert!(
            metrics.lines().any(|line| line == sample),
            "no `{sample}` in\n{metrics}"
        );
    }
    assert!(
        !metrics.contains(r#"route="unmatched""#),
        "served requests counted as unmatched:\n{metrics}"
    );
}
