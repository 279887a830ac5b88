//! Several issuers (`AUTH_ISSUER` a comma-separated list): two real development issuers on
//! loopback, each serving its own discovery and JWKS, and the service trusting both. Each
//! token is checked with its own issuer's keys alone.

use actix_web::dev::ServerHandle;
use api_guard::Algorithm;
use api_guard_server::dev_issuer::DevIssuer;
use serde_json::{Value, json};

use crate::helpers::{TestApp, client, spawn_app_for};
use crate::process::Service;

/// The service trusting issuer `a` (the app's own) and `b`; `prepare` may set either up
/// (failing, serving other keys) before the service's first fetch.
async fn spawn_two(
    prepare: impl FnOnce(&DevIssuer, &DevIssuer),
) -> (TestApp, DevIssuer, ServerHandle) {
    let (a, a_server) = DevIssuer::spawn("127.0.0.1:0", |_| {}).await.unwrap();
    let (b, b_server) = DevIssuer::spawn("127.0.0.1:0", |_| {}).await.unwrap();
    prepare(&a, &b);
    let b_url = b.issuer().to_owned();
    let app = spawn_app_for(a, a_server, |config| {
        config.auth = config.auth.clone().with_additional_issuers([b_url]);
    })
    .await;
    (app, b, b_server)
}

/// `issuer`'s standard claims with `iss` set to `iss` (or removed for `Value::Null`).
fn claims_of(issuer: &DevIssuer, iss: Value) -> Value {
    let mut claims = issuer.standard_claims(&["AccessAll"]);
    match iss {
        Value::Null => drop(claims.as_object_mut().unwrap().remove("iss")),
        iss => claims["iss"] = iss,
    }
    claims
}

/// Every request either issuer has answered so far: discovery and JWKS.
fn fetches(issuer: &DevIssuer) -> u64 {
    issuer.metadata_fetches() + issuer.jwks_fetches()
}

#[actix_web::test]
async fn tokens_of_both_issuers_are_accepted_and_the_metadata_names_both() {
    let (app, b, _b_server) = spawn_two(|_, _| {}).await;
    let a = &app.issuer;
    for (issuer, token) in [(a, a.mint(&["AccessAll"])), (&b, b.mint(&["AccessAll"]))] {
        let reply = app.whoami(&token).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body["claims"]["iss"], issuer.issuer());
    }
    let metadata = app.get("/.well-known/oauth-protected-resource", &[]).await;
    assert_eq!(
        metadata.body["authorization_servers"],
        json!([a.issuer(), b.issuer()])
    );
}

#[actix_web::test]
async fn a_token_claiming_one_issuer_but_signed_with_the_others_key_is_refused_even_under_a_shared_kid()
 {
    let (app, b, _b_server) = spawn_two(|a, b| {
        // `b` publishes its own key twice: under its kid, and under `a`'s kid.
        let own = b.jwk(&b.signing_kid()).unwrap();
        let mut borrowed_kid = own.clone();
        borrowed_kid["kid"] = json!(a.signing_kid());
        b.set_jwk_override(Some(json!({ "keys": [own, borrowed_kid] })));
    })
    .await;
    let a = &app.issuer;
    let shared_kid = json!({"alg": "RS256", "kid": a.signing_kid()});
    // Control: under the shared kid, `b`'s key verifies `b`'s own token in `b`'s store.
    let b_own = b.mint_with(shared_kid.clone(), claims_of(&b, json!(b.issuer())));
    assert_eq!(
        app.whoami(&b_own).await.status,
        200,
        "b's token under the shared kid"
    );
    assert_eq!(app.whoami(&app.token()).await.status, 200, "a's own token");

    let b_fetches = fetches(&b);
    // Claims `a`, signed by `b`, naming the kid both publish: `a`'s key is tried, and fails.
    let forged = b.mint_with(shared_kid, claims_of(&b, json!(a.issuer())));
    let reply = app.whoami(&forged).await;
    reply.assert_auth_error(
        401,
        "invalid_token",
        "claims a, b's key under the shared kid",
    );
    // Claims `a`, signed by `b` under `b`'s own kid: `a`'s store does not have it.
    let forged = b.mint_with(b.standard_header(), claims_of(&b, json!(a.issuer())));
    let reply = app.whoami(&forged).await;
    reply.assert_auth_error(401, "invalid_token", "claims a, b's key under b's kid");
    // And the other way round.
    let forged = a.mint_with(a.standard_header(), claims_of(a, json!(b.issuer())));
    let reply = app.whoami(&forged).await;
    reply.assert_auth_error(401, "invalid_token", "claims b, a's key");
    assert_eq!(
        fetches(&b),
        b_fetches,
        "b was never asked: the tokens claiming a never reach b's store, and b's store has the kid of the one claiming b"
    );
}

