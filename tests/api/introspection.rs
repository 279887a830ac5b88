//! Introspection (RFC 7662) end to end: opaque tokens of the development issuer accepted,
//! revoked tokens refused once the cached answer has expired, and every way the endpoint
//! can fail answered with 503 and `Retry-After`, never a 401 and never an accept.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use api_guard::{Introspection, IntrospectionMode, Reason};
use api_guard_server::Config;
use api_guard_server::dev_issuer::DevIssuer;
use serde_json::json;

use crate::helpers::{
    Reply, TestApp, client, eventually, read, serve, spawn_app_for, spawn_app_with,
};

const CLIENT_ID: &str = "api-guard-dev";
const CLIENT_SECRET: &str = "api-guard-dev-secret";

/// Introspection in `mode` as the development client, answers reused for one second.
fn introspecting(mode: IntrospectionMode) -> impl FnOnce(&mut Config) {
    move |config| {
        config.auth = config.auth.clone().with_introspection(
            Introspection::new(mode, CLIENT_ID, CLIENT_SECRET)
                .with_cache_ttl(Duration::from_secs(1)),
        );
    }
}

/// Introspection of opaque tokens at `url`, with a short timeout.
fn introspecting_at(url: String) -> impl FnOnce(&mut Config) {
    move |config| {
        config.auth = config.auth.clone().with_introspection(
            Introspection::new(IntrospectionMode::Opaque, CLIENT_ID, CLIENT_SECRET)
                .with_endpoint(url)
                .with_timeout(Duration::from_millis(300)),
        );
    }
}

/// `POST {issuer}{path}` with the development client's HTTP Basic credentials and `form`.
async fn post_as_client(issuer: &DevIssuer, path: &str, form: &str) -> Reply {
    let response = client()
        .post(format!("{}{path}", issuer.issuer()))
        .basic_auth(CLIENT_ID, CLIENT_SECRET)
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .send_body(form.to_owned())
        .await
        .expect("the development issuer answers");
    read(response).await
}

