//! `GET /openapi.json`: an OpenAPI 3.0.3 description of the sample service, built per
//! request from the configuration (it is small), so the server URL follows `PUBLIC_URL` or
//! the `Host` header and the token URL follows discovery.
//!
//! whoami carries an OAuth 2.0 client-credentials security requirement whose `tokenUrl` is
//! the issuer's token endpoint: Postman's "Import > OpenAPI" turns it into the request's
//! authorization, ready for "Get New Access Token". 3.0.x, not 3.1: importers read it best.

use actix_web::{HttpRequest, HttpResponse, get, web};
use serde_json::{Map, Value, json};

use actix_web::http::StatusCode;
use api_guard::Guard;

use super::Published;
use super::health::ReadyStatus;
use super::resource_metadata::WELL_KNOWN_PATH;
use crate::public_url::PublicUrl;

/// The name of the security scheme in `components.securitySchemes`.
pub const SCHEME: &str = "oauth2";

/// The document, for anyone.
#[get("/openapi.json")]
pub async fn openapi(req: HttpRequest, published: web::Data<Published>) -> HttpResponse {
    let discovered = req
        .app_data::<Guard>()
        .and_then(|guard| guard.key_store().token_endpoint);
    let token_url = published.token_url(discovered);
    let document = document(&PublicUrl::of(&req), &token_url, &published);
    PublicUrl::cacheable_response(&req).json(document)
}

/// The OpenAPI document for a service reached at `public_url` whose clients get tokens
/// at `token_url`.
pub fn document(public_url: &str, token_url: &str, published: &Published) -> Value {
    let scopes: Map<String, Value> = published
        .scopes
        .iter()
        .map(|(name, description)| (name.clone(), Value::from(description.as_str())))
        .collect();
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "api-guard",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "The sample service of api-guard. Protected routes take an OAuth 2.0 access token (JWT) issued by {} in `Authorization: Bearer <token>`.",
                published.issuer
            ),
        },
        "servers": [{"url": public_url}],
        "tags": [
            {"name": "api", "description": "The sample API"},
            {"name": "health", "description": "For load balancers and orchestrators"},
            {"name": "metadata", "description": "What the service says about itself"},
        ],
        "paths": {
            "/api/hello": {"get": {
                "tags": ["api"],
                "operationId": "hello",
                "summary": "A greeting, for anyone",
                "security": [],
                "responses": {"200": json_response("A greeting", "Hello")},
            }},
            "/api/whoami": {"get": {
                "tags": ["api"],
                "operationId": "whoami",
                "summary": "The caller's verified claims",
                "description": "Needs an access token of the issuer for this API's audience, as `Authorization: Bearer <token>`, or for a DPoP-bound token `Authorization: DPoP <token>` with a `DPoP` proof header (RFC 9449, per AUTH_DPOP). Without one: 401 and a Bearer challenge (RFC 6750 §3), or a DPoP challenge (`error=\"invalid_dpop_proof\"` for a bad proof); with a token lacking a required scope: 403.",
                "security": [{SCHEME: published.required_scopes}],
                "responses": {
                    "200": json_response("The verified claims of the token", "Whoami"),
                    "400": {"$ref": "#/components/responses/InvalidRequest"},
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "403": {"$ref": "#/components/responses/InsufficientScope"},
                    "503": {"$ref": "#/components/responses/KeysUnavailable"},
                },
            }},
            "/api/echo": {"post": {
                "tags": ["api"],
                "operationId": "echo",
                "summary": "The JSON body, sent back",
                "description": "Needs an access token, as whoami does (401 without one, 403 without a required scope). Answers 200 with the JSON body it got; 400 if the body is not JSON, 413 past 64 KiB, 415 if it is not application/json.",
                "security": [{SCHEME: published.required_scopes}],
                "requestBody": {
                    "required": true,
                    "content": {"application/json": {"schema": {}}},
                },
                "responses": {
                    "200": {
                        "description": "The request's JSON body",
                        "content": {"application/json": {"schema": {}}},
                    },
                    "400": {"$ref": "#/components/responses/InvalidRequest"},
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "403": {"$ref": "#/components/responses/InsufficientScope"},
                    "413": error_response("413: the body is larger than 64 KiB (invalid_request)", false),
                    "415": error_response("415: the body is not application/json (invalid_request)", false),
                    "503": {"$ref": "#/components/responses/KeysUnavailable"},
                },
            }},
            "/health/live": {"get": {
                "tags": ["health"],
                "operationId": "live",
                "summary": "200 while the process serves requests",
                "security": [],
                "responses": {"200": json_response("Live", "Live")},
            }},
            "/health/ready": {"get": {
                "tags": ["health"],
                "operationId": "ready",
                "summary": "200 once the signing keys of at least one issuer are loaded, 503 before",
                "security": [],
                "responses": {
                    "200": json_response("Ready", "Ready"),
                    "503": json_response("Not ready: no signing keys loaded, or draining", "NotReady"),
                },
            }},
            "/openapi.json": {"get": {
                "tags": ["metadata"],
                "operationId": "openapi",
                "summary": "This document",
                "security": [],
                "responses": {"200": {
                    "description": "An OpenAPI 3.0 document",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }},
            }},
            WELL_KNOWN_PATH: {"get": {
                "tags": ["metadata"],
                "operationId": "protectedResourceMetadata",
                "summary": "OAuth 2.0 protected-resource metadata (RFC 9728)",
                "security": [],
                "responses": {"200": json_response("The metadata", "ProtectedResourceMetadata")},
            }},
        },
        "components": {
            "securitySchemes": {SCHEME: {
                "type": "oauth2",
                "description": format!(
                    "Client credentials (RFC 6749 §4.4) at the token endpoint of {}, with HTTP Basic client authentication.",
                    published.issuer
                ),
                "flows": {"clientCredentials": {"tokenUrl": token_url, "scopes": scopes}},
            }},
            "headers": {
                "WWW-Authenticate": {
                    "description": "The Bearer challenge (RFC 6750 §3): realm, error, error_description, scope for 403, and resource_metadata (RFC 9728 §5.1); or the DPoP challenge (RFC 9449 §7.1): algs, error (invalid_token, invalid_dpop_proof), error_description, resource_metadata",
                    "schema": {"type": "string"},
                },
                "Retry-After": {
                    "description": "Seconds to wait before retrying",
                    "schema": {"type": "integer"},
                },
            },
            "responses": {
                "InvalidRequest": error_response("400: the request is malformed (invalid_request), e.g. a malformed Authorization header", true),
                "Unauthorized": error_response("401: no token (unauthorized), a bad one (invalid_token) or a bad DPoP proof (invalid_dpop_proof)", true),
                "InsufficientScope": error_response("403: the token lacks a required scope (insufficient_scope)", true),
                "KeysUnavailable": {
                    "description": "503: the issuer's signing keys could not be loaded yet, or (with introspection on) the introspection endpoint gave no usable answer (temporarily_unavailable)",
                    "headers": {"Retry-After": {"$ref": "#/components/headers/Retry-After"}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
            },
            "schemas": schemas(),
        },
    })
}