#[actix_web::test]
async fn a_token_whose_iss_names_no_configured_issuer_is_refused_without_any_fetch() {
    let (app, b, _b_server) = spawn_two(|_, _| {}).await;
    let a = &app.issuer;
    let before = (fetches(a), fetches(&b));
    let unknown_kid = json!({"alg": "RS256", "kid": "a-kid-nobody-publishes"});
    let huge = json!(format!("{}/{}", a.issuer(), "x".repeat(9000)));
    let wrong_issuer = "the access token was issued by another issuer";
    let bad_claim = "the access token has a malformed claim";
    #[rustfmt::skip]
    let cases = [
        ("another issuer", json!("https://c.example/oauth2/default"), wrong_issuer),
        ("a trailing slash", json!(format!("{}/", a.issuer())), wrong_issuer),
        ("an upper-case host", json!(a.issuer().to_uppercase()), wrong_issuer),
        ("no iss", Value::Null, "the access token lacks a required claim"),
        ("a number", json!(42), bad_claim),
        ("a list of both", json!([a.issuer(), b.issuer()]), bad_claim),
        ("a huge iss", huge, "the access token is too large"),
    ];
    for (case, iss, description) in cases {
        // Signed by `b` with a kid nobody has: a lookup would miss and ask for a fetch.
        let token = b.mint_with(unknown_kid.clone(), claims_of(&b, iss));
        let reply = app.whoami(&token).await;
        reply.assert_auth_error(401, "invalid_token", case);
        assert_eq!(reply.body["error_description"], description, "{case}");
    }
    assert_eq!(
        (fetches(a), fetches(&b)),
        before,
        "no issuer was asked for anything"
    );
}

#[actix_web::test]
async fn readiness_holds_while_one_issuer_has_keys_and_reports_each_issuer() {
    let (app, b, _b_server) = spawn_two(|_, b| b.set_failing(true)).await;
    let a = &app.issuer;
    let ready = app.get("/health/ready", &[]).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.body["status"], "ready");
    assert_eq!(ready.body["keys"], 1);
    assert_eq!(ready.body["issuers"][0]["issuer"], a.issuer());
    assert_eq!(ready.body["issuers"][0]["keys"], 1);
    assert!(
        ready.body["issuers"][0]["keys_age_secs"].is_u64(),
        "{}",
        ready.body
    );
    assert_eq!(ready.body["issuers"][1]["issuer"], b.issuer());
    assert_eq!(ready.body["issuers"][1]["keys"], 0);
    assert!(ready.body["issuers"][1].get("keys_age_secs").is_none());
    assert_eq!(
        app.whoami(&app.token()).await.status,
        200,
        "a's tokens pass"
    );
    let reply = app.whoami(&b.mint(&["AccessAll"])).await;
    assert_eq!(
        reply.status, 503,
        "b's tokens cannot be judged: {}",
        reply.body
    );
}

