//! CORS (`CORS_ALLOWED_ORIGINS`): wrapped outside auth, so preflights need no token and
//! 401/403 answers carry CORS headers and expose `WWW-Authenticate` to the browser.

use awc::http::Method;

use crate::helpers::{Reply, TestApp, client, read, spawn_app, spawn_app_with};

const ALLOWED: &str = "https://app.example";
const OTHER: &str = "https://evil.example";

async fn spawn_app_allowing_one_origin() -> TestApp {
    spawn_app_with(|config| config.cors_allowed_origins = vec![ALLOWED.into()]).await
}

/// A browser's preflight for `GET /api/whoami` with an `Authorization` header, from `origin`.
async fn preflight(app: &TestApp, origin: &str) -> Reply {
    let request = client()
        .request(Method::OPTIONS, format!("{}/api/whoami", app.address))
        .insert_header(("Origin", origin))
        .insert_header(("Access-Control-Request-Method", "GET"))
        .insert_header(("Access-Control-Request-Headers", "authorization"));
    read(request.send().await.expect("the service answers")).await
}

/// Whether the comma-separated header `name` lists `item` (case-insensitive).
fn lists(reply: &Reply, name: &str, item: &str) -> bool {
    reply.header(name).is_some_and(|value| {
        value
            .split(',')
            .any(|listed| listed.trim().eq_ignore_ascii_case(item))
    })
}

#[actix_web::test]
async fn cors_preflight_from_an_allowed_origin_needs_no_token() {
    let app = spawn_app_allowing_one_origin().await;
    let reply = preflight(&app, ALLOWED).await;
    assert_eq!(reply.status, 200, "{:?}", reply.headers);
    assert_eq!(reply.header("access-control-allow-origin"), Some(ALLOWED));
    assert!(
        lists(&reply, "access-control-allow-headers", "authorization"),
        "{:?}",
        reply.headers
    );
    assert!(
        reply.header("www-authenticate").is_none(),
        "a preflight is not an auth failure"
    );
}

#[actix_web::test]
async fn an_allowed_origin_gets_cors_headers_on_a_200_whoami() {
    let app = spawn_app_allowing_one_origin().await;
    let token = app.token();
    let reply = app
        .get(
            "/api/whoami",
            &[
                ("Origin", ALLOWED),
                ("Authorization", &format!("Bearer {token}")),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("access-control-allow-origin"), Some(ALLOWED));
}

#[actix_web::test]
async fn an_allowed_origin_gets_cors_headers_and_the_exposed_challenge_on_a_401() {
    let app = spawn_app_allowing_one_origin().await;
    let reply = app.get("/api/whoami", &[("Origin", ALLOWED)]).await;
    reply.assert_auth_error(
        401,
        "unauthorized",
        "whoami without a token from an allowed origin",
    );
    assert_eq!(reply.header("access-control-allow-origin"), Some(ALLOWED));
    assert!(
        lists(&reply, "access-control-expose-headers", "www-authenticate"),
        "{:?}",
        reply.headers
    );
}

#[actix_web::test]
async fn an_allowed_origin_gets_cors_headers_and_the_exposed_challenge_on_a_403() {
    let app = spawn_app_with(|config| {
        config.cors_allowed_origins = vec![ALLOWED.into()];
        config.auth = config.auth.clone().with_required_scopes(["admin"]);
    })
    .await;
    let token = app.token();
    let reply = app
        .get(
            "/api/whoami",
            &[
                ("Origin", ALLOWED),
                ("Authorization", &format!("Bearer {token}")),
            ],
        )
        .await;
    reply.assert_auth_error(
        403,
        "insufficient_scope",
        "whoami with an AccessAll token from an allowed origin",
    );
    assert_eq!(reply.header("access-control-allow-origin"), Some(ALLOWED));
    assert!(
        lists(&reply, "access-control-expose-headers", "www-authenticate"),
        "{:?}",
        reply.headers
    );
}

#[actix_web::test]
async fn another_origin_gets_no_allow_origin_header_on_a_200_or_a_401() {
    let app = spawn_app_allowing_one_origin().await;
    let token = app.token();
    let ok = app
        .get(
            "/api/whoami",
            &[
                ("Origin", OTHER),
                ("Authorization", &format!("Bearer {token}")),
            ],
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        None,
        "200 to {OTHER}"
    );
    let unauthorized = app.get("/api/whoami", &[("Origin", OTHER)]).await;
    unauthorized.assert_auth_error(
        401,
        "unauthorized",
        "whoami without a token from another origin",
    );
    assert_eq!(
        unauthorized.header("access-control-allow-origin"),
        None,
        "401 to {OTHER}"
    );
}

#[actix_web::test]
async fn a_preflight_from_another_origin_gets_no_allow_origin_header() {
    let app = spawn_app_allowing_one_origin().await;
    let reply = preflight(&app, OTHER).await;
    assert_eq!(
        reply.header("access-control-allow-origin"),
        None,
        "status {}, {:?}",
        reply.status,
        reply.headers
    );
}

#[actix_web::test]
async fn with_cors_off_a_request_with_an_origin_gets_no_cors_headers() {
    let app = spawn_app().await;
    let token = app.token();
    let replies = [
        (
            "200 whoami",
            app.get(
                "/api/whoami",
                &[
                    ("Origin", ALLOWED),
                    ("Authorization", &format!("Bearer {token}")),
                ],
            )
            .await,
        ),
        (
            "401 whoami",
            app.get("/api/whoami", &[("Origin", ALLOWED)]).await,
        ),
        ("hello", app.get("/api/hello", &[("Origin", ALLOWED)]).await),
        ("preflight", preflight(&app, ALLOWED).await),
    ];
    for (case, reply) in &replies {
        let cors: Vec<&str> = reply
            .headers
            .keys()
            .map(|name| name.as_str())
            .filter(|name| name.starts_with("access-control-"))
            .collect();
        assert!(
            cors.is_empty(),
            "{case}: CORS headers {cors:?} with CORS off"
        );
    }
    assert_eq!(replies[0].1.status, 200, "the 200 case really answered 200");
    assert_eq!(replies[1].1.status, 401, "the 401 case really answered 401");
}

#[actix_web::test]
async fn a_browser_may_send_a_dpop_proof_and_read_a_dpop_nonce() {
    let app = spawn_app_allowing_one_origin().await;
    let request = client()
        .request(Method::OPTIONS, format!("{}/api/whoami", app.address))
        .insert_header(("Origin", ALLOWED))
        .insert_header(("Access-Control-Request-Method", "GET"))
        .insert_header(("Access-Control-Request-Headers", "authorization,dpop"));
    let reply = read(request.send().await.expect("the service answers")).await;
    assert_eq!(reply.status, 200, "{:?}", reply.headers);
    assert!(
        lists(&reply, "access-control-allow-headers", "dpop"),
        "{:?}",
        reply.headers
    );
    let answer = app
        .get(
            "/api/whoami",
            &[("Origin", ALLOWED), ("Authorization", "DPoP a.b.c")],
        )
        .await;
    assert!(
        lists(&answer, "access-control-expose-headers", "dpop-nonce"),
        "{:?}",
        answer.headers
    );
}
