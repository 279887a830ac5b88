//! The development OAuth 2.0 authorization server behind `api-guard --dev` and the test suite's
//! token source. It mirrors an Okta custom authorization server: the client-credentials token
//! endpoint (RFC 6749 §4.4), introspection (RFC 7662) and revocation (RFC 7009), the JWKS
//! (RFC 7517 §5) and both discovery documents (RFC 8414, OpenID Connect Discovery 1.0),
//! under the issuer's path, and Okta-shaped access tokens
//! (`cid`, `scp` array, no `typ`). Its keys and signatures are the library's test kit
//! ([`api_guard::testing::TestIssuer`]); this module adds the HTTP side. Tests steer it with
//! the controls on [`DevIssuer`].
//!
//! ```no_run
//! use api_guard_server::dev_issuer::DevIssuer;
//!
//! # async fn example() -> std::io::Result<()> {
//! let (issuer, server) = DevIssuer::spawn("127.0.0.1:0", |_| {}).await?;
//! let token = issuer.mint(&["AccessAll"]);
//! println!("GET /api/whoami with `Authorization: Bearer {token}`, keys at {}", issuer.issuer());
//! server.stop(true).await;
//! # Ok(())
//! # }
//! ```

mod introspect;
mod metadata;
mod settings;
mod token;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use api_guard::Algorithm;
use api_guard::testing::{TestIssuer, TokenBuilder};
use serde_json::{Value, json};

pub use settings::{DevIssuerError, DevIssuerSettings};

/// The development authorization server: cheap to clone, shared by every worker.
#[derive(Clone)]
pub struct DevIssuer {
    inner: Arc<Inner>,
}

struct Inner {
    settings: DevIssuerSettings,
    path_prefix: String,
    /// The keys, and the signing: the library's test kit.
    keys: TestIssuer,
    failing: AtomicBool,
    jwk_override: RwLock<Option<Value>>,
    jwks_fetches: AtomicU64,
    metadata_fetches: AtomicU64,
    /// Checks the JWTs sent to `/v1/introspect`, as a resource server would.
    verifier: Option<api_guard::Guard>,
    remembered: RwLock<introspect::Remembered>,
    introspection_calls: AtomicU64,
}

