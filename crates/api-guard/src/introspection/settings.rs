//! The introspection settings: the mode, api-guard's client (its secret never printed) and
//! the endpoint, checked once when the guard starts.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// When tokens are introspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IntrospectionMode {
    /// Never: every token must be a JWT, validated locally. The default.
    #[default]
    Off,
    /// Tokens that are not JWTs (opaque tokens) are introspected; JWTs are validated locally.
    Opaque,
    /// Opaque tokens, and JWTs too once they pass every local check: a revoked JWT is refused.
    Always,
}

impl IntrospectionMode {
    /// Every mode, as configuration names them.
    pub const ALL: [(&'static str, IntrospectionMode); 3] = [
        ("off", IntrospectionMode::Off),
        ("opaque", IntrospectionMode::Opaque),
        ("always", IntrospectionMode::Always),
    ];

    /// The mode's name: `off`, `opaque` or `always`.
    pub fn name(self) -> &'static str {
        match self {
            IntrospectionMode::Off => "off",
            IntrospectionMode::Opaque => "opaque",
            IntrospectionMode::Always => "always",
        }
    }
}

impl FromStr for IntrospectionMode {
    type Err = String;

    /// `off`, `opaque` or `always`, in any case.
    fn from_str(name: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name.trim()))
            .map(|&(_, mode)| mode)
            .ok_or_else(|| format!("`{name}` is not a mode: use off, opaque or always"))
    }
}

/// A client secret: `Debug` never prints it, and neither does any error or log line.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Secret(pub(super) String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How api-guard introspects tokens (RFC 7662): the mode, its client and the endpoint. Give
/// it to [`AuthSettings::with_introspection`](crate::AuthSettings::with_introspection).
///
/// # Security
///
/// The client secret is never printed: `Debug` shows `[redacted]`, and no error or log
/// line carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introspection {
    pub(super) mode: IntrospectionMode,
    pub(super) client_id: String,
    pub(super) client_secret: Secret,
    pub(super) endpoint: Option<String>,
    pub(super) cache_ttl: Duration,
    pub(super) timeout: Duration,
}

impl Introspection {
    /// Introspection in `mode`, authenticating as `client_id` with `client_secret` (HTTP
    /// Basic), at the issuer's discovered `introspection_endpoint`, with answers reused for
    /// 60 seconds and a 5-second timeout.
    pub fn new(
        mode: IntrospectionMode,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        Introspection {
            mode,
            client_id: client_id.into(),
            client_secret: Secret(client_secret.into()),
            endpoint: None,
            cache_ttl: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
        }
    }

    /// The endpoint's URL (https, or http on loopback). Default: the issuer metadata's
    /// `introspection_endpoint`.
    pub fn with_endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// How long an answer is reused, never past the token's `exp`; zero calls the endpoint
    /// for every request (concurrent ones still share a call). At most a day. Default: 60
    /// seconds.
    pub fn with_cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// The longest one call may take, connection included; a slower endpoint is a 503.
    /// Between 1 ms and 60 seconds. Default: 5 seconds.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The mode.
    pub fn mode(&self) -> IntrospectionMode {
        self.mode
    }

    /// The client id api-guard introspects as.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The configured endpoint, if one is set.
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// How long an answer is reused.
    pub fn cache_ttl(&self) -> Duration {
        self.cache_ttl
    }

    /// The timeout of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The first problem of these settings, as `(setting, problem)`; `None` when they are
    /// usable. `discovery` says whether the endpoint can be discovered.
    pub(crate) fn problem(&self, discovery: bool) -> Option<(&'static str, String)> {
        if self.mode == IntrospectionMode::Off {
            return None;
        }
        if self.client_id.is_empty() {
            return Some((
                "introspection_client_id",
                "is required for introspection: the client id api-guard authenticates as".into(),
            ));
        }
        if self.client_secret.0.is_empty() {
            return Some((
                "introspection_client_secret",
                "is required for introspection: the secret of api-guard's own client".into(),
            ));
        }
        match &self.endpoint {
            Some(url) => {
                let example = "https://dev-123456.okta.com/oauth2/default/v1/introspect";
                if let Err(problem) = crate::url_rules::check_endpoint(url, example) {
                    return Some(("introspection_endpoint", problem));
                }
            }
            None if !discovery => {
                return Some((
                    "introspection_endpoint",
                    "must be set when the JWKS URL is: no metadata is discovered to name it".into(),
                ));
            }
            None => {}
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(60) {
            return Some((
                "introspection_timeout",
                format!(
                    "`{}` ms is not between 1 ms and 60 seconds",
                    self.timeout.as_millis()
                ),
            ));
        }
        if self.cache_ttl > Duration::from_secs(86_400) {
            return Some((
                "introspection_cache_ttl",
                format!("`{}` seconds is more than a day", self.cache_ttl.as_secs()),
            ));
        }
        None
    }
}
