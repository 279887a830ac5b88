//! The identity headers an upstream (or a front proxy) gets for an authenticated request:
//! `X-Auth-Subject`, `X-Auth-Client-Id`, `X-Auth-Scopes` (space-separated) and
//! `X-Auth-Issuer`, from the verified claims.
//!
//! # Security
//!
//! A claim becomes a header value only if it is printable ASCII (spaces inside, never at
//! either end; a scope never holds one, RFC 6749 §3.3). A token whose claim does not fit is
//! refused (`bad_claim`) rather than forwarded without it: a control character could split
//! a header, and a dropped subject could read as anonymous. Incoming headers of these names
//! are removed from every request ([`is_identity_header`]), so a client never chooses them.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use api_guard::{AuthError, AuthenticatedClaims, Reason};

/// `X-Auth-Subject`: `sub`.
pub const SUBJECT: HeaderName = HeaderName::from_static("x-auth-subject");
/// `X-Auth-Client-Id`: `client_id` or Okta's `cid`.
pub const CLIENT_ID: HeaderName = HeaderName::from_static("x-auth-client-id");
/// `X-Auth-Scopes`: the granted scopes, space-separated.
pub const SCOPES: HeaderName = HeaderName::from_static("x-auth-scopes");
/// `X-Auth-Issuer`: `iss`.
pub const ISSUER: HeaderName = HeaderName::from_static("x-auth-issuer");

/// The identity headers' values of one verified token.
#[derive(Debug, Clone)]
pub(super) struct Identity {
    subject: Option<HeaderValue>,
    client_id: Option<HeaderValue>,
    scopes: HeaderValue,
    issuer: Option<HeaderValue>,
}

impl Identity {
    /// The headers of `claims`, or `bad_claim` if one cannot be a header value.
    pub(super) fn of(claims: &AuthenticatedClaims) -> Result<Identity, AuthError> {
        let text = |value: Option<&str>| value.map(text_value).transpose();
        let issuer = claims.get("iss").and_then(|v| v.as_str());
        let mut scopes = String::new();
        for scope in claims.scopes() {
            if !scope.bytes().all(is_scope_byte) {
                return Err(refused("scope"));
            }
            if !scopes.is_empty() {
                scopes.push(' ');
            }
            scopes.push_str(scope);
        }
        Ok(Identity {
            subject: text(claims.sub()).map_err(|()| refused("sub"))?,
            client_id: text(claims.client_id()).map_err(|()| refused("client id"))?,
            scopes: HeaderValue::from_str(&scopes).map_err(|_| refused("scope"))?,
            issuer: text(issuer).map_err(|()| refused("iss"))?,
        })
    }

    /// Sets the headers in `headers` (replacing any of the same name); a claim the token
    /// lacks removes its header.
    pub(super) fn write(&self, headers: &mut HeaderMap) {
        for (name, value) in [
            (SUBJECT, &self.subject),
            (CLIENT_ID, &self.client_id),
            (ISSUER, &self.issuer),
        ] {
            match value {
                Some(value) => drop(headers.insert(name, value.clone())),
                None => drop(headers.remove(name)),
            }
        }
        headers.insert(SCOPES, self.scopes.clone());
    }
}

/// Sets all four headers in `headers`: `identity`'s values, and empty ones for a claim it
/// lacks or for no identity at all (an anonymous rule). For forward-auth: a front proxy that
/// copies these headers then always finds them, and overwrites the client's own (Caddy 2.6's
/// `copy_headers` copies its placeholder text for a header that is missing).
pub(super) fn write_all(identity: Option<&Identity>, headers: &mut HeaderMap) {
    let empty = HeaderValue::from_static("");
    let value = |field: Option<&Option<HeaderValue>>| {
        field
            .and_then(Option::clone)
            .unwrap_or_else(|| empty.clone())
    };
    headers.insert(SUBJECT, value(identity.map(|i| &i.subject)));
    headers.insert(CLIENT_ID, value(identity.map(|i| &i.client_id)));
    headers.insert(ISSUER, value(identity.map(|i| &i.issuer)));
    let scopes = identity.map_or_else(|| empty.clone(), |i| i.scopes.clone());
    headers.insert(SCOPES, scopes);
}

fn refused(claim: &str) -> AuthError {
    log::debug!("the token's {claim} cannot be sent as a header value (not printable ASCII)");
    AuthError::from(Reason::BadClaim)
}

/// Printable ASCII and inner spaces only.
fn text_value(value: &str) -> Result<HeaderValue, ()> {
    let printable = value.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
    let trimmed = !value.starts_with(' ') && !value.ends_with(' ');
    if !printable || !trimmed {
        return Err(());
    }
    HeaderValue::from_str(value).map_err(|_| ())
}

/// RFC 6749 §3.3 `scope-token`: `%x21 / %x23-5B / %x5D-7E`.
fn is_scope_byte(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x5b | 0x5d..=0x7e)
}

/// Whether `name` is an identity header as some server could read it: `X-Auth-` in any
/// case, and with `_` for `-` (CGI-style servers map both spellings to `HTTP_X_AUTH_...`).
pub fn is_identity_header(name: &HeaderName) -> bool {
    let name = name.as_str().as_bytes();
    const PREFIX: &[u8] = b"x-auth-";
    name.len() >= PREFIX.len()
        && name[..PREFIX.len()]
            .iter()
            .zip(PREFIX)
            .all(|(&b, &p)| b.to_ascii_lowercase() == p || (b == b'_' && p == b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_headers_are_recognised_in_every_spelling() {
        for name in [
            "x-auth-subject",
            "X-Auth-Scopes",
            "x_auth_subject",
            "X-AUTH_ISSUER",
            "x-auth-anything",
        ] {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            assert!(is_identity_header(&name), "{name}");
        }
        for name in [
            "x-authorization",
            "authorization",
            "x-auth",
            "x-authsubject",
        ] {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            assert!(!is_identity_header(&name), "{name}");
        }
    }

    #[test]
    fn only_printable_ascii_with_inner_spaces_becomes_a_header_value() {
        assert!(text_value("alice@example.com").is_ok());
        assert!(text_value("Alice Smith").is_ok());
        for bad in [
            "a\r\nX-Auth-Subject: admin",
            "a\nb",
            "tab\there",
            " lead",
            "trail ",
            "é",
            "nul\0",
        ] {
            assert!(text_value(bad).is_err(), "{bad:?}");
        }
        assert!("orders:read".bytes().all(is_scope_byte));
        assert!(!"a b".bytes().all(is_scope_byte));
        assert!(!"a\"b".bytes().all(is_scope_byte));
    }
}
