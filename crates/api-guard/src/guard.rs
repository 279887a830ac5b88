//! The [`Guard`]: one per process, holding the settings and, for each issuer, its validator,
//! shared key store and verified-token cache (see `issuers.rs` for the routing). Register it once with [`configure`]; the
//! [`AuthenticatedClaims`] extractor and the middleware find it in the app data.
//!
//! ```no_run
//! use actix_web::{App, HttpServer};
//! use api_guard::{AuthSettings, Guard};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let guard = Guard::start(AuthSettings::new("https://dev-123456.okta.com/oauth2/default"))?;
//! guard.first_load().await; // optional: returns once the first key fetch has ended
//! HttpServer::new(move || App::new().configure(api_guard::configure(guard.clone())))
//!     .bind("127.0.0.1:8080")?
//!     .run()
//!     .await?;
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use actix_web::{HttpRequest, web};

use crate::bearer;
use crate::cache::CacheStats;
use crate::claims::AuthenticatedClaims;
use crate::error::{Error, Reason};
use crate::issuers::{Issuer, Issuers};
use crate::jwks::{KeySet, KeyStoreStatus, Outbound};
use crate::settings::{AuthSettings, SettingsError};

/// Everything the extractor needs: the settings and, for each issuer, its validator, shared
/// key store and verified-token cache. Cheap to clone; clones share everything. Build it once per process,
/// outside `HttpServer::new`, and register it with [`configure`].
#[derive(Clone)]
pub struct Guard(Arc<Inner>);

struct Inner {
    settings: AuthSettings,
    /// Each with its validator, key store and token cache (filled by that validator only:
    /// bound to these settings and to that issuer).
    issuers: Issuers,
}

/// Why a [`Guard`] could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// A setting is invalid.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The key store's refresher thread could not be started.
    #[error("cannot start the key store's refresher thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// The outcome of the synchronous part of authentication.
pub(crate) enum Step {
    Done(Result<AuthenticatedClaims, Error>),
    /// The token names a `kid` we do not have: refetch, then validate again.
    NeedsKeys(String),
}

impl Guard {
    /// Checks `settings` and starts a key store per issuer, which fetches the issuer's keys
    /// at once, in the background, and keeps them fresh. Call it once per process.
    pub fn start(settings: AuthSettings) -> Result<Guard, GuardError> {
        settings.validate()?;
        // Checked by `validate` above: no error is left here.
        let outbound = Outbound {
            extra_roots: settings.extra_roots().unwrap_or_default(),
            proxy: settings.https_proxy(),
        };
        let issuers = Issuers::start(&settings, &outbound).map_err(GuardError::Thread)?;
        Ok(Guard(Arc::new(Inner { settings, issuers })))
    }

    /// A guard over existing key stores, one per issuer of `settings` in order (the test
    /// kit's, which never fetch).
    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn with_stores(
        settings: AuthSettings,
        stores: Vec<crate::jwks::JwksStore>,
    ) -> Guard {
        let issuers = Issuers::with_stores(&settings, stores);
        Guard(Arc::new(Inner { settings, issuers }))
    }

    /// Waits until every issuer's first key fetch has ended, successfully or not (at most
    /// about 45 seconds). Serving before that is safe: protected routes answer 503 until
    /// keys load.
    pub async fn first_load(&self) {
        self.0.issuers.first_load().await;
    }

    /// Whether the keys of at least one issuer are loaded: the readiness of a service that
    /// protects routes. (A token of an issuer whose keys are not loaded answers 503.)
    pub fn is_ready(&self) -> bool {
        self.0.issuers.is_ready()
    }

    /// Where the first issuer's key store stands ([`AuthSettings::issuer`]'s): keys, age,
    /// failures, fetches by outcome. With several issuers, see [`Guard::key_stores`].
    pub fn key_store(&self) -> KeyStoreStatus {
        self.0.issuers.first().store.status()
    }

