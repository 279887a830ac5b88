//! `GET /openapi.json` (OpenAPI 3.0.3 with the client-credentials scheme whose token URL
//! comes from the configuration), the RFC 9728 protected-resource metadata, and the
//! `resource_metadata` parameter of every Bearer challenge.

use std::net::SocketAddr;

use actix_web::{HttpResponse, web};
use api_guard_server::{Application, Config};
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, client, read, resource_metadata_url, serve, spawn_app, spawn_app_with,
};

const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The document, checked for what every version of it must hold.
async fn openapi(app: &TestApp, headers: &[(&str, &str)]) -> Value {
    let reply = app.get("/openapi.json", headers).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("cache-control"), Some("public, max-age=300"));
    assert_eq!(reply.body["openapi"], "3.0.3");
    reply.body
}

fn token_url(document: &Value) -> &Value {
    &document["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"]["tokenUrl"]
}

#[actix_web::test]
async fn openapi_json_describes_every_route_with_oauth2_on_whoami_only() {
    let app = spawn_app().await;
    let document = openapi(&app, &[]).await;
    let paths = document["paths"].as_object().unwrap();
    for path in ["/api/hello", "/api/whoami", "/health/live", "/health/ready"] {
        assert!(paths.contains_key(path), "{path} missing: {paths:?}");
    }
    assert_eq!(
        document["paths"]["/api/whoami"]["get"]["security"],
        json!([{"oauth2": []}])
    );
    for path in ["/api/hello", "/health/live", "/health/ready"] {
        assert_eq!(
            document["paths"][path]["get"]["security"],
            json!([]),
            "{path}"
        );
    }
    assert_eq!(
        document.get("security"),
        None,
        "no document-wide requirement"
    );
    let scheme = &document["components"]["securitySchemes"]["oauth2"];
    assert_eq!(scheme["type"], "oauth2");
    let responses = &document["paths"]["/api/whoami"]["get"]["responses"];
    for status in ["200", "400", "401", "403", "503"] {
        assert!(
            responses.get(status).is_some(),
            "whoami {status} undocumented"
        );
    }
    let error = &document["components"]["schemas"]["Error"];
    assert_eq!(error["required"], json!(["error", "error_description"]));
    let unauthorized = &document["components"]["responses"]["Unauthorized"];
    assert!(unauthorized["headers"].get("WWW-Authenticate").is_some());
    assert_eq!(document["servers"], json!([{"url": app.address}]));
}

#[actix_web::test]
async fn the_token_url_is_the_discovered_token_endpoint_of_the_issuer() {
    // An issuer that is not laid out like Okta (Keycloak's path), serving its own metadata
    // and the development issuer's keys.
    let keys = spawn_app().await;
    let jwks_uri = format!("{}/v1/keys", keys.issuer.issuer());
    let base = serve(move |cfg| {
        let jwks_uri = jwks_uri.clone();
        cfg.route(
            "/realms/demo/.well-known/openid-configuration",
            web::get().to(move |req: actix_web::HttpRequest| {
                let issuer = format!("http://{}/realms/demo", req.connection_info().host());
                let body = json!({
                    "issuer": issuer,
                    "jwks_uri": jwks_uri,
                    "token_endpoint": format!("{issuer}/protocol/openid-connect/token"),
                });
                async move { HttpResponse::Ok().json(body) }
            }),
        );
    })
    .await;
    let issuer = format!("{base}/realms/demo");
    let app = spawn_app_with(|config| {
        config.auth = config.auth.clone().with_issuer(issuer.clone());
    })
    .await;
    assert_eq!(app.get("/health/ready", &[]).await.status, 200);
    let document = openapi(&app, &[]).await;
    assert_eq!(
        token_url(&document),
        &json!(format!("{issuer}/protocol/openid-connect/token"))
    );
}

#[actix_web::test]
async fn the_token_url_of_the_development_issuer_is_its_token_endpoint() {
    let app = spawn_app().await;
    let document = openapi(&app, &[]).await;
    assert_eq!(token_url(&document), &json!(app.issuer.token_endpoint()));
}

