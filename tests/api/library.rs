//! The library half, as another actix-web service uses it: `configure(guard)`, handlers that
//! take `AuthenticatedClaims` (and check their own scopes), and `require_token` on a scope.

use std::net::TcpListener;

use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use api_guard::{AuthError, AuthSettings, AuthenticatedClaims, Guard};
use api_guard_server::dev_issuer::DevIssuer;
use serde_json::json;

use crate::helpers::{Reply, client, read, spawn_app_with};

async fn orders(claims: AuthenticatedClaims) -> Result<HttpResponse, AuthError> {
    claims.require_scopes(&["orders:read"])?;
    Ok(HttpResponse::Ok().json(json!({"orders": [], "client_id": claims.client_id()})))
}

async fn status() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "open"}))
}

async fn admin_stats() -> HttpResponse {
    HttpResponse::Ok().json(json!({"stats": "secret"}))
}

async fn admin_me(claims: AuthenticatedClaims) -> HttpResponse {
    HttpResponse::Ok().json(json!({"client_id": claims.client_id(), "scopes": claims.scopes()}))
}

/// Another service embedding the library, and the issuer it trusts.
struct Embedding {
    address: String,
    issuer: DevIssuer,
    servers: Vec<ServerHandle>,
}

impl Embedding {
    /// A service built like `lib.rs`'s example. `with_guard: false` leaves out
    /// `configure(guard)`, the wiring bug the extractor must report.
    async fn start(with_guard: bool) -> Embedding {
        let (issuer, issuer_server) = DevIssuer::spawn("127.0.0.1:0", |_| {})
            .await
            .expect("dev issuer binds");
        let guard = Guard::start(AuthSettings::new(issuer.issuer())).expect("the key store starts");
        let app_guard = guard.clone();
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let address = format!("http://{}", listener.local_addr().expect("a bound address"));
        let server = HttpServer::new(move || {
            let app = App::new();
            let app = if with_guard {
                app.configure(api_guard::configure(app_guard.clone()))
            } else {
                app
            };
            app.route("/orders", web::get().to(orders))
                .route("/status", web::get().to(status))
                .service(
                    web::scope("/admin")
                        .wrap(from_fn(api_guard::require_token))
                        .route("/stats", web::get().to(admin_stats))
                        .route("/me", web::get().to(admin_me)),
                )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("the server listens")
        .run();
        let server_handle = server.handle();
        actix_web::rt::spawn(server);
        guard.first_load().await;
        assert!(
            guard.is_ready(),
            "the embedding service loaded the issuer's keys"
        );
        Embedding {
            address,
            issuer,
            servers: vec![server_handle, issuer_server],
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut request = client().get(format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.insert_header(("Authorization", format!("Bearer {token}")));
        }
        read(request.send().await.expect("the service answers")).await
    }
}

impl Drop for Embedding {
    fn drop(&mut self) {
        for server in &self.servers {
            drop(server.stop(false));
        }
    }
}

#[actix_web::test]
async fn a_handler_taking_claims_answers_200_to_a_token_with_the_scope_it_requires() {
    let service = Embedding::start(true).await;
    let token = service.issuer.mint(&["orders:read"]);
    let reply = service.get("/orders", Some(&token)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["client_id"], "api-guard-dev");
}

#[actix_web::test]
async fn a_handler_requiring_a_scope_answers_403_insufficient_scope_naming_it() {
    let service = Embedding::start(true).await;
    let token = service.issuer.mint(&["AccessAll"]);
    let reply = service.get("/orders", Some(&token)).await;
    reply.assert_auth_error(403, "insufficient_scope", "orders with an AccessAll token");
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(challenge.contains("scope=\"orders:read\""), "{challenge}");
}

#[actix_web::test]
async fn a_handler_without_claims_answers_200_without_a_token() {
    let service = Embedding::start(true).await;
    let reply = service.get("/status", None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["status"], "open");
}

#[actix_web::test]
async fn require_token_answers_401_with_a_bearer_challenge_without_a_token_on_every_route_of_its_scope()
 {
    let service = Embedding::start(true).await;
    for path in ["/admin/stats", "/admin/me"] {
        let reply = service.get(path, None).await;
        reply.assert_auth_error(401, "unauthorized", path);
        // No `resource_metadata`: this service neither serves the metadata nor wraps
        // `advertise_resource_metadata`.
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Bearer realm=\"api-guard\""),
            "{path}"
        );
        assert_eq!(
            reply.body.get("stats"),
            None,
            "{path}: the handler must not run"
        );
    }
}

#[actix_web::test]
async fn require_token_lets_a_valid_token_through_and_passes_its_claims_to_the_handler() {
    let service = Embedding::start(true).await;
    let token = service.issuer.mint(&["AccessAll", "stats:read"]);
    let stats = service.get("/admin/stats", Some(&token)).await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    assert_eq!(stats.body["stats"], "secret");
    let me = service.get("/admin/me", Some(&token)).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(
        me.body,
        json!({"client_id": "api-guard-dev", "scopes": ["AccessAll", "stats:read"]})
    );
}

#[actix_web::test]
async fn a_handler_taking_claims_in_an_app_without_configure_answers_500_not_configured() {
    let service = Embedding::start(false).await;
    let token = service.issuer.mint(&["orders:read"]);
    let reply = service.get("/orders", Some(&token)).await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert_eq!(reply.body["error"], "server_error");
    assert_eq!(
        reply.body["error_description"],
        "authentication is not configured"
    );
    assert_eq!(
        reply.header("www-authenticate"),
        None,
        "a wiring bug is not the caller's to fix"
    );
}

#[actix_web::test]
async fn required_scopes_make_whoami_answer_403_without_them_and_200_with_them() {
    let app =
        spawn_app_with(|config| config.auth = config.auth.clone().with_required_scopes(["admin"]))
            .await;
    let without = app.whoami(&app.issuer.mint(&["AccessAll"])).await;
    without.assert_auth_error(403, "insufficient_scope", "whoami with AccessAll only");
    let challenge = without.header("www-authenticate").unwrap_or_default();
    assert!(challenge.contains("scope=\"admin\""), "{challenge}");
    let with = app.whoami(&app.issuer.mint(&["AccessAll", "admin"])).await;
    assert_eq!(with.status, 200, "{}", with.body);
    assert_eq!(with.body["scopes"], json!(["AccessAll", "admin"]));
}
