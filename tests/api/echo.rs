//! `POST /api/echo`: the protected route that takes a body (the request a balancer must never
//! lose in a rolling restart, since none replays a POST).

use serde_json::json;

use crate::helpers::{Reply, TestApp, client, read, resource_metadata_url, spawn_app};

async fn post(app: &TestApp, token: Option<&str>, content_type: &str, body: Vec<u8>) -> Reply {
    let mut request = client()
        .post(format!("{}/api/echo", app.address))
        .insert_header(("Content-Type", content_type));
    if let Some(token) = token {
        request = request.insert_header(("Authorization", format!("Bearer {token}")));
    }
    let mut reply = read(request.send_body(body).await.expect("the service answers")).await;
    reply.resource_metadata = Some(resource_metadata_url(&app.address, "/api/echo"));
    reply
}

#[actix_web::test]
async fn echo_answers_a_valid_token_with_the_json_body_it_got() {
    let app = spawn_app().await;
    let body = json!({"order": 42, "items": ["a", "b"], "note": "ünïcode", "nested": {"ok": true}});
    let reply = post(
        &app,
        Some(&app.token()),
        "application/json",
        body.to_string().into(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
}

#[actix_web::test]
async fn echo_without_a_token_or_with_a_bad_one_is_401_whatever_the_body() {
    let app = spawn_app().await;
    let reply = post(&app, None, "application/json", b"{\"a\":1}".to_vec()).await;
    reply.assert_auth_error(401, "unauthorized", "no token");
    let too_large = vec![b' '; 128 * 1024];
    let reply = post(&app, None, "application/json", too_large).await;
    reply.assert_auth_error(401, "unauthorized", "no token, body over the limit");
    let reply = post(
        &app,
        Some("not.a.token"),
        "application/json",
        b"{}".to_vec(),
    )
    .await;
    reply.assert_auth_error(401, "invalid_token", "bad token");
}

#[actix_web::test]
async fn echo_refuses_a_body_over_64_kib_one_that_is_not_json_and_one_of_another_type() {
    let app = spawn_app().await;
    let token = app.token();
    let mut large = b"\"".to_vec();
    large.resize(64 * 1024 + 1, b'x');
    large.push(b'"');
    for (content_type, body, status) in [
        ("application/json", large, 413),
        ("application/json", b"{not json".to_vec(), 400),
        ("text/plain", b"{}".to_vec(), 415),
    ] {
        let reply = post(&app, Some(&token), content_type, body).await;
        assert_eq!(reply.status, status, "{content_type}: {}", reply.body);
        assert_eq!(reply.body["error"], "invalid_request", "{}", reply.body);
        assert!(
            reply.body["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
    }
    // At the limit exactly, it is echoed.
    let mut at_limit = b"\"".to_vec();
    at_limit.resize(64 * 1024 - 1, b'x');
    at_limit.push(b'"');
    let reply = post(&app, Some(&token), "application/json", at_limit).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.as_str().map(str::len), Some(64 * 1024 - 2));
}

#[actix_web::test]
async fn echo_takes_post_only() {
    let app = spawn_app().await;
    let reply = app
        .get(
            "/api/echo",
            &[("Authorization", &format!("Bearer {}", app.token()))],
        )
        .await;
    assert_eq!(reply.status, 405);
}

#[actix_web::test]
async fn openapi_describes_echo_as_a_post_with_a_json_body_and_the_oauth2_requirement() {
    let app = spawn_app().await;
    let document = app.get("/openapi.json", &[]).await.body;
    let echo = &document["paths"]["/api/echo"]["post"];
    assert_eq!(echo["security"], json!([{"oauth2": []}]));
    assert_eq!(echo["requestBody"]["required"], true);
    assert!(
        echo["requestBody"]["content"]
            .get("application/json")
            .is_some()
    );
    for status in ["200", "400", "401", "403", "413", "415", "503"] {
        assert!(
            echo["responses"].get(status).is_some(),
            "echo {status} undocumented"
        );
    }
}
