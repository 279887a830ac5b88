//! Settings of the development issuer and the errors that reject them at start-up: the
//! `--dev` issuer mirrors Okta's default authorization server.

use std::fmt;
use std::time::Duration;

/// What the development issuer answers as: its issuer URL, the audience and client it serves.
#[derive(Clone)]
pub struct DevIssuerSettings {
    /// The issuer URL, written into `iss` and the metadata exactly as given; its path becomes the
    /// routes' prefix (e.g. `http://127.0.0.1:8080/oauth2/default`). No default.
    pub issuer: String,
    /// The `aud` of every access token. Default: `api://default`, like Okta's default server.
    pub audience: String,
    /// The one registered client's id, also the token's `cid` and `sub`. Default: `api-guard-dev`.
    pub client_id: String,
    /// The one registered client's secret (RFC 6749 §2.3.1).
    /// Default: `api-guard-dev-secret`.
    ///
    /// # Security
    ///
    /// Never logged; `Debug` prints it as `[redacted]`.
    pub client_secret: String,
    /// The scopes the client may request; a request without `scope` gets all of them.
    /// Default: `["AccessAll"]`.
    pub scopes: Vec<String>,
    /// Lifetime of an access token (`exp - iat`, and `expires_in`). Default: 3600 s.
    pub token_lifetime: Duration,
    /// `Cache-Control: max-age` of the JWKS response. Default: 300 s.
    pub jwks_max_age: Duration,
}

impl DevIssuerSettings {
    /// Settings for `issuer` with Okta-like defaults for everything else.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: "api://default".into(),
            client_id: "api-guard-dev".into(),
            client_secret: "api-guard-dev-secret".into(),
            scopes: vec!["AccessAll".into()],
            token_lifetime: Duration::from_secs(3600),
            jwks_max_age: Duration::from_secs(300),
        }
    }

    /// The path part of the issuer URL without a trailing `/`, checking what the issuer must be.
    pub(super) fn validate(&self) -> Result<String, DevIssuerError> {
        let invalid = |reason| DevIssuerError::InvalidIssuer {
            issuer: self.issuer.clone(),
            reason,
        };
        let url = url::Url::parse(&self.issuer).map_err(|_| invalid("not an absolute url"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(invalid("it must be an http or https url with a host"));
        }
        // RFC 8414 §2: the issuer has no query or fragment components.
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("it must have no query or fragment"));
        }
        if let Some(scope) = self.scopes.iter().find(|scope| !is_scope_token(scope)) {
            return Err(DevIssuerError::InvalidScope(scope.clone()));
        }
        Ok(url.path().trim_end_matches('/').to_owned())
    }
}

impl fmt::Debug for DevIssuerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevIssuerSettings")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("scopes", &self.scopes)
            .field("token_lifetime", &self.token_lifetime)
            .field("jwks_max_age", &self.jwks_max_age)
            .finish()
    }
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

/// Why the development issuer could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevIssuerError {
    /// The issuer URL cannot serve as an issuer identifier (RFC 8414 §2).
    #[error("issuer `{issuer}` is not usable: {reason}")]
    InvalidIssuer {
        /// The issuer as configured.
        issuer: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A configured scope is not a valid scope token (RFC 6749 §3.3).
    #[error("scope `{0}` is not a valid scope token")]
    InvalidScope(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_client_secret() {
        let printed = format!(
            "{:?}",
            DevIssuerSettings::new("http://127.0.0.1/oauth2/default")
        );
        assert!(!printed.contains("api-guard-dev-secret"), "{printed}");
        assert!(printed.contains("[redacted]"), "{printed}");
    }

    #[test]
    fn validate_returns_the_issuer_path_without_trailing_slash() {
        let path = |issuer: &str| DevIssuerSettings::new(issuer).validate().unwrap();
        assert_eq!(
            path("http://127.0.0.1:8080/oauth2/default"),
            "/oauth2/default"
        );
        assert_eq!(
            path("http://127.0.0.1:8080/oauth2/default/"),
            "/oauth2/default"
        );
        assert_eq!(path("http://127.0.0.1:8080"), "");
    }

    #[test]
    fn validate_rejects_unusable_issuers_and_scopes() {
        for issuer in [
            "127.0.0.1:8080",
            "ftp://host/x",
            "http://host/x?a=b",
            "http://host/x#f",
        ] {
            let result = DevIssuerSettings::new(issuer).validate();
            assert!(
                matches!(result, Err(DevIssuerError::InvalidIssuer { .. })),
                "{issuer}"
            );
        }
        let mut settings = DevIssuerSettings::new("http://127.0.0.1/oauth2/default");
        settings.scopes = vec!["read write".into()];
        assert!(matches!(
            settings.validate(),
            Err(DevIssuerError::InvalidScope(_))
        ));
    }
}
