//! [`AuthSettings`]: what a token must satisfy and how the key store behaves, built in code.
//!
//! Every setter's doc ends with its default. The settings are checked once, when
//! [`Guard::start`](crate::Guard::start) is called (or earlier with
//! [`AuthSettings::validate`]), never per request.
//!
//! ```
//! use std::time::Duration;
//! use api_guard::{Algorithm, AuthSettings};
//!
//! let settings = AuthSettings::new("https://dev-123456.okta.com/oauth2/default")
//!     .with_audiences(["api://orders"])
//!     .with_algorithms([Algorithm::RS256])
//!     .with_leeway(Duration::from_secs(30))
//!     .with_required_scopes(["orders:read"]);
//! assert!(settings.validate().is_ok());
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::Algorithm;
use crate::introspection::Introspection;
use crate::jwks::RefreshPolicy;
use crate::url_rules::check_endpoint;

/// The audience expected by default: the one of Okta's `default` authorization server.
const DEFAULT_AUDIENCE: &str = "api://default";
/// The most clock skew a setting may allow: more means clocks need fixing, not leeway.
const MAX_LEEWAY: Duration = Duration::from_secs(300);
/// The token cache size by default: about 1,500 Okta-sized tokens.
const DEFAULT_TOKEN_CACHE_BYTES: usize = 4 * 1024 * 1024;
/// The most memory the token cache may be given: 1 GiB.
const MAX_TOKEN_CACHE_BYTES: usize = 1 << 30;
/// How old a DPoP proof may be by default.
const DEFAULT_DPOP_WINDOW: Duration = Duration::from_secs(180);
/// The longest DPoP window a setting may give: proofs are meant for one request.
const MAX_DPOP_WINDOW: Duration = Duration::from_secs(3600);
/// The in-process replay store's size by default: at most about 100 MiB when full.
const DEFAULT_DPOP_REPLAY_CAPACITY: usize = 1 << 20;

/// The settings of a [`Guard`](crate::Guard): the issuer whose tokens are accepted and what
/// else a token must satisfy, plus the key store's timing and the token cache's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    issuer: String,
    /// More issuers besides `issuer`, each with its own key store (see `issuers.rs`).
    additional_issuers: Vec<String>,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    required_scopes: Vec<String>,
    jwks_uri: Option<String>,
    pub(crate) refresh: RefreshPolicy,
    token_cache_bytes: usize,
    /// PEM text of certificates trusted besides the built-in roots, for the key fetches.
    extra_root_certificates: Vec<u8>,
    /// The proxy for the https fetches, as parsed (its `Debug` hides the credentials).
    https_proxy: Option<Result<crate::jwks::Proxy, String>>,
    require_at_jwt: bool,
    introspection: Option<Introspection>,
    dpop: DpopMode,
    dpop_window: Duration,
    dpop_replay_capacity: usize,
    dpop_nonce_secret: Option<NonceSecret>,
    public_url: Option<String>,
}

/// The secret DPoP nonces are derived from: never printed.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct NonceSecret(pub(crate) Vec<u8>);

impl fmt::Debug for NonceSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NonceSecret(***)")
    }
}

/// The shortest nonce secret accepted: 256 bits of base64 or hex text.
const MIN_NONCE_SECRET_BYTES: usize = 32;

/// Whether a guard accepts DPoP-bound tokens (RFC 9449).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum DpopMode {
    /// The `DPoP` scheme is not accepted (it counts as no credentials); a bound token sent
    /// as Bearer is still refused.
    Off,
    /// `Authorization: DPoP` with a valid proof, and Bearer tokens that are not bound.
    #[default]
    Allowed,
    /// Only `Authorization: DPoP` with a valid proof; Bearer tokens get a `DPoP` challenge.
    Required,
}

impl DpopMode {
    /// The name settings use: `off`, `allowed` or `required`.
    pub const fn name(self) -> &'static str {
        match self {
            DpopMode::Off => "off",
            DpopMode::Allowed => "allowed",
            DpopMode::Required => "required",
        }
    }
}