#[actix_web::test]
async fn with_every_issuer_down_the_service_is_not_ready() {
    let (app, b, _b_server) = spawn_two(|a, b| {
        a.set_failing(true);
        b.set_failing(true);
    })
    .await;
    let ready = app.get("/health/ready", &[]).await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert_eq!(ready.body["status"], "not_ready");
    assert_eq!(
        ready.body["reason"],
        "no issuer's signing keys are loaded yet"
    );
    let keys: Vec<(&str, u64)> = ready.body["issuers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["issuer"].as_str().unwrap(), i["keys"].as_u64().unwrap()))
        .collect();
    assert_eq!(keys, [(app.issuer.issuer(), 0), (b.issuer(), 0)]);
}

#[actix_web::test]
async fn the_key_store_metrics_carry_the_configured_issuer_and_never_a_tokens() {
    let (app, b, _b_server) = spawn_two(|_, b| b.set_failing(true)).await;
    let a = app.issuer.issuer().to_owned();
    let stranger = "https://stranger.example/oauth2/default";
    let token = b.mint_with(b.standard_header(), claims_of(&b, json!(stranger)));
    assert_eq!(app.whoami(&token).await.status, 401);
    let mut response = client()
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.body().await.unwrap();
    let text = String::from_utf8_lossy(&body);
    let b = b.issuer();
    for line in [
        format!(r#"api_guard_jwks_keys{{issuer="{a}"}} 1"#),
        format!(r#"api_guard_jwks_keys{{issuer="{b}"}} 0"#),
        format!(r#"api_guard_jwks_fetches_total{{issuer="{a}",outcome="success"}} 1"#),
        format!(r#"api_guard_jwks_fetches_total{{issuer="{b}",outcome="success"}} 0"#),
        format!(r#"api_guard_jwks_fetches_total{{issuer="{a}",outcome="http_status"}} 0"#),
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!(r#"api_guard_jwks_age_seconds{{issuer="{a}"}} "#))),
        "{text}"
    );
    assert!(
        !text.contains(&format!(r#"api_guard_jwks_age_seconds{{issuer="{b}"}}"#)),
        "no age for a store that never loaded: {text}"
    );
    assert!(
        !text.contains(stranger),
        "a token's iss became a label: {text}"
    );
}

#[actix_web::test]
async fn the_binary_logs_each_issuers_key_store_by_name_and_starts_with_one_issuer_down() {
    let (a, _a_server) = DevIssuer::spawn("127.0.0.1:0", |_| {}).await.unwrap();
    let (b, _b_server) = DevIssuer::spawn("127.0.0.1:0", |_| {}).await.unwrap();
    b.set_failing(true);
    let (a_url, b_url) = (a.issuer().to_owned(), b.issuer().to_owned());
    let list = format!("{a_url}, {b_url}");
    // The child's output is read on a thread of its own; the issuers keep serving meanwhile.
    let stderr = actix_web::rt::task::spawn_blocking(move || {
        let mut service = Service::start(&[("AUTH_ISSUER", &list)], &[]);
        service.stop()
    })
    .await
    .unwrap();
    for needle in [
        format!("JWKS of \"{a_url}\": loaded 1 key(s)"),
        format!("JWKS of \"{b_url}\": fetch failed (1 in a row), no keys loaded yet"),
        format!(
            "accepting tokens of {a_url}, {b_url}; signing keys of some issuers not loaded yet"
        ),
    ] {
        assert!(stderr.contains(&needle), "no {needle:?} in\n{stderr}");
    }
}

#[actix_web::test]
async fn unknown_kid_refetches_are_single_flight_and_each_issuers_own() {
    let (app, b, _b_server) = spawn_two(|_, _| {}).await;
    let a = &app.issuer;
    let before = (a.jwks_fetches(), b.jwks_fetches());
    let kid = a.add_key(Algorithm::ES256);
    assert!(a.use_key(&kid));
    let token = a.mint(&["AccessAll"]);
    let replies = futures_util::future::join_all((0..6).map(|_| app.whoami(&token))).await;
    assert!(replies.iter().all(|r| r.status == 200), "{replies:?}");
    assert_eq!(
        (a.jwks_fetches(), b.jwks_fetches()),
        (before.0 + 1, before.1),
        "six requests with a's new kid: one fetch of a's keys, none of b's"
    );
    // Within a's cooldown, b's rotation is still picked up: the cooldown is b's own.
    let kid = b.add_key(Algorithm::ES256);
    assert!(b.use_key(&kid));
    assert_eq!(app.whoami(&b.mint(&["AccessAll"])).await.status, 200);
    assert_eq!(
        (a.jwks_fetches(), b.jwks_fetches()),
        (before.0 + 1, before.1 + 1)
    );
}

/// Asserts that `body`'s members are among `schema`'s properties and hold its required ones.
#[track_caller]
fn assert_fits(body: &Value, schema: &Value, context: &str) {
    let properties = schema["properties"].as_object().unwrap();
    for name in body.as_object().unwrap().keys() {
        assert!(
            properties.contains_key(name),
            "{context}: `{name}` undocumented in {schema}"
        );
    }
    for name in schema["required"].as_array().unwrap() {
        assert!(
            body.get(name.as_str().unwrap()).is_some(),
            "{context}: no `{name}` in {body}"
        );
    }
}

#[actix_web::test]
async fn the_ready_bodies_with_several_issuers_are_what_openapi_describes() {
    let (app, _b, _b_server) = spawn_two(|_, b| b.set_failing(true)).await;
    let document = app.get("/openapi.json", &[]).await.body;
    let schemas = &document["components"]["schemas"];
    let ready = app.get("/health/ready", &[]).await;
    assert_eq!(ready.status, 200);
    assert_fits(&ready.body, &schemas["Ready"], "ready");
    let issuers = ready.body["issuers"].as_array().unwrap();
    assert_eq!(issuers.len(), 2);
    for issuer in issuers {
        assert_fits(
            issuer,
            &schemas["Ready"]["properties"]["issuers"]["items"],
            "an issuer",
        );
    }
    let (down, _b, _b_server) = spawn_two(|a, b| {
        a.set_failing(true);
        b.set_failing(true);
    })
    .await;
    let not_ready = down.get("/health/ready", &[]).await;
    assert_eq!(not_ready.status, 503);
    assert_fits(&not_ready.body, &schemas["NotReady"], "not ready");
}
