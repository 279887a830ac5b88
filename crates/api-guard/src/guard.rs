//! The [`Guard`]: one per issuer and process, holding the settings, the validator, the shared
//! key store and the verified-token cache. Register it once with [`configure`]; the
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
use crate::cache::{CacheStats, TokenCache};
use crate::claims::AuthenticatedClaims;
use crate::error::{Error, Reason};
use crate::jwks::{JwksStore, KeySet, KeyStoreStatus, Outbound, Source};
use crate::settings::{AuthSettings, SettingsError};
use crate::validator::Validator;

/// Everything the extractor needs: the settings and validator, the shared key store, and the
/// verified-token cache. Cheap to clone; clones share everything. Build it once per process,
/// outside `HttpServer::new`, and register it with [`configure`].
#[derive(Clone)]
pub struct Guard(Arc<Inner>);

struct Inner {
    settings: AuthSettings,
    validator: Validator,
    store: JwksStore,
    /// Filled by this guard's validator only: bound to these settings.
    cache: TokenCache,
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
    /// Checks `settings` and starts the key store, which fetches the issuer's keys at once,
    /// in the background, and keeps them fresh. Call it once per process.
    pub fn start(settings: AuthSettings) -> Result<Guard, GuardError> {
        settings.validate()?;
        let source = match settings.jwks_uri() {
            Some(jwks_uri) => Source::Fixed {
                jwks_uri: jwks_uri.to_owned(),
            },
            None => Source::Discover {
                issuer: settings.issuer().to_owned(),
            },
        };
        // Checked by `validate` above: no error is left here.
        let outbound = Outbound {
            extra_roots: settings.extra_roots().unwrap_or_default(),
            proxy: settings.https_proxy(),
        };
        let store = JwksStore::start(source, settings.refresh.clone(), outbound)
            .map_err(GuardError::Thread)?;
        Ok(Guard::with_store(settings, store))
    }

    /// A guard over an existing key store (the test kit's, which never fetches).
    pub(crate) fn with_store(settings: AuthSettings, store: JwksStore) -> Guard {
        Guard(Arc::new(Inner {
            validator: Validator::new(&settings),
            cache: TokenCache::new(settings.token_cache_bytes()),
            settings,
            store,
        }))
    }

    /// Waits until the first key fetch has ended, successfully or not (at most about 45
    /// seconds). Serving before that is safe: protected routes answer 503 until keys load.
    pub async fn first_load(&self) {
        self.0.store.first_load().await;
    }

    /// Whether the issuer's keys are loaded: the readiness of a service that protects routes.
    pub fn is_ready(&self) -> bool {
        self.0.store.is_ready()
    }

    /// Where the key store stands: keys, age, failures, fetches by outcome.
    pub fn key_store(&self) -> KeyStoreStatus {
        self.0.store.status()
    }

    /// Hits, misses and size of the verified-token cache.
    pub fn cache_stats(&self) -> CacheStats {
        self.0.cache.stats()
    }

    /// The settings this guard checks tokens against.
    pub fn settings(&self) -> &AuthSettings {
        &self.0.settings
    }

    /// Checks a bare token (no `Bearer ` prefix) against the keys loaded now, the settings
    /// and the scopes every route requires, using the token cache. Unlike the extractor, a
    /// token naming a key not loaded yet is refused (`unknown_kid`) without a refetch.
    pub fn verify(&self, token: &str) -> Result<AuthenticatedClaims, Error> {
        let Some(keys) = self.0.store.keys() else {
            return Err(self.keys_unavailable());
        };
        self.validate(token, &keys)
            .and_then(|claims| self.check_required_scopes(claims))
    }

    pub(crate) fn authenticate(&self, req: &HttpRequest) -> Step {
        let token = match bearer::token_from(req.headers(), req.query_string()) {
            Ok(token) => token,
            Err(error) => return Step::Done(Err(error)),
        };
        let Some(keys) = self.0.store.keys() else {
            return Step::Done(Err(self.keys_unavailable()));
        };
        match self.validate(token, &keys) {
            Err(Error::InvalidToken(Reason::UnknownKey)) => Step::NeedsKeys(token.to_owned()),
            result => Step::Done(result.and_then(|claims| self.check_required_scopes(claims))),
        }
    }

    pub(crate) async fn authenticate_after_refetch(
        self,
        token: String,
    ) -> Result<AuthenticatedClaims, Error> {
        let keys = self
            .0
            .store
            .refetch()
            .await
            .ok_or_else(|| self.keys_unavailable())?;
        // The token missed the cache a moment ago: validate it without a second lookup.
        let validator = &self.0.validator;
        let claims = self
            .0
            .cache
            .verify_and_insert(&token, |now| validator.verify_at(&token, &keys, now))?;
        self.check_required_scopes(claims)
    }

    fn validate(&self, token: &str, keys: &KeySet) -> Result<AuthenticatedClaims, Error> {
        let validator = &self.0.validator;
        self.0
            .cache
            .get_or_verify(token, keys, |now| validator.verify_at(token, keys, now))
    }

    fn keys_unavailable(&self) -> Error {
        // No key was ever loaded: ask for a fetch (bounded by the cooldown) without waiting.
        let _ = self.0.store.request_fetch();
        Error::KeysUnavailable {
            retry_after: self.0.store.retry_after(),
        }
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

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("issuer", &self.0.settings.issuer())
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