impl fmt::Display for DpopMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DpopMode {
    type Err = String;

    /// `off`, `allowed` or `required`, exactly.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [DpopMode::Off, DpopMode::Allowed, DpopMode::Required]
            .into_iter()
            .find(|mode| mode.name() == name)
            .ok_or_else(|| format!("`{name}` is not one of off, allowed, required"))
    }
}

/// A setting [`AuthSettings::validate`] refused: which one, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {problem}")]
#[non_exhaustive]
pub struct SettingsError {
    /// The setting's name, e.g. `issuer`, or `leeway` for [`AuthSettings::with_leeway`].
    pub setting: &'static str,
    /// What is wrong and how to fix it.
    pub problem: String,
}

impl AuthSettings {
    /// Settings accepting tokens whose `iss` is exactly `issuer` (never normalised: a trailing
    /// `/` matters), with the defaults below for everything else. The issuer's keys are found
    /// through its metadata (`{issuer}/.well-known/oauth-authorization-server`, then
    /// `openid-configuration`) unless [`with_jwks_uri`](Self::with_jwks_uri) is set.
    pub fn new(issuer: impl Into<String>) -> Self {
        AuthSettings {
            issuer: issuer.into(),
            additional_issuers: Vec::new(),
            audiences: vec![DEFAULT_AUDIENCE.to_owned()],
            algorithms: Algorithm::ALL.to_vec(),
            leeway: Duration::from_secs(60),
            required_scopes: Vec::new(),
            jwks_uri: None,
            refresh: RefreshPolicy::default(),
            token_cache_bytes: DEFAULT_TOKEN_CACHE_BYTES,
            extra_root_certificates: Vec::new(),
            https_proxy: None,
            require_at_jwt: false,
            introspection: None,
            dpop: DpopMode::Allowed,
            dpop_window: DEFAULT_DPOP_WINDOW,
            dpop_replay_capacity: DEFAULT_DPOP_REPLAY_CAPACITY,
            dpop_nonce_secret: None,
            public_url: None,
        }
    }

    /// Trusts the certificate authorities in `pem` (one or more PEM `CERTIFICATE` blocks) for
    /// the issuer's metadata and key-set fetches, in addition to the built-in roots (Mozilla's,
    /// compiled in): for an issuer behind a private CA, such as an in-cluster Keycloak. Each
    /// call adds to the earlier ones. Default: the built-in roots only.
    pub fn with_extra_root_certificates(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.extra_root_certificates.extend_from_slice(pem.as_ref());
        self.extra_root_certificates.push(b'\n');
        self
    }