/// An opaque token from the development issuer's token endpoint, over HTTP.
async fn opaque_token(app: &TestApp) -> String {
    let reply = post_as_client(
        &app.issuer,
        "/v1/token",
        "grant_type=client_credentials&scope=AccessAll&token_format=opaque",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let token = reply.body["access_token"].as_str().unwrap().to_owned();
    assert!(!token.contains('.'), "not opaque: {token}");
    token
}

async fn revoke(issuer: &DevIssuer, token: &str) {
    let reply = post_as_client(issuer, "/v1/revoke", &format!("token={token}")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// Polls until `token` is refused as inactive (at most 10 s); the answer cache keeps the
/// last answer for one second.
async fn refused_as_inactive(app: &TestApp, token: &str) -> bool {
    eventually(Duration::from_secs(10), || async {
        app.whoami(token).await.body["error_description"] == Reason::Inactive.description()
    })
    .await
}

#[track_caller]
fn assert_unavailable(reply: &Reply, context: &str) {
    assert_eq!(reply.status, 503, "{context}: {}", reply.body);
    assert_eq!(
        reply.body["error"], "temporarily_unavailable",
        "{context}: {}",
        reply.body
    );
    assert!(
        reply
            .header("retry-after")
            .is_some_and(|s| s.parse::<u64>().is_ok()),
        "{context}: Retry-After {:?}",
        reply.header("retry-after")
    );
    assert!(
        reply.header("www-authenticate").is_none(),
        "{context}: a 503 is no refusal"
    );
}

#[actix_web::test]
async fn an_opaque_token_of_the_development_issuer_is_accepted_with_the_answers_claims() {
    let app = spawn_app_with(introspecting(IntrospectionMode::Opaque)).await;
    let token = opaque_token(&app).await;
    let reply = app.whoami(&token).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["client_id"], CLIENT_ID);
    let refused = post_as_client(
        &app.issuer,
        "/v1/token",
        "grant_type=client_credentials&token_format=sealed",
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.body["error"], "invalid_request");
    assert_eq!(reply.body["sub"], CLIENT_ID);
    assert_eq!(reply.body["scopes"], json!(["AccessAll"]));
    assert_eq!(reply.body["claims"]["active"], true);
    // JWTs are still validated locally in `opaque` mode, without a call.
    let calls = app.issuer.introspection_calls();
    assert_eq!(app.whoami(&app.token()).await.status, 200);
    assert_eq!(app.issuer.introspection_calls(), calls);
    // A token the issuer never issued is inactive.
    let reply = app.whoami("never-issued-by-anyone").await;
    reply.assert_auth_error(401, "invalid_token", "an unknown opaque token");
    assert_eq!(
        reply.body["error_description"],
        Reason::Inactive.description()
    );
    // One over the validator's limit is refused as too large, without a call.
    let calls = app.issuer.introspection_calls();
    let reply = app.whoami(&"o".repeat(8 * 1024 + 1)).await;
    assert_eq!(
        reply.body["error_description"],
        Reason::TooLarge.description()
    );
    assert_eq!(app.issuer.introspection_calls(), calls);
}

#[actix_web::test]
async fn a_revoked_opaque_token_is_refused_once_the_cached_answer_has_expired() {
    let app = spawn_app_with(introspecting(IntrospectionMode::Opaque)).await;
    let token = opaque_token(&app).await;
    assert_eq!(app.whoami(&token).await.status, 200);
    revoke(&app.issuer, &token).await;
    assert!(
        refused_as_inactive(&app, &token).await,
        "still accepted 10 s after revocation with a 1 s cache"
    );
    let reply = app.whoami(&token).await;
    reply.assert_auth_error(401, "invalid_token", "a revoked opaque token");
}

#[actix_web::test]
async fn always_mode_refuses_a_revoked_jwt_and_accepts_the_others() {
    let app = spawn_app_with(introspecting(IntrospectionMode::Always)).await;
    let (revoked, kept) = (app.token(), app.token());
    assert_eq!(app.whoami(&revoked).await.status, 200);
    assert!(
        app.issuer.introspection_calls() >= 1,
        "the JWT was introspected"
    );
    revoke(&app.issuer, &revoked).await;
    assert!(
        refused_as_inactive(&app, &revoked).await,
        "a revoked JWT still accepted after 10 s"
    );
    assert_eq!(app.whoami(&kept).await.status, 200);
    // Local checks come first: a forged JWT is refused for what it is, not introspected.
    let calls = app.issuer.introspection_calls();
    let mut claims = app.issuer.standard_claims(&["AccessAll"]);
    claims["aud"] = json!("api://other");
    let reply = app
        .whoami(&app.issuer.mint_with(app.issuer.standard_header(), claims))
        .await;
    assert_eq!(
        reply.body["error_description"],
        Reason::WrongAudience.description()
    );
    assert_eq!(app.issuer.introspection_calls(), calls);
}

#[actix_web::test]
async fn with_two_issuers_a_jwt_is_introspected_at_its_own_issuer_and_an_opaque_token_at_the_first()
{
    let (a, a_server) = DevIssuer::spawn("127.0.0.1:0", |_| {}).await.unwrap();
    let (b, _b_server) = DevIssuer::spawn("127.0.0.1:0", |_| {}).await.unwrap();
    let b_url = b.issuer().to_owned();
    let app = spawn_app_for(a, a_server, |config| {
        introspecting(IntrospectionMode::Always)(config);
        config.auth = config.auth.clone().with_additional_issuers([b_url]);
    })
    .await;
    let a = &app.issuer;
    for (own, other) in [(a, &b), (&b, a)] {
        let token = own.mint(&["AccessAll"]);
        let (own_calls, other_calls) = (own.introspection_calls(), other.introspection_calls());
        let reply = app.whoami(&token).await;
        assert_eq!(reply.status, 200, "{}: {}", own.issuer(), reply.body);
        assert_eq!(own.introspection_calls(), own_calls + 1, "{}", own.issuer());
        assert_eq!(other.introspection_calls(), other_calls, "{}", own.issuer());
        revoke(own, &token).await;
        assert!(
            refused_as_inactive(&app, &token).await,
            "a JWT revoked at {} still accepted after 10 s",
            own.issuer()
        );
    }
    // An opaque token names no issuer: it is introspected at the first one only.
    let opaque = opaque_token(&app).await;
    assert_eq!(app.whoami(&opaque).await.status, 200);
    let b_calls = b.introspection_calls();
    let reply = post_as_client(
        &b,
        "/v1/token",
        "grant_type=client_credentials&scope=AccessAll&token_format=opaque",
    )
    .await;
    let b_opaque = reply.body["access_token"].as_str().unwrap().to_owned();
    let reply = app.whoami(&b_opaque).await;
    reply.assert_auth_error(401, "invalid_token", "an opaque token of the second issuer");
    assert_eq!(b.introspection_calls(), b_calls);
}

#[actix_web::test]
async fn an_endpoint_answering_garbage_gets_503_with_retry_after_never_401_or_200() {
    let base = serve(|cfg| {
        cfg.route(
            "/500",
            web::post().to(|| async { HttpResponse::InternalServerError().finish() }),
        )
        .route(
            "/html",
            web::post().to(|| async { HttpResponse::Ok().body("<html>login</html>") }),
        )
        .route(
            "/no-active",
            web::post().to(|| async { HttpResponse::Ok().json(json!({"scope": "AccessAll"})) }),
        )
        .route(
            "/string-active",
            web::post().to(|| async { HttpResponse::Ok().json(json!({"active": "true"})) }),
        );
    })
    .await;
    for path in ["/500", "/html", "/no-active", "/string-active"] {
        let app = spawn_app_with(introspecting_at(format!("{base}{path}"))).await;
        let reply = app.whoami("an-opaque-token").await;
        assert_unavailable(&reply, path);
    }
}

#[actix_web::test]
async fn an_endpoint_that_never_answers_gets_503_once_the_timeout_has_passed() {
    // Listening, so connections complete, but never accepting or answering.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/introspect", silent.local_addr().unwrap());
    let app = spawn_app_with(introspecting_at(url)).await;
    let reply = app.whoami("an-opaque-token").await;
    assert_unavailable(&reply, "silent endpoint");
    drop(silent);
}

#[actix_web::test]
async fn an_unreachable_endpoint_gets_503() {
    let (reserved, port) = crate::helpers::refused_port();
    let app = spawn_app_with(introspecting_at(format!(
        "http://127.0.0.1:{port}/introspect"
    )))
    .await;
    assert_unavailable(&app.whoami("an-opaque-token").await, "refused");
    drop(reserved);
}

#[actix_web::test]
async fn concurrent_requests_with_one_token_make_one_call() {
    let (issuer, issuer_server) = DevIssuer::spawn("127.0.0.1:0", |_| {}).await.unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let (counted, iss) = (Arc::clone(&calls), issuer.issuer().to_owned());
    // The endpoint takes half a second: every request below arrives while the call is out.
    let base = serve(move |cfg| {
        let (counted, iss) = (Arc::clone(&counted), iss.clone());
        cfg.route(
            "/introspect",
            web::post().to(move || {
                let (counted, iss) = (Arc::clone(&counted), iss.clone());
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
                    let exp = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs()
                        + 600;
                    HttpResponse::Ok().json(json!({
                        "active": true, "iss": iss, "aud": "api://default", "exp": exp,
                        "scope": "AccessAll", "client_id": "c", "sub": "c"
                    }))
                }
            }),
        );
    })
    .await;
    let url = format!("{base}/introspect");
    let app = spawn_app_for(issuer, issuer_server, move |config| {
        introspecting_at(url)(config);
        let introspection = config.auth.introspection().unwrap().clone();
        config.auth = config
            .auth
            .clone()
            .with_introspection(introspection.with_timeout(Duration::from_secs(5)));
    })
    .await;
    const N: usize = 16;
    let replies =
        futures_util::future::join_all((0..N).map(|_| app.whoami("one-opaque-token"))).await;
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "{N} requests, one call");
    let text = metrics_text(&app).await;
    assert!(
        text.contains("api_guard_introspection_calls_total{outcome=\"active\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "api_guard_introspection_cache_hits_total {}\n",
            N - 1
        )),
        "{text}"
    );
}

async fn metrics_text(app: &TestApp) -> String {
    let mut response = client()
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    let body = response.body().await.unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

#[actix_web::test]
async fn a_wrong_client_secret_gets_503_and_a_log_line_without_the_secret() {
    let secret = "wrong-secret-7Qz";
    let mut service = crate::binary::DevService::start_with(&[
        ("AUTH_INTROSPECTION", "opaque"),
        ("AUTH_INTROSPECTION_CLIENT_SECRET", secret),
    ]);
    let reply = read(
        client()
            .get(format!("{}/api/whoami", service.base()))
            .insert_header(("Authorization", "Bearer an-opaque-token"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_unavailable(&reply, "wrong secret");
    let (_, stderr) = service.stop();
    let line = stderr
        .lines()
        .find(|line| line.contains("introspection at"))
        .unwrap_or_else(|| panic!("no introspection line in:\n{stderr}"));
    assert!(
        line.contains("401") && line.contains("AUTH_INTROSPECTION_CLIENT_SECRET"),
        "{line}"
    );
    assert!(
        !stderr.contains(secret),
        "the secret is in the log:\n{stderr}"
    );
}
