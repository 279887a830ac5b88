//! Okta's `/v1/introspect` (RFC 7662) and `/v1/revoke` (RFC 7009), client-authenticated as
//! the token endpoint is. The issuer answers for its own tokens: JWTs it signed (checked
//! with the library's validator, as a resource server would) and the opaque tokens it
//! issued (`token_format=opaque` at the token endpoint). A revoked token is inactive.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::token::{TokenError, authenticate, no_store, read_form};
use super::{DevIssuer, read, write};

/// The most opaque tokens (and revocations) remembered; the oldest are forgotten first.
pub(super) const MAX_REMEMBERED: usize = 10_000;

/// `POST {prefix}/v1/introspect`.
pub(super) async fn introspect(
    req: HttpRequest,
    payload: web::Payload,
    issuer: web::Data<DevIssuer>,
) -> HttpResponse {
    issuer
        .inner
        .introspection_calls
        .fetch_add(1, Ordering::SeqCst);
    match token_of(&req, payload, &issuer).await {
        Ok(token) => no_store(&mut HttpResponse::Ok()).json(issuer.introspection_of(&token)),
        Err(error) => {
            log::debug!("development issuer refused an introspection request: {error:?}");
            error.response()
        }
    }
}

/// `POST {prefix}/v1/revoke`: 200 whether or not the token was known (RFC 7009 §2.2).
pub(super) async fn revoke(
    req: HttpRequest,
    payload: web::Payload,
    issuer: web::Data<DevIssuer>,
) -> HttpResponse {
    match token_of(&req, payload, &issuer).await {
        Ok(token) => {
            issuer.revoke(&token);
            no_store(&mut HttpResponse::Ok()).finish()
        }
        Err(error) => error.response(),
    }
}

/// The `token` parameter of an authenticated client's request.
async fn token_of(
    req: &HttpRequest,
    payload: web::Payload,
    issuer: &DevIssuer,
) -> Result<String, TokenError> {
    let form = read_form(req, payload).await?;
    authenticate(issuer, req.headers().get(AUTHORIZATION), &form)?;
    form.get("token")
        .cloned()
        .ok_or_else(|| TokenError::InvalidRequest("`token` is required".to_owned()))
}

/// What the issuer remembers for introspection: its opaque tokens' claims and the digests
/// of revoked tokens, each bounded, oldest forgotten first.
#[derive(Default)]
pub(super) struct Remembered {
    opaque: HashMap<String, Value>,
    opaque_order: std::collections::VecDeque<String>,
    revoked: std::collections::HashSet<Vec<u8>>,
    revoked_order: std::collections::VecDeque<Vec<u8>>,
}

impl DevIssuer {
    /// An opaque access token (random, not a JWT) for the configured client with `scopes`:
    /// only introspection can tell what it grants.
    pub fn mint_opaque(&self, scopes: &[&str]) -> String {
        let mut bytes = [0u8; 32];
        // The system's generator does not fail on Linux; a failure still gives a unique
        // token below, made from the claims' random `jti`.
        let _ = aws_lc_rs::rand::fill(&mut bytes);
        let claims = self.standard_claims(scopes);
        let token = format!(
            "{}{}",
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes),
            claims["jti"].as_str().unwrap_or_default().replace('.', "_")
        );
        let mut remembered = write(&self.inner.remembered);
        if remembered.opaque_order.len() >= MAX_REMEMBERED
            && let Some(oldest) = remembered.opaque_order.pop_front()
        {
            remembered.opaque.remove(&oldest);
        }
        remembered.opaque_order.push_back(token.clone());
        remembered.opaque.insert(token.clone(), claims);
        token
    }

    /// Revokes `token` (RFC 7009): introspection answers `active: false` for it from now on.
    pub fn revoke(&self, token: &str) {
        let digest = digest(token);
        let mut remembered = write(&self.inner.remembered);
        if remembered.revoked_order.len() >= MAX_REMEMBERED
            && let Some(oldest) = remembered.revoked_order.pop_front()
        {
            remembered.revoked.remove(&oldest);
        }
        remembered.revoked_order.push_back(digest.clone());
        remembered.revoked.insert(digest);
    }

    /// How many `POST /v1/introspect` this instance has answered, whatever the outcome.
    pub fn introspection_calls(&self) -> u64 {
        self.inner.introspection_calls.load(Ordering::SeqCst)
    }

    /// The RFC 7662 §2.2 answer for `token`, in Okta's shape: `active: false` alone for a
    /// token that is revoked, unknown, expired or not valid for this issuer.
    fn introspection_of(&self, token: &str) -> Value {
        let inactive = json!({ "active": false });
        let remembered = read(&self.inner.remembered);
        if remembered.revoked.contains(&digest(token)) {
            return inactive;
        }
        let claims = match remembered.opaque.get(token) {
            Some(claims) => claims.clone(),
            None => match self.inner.verifier.as_ref().map(|v| v.verify(token)) {
                Some(Ok(claims)) => Value::Object(claims.claims().clone()),
                _ => return inactive,
            },
        };
        drop(remembered);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if claims["exp"].as_u64().is_none_or(|exp| exp <= now) {
            return inactive;
        }
        let scope: Vec<&str> = claims["scp"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        json!({
            "active": true,
            "scope": scope.join(" "),
            "username": claims["sub"],
            "exp": claims["exp"],
            "iat": claims["iat"],
            "sub": claims["sub"],
            "aud": claims["aud"],
            "iss": claims["iss"],
            "jti": claims["jti"],
            "token_type": "Bearer",
            "client_id": claims["cid"],
        })
    }
}

fn digest(token: &str) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}