    /// The extra trusted certificates, parsed: `Err` says what is wrong with the PEM.
    pub(crate) fn extra_roots(
        &self,
    ) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        if self.extra_root_certificates.is_empty() {
            return Ok(Vec::new());
        }
        let certs = CertificateDer::pem_slice_iter(&self.extra_root_certificates)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("is not PEM ({e})"))?;
        if certs.is_empty() {
            return Err("holds no PEM CERTIFICATE block".into());
        }
        let mut store = rustls::RootCertStore::empty();
        let (_, unusable) = store.add_parsable_certificates(certs.iter().cloned());
        if unusable > 0 {
            return Err(format!(
                "{unusable} of its {} certificates cannot be parsed as X.509",
                certs.len()
            ));
        }
        Ok(certs)
    }

    /// Sends the issuer's metadata and key-set fetches over https through the HTTP proxy at
    /// `proxy_url` (`http://[user:password@]host[:port]`, port 1080 when absent, as curl reads
    /// `HTTPS_PROXY`), with a `CONNECT` tunnel: TLS runs inside it, with the issuer. Hosts in
    /// `no_proxy` (curl's `NO_PROXY`: comma-separated names, each covering its subdomains, IP
    /// addresses, CIDR ranges, or `*`) are reached directly, as are plain-http (loopback)
    /// URLs. Default: no proxy.
    pub fn with_https_proxy(mut self, proxy_url: &str, no_proxy: &str) -> Self {
        self.https_proxy = Some(crate::jwks::Proxy::parse(proxy_url, no_proxy));
        self
    }

    /// The proxy for the https fetches, if one is set and valid.
    pub(crate) fn https_proxy(&self) -> Option<crate::jwks::Proxy> {
        self.https_proxy.clone().and_then(Result::ok)
    }

    /// Another issuer, for a service that learns its issuer's URL late (once a port is
    /// bound); the other settings stay. Default: the one given to [`AuthSettings::new`].
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// More issuers whose tokens are accepted besides the one given to
    /// [`AuthSettings::new`], e.g. a second authorization server of the same Okta org, or the
    /// new issuer during a migration. Each issuer gets its own discovery and key store (with
    /// the same timing); a token's keys are looked up only in the store of the issuer its
    /// `iss` names, so a key of one issuer never verifies a token claiming another (RFC 8725
    /// §3.8). The audiences, algorithms, leeway and required scopes apply to every issuer; the
    /// token cache's bytes are shared out between them. Each call replaces the list of the
    /// earlier ones. Not with [`with_jwks_uri`](Self::with_jwks_uri): one key set cannot
    /// belong to several issuers. Default: none (one issuer).
    pub fn with_additional_issuers<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        issuers: I,
    ) -> Self {
        self.additional_issuers = issuers.into_iter().map(Into::into).collect();
        self
    }

    /// The audiences accepted: a token's `aud` must contain at least one of them.
    /// Default: `api://default` (Okta's default authorization server).
    pub fn with_audiences<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        audiences: I,
    ) -> Self {
        self.audiences = audiences.into_iter().map(Into::into).collect();
        self
    }

    /// The signing algorithms allowed; a token signed otherwise is refused before its key is
    /// looked up. Default: every [`Algorithm`].
    pub fn with_algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms.clear();
        for alg in algorithms {
            if !self.algorithms.contains(&alg) {
                self.algorithms.push(alg);
            }
        }
        self
    }

    /// The clock skew allowed on `exp`, `nbf` and `iat`, at most 5 minutes.
    /// Default: 60 seconds.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Scopes every protected route requires (all of them), on top of what a route asks for
    /// itself. Default: none.
    pub fn with_required_scopes<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        scopes: I,
    ) -> Self {
        self.required_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// A fixed JWKS URL, which skips discovery. Default: discovered from the issuer's metadata.
    pub fn with_jwks_uri(mut self, jwks_uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(jwks_uri.into());
        self
    }

    /// The least and the most time between two scheduled key-set refreshes, whatever the
    /// issuer's `Cache-Control: max-age` says. Default: 5 minutes and 24 hours.
    pub fn with_jwks_refresh_bounds(mut self, least: Duration, most: Duration) -> Self {
        self.refresh.min_lifetime = least;
        self.refresh.max_lifetime = most;
        self
    }

    /// The least time between two fetches caused by tokens naming an unknown `kid`: what an
    /// attacker sending made-up `kid`s can make the issuer serve. Zero fetches for every
    /// such token (concurrent ones still share one fetch): for tests only. Default: 30 seconds.
    pub fn with_jwks_cooldown(mut self, cooldown: Duration) -> Self {
        self.refresh.cooldown = cooldown;
        self
    }

    /// How long past its lifetime the last good key set stays in use while the issuer is
    /// unreachable; after that protected routes answer 503. Default: 24 hours.
    pub fn with_jwks_max_stale(mut self, max_stale: Duration) -> Self {
        self.refresh.max_stale = max_stale;
        self
    }

    /// The first wait after a failed key fetch, doubling on each further failure up to
    /// `most`. Default: 1 second and 60 seconds.
    pub fn with_jwks_retry(mut self, first: Duration, most: Duration) -> Self {
        self.refresh.retry_initial = first;
        self.refresh.retry_max = most;
        self
    }

    /// Memory for the verified-token cache, in bytes, at most 1 GiB: a token seen before is
    /// answered without a second signature check, until its `exp` or until its key leaves
    /// the key set. 0 turns the cache off. Default: 4 MiB.
    pub fn with_token_cache_bytes(mut self, bytes: usize) -> Self {
        self.token_cache_bytes = bytes;
        self
    }

    /// Strict RFC 9068 §2.1 typing: only tokens whose header says `typ: at+jwt` (or
    /// `application/at+jwt`) are accepted; a token with another `typ`, `JWT` or none is
    /// refused as the wrong type. Turn it on when your issuer types its access tokens (so an
    /// ID token or another JWT signed with the same keys can never pass); Okta's tokens carry
    /// no `typ`. Default: false (`at+jwt`, `JWT` or no `typ` accepted).
    pub fn with_require_at_jwt(mut self, require: bool) -> Self {
        self.require_at_jwt = require;
        self
    }

    /// Token introspection (RFC 7662): opaque tokens, or every token, are checked with the
    /// issuer's introspection endpoint (see [`Introspection`]). Default: off.
    pub fn with_introspection(mut self, introspection: Introspection) -> Self {
        self.introspection = Some(introspection);
        self
    }

    /// The introspection settings, if any were given (their mode may be off).
    pub fn introspection(&self) -> Option<&Introspection> {
        self.introspection.as_ref()
    }

    /// Whether DPoP-bound tokens (RFC 9449) are accepted, and whether only they are: see
    /// [`DpopMode`]. A bound token (`cnf.jkt`) sent as Bearer is refused in every mode.
    /// Default: [`DpopMode::Allowed`].
    pub fn with_dpop(mut self, mode: DpopMode) -> Self {
        self.dpop = mode;
        self
    }

    /// How old a DPoP proof's `iat` may be, at most an hour; proofs are remembered this long
    /// to refuse replays. Default: 180 seconds.
    pub fn with_dpop_window(mut self, window: Duration) -> Self {
        self.dpop_window = window;
        self
    }

    /// How many DPoP proofs the in-process replay store holds at most (50 to 100 bytes
    /// each); when it is full of proofs younger than the window, further DPoP requests get
    /// 503 rather than the memory growing. Default: 1,048,576.
    pub fn with_dpop_replay_capacity(mut self, proofs: usize) -> Self {
        self.dpop_replay_capacity = proofs;
        self
    }

    /// The URL clients use to reach the service (scheme, host, port and any path prefix a
    /// proxy strips), which a DPoP proof's `htu` must name. Set it behind a proxy or load
    /// balancer. Default: none (the connection's scheme and the request's `Host` header).
    pub fn with_public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = Some(url.into());
        self
    }

    /// Turns on server-provided DPoP nonces (RFC 9449 §9): a proof must then carry the
    /// current nonce, which a proof without it learns from a 401 `use_dpop_nonce` answer's
    /// `DPoP-Nonce` header. Nonces are derived from `secret` and the clock, so every replica
    /// given the same secret (at least 32 bytes) agrees without shared state; one is good for
    /// one to two minutes. Default: off.
    pub fn with_dpop_nonce_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.dpop_nonce_secret = Some(NonceSecret(secret.into()));
        self
    }

    /// The nonce secret, when nonces are on.
    pub(crate) fn dpop_nonce_secret(&self) -> Option<&[u8]> {
        self.dpop_nonce_secret
            .as_ref()
            .map(|secret| secret.0.as_slice())
    }

    /// Whether DPoP proofs must carry a server-provided nonce.
    pub fn dpop_nonces(&self) -> bool {
        self.dpop_nonce_secret.is_some()
    }

    /// The DPoP mode.
    pub fn dpop_mode(&self) -> DpopMode {
        self.dpop
    }

    /// How old a DPoP proof may be.
    pub fn dpop_window(&self) -> Duration {
        self.dpop_window
    }

    /// The in-process replay store's capacity, in proofs.
    pub fn dpop_replay_capacity(&self) -> usize {
        self.dpop_replay_capacity
    }

    /// The public URL, if one is set.
    pub fn public_url(&self) -> Option<&str> {
        self.public_url.as_deref()
    }

    /// Whether only `typ: at+jwt` tokens are accepted.
    pub fn require_at_jwt(&self) -> bool {
        self.require_at_jwt
    }

    /// The issuer, exactly as tokens must carry it in `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Every issuer whose tokens are accepted: [`issuer`](Self::issuer) first, then the
    /// [additional](Self::with_additional_issuers) ones in order.
    pub fn issuers(&self) -> impl Iterator<Item = &str> + Clone {
        std::iter::once(&self.issuer)
            .chain(&self.additional_issuers)
            .map(String::as_str)
    }

    /// The issuers accepted besides [`issuer`](Self::issuer).
    pub fn additional_issuers(&self) -> &[String] {
        &self.additional_issuers
    }

    /// The accepted audiences.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// The allowed algorithms.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// The clock-skew allowance.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }

    /// The scopes every protected route requires.
    pub fn required_scopes(&self) -> &[String] {
        &self.required_scopes
    }

    /// The fixed JWKS URL, if one is set.
    pub fn jwks_uri(&self) -> Option<&str> {
        self.jwks_uri.as_deref()
    }

    /// The token cache's size in bytes.
    pub fn token_cache_bytes(&self) -> usize {
        self.token_cache_bytes
    }

    /// Checks every setting; [`Guard::start`](crate::Guard::start) does the same. The
    /// first problem found is returned, naming the setter.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let error = |setting, problem: String| Err(SettingsError { setting, problem });
        if let Err(problem) =
            check_endpoint(&self.issuer, "https://dev-123456.okta.com/oauth2/default")
        {
            return error("issuer", problem);
        }
        if let Err(problem) = self.check_additional_issuers() {
            return error("additional_issuers", problem);
        }
        let jwks_example = "https://dev-123456.okta.com/oauth2/default/v1/keys";
        if let Some(Err(problem)) = self
            .jwks_uri
            .as_deref()
            .map(|uri| check_endpoint(uri, jwks_example))
        {
            return error("jwks_uri", problem);
        }
        if self.jwks_uri.is_some() && !self.additional_issuers.is_empty() {
            return error(
                "jwks_uri",
                format!(
                    "one JWKS URL cannot hold the keys of {} issuers (each publishes its own); leave it unset so that each issuer's keys are discovered",
                    self.additional_issuers.len() + 1
                ),
            );
        }
        if self.audiences.iter().all(|aud| aud.is_empty()) {
            return error(
                "audiences",
                "must name at least one audience, e.g. api://default (Okta: Security > API > your server > Audience)".into(),
            );
        }
        if self.algorithms.is_empty() {
            return error(
                "algorithms",
                "must name at least one algorithm, e.g. RS256".into(),
            );
        }
        if self.leeway > MAX_LEEWAY {
            return error(
                "leeway",
                format!(
                    "`{}` is more than 300 seconds of clock skew; fix the clocks (NTP) and use 60 or less",
                    self.leeway.as_secs()
                ),
            );
        }
        if let Some(bad) = self
            .required_scopes
            .iter()
            .find(|scope| !is_scope_token(scope))
        {
            return error(
                "required_scopes",
                format!(
                    "{bad:?} is not a scope name (printable ASCII without spaces, quotes or backslashes)"
                ),
            );
        }
        if let Err(problem) = self.extra_roots() {
            return error("extra_root_certificates", problem);
        }
        if let Some(Err(problem)) = &self.https_proxy {
            return error("https_proxy", problem.clone());
        }
        let refresh = &self.refresh;
        if refresh.min_lifetime.is_zero() || refresh.max_lifetime < refresh.min_lifetime {
            return error(
                "jwks_refresh_bounds",
                "the least time must be above zero and not more than the most".into(),
            );
        }
        if refresh.retry_initial.is_zero() || refresh.retry_max < refresh.retry_initial {
            return error(
                "jwks_retry",
                "the first wait must be above zero and not more than the longest".into(),
            );
        }
        if let Some((setting, problem)) = self
            .introspection
            .as_ref()
            .and_then(|i| i.problem(self.jwks_uri.is_none()))
        {
            return error(setting, problem);
        }
        if self.token_cache_bytes > MAX_TOKEN_CACHE_BYTES {
            return error(
                "token_cache_bytes",
                format!(
                    "`{}` is more than {MAX_TOKEN_CACHE_BYTES} bytes (1 GiB)",
                    self.token_cache_bytes
                ),
            );
        }
        if self.dpop_window.is_zero() || self.dpop_window > MAX_DPOP_WINDOW {
            return error(
                "dpop_window",
                format!(
                    "`{}` seconds is outside 1 to 3600; proofs are made per request, 180 is usual",
                    self.dpop_window.as_secs()
                ),
            );
        }
        if self.dpop_replay_capacity == 0 {
            return error(
                "dpop_replay_capacity",
                "must be at least 1 (a full store answers 503; it never forgets early)".into(),
            );
        }
        if self
            .dpop_nonce_secret
            .as_ref()
            .is_some_and(|secret| secret.0.len() < MIN_NONCE_SECRET_BYTES)
        {
            return error(
                "dpop_nonce_secret",
                format!(
                    "is shorter than {MIN_NONCE_SECRET_BYTES} bytes; use a random one, e.g. `openssl rand -base64 32`"
                ),
            );
        }
        if let Some(url) = self
            .public_url
            .as_deref()
            .filter(|url| url.contains(['?', '#']) || crate::dpop::htu::normalise(url).is_none())
        {
            return error(
                "public_url",
                format!(
                    "{url:?} is not an http(s) URL without query, e.g. https://api.example.com"
                ),
            );
        }
        Ok(())
    }
}

