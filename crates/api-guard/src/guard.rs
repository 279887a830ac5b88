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
use futures_util::future::LocalBoxFuture;

use crate::bearer::{self, Scheme};
use crate::cache::{CacheStats, TokenCache};
use crate::claims::AuthenticatedClaims;
use crate::dpop::{self, MemoryReplayStore, Remembered, ReplayStore, ReplayStoreError};
use crate::error::{Error, Reason};
use crate::jwks::{JwksStore, KeySet, KeyStoreStatus, Source};
use crate::settings::{AuthSettings, DpopMode, SettingsError};
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
    /// The DPoP proofs accepted within the window.
    replay: Arc<dyn ReplayStore>,
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
    /// The token names a `kid` we do not have: refetch, then validate again (and finish
    /// the DPoP checks of its proof, if it came with one).
    NeedsKeys(String, Option<HttpRequest>),
    /// Everything is checked but the DPoP proof's replay, which the store answers.
    Pending(LocalBoxFuture<'static, Result<AuthenticatedClaims, Error>>),
}

impl Guard {
    /// Checks `settings` and starts the key store, which fetches the issuer's keys at once,
    /// in the background, and keeps them fresh. Call it once per process.
    pub fn start(settings: AuthSettings) -> Result<Guard, GuardError> {
        let replay = Arc::new(MemoryReplayStore::new(settings.dpop_replay_capacity()));
        Guard::start_with_replay_store(settings, replay)
    }

    /// [`Guard::start`], remembering DPoP proofs in `replay` instead of the in-process
    /// store: a store shared by every replica, so a proof used at one is refused at all.
    pub fn start_with_replay_store(
        settings: AuthSettings,
        replay: Arc<dyn ReplayStore>,
    ) -> Result<Guard, GuardError> {
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
        let extra_roots = settings.extra_roots().unwrap_or_default();
        let store = JwksStore::start(source, settings.refresh.clone(), extra_roots)
            .map_err(GuardError::Thread)?;
        Ok(Guard::with_stores(settings, store, replay))
    }

    /// A guard over an existing key store (the test kit's, which never fetches).
    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn with_store(settings: AuthSettings, store: JwksStore) -> Guard {
        let replay = Arc::new(MemoryReplayStore::new(settings.dpop_replay_capacity()));
        Guard::with_stores(settings, store, replay)
    }

    fn with_stores(
        settings: AuthSettings,
        store: JwksStore,
        replay: Arc<dyn ReplayStore>,
    ) -> Guard {
        Guard(Arc::new(Inner {
            validator: Validator::new(&settings),
            cache: TokenCache::new(settings.token_cache_bytes()),
            settings,
            store,
            replay,
        }))
    }

    /// Whether the DPoP replay store can answer: part of a service's readiness when DPoP
    /// is not off.
    pub fn replay_store_available(&self) -> bool {
        self.0.replay.is_available()
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
        let mode = self.0.settings.dpop_mode();
        let accept_dpop = mode != DpopMode::Off;
        let (scheme, token) =
            match bearer::credentials_from(req.headers(), req.query_string(), accept_dpop) {
                Ok(credentials) => credentials,
                Err(Error::MissingToken(_)) if mode == DpopMode::Required => {
                    return Step::Done(Err(Error::from(Reason::DpopNoHeader)));
                }
                Err(error) => return Step::Done(Err(error)),
            };
        if scheme == Scheme::Bearer && mode == DpopMode::Required {
            return Step::Done(Err(Error::from(Reason::DpopRequired)));
        }
        let Some(keys) = self.0.store.keys() else {
            return Step::Done(Err(self.keys_unavailable()));
        };
        // The token before the proof: a proof's key is the client's own (RSA up to 8192
        // bits), so only a request with a valid token is worth its signature check.
        let dpop = (scheme == Scheme::Dpop).then_some(req);
        match self.validate(token, &keys) {
            Err(Error::InvalidToken(Reason::UnknownKey)) => {
                Step::NeedsKeys(token.to_owned(), dpop.cloned())
            }
            Err(error) => Step::Done(Err(error)),
            Ok(claims) => self.finish(claims, token, dpop),
        }
    }

    /// The checks after the token's: the DPoP proof of a request that came as DPoP (`dpop`),
    /// the binding, the scopes, then the proof's replay.
    fn finish(&self, claims: AuthenticatedClaims, token: &str, dpop: Option<&HttpRequest>) -> Step {
        let mode = self.0.settings.dpop_mode();
        let proof = match dpop {
            None => None,
            // Not bound: refused without a signature check (the binding check says why).
            Some(_) if claims.dpop_thumbprint().is_none() => None,
            Some(req) => {
                let now = crate::validator::now() as u64;
                match dpop::check_request(req, token, &self.0.settings, now) {
                    Ok(proof) => Some(proof),
                    Err(error) => return Step::Done(Err(error)),
                }
            }
        };
        if dpop.is_some() && proof.is_none() {
            return Step::Done(Err(Error::from(Reason::UnboundToken)));
        }
        let thumbprint = proof.as_ref().map(|proof| proof.thumbprint.as_str());
        if let Err(reason) = dpop::check_dpop_binding(mode, &claims, thumbprint) {
            return Step::Done(Err(Error::from(reason)));
        }
        let claims = match self.check_required_scopes(claims) {
            Ok(claims) => claims,
            Err(error) => return Step::Done(Err(error)),
        };
        let Some(proof) = proof else {
            return Step::Done(Ok(claims));
        };
        let remembered = self.0.replay.remember(proof.id, proof.ttl);
        Step::Pending(Box::pin(async move {
            match remembered.await {
                Ok(Remembered::First) => Ok(claims),
                Ok(Remembered::Replayed) => Err(Error::from(Reason::DpopReplayed)),
                Err(ReplayStoreError::Full) => Err(Error::from(Reason::ReplayStoreFull)),
                Err(_) => Err(Error::from(Reason::ReplayStoreUnavailable)),
            }
        }))
    }

    pub(crate) async fn authenticate_after_refetch(
        self,
        token: String,
        dpop: Option<HttpRequest>,
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
        match self.finish(claims, &token, dpop.as_ref()) {
            Step::Done(result) => result,
            Step::Pending(remembered) => remembered.await,
            // `finish` never asks for keys.
            Step::NeedsKeys(..) => Err(Error::from(Reason::UnknownKey)),
        }
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