    /// Where each issuer's key store stands, in the order of [`AuthSettings::issuers`].
    pub fn key_stores(&self) -> Vec<KeyStoreStatus> {
        self.0.issuers.statuses()
    }

    /// Hits, misses and size of the verified-token cache (of every issuer's, added up).
    pub fn cache_stats(&self) -> CacheStats {
        self.0.issuers.cache_stats()
    }

    /// The settings this guard checks tokens against.
    pub fn settings(&self) -> &AuthSettings {
        &self.0.settings
    }

    /// Checks a bare token (no `Bearer ` prefix) against the keys loaded now, the settings
    /// and the scopes every route requires, using the token cache. Unlike the extractor, a
    /// token naming a key not loaded yet is refused (`unknown_kid`) without a refetch.
    pub fn verify(&self, token: &str) -> Result<AuthenticatedClaims, Error> {
        let issuer = self.0.issuers.route(token)?;
        let Some(keys) = issuer.store.keys() else {
            return Err(keys_unavailable(issuer));
        };
        validate(issuer, token, &keys).and_then(|claims| self.check_required_scopes(claims))
    }

    pub(crate) fn authenticate(&self, req: &HttpRequest) -> Step {
        let token = match bearer::token_from(req.headers(), req.query_string()) {
            Ok(token) => token,
            Err(error) => return Step::Done(Err(error)),
        };
        let issuer = match self.0.issuers.route(token) {
            Ok(issuer) => issuer,
            Err(error) => return Step::Done(Err(error)),
        };
        let Some(keys) = issuer.store.keys() else {
            return Step::Done(Err(keys_unavailable(issuer)));
        };
        match validate(issuer, token, &keys) {
            Err(Error::InvalidToken(Reason::UnknownKey)) => Step::NeedsKeys(token.to_owned()),
            result => Step::Done(result.and_then(|claims| self.check_required_scopes(claims))),
        }
    }

    pub(crate) async fn authenticate_after_refetch(
        self,
        token: String,
    ) -> Result<AuthenticatedClaims, Error> {
        // Only a token of a configured issuer may make that issuer's store fetch.
        let issuer = self.0.issuers.route_strictly(&token)?;
        let keys = issuer
            .store
            .refetch()
            .await
            .ok_or_else(|| keys_unavailable(issuer))?;
        // The token missed the cache a moment ago: validate it without a second lookup.
        let validator = &issuer.validator;
        let claims = issuer
            .cache
            .verify_and_insert(&token, |now| validator.verify_at(&token, &keys, now))?;
        self.check_required_scopes(claims)
    }

    fn check_required_scopes(
        &self,
        claims: AuthenticatedClaims,
    ) -> Result<AuthenticatedClaims, Error> {
        let required = self.0.settings.required_scopes();
        if required.iter().all(|scope| claims.has_scope(scope)) {
            Ok(claims)
        } else {
            Err(Error::InsufficientScope {
                required: required.to_vec(),
            })
        }
    }
}

/// `token` checked by `issuer`'s validator against `keys` (that issuer's), through its cache.
fn validate(issuer: &Issuer, token: &str, keys: &KeySet) -> Result<AuthenticatedClaims, Error> {
    let validator = &issuer.validator;
    issuer
        .cache
        .get_or_verify(token, keys, |now| validator.verify_at(token, keys, now))
}

fn keys_unavailable(issuer: &Issuer) -> Error {
    // No key was ever loaded: ask for a fetch (bounded by the cooldown) without waiting.
    let _ = issuer.store.request_fetch();
    Error::KeysUnavailable {
        retry_after: issuer.store.retry_after(),
    }
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let issuers: Vec<&str> = self.0.settings.issuers().collect();
        f.debug_struct("Guard")
            .field("issuers", &issuers)
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

/// Registers `guard` so that [`AuthenticatedClaims`] works in every handler of the app.
///
/// ```no_run
/// # fn app(guard: api_guard::Guard) {
/// let app = actix_web::App::new().configure(api_guard::configure(guard));
/// # }
/// ```
pub fn configure(guard: Guard) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(guard);
    }
}