impl AuthSettings {
    /// Each additional issuer is a usable URL, and no issuer is listed twice, also not once
    /// with and once without a trailing `/` (tokens carry one of the two).
    fn check_additional_issuers(&self) -> Result<(), String> {
        let example = "https://dev-123456.okta.com/oauth2/aus0second";
        for (i, issuer) in self.additional_issuers.iter().enumerate() {
            check_endpoint(issuer, example)?;
            let earlier = std::iter::once(&self.issuer).chain(&self.additional_issuers[..i]);
            let bare = |url: &str| url.trim_end_matches('/').to_owned();
            if let Some(same) = earlier.into_iter().find(|e| bare(e) == bare(issuer)) {
                return Err(if same == issuer {
                    format!("`{issuer}` is listed twice; list each issuer once")
                } else {
                    format!(
                        "`{same}` and `{issuer}` differ only by a trailing `/`; keep the one your tokens carry in `iss`"
                    )
                });
            }
        }
        Ok(())
    }
}

/// RFC 6749 §3.3: a scope token is printable ASCII without space, `"` or `\`.
pub(crate) fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_root_certificates_must_be_pem_certificates() {
        let with = |pem: &str| {
            AuthSettings::new("https://a.example/")
                .with_extra_root_certificates(pem)
                .validate()
                .map_err(|e| e.to_string())
        };
        let no_block = with("not a certificate");
        assert!(
            no_block
                .as_ref()
                .is_err_and(|e| e.starts_with("extra_root_certificates: holds no PEM")),
            "{no_block:?}"
        );
        let not_x509 = with("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        assert!(
            not_x509
                .as_ref()
                .is_err_and(|e| e.contains("cannot be parsed as X.509")),
            "{not_x509:?}"
        );
        assert_eq!(
            AuthSettings::new("https://a.example/").extra_roots(),
            Ok(Vec::new())
        );
    }

    fn problem(settings: AuthSettings) -> String {
        settings
            .validate()
            .map_or_else(|e| e.to_string(), |()| String::new())
    }

    const OKTA: &str = "https://dev-1.okta.com/oauth2/default";

    #[test]
    fn the_defaults_are_valid_and_documented_ones() {
        let settings = AuthSettings::new(OKTA);
        assert_eq!(problem(settings.clone()), "");
        assert_eq!(settings.audiences(), ["api://default"]);
        assert_eq!(settings.algorithms(), Algorithm::ALL);
        assert_eq!(settings.leeway(), Duration::from_secs(60));
        assert_eq!(settings.token_cache_bytes(), 4 << 20);
        assert_eq!(settings.refresh, RefreshPolicy::default());
    }

    #[test]
    fn each_bad_setting_is_named() {
        for (settings, setting) in [
            (AuthSettings::new("http://example.com/x"), "issuer: "),
            (AuthSettings::new("no url"), "issuer: "),
            (
                AuthSettings::new(OKTA).with_jwks_uri("https://a/?q"),
                "jwks_uri: ",
            ),
            (
                AuthSettings::new(OKTA).with_audiences([""; 0]),
                "audiences: ",
            ),
            (AuthSettings::new(OKTA).with_algorithms([]), "algorithms: "),
            (
                AuthSettings::new(OKTA).with_leeway(Duration::from_secs(301)),
                "leeway: ",
            ),
            (
                AuthSettings::new(OKTA).with_required_scopes(["a b"]),
                "required_scopes: ",
            ),
            (
                AuthSettings::new(OKTA)
                    .with_jwks_refresh_bounds(Duration::from_secs(9), Duration::from_secs(8)),
                "jwks_refresh_bounds: ",
            ),
            (
                AuthSettings::new(OKTA).with_jwks_retry(Duration::ZERO, Duration::ZERO),
                "jwks_retry: ",
            ),
            (
                AuthSettings::new(OKTA).with_token_cache_bytes((1 << 30) + 1),
                "token_cache_bytes: ",
            ),
        ] {
            let message = problem(settings);
            assert!(message.starts_with(setting), "{setting}: {message}");
        }
    }

    #[test]
    fn additional_issuers_must_be_urls_listed_once_and_need_discovery() {
        const SECOND: &str = "https://dev-1.okta.com/oauth2/aus0second";
        let settings = AuthSettings::new(OKTA).with_additional_issuers([SECOND]);
        assert_eq!(problem(settings.clone()), "");
        assert_eq!(settings.issuers().collect::<Vec<_>>(), [OKTA, SECOND]);
        assert_eq!(
            AuthSettings::new(OKTA).issuers().collect::<Vec<_>>(),
            [OKTA]
        );
        for (additional, expected) in [
            (vec![OKTA], format!("additional_issuers: `{OKTA}` is listed twice; list each issuer once")),
            (vec![SECOND, SECOND], format!("additional_issuers: `{SECOND}` is listed twice; list each issuer once")),
            (
                vec!["https://dev-1.okta.com/oauth2/default/"],
                format!("additional_issuers: `{OKTA}` and `{OKTA}/` differ only by a trailing `/`; keep the one your tokens carry in `iss`"),
            ),
            (vec!["http://example.com/x"], "additional_issuers: `http://example.com/x` uses http; https is required except for loopback hosts (127.0.0.1, ::1, localhost)".to_owned()),
            (vec![""], "additional_issuers: `` is not a URL (relative URL without a base); expected e.g. https://dev-123456.okta.com/oauth2/aus0second".to_owned()),
        ] {
            let settings = AuthSettings::new(OKTA).with_additional_issuers(additional);
            assert_eq!(problem(settings), expected);
        }
        let fixed = settings.with_jwks_uri("https://dev-1.okta.com/oauth2/default/v1/keys");
        assert_eq!(
            problem(fixed),
            "jwks_uri: one JWKS URL cannot hold the keys of 2 issuers (each publishes its own); leave it unset so that each issuer's keys are discovered"
        );
    }

    #[test]
    fn algorithms_are_kept_once_in_order() {
        let settings = AuthSettings::new(OKTA).with_algorithms([
            Algorithm::ES256,
            Algorithm::RS256,
            Algorithm::ES256,
        ]);
        assert_eq!(settings.algorithms(), [Algorithm::ES256, Algorithm::RS256]);
    }
}