#[actix_web::test]
async fn auth_token_url_wins_over_discovery() {
    let app = spawn_app_with(|config| {
        config.token_url = Some("https://login.example.com/oauth2/token".into());
    })
    .await;
    let document = openapi(&app, &[]).await;
    assert_eq!(
        token_url(&document),
        "https://login.example.com/oauth2/token"
    );
}

#[actix_web::test]
async fn without_discovery_the_token_url_falls_back_to_the_okta_layout() {
    // A fixed AUTH_JWKS_URI skips discovery, so no token_endpoint is ever learned. The
    // issuer's path is changed so the fallback differs from the dev issuer's endpoint.
    let keys = spawn_app().await;
    let jwks_uri = format!("{}/v1/keys", keys.issuer.issuer());
    let app = spawn_app_with(|config| {
        config.auth = config
            .auth
            .clone()
            .with_jwks_uri(jwks_uri)
            .with_issuer("https://tenant.example.com/oauth2/aus1");
    })
    .await;
    let document = openapi(&app, &[]).await;
    assert_eq!(
        token_url(&document),
        "https://tenant.example.com/oauth2/aus1/v1/token"
    );
}

#[actix_web::test]
async fn required_scopes_are_offered_and_required_on_whoami() {
    let app = spawn_app_with(|config| {
        config.auth = config
            .auth
            .clone()
            .with_required_scopes(["orders:read", "AccessAll"]);
    })
    .await;
    let document = openapi(&app, &[]).await;
    let flow = &document["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"];
    let scopes: Vec<&String> = flow["scopes"].as_object().unwrap().keys().collect();
    assert_eq!(scopes, ["AccessAll", "orders:read"]);
    assert_eq!(
        document["paths"]["/api/whoami"]["get"]["security"],
        json!([{"oauth2": ["orders:read", "AccessAll"]}])
    );
}

#[actix_web::test]
async fn dev_mode_names_the_development_issuers_token_endpoint_and_the_scope_it_grants() {
    let mut config = Config::for_issuer("https://unused.example").unwrap();
    config.dev = Some(api_guard_server::config::DevClient {
        client_id: "api-guard-dev".into(),
        client_secret: api_guard_server::config::ClientSecret::new("api-guard-dev-secret"),
    });
    config.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    config.workers = 1;
    let app = Application::build(config)
        .await
        .expect("the service starts");
    let dev = app.dev_issuer().expect("--dev runs the development issuer");
    let address = format!("http://{}", app.addr());
    let response = client()
        .get(format!("{address}/openapi.json"))
        .send()
        .await
        .unwrap();
    let document = read(response).await.body;
    let flow = &document["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"];
    assert_eq!(flow["tokenUrl"], json!(dev.token_endpoint()));
    assert!(flow["scopes"].get("AccessAll").is_some(), "{flow}");
    assert_eq!(
        dev.settings().scopes,
        ["AccessAll"],
        "what the dev issuer grants"
    );
    app.handle().stop(false).await;
}

#[actix_web::test]
async fn the_protected_resource_metadata_names_the_issuer_and_the_bearer_header() {
    let app = spawn_app_with(|config| {
        config.auth = config.auth.clone().with_required_scopes(["AccessAll"])
    })
    .await;
    let reply = app.get(WELL_KNOWN, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("public, max-age=300"));
    assert_eq!(
        reply.body,
        json!({
            "resource": app.address,
            "authorization_servers": [app.issuer.issuer()],
            "scopes_supported": ["AccessAll"],
            "bearer_methods_supported": ["header"],
            "resource_name": "api-guard",
            "dpop_signing_alg_values_supported": api_guard::dpop_algorithms().collect::<Vec<_>>(),
        })
    );
}