impl DevIssuer {
    /// Builds an issuer from `settings` with one fresh RS256 key, published and signing.
    ///
    /// # Errors
    ///
    /// [`DevIssuerError::InvalidIssuer`] or [`DevIssuerError::InvalidScope`] for unusable
    /// settings.
    pub fn new(settings: DevIssuerSettings) -> Result<Self, DevIssuerError> {
        let path_prefix = settings.validate()?;
        let keys = TestIssuer::for_issuer(settings.issuer.clone());
        // A guard needs an https or loopback issuer; an issuer it cannot verify for (the
        // settings allow any http host) answers every JWT `active: false`.
        let verifier_settings = keys.settings().with_audiences([settings.audience.as_str()]);
        let verifier = verifier_settings
            .validate()
            .is_ok()
            .then(|| keys.guard_with(verifier_settings));
        let inner = Inner {
            keys,
            verifier,
            remembered: RwLock::default(),
            introspection_calls: AtomicU64::new(0),
            settings,
            path_prefix,
            failing: AtomicBool::new(false),
            jwk_override: RwLock::new(None),
            jwks_fetches: AtomicU64::new(0),
            metadata_fetches: AtomicU64::new(0),
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Binds `addr` (e.g. `127.0.0.1:0`, a loopback address only: any other is refused with
    /// [`std::io::ErrorKind::InvalidInput`] before anything is bound) and serves only the issuer routes there, with one worker,
    /// on the current actix system. The issuer is `http://{bound address}/oauth2/default` unless
    /// `configure` changes it. Returns once the socket is bound, so callers never poll.
    ///
    /// The server does not listen for signals: stop it with the returned handle.
    ///
    /// # Errors
    ///
    /// The bind error, or [`std::io::ErrorKind::Other`] wrapping a [`DevIssuerError`].
    pub async fn spawn(
        addr: &str,
        configure: impl FnOnce(&mut DevIssuerSettings),
    ) -> std::io::Result<(DevIssuer, actix_web::dev::ServerHandle)> {
        // Refused before binding, as `api-guard --dev` refuses a non-loopback BIND_ADDR: the
        // issuer hands out tokens to anyone who knows the (default) client secret.
        let addrs: Vec<std::net::SocketAddr> =
            std::net::ToSocketAddrs::to_socket_addrs(addr)?.collect();
        if addrs.is_empty() || !addrs.iter().all(|a| a.ip().is_loopback()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "the development issuer binds only loopback addresses (127.0.0.1, [::1]), not {addr}"
                ),
            ));
        }
        let listener = std::net::TcpListener::bind(&addrs[..])?;
        let mut settings =
            DevIssuerSettings::new(format!("http://{}/oauth2/default", listener.local_addr()?));
        configure(&mut settings);
        let issuer = DevIssuer::new(settings).map_err(std::io::Error::other)?;
        let served = issuer.clone();
        let server = HttpServer::new(move || {
            let served = served.clone();
            App::new().configure(move |cfg| served.configure(cfg))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Ok((issuer, handle))
    }

    /// Mounts the token, keys and both discovery routes at `{path_prefix}/...`.
    ///
    /// Each route is its own resource rather than a `web::scope`, so an issuer at the root of its
    /// host, or sharing a prefix with the host application, shadows none of the host's routes.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        let data = web::Data::new(self.clone());
        let prefix = &self.inner.path_prefix;
        let resource = |path: &str| {
            web::resource(format!("{prefix}{path}"))
                .app_data(data.clone())
                .wrap(from_fn(crate::loopback::loopback_host_only))
        };
        cfg.service(resource("/v1/token").route(web::post().to(token::token)))
            .service(resource("/v1/introspect").route(web::post().to(introspect::introspect)))
            .service(resource("/v1/revoke").route(web::post().to(introspect::revoke)))
            .service(resource("/v1/keys").route(web::get().to(metadata::keys)))
            .service(
                resource("/.well-known/oauth-authorization-server")
                    .route(web::get().to(metadata::discovery)),
            )
            .service(
                resource("/.well-known/openid-configuration")
                    .route(web::get().to(metadata::discovery)),
            );
    }

    /// The issuer URL, exactly as configured.
    pub fn issuer(&self) -> &str {
        &self.inner.settings.issuer
    }

    /// The settings this issuer was built with.
    pub fn settings(&self) -> &DevIssuerSettings {
        &self.inner.settings
    }

    /// `{issuer}/v1/token`, Okta's token endpoint path.
    pub fn token_endpoint(&self) -> String {
        self.endpoint("/v1/token")
    }

    /// The path part of the issuer URL without a trailing `/`, e.g. `/oauth2/default`.
    pub fn path_prefix(&self) -> String {
        self.inner.path_prefix.clone()
    }

    /// An Okta-shaped access token for the configured client with `scopes`, signed by the
    /// current signing key. Scopes are not checked against the settings.
    pub fn mint(&self, scopes: &[&str]) -> String {
        self.token(scopes).mint()
    }

    /// Signs exactly `header` and `claims` as a compact JWS (RFC 7515 §7.1) with the key named by
    /// `header["kid"]`, or the current signing key when the header names no known key.
    ///
    /// # Security
    ///
    /// The signature uses the key's own algorithm whatever `header["alg"]` says: the header is
    /// copied verbatim so tests can forge algorithm-confusion tokens.
    pub fn mint_with(&self, header: Value, claims: Value) -> String {
        self.inner.keys.sign(&header, &claims)
    }

    /// The claims [`mint`](Self::mint) uses, with `iat` now and `exp` one token lifetime later.
    pub fn standard_claims(&self, scopes: &[&str]) -> Value {
        self.token(scopes).claims()
    }

    /// The header [`mint`](Self::mint) uses: the signing key's `kid` and `alg`, and no `typ`,
    /// like Okta.
    pub fn standard_header(&self) -> Value {
        let keys = &self.inner.keys;
        json!({ "kid": keys.signing_kid(), "alg": keys.signing_alg().name() })
    }

    /// Generates a key for `alg` and publishes it in the JWKS; the signing key does not change.
    /// Returns the new key's `kid`.
    pub fn add_key(&self, alg: Algorithm) -> String {
        self.inner.keys.add_key(alg)
    }

    /// Makes the published key `kid` the signing key. `false` if no such key is published.
    pub fn use_key(&self, kid: &str) -> bool {
        self.inner.keys.use_key(kid)
    }

    /// Unpublishes and forgets the key `kid`. `false` if no such key is published.
    ///
    /// Removing the signing key leaves it signing until [`use_key`](Self::use_key) picks another,
    /// which gives tokens whose key has left the JWKS.
    pub fn remove_key(&self, kid: &str) -> bool {
        self.inner.keys.remove_key(kid)
    }

    /// The `kid` of the current signing key.
    pub fn signing_kid(&self) -> String {
        self.inner.keys.signing_kid()
    }

    /// The public JWK of the published key `kid`, exactly as the JWKS serves it.
    pub fn jwk(&self, kid: &str) -> Option<Value> {
        self.inner.keys.jwk(kid)
    }

    /// The public key of the published key `kid`: SubjectPublicKeyInfo DER for RSA and EC keys,
    /// the raw 32 bytes for Ed25519 (what an HMAC key-confusion forgery would use as its secret).
    pub fn public_key_der(&self, kid: &str) -> Option<Vec<u8>> {
        self.inner.keys.public_key_der(kid)
    }

    /// While `true`, the JWKS and both discovery documents answer 503; tokens are still issued.
    pub fn set_failing(&self, failing: bool) {
        self.inner.failing.store(failing, Ordering::SeqCst);
    }

    /// While `Some`, `/v1/keys` serves exactly this JSON instead of the published keys.
    pub fn set_jwk_override(&self, jwks: Option<Value>) {
        *write(&self.inner.jwk_override) = jwks;
    }

    /// How many `GET /v1/keys` this instance has answered, whatever the status.
    pub fn jwks_fetches(&self) -> u64 {
        self.inner.jwks_fetches.load(Ordering::SeqCst)
    }

    /// How many discovery documents (either path) this instance has answered, whatever the status.
    pub fn metadata_fetches(&self) -> u64 {
        self.inner.metadata_fetches.load(Ordering::SeqCst)
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.issuer().trim_end_matches('/'))
    }

    /// The token [`mint`](Self::mint) makes, before it is signed.
    fn token(&self, scopes: &[&str]) -> TokenBuilder {
        let settings = &self.inner.settings;
        self.inner
            .keys
            .token()
            .client_id(settings.client_id.as_str())
            .subject(settings.client_id.as_str())
            .audience(settings.audience.as_str())
            .scopes(scopes.iter().copied())
            .expires_in(settings.token_lifetime)
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    // No critical section here can panic, so a poisoned lock still holds consistent data.
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
