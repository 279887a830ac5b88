//! The verified claims of an access token, in both common shapes.
//!
//! Okta writes scopes as an `scp` array and the client as `cid`; RFC 9068 §2.2 writes a
//! space-separated `scope` string and `client_id`. Both are read, and matched exactly.

use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

use super::error::Error;

/// The claims of an access token whose signature, issuer, audience and lifetime were verified.
///
/// Taking it as a handler argument is what protects the handler:
///
/// ```no_run
/// use actix_web::{HttpResponse, get};
/// use api_guard::AuthenticatedClaims;
///
/// #[get("/orders")]
/// async fn orders(claims: AuthenticatedClaims) -> Result<HttpResponse, api_guard::AuthError> {
///     claims.require_scopes(&["orders:read"])?;
///     Ok(HttpResponse::Ok().body(format!("orders of {}", claims.client_id().unwrap_or("?"))))
/// }
/// ```
///
/// Cloning is cheap: the claims are shared.
#[derive(Debug, Clone)]
pub struct AuthenticatedClaims(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    claims: Map<String, Value>,
    scopes: Vec<String>,
    /// The claims as JSON, written on first use and then shared (cached tokens reuse it).
    json: OnceLock<String>,
}

impl AuthenticatedClaims {
    /// Wraps claims that were verified. Only the validator calls this.
    pub(crate) fn from_verified(claims: Map<String, Value>) -> Self {
        let scopes = scopes_of(&claims);
        AuthenticatedClaims(Arc::new(Inner {
            claims,
            scopes,
            json: OnceLock::new(),
        }))
    }

    /// `sub`: the subject (for client credentials, usually the client id). Optional in
    /// some issuers' tokens.
    pub fn sub(&self) -> Option<&str> {
        self.str_claim("sub")
    }

    /// The OAuth client the token was issued to: `client_id` (RFC 9068) or Okta's `cid`.
    pub fn client_id(&self) -> Option<&str> {
        self.str_claim("client_id")
            .or_else(|| self.str_claim("cid"))
    }

    /// The granted scopes, from Okta's `scp` array and the standard `scope` string.
    pub fn scopes(&self) -> &[String] {
        &self.0.scopes
    }

    /// Whether the token grants exactly this scope (no prefix or case folding).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.0.scopes.iter().any(|granted| granted == scope)
    }

    /// `Ok` if every scope is granted; otherwise the 403 `insufficient_scope` error naming
    /// all of `required`, ready to return from a handler with `?`.
    pub fn require_scopes(&self, required: &[&str]) -> Result<(), Error> {
        if required.iter().all(|scope| self.has_scope(scope)) {
            Ok(())
        } else {
            Err(Error::InsufficientScope {
                required: required.iter().map(|s| s.to_string()).collect(),
            })
        }
    }

    /// Every verified claim, as the issuer sent it.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.0.claims
    }

    /// Every verified claim as one JSON object, serialised once per token: a token answered
    /// from the cache reuses it.
    pub fn claims_json(&self) -> &str {
        self.0.json.get_or_init(|| {
            serde_json::to_string(&self.0.claims).unwrap_or_else(|_| "{}".to_owned())
        })
    }

    /// One claim by name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.claims.get(name)
    }

    fn str_claim(&self, name: &str) -> Option<&str> {
        self.0.claims.get(name).and_then(Value::as_str)
    }
}

fn scopes_of(claims: &Map<String, Value>) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    let mut add = |scope: &str| {
        if !scope.is_empty() && !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    };
    match claims.get("scp") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).for_each(&mut add),
        Some(Value::String(list)) => list.split(' ').for_each(&mut add),
        _ => {}
    }
    if let Some(Value::String(list)) = claims.get("scope") {
        list.split(' ').for_each(&mut add);
    }
    scopes
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(value: Value) -> AuthenticatedClaims {
        match value {
            Value::Object(map) => AuthenticatedClaims::from_verified(map),
            _ => unreachable!("test claims are objects"),
        }
    }

    #[test]
    fn okta_shape_gives_scp_array_and_cid() {
        let c = claims(json!({"cid": "0oa1", "scp": ["AccessAll", "orders:read"], "sub": "0oa1"}));
        assert_eq!(c.client_id(), Some("0oa1"));
        assert_eq!(c.scopes(), ["AccessAll", "orders:read"]);
    }

    #[test]
    fn standard_shape_gives_scope_string_and_client_id() {
        let c = claims(json!({"client_id": "app", "scope": "a  b c"}));
        assert_eq!(c.client_id(), Some("app"));
        assert_eq!(c.scopes(), ["a", "b", "c"]);
        assert_eq!(c.sub(), None);
    }

    #[test]
    fn scope_matching_is_exact_in_both_claim_shapes() {
        for c in [
            claims(json!({"scp": ["orders:read"]})),
            claims(json!({"scope": "orders:read"})),
        ] {
            assert!(c.has_scope("orders:read"));
            assert!(!c.has_scope("orders"));
            assert!(!c.has_scope("orders:rea"));
            assert!(!c.has_scope("ORDERS:READ"));
            assert!(!c.has_scope("orders:read "));
        }
    }

    #[test]
    fn require_scopes_names_all_required_scopes() {
        let c = claims(json!({"scope": "a"}));
        assert!(c.require_scopes(&["a"]).is_ok());
        assert_eq!(
            c.require_scopes(&["a", "b"]),
            Err(Error::InsufficientScope {
                required: vec!["a".into(), "b".into()]
            })
        );
    }
}
