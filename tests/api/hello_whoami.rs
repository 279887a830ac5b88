//! The two routes of the sample service, and health.

use crate::helpers::spawn_app;

#[actix_web::test]
async fn hello_answers_200_with_or_without_a_token() {
    let app = spawn_app().await;
    let anonymous = app.get("/api/hello", &[]).await;
    assert_eq!(anonymous.status, 200);
    assert!(
        anonymous.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    let token = app.token();
    let with_token = app
        .get(
            "/api/hello",
            &[("Authorization", &format!("Bearer {token}"))],
        )
        .await;
    assert_eq!(with_token.status, 200);
    let with_bad_token = app
        .get("/api/hello", &[("Authorization", "Bearer not.a.token")])
        .await;
    assert_eq!(
        with_bad_token.status, 200,
        "anonymous routes never look at the token"
    );
}

#[actix_web::test]
async fn whoami_answers_200_with_the_verified_claims_of_a_valid_token() {
    let app = spawn_app().await;
    let reply = app.whoami(&app.token()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let client_id = &app.issuer.settings().client_id;
    assert_eq!(reply.body["sub"], *client_id);
    assert_eq!(reply.body["client_id"], *client_id);
    assert_eq!(reply.body["scopes"], serde_json::json!(["AccessAll"]));
    assert_eq!(reply.body["claims"]["iss"], app.issuer.issuer());
    assert_eq!(reply.body["claims"]["aud"], "api://default");
    assert_eq!(reply.body["claims"]["cid"], *client_id);
}

#[actix_web::test]
async fn health_is_live_and_ready_once_keys_are_loaded() {
    let app = spawn_app().await;
    assert_eq!(app.get("/health/live", &[]).await.status, 200);
    let ready = app.get("/health/ready", &[]).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.body["keys"], 1);
}

#[actix_web::test]
async fn every_response_echoes_the_request_id_or_gets_a_new_one() {
    let app = spawn_app().await;
    let echoed = app.get("/api/hello", &[("X-Request-Id", "trace-42")]).await;
    assert_eq!(echoed.header("x-request-id"), Some("trace-42"));
    let generated = app.get("/api/whoami", &[]).await;
    assert!(
        generated
            .header("x-request-id")
            .is_some_and(|id| id.len() == 24)
    );
}