#[actix_web::test]
async fn without_public_url_the_host_header_names_the_service_and_forwarded_headers_do_not() {
    let app = spawn_app().await;
    let spoofed = [
        ("Host", "api.internal:9000"),
        ("X-Forwarded-Host", "evil.example"),
        ("X-Forwarded-Proto", "https"),
        ("Forwarded", "host=evil.example;proto=https"),
    ];
    let metadata = app.get(WELL_KNOWN, &spoofed).await;
    assert_eq!(metadata.body["resource"], "http://api.internal:9000");
    // A shared cache must not serve this Host's document to a request with another Host.
    assert_eq!(metadata.header("vary"), Some("Host"));
    assert_eq!(
        metadata.header("cache-control"),
        Some("public, max-age=300")
    );
    let document = openapi(&app, &spoofed).await;
    assert_eq!(
        document["servers"],
        json!([{"url": "http://api.internal:9000"}])
    );
    let reply = app.get("/api/whoami", &spoofed).await;
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.ends_with(&format!(
            "resource_metadata=\"{}\"",
            resource_metadata_url("http://api.internal:9000", "/api/whoami")
        )),
        "{challenge}"
    );
}

#[actix_web::test]
async fn public_url_names_the_service_whatever_the_host_header_says() {
    let public = "https://api.example.com";
    let app = spawn_app_with(|config| config.public_url = Some(public.into())).await;
    let host = [("Host", "api.internal:9000")];
    let metadata = app.get(WELL_KNOWN, &host).await;
    assert_eq!(metadata.body["resource"], public);
    assert_eq!(
        metadata.header("vary"),
        None,
        "the document does not depend on Host"
    );
    assert_eq!(
        openapi(&app, &host).await["servers"],
        json!([{"url": public}])
    );
    let reply = app.get("/api/whoami", &host).await;
    assert_eq!(
        reply.header("www-authenticate"),
        Some(
            format!(
                "Bearer realm=\"api-guard\", resource_metadata=\"{public}{WELL_KNOWN}/api/whoami\""
            )
            .as_str()
        )
    );
}

#[actix_web::test]
async fn a_401_challenge_names_metadata_whose_resource_is_the_url_the_client_called() {
    let app = spawn_app().await;
    let reply = app.get("/api/whoami", &[]).await;
    reply.assert_auth_error(401, "unauthorized", "whoami without a token");
    let url = resource_metadata_url(&app.address, "/api/whoami");
    assert_eq!(
        reply.header("www-authenticate"),
        Some(app.challenge("/api/whoami", "").as_str())
    );
    let path = url.strip_prefix(&app.address).unwrap();
    let metadata = app.get(path, &[]).await;
    assert_eq!(metadata.status, 200, "{}", metadata.body);
    assert_eq!(
        metadata.body["resource"],
        format!("{}/api/whoami", app.address),
        "RFC 9728 §3.3: the URL the client used"
    );
    assert_eq!(
        metadata.body["authorization_servers"],
        json!([app.issuer.issuer()])
    );
}

#[actix_web::test]
async fn a_403_challenge_names_the_resource_metadata_after_the_scope() {
    let app =
        spawn_app_with(|config| config.auth = config.auth.clone().with_required_scopes(["admin"]))
            .await;
    let reply = app.whoami(&app.issuer.mint(&["AccessAll"])).await;
    reply.assert_auth_error(403, "insufficient_scope", "whoami without admin");
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(challenge.contains("scope=\"admin\""), "{challenge}");
}

#[actix_web::test]
async fn a_valid_token_gets_no_challenge_and_open_routes_never_get_one() {
    let app = spawn_app().await;
    assert_eq!(
        app.whoami(&app.token()).await.header("www-authenticate"),
        None
    );
    for path in ["/api/hello", "/openapi.json", WELL_KNOWN, "/health/live"] {
        let reply = app.get(path, &[]).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.header("www-authenticate"), None, "{path}");
    }
}

#[actix_web::test]
async fn the_ready_schemas_list_every_status_the_ready_route_sends_draining_included() {
    let app = spawn_app().await;
    let document = openapi(&app, &[]).await;
    let statuses = |schema: &str| {
        document["components"]["schemas"][schema]["properties"]["status"]["enum"].clone()
    };
    assert_eq!(statuses("Ready"), json!(["ready"]));
    assert_eq!(statuses("NotReady"), json!(["not_ready", "draining"]));
    let ready = app.get("/health/ready", &[]).await;
    assert_eq!(
        (ready.status, &ready.body["status"]),
        (200, &json!("ready"))
    );
}