fn json_response(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}},
    })
}

fn error_response(description: &str, challenge: bool) -> Value {
    let mut response = json_response(description, "Error");
    if challenge {
        response["headers"] =
            json!({"WWW-Authenticate": {"$ref": "#/components/headers/WWW-Authenticate"}});
    }
    response
}

/// The `/health/ready` statuses answered with `status`, from the type the handler sends.
fn ready_statuses(status: StatusCode) -> Vec<&'static str> {
    ReadyStatus::ALL
        .into_iter()
        .filter(|ready| ready.http_status() == status)
        .map(ReadyStatus::name)
        .collect()
}

fn schemas() -> Value {
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let dpop_replay_store = json!({
        "type": "string",
        "enum": ["available", "unavailable"],
        "description": "whether the DPoP replay store can answer; absent with AUTH_DPOP=off",
    });
    let issuers = json!({
        "type": "array",
        "description": "Each issuer's key store, in the order of AUTH_ISSUER",
        "items": {
            "type": "object",
            "required": ["issuer", "keys"],
            "properties": {
                "issuer": {"type": "string"},
                "keys": {"type": "integer", "description": "0 while none are loaded: that issuer's tokens answer 503"},
                "keys_age_secs": {"type": "integer", "nullable": true},
            },
        },
    });
    json!({
        "Error": {
            "type": "object",
            "required": ["error", "error_description"],
            "properties": {
                "error": {"type": "string", "example": "invalid_token"},
                "error_description": {"type": "string", "example": "the access token expired"},
            },
        },
        "Hello": {
            "type": "object",
            "required": ["message"],
            "properties": {"message": {"type": "string"}},
        },
        "Whoami": {
            "type": "object",
            "required": ["client_id", "scopes", "claims"],
            "properties": {
                "sub": {"type": "string", "nullable": true},
                "client_id": {"type": "string", "nullable": true},
                "scopes": strings,
                "claims": {"type": "object", "additionalProperties": true, "description": "Every verified claim of the token"},
            },
        },
        "Live": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"type": "string", "enum": ["live"]}},
        },
        "Ready": {
            "type": "object",
            "required": ["status", "keys", "issuers"],
            "properties": {
                "status": {"type": "string", "enum": ready_statuses(StatusCode::OK)},
                "keys": {"type": "integer", "description": "Keys loaded, of every issuer"},
                "keys_age_secs": {"type": "integer", "nullable": true},
                "dpop_replay_store": dpop_replay_store.clone(),
                "issuers": issuers.clone(),
            },
        },
        "NotReady": {
            "type": "object",
            "required": ["status", "reason", "issuers"],
            "properties": {
                "status": {"type": "string", "enum": ready_statuses(StatusCode::SERVICE_UNAVAILABLE)},
                "reason": {"type": "string"},
                "dpop_replay_store": dpop_replay_store,
                "issuers": issuers,
            },
        },
        "ProtectedResourceMetadata": {
            "type": "object",
            "required": ["resource", "authorization_servers"],
            "properties": {
                "resource": {"type": "string", "format": "uri"},
                "authorization_servers": strings,
                "scopes_supported": strings,
                "bearer_methods_supported": strings,
                "resource_name": {"type": "string"},
                "dpop_signing_alg_values_supported": strings,
                "dpop_bound_access_tokens_required": {"type": "boolean"},
            },
        },
    })
}
