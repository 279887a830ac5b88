//! The [`Guard`]: one per process, holding the settings and, for each issuer, its validator,
//! shared key store and verified-token cache (see `issuers.rs` for the routing). Register it
//! once with [`configure`]; the
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
use crate::cache::CacheStats;
use crate::claims::AuthenticatedClaims;
use crate::dpop::{self, MemoryReplayStore, Remembered, ReplayStore, ReplayStoreError};
use crate::error::{Error, Reason};
use crate::introspection::{IntrospectionStats, Introspector};
use crate::issuers::{Issuer, Issuers};
use crate::jwks::{KeySet, KeyStoreStatus, Outbound};
use crate::settings::{AuthSettings, DpopMode, SettingsError};
use crate::trace::{Check, Detail, Explanation, Recorder, Trace};
use crate::validator::now;

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
    /// `None` when introspection is off.
    introspector: Option<Introspector>,
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
    /// The token must be introspected and no answer is cached: call the endpoint. `local`
    /// holds the claims of a JWT that passed the local checks; `None` for an opaque token.
    NeedsIntrospection {
        token: String,
        local: Option<AuthenticatedClaims>,
        dpop: Option<HttpRequest>,
    },
    /// Everything is checked but the DPoP proof's replay, which the store answers.
    Pending(LocalBoxFuture<'static, Result<AuthenticatedClaims, Error>>),
}

impl Guard {
    /// Checks `settings` and starts a key store per issuer, which fetches the issuer's keys
    /// at once, in the background, and keeps them fresh. Call it once per process.
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
        if let Some(proxy) = settings.https_proxy() {
            log::info!(
                "calls to the issuer over https go through the proxy {} (HTTPS_PROXY), except to NO_PROXY hosts",
                proxy.display()
            );
        }
        let issuers =
            Issuers::start(&settings, &Outbound::of(&settings)).map_err(GuardError::Thread)?;
        Ok(Guard::with_issuers(settings, issuers, replay))
    }

    /// A guard over existing key stores, one per issuer of `settings` in order (the test
    /// kit's, which never fetch).
    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn with_stores(
        settings: AuthSettings,
        stores: Vec<crate::jwks::JwksStore>,
    ) -> Guard {
        let issuers = Issuers::with_stores(&settings, stores);
        let replay = Arc::new(MemoryReplayStore::new(settings.dpop_replay_capacity()));
        Guard::with_issuers(settings, issuers, replay)
    }

    fn with_issuers(
        settings: AuthSettings,
        issuers: Issuers,
        replay: Arc<dyn ReplayStore>,
    ) -> Guard {
        let introspector = Introspector::new(settings.introspection(), Outbound::of(&settings));
        Guard(Arc::new(Inner {
            introspector,
            settings,
            issuers,
            replay,
        }))
    }

    /// Whether the DPoP replay store can answer: part of a service's readiness when DPoP
    /// is not off.
    pub fn replay_store_available(&self) -> bool {
        self.0.replay.is_available()
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

    /// Introspection calls by outcome and answers reused; `None` when introspection is off.
    pub fn introspection_stats(&self) -> Option<IntrospectionStats> {
        self.0.introspector.as_ref().map(Introspector::stats)
    }

    /// The settings this guard checks tokens against.
    pub fn settings(&self) -> &AuthSettings {
        &self.0.settings
    }

    /// Checks a bare token (no `Bearer ` prefix), presented as a Bearer token, against the
    /// keys loaded now, the settings and the scopes every route requires, using the token
    /// cache. Unlike the extractor, a token naming a key not loaded yet is refused
    /// (`unknown_kid`) without a refetch, and a token that needs introspection is answered
    /// only from the introspection cache (else 503 `introspection_unavailable`):
    /// [`Guard::check`] does both.
    pub fn verify(&self, token: &str) -> Result<AuthenticatedClaims, Error> {
        match self.authenticate_token(token, None) {
            Step::Done(result) => result,
            Step::NeedsKeys(..) => Err(Error::InvalidToken(Reason::UnknownKey)),
            Step::NeedsIntrospection { .. } => Err(Error::IntrospectionUnavailable {
                retry_after: std::time::Duration::from_secs(1),
            }),
            // Without a proof there is no replay to check.
            Step::Pending(_) => Err(Error::from(Reason::ReplayStoreUnavailable)),
        }
    }

    /// Checks a bare token (no `Bearer ` prefix), presented as a Bearer token, exactly as
    /// the extractor does: the token cache, one key refetch for an unknown `kid`,
    /// introspection when configured, the DPoP binding rules and the scopes every route
    /// requires.
    pub async fn check(&self, token: &str) -> Result<AuthenticatedClaims, Error> {
        self.resolve(self.authenticate_token(token, None)).await
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
        // The token before the proof: a proof's key is the client's own (RSA up to 8192
        // bits), so only a request with a valid token is worth its signature check.
        let dpop = (scheme == Scheme::Dpop).then_some(req);
        self.authenticate_token(token, dpop)
    }

    /// The synchronous part: everything that needs no network. `dpop` is the request when
    /// the token came with the DPoP scheme.
    fn authenticate_token(&self, token: &str, dpop: Option<&HttpRequest>) -> Step {
        if let Some(introspector) = self.introspector_for_opaque(token) {
            return match introspector.cached(token, None) {
                Some(Ok(claims)) => self.finish(claims, token, dpop),
                Some(Err(error)) => Step::Done(Err(error)),
                None => Step::NeedsIntrospection {
                    token: token.to_owned(),
                    local: None,
                    dpop: dpop.cloned(),
                },
            };
        }
        let issuer = match self.0.issuers.route(token) {
            Ok(issuer) => issuer,
            Err(error) => return Step::Done(Err(error)),
        };
        let Some(keys) = issuer.store.keys() else {
            return Step::Done(Err(keys_unavailable(issuer)));
        };
        match validate(issuer, token, &keys) {
            Err(Error::InvalidToken(Reason::UnknownKey)) => {
                Step::NeedsKeys(token.to_owned(), dpop.cloned())
            }
            Ok(claims) => self.after_local_checks(token, claims, dpop),
            Err(error) => Step::Done(Err(error)),
        }
    }

    /// The asynchronous part, for what [`Guard::authenticate`] could not finish. Each turn
    /// moves forward (keys, then introspection, then the replay check): at most three.
    pub(crate) async fn resolve(&self, mut step: Step) -> Result<AuthenticatedClaims, Error> {
        loop {
            step = match step {
                Step::Done(result) => return result,
                Step::Pending(remembered) => return remembered.await,
                Step::NeedsKeys(token, dpop) => {
                    let claims = self.validate_after_refetch(&token).await?;
                    match self.after_local_checks(&token, claims, dpop.as_ref()) {
                        Step::NeedsKeys(..) => return Err(Error::InvalidToken(Reason::UnknownKey)),
                        next => next,
                    }
                }
                Step::NeedsIntrospection { token, local, dpop } => {
                    let claims = self.introspect(&token, local).await?;
                    match self.finish(claims, &token, dpop.as_ref()) {
                        next @ (Step::Done(_) | Step::Pending(_)) => next,
                        // `finish` neither fetches keys nor introspects.
                        _ => return Err(Error::InvalidToken(Reason::UnknownKey)),
                    }
                }
            };
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
                let now = now() as u64;
                let bound_to = claims.dpop_thumbprint();
                match dpop::check_request(req, token, bound_to, &self.0.settings, now) {
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

    /// The introspector, if `token` is opaque and opaque tokens are introspected.
    fn introspector_for_opaque(&self, token: &str) -> Option<&Introspector> {
        self.0
            .introspector
            .as_ref()
            .filter(|introspector| introspector.takes_opaque(token))
    }

    /// A JWT that passed the local checks: introspected too in `always` mode.
    fn after_local_checks(
        &self,
        token: &str,
        claims: AuthenticatedClaims,
        dpop: Option<&HttpRequest>,
    ) -> Step {
        let Some(introspector) = self
            .0
            .introspector
            .as_ref()
            .filter(|introspector| introspector.after_local_checks())
        else {
            return self.finish(claims, token, dpop);
        };
        match introspector.cached(token, Some(&claims)) {
            Some(Ok(claims)) => self.finish(claims, token, dpop),
            Some(Err(error)) => Step::Done(Err(error)),
            None => Step::NeedsIntrospection {
                token: token.to_owned(),
                local: Some(claims),
                dpop: dpop.cloned(),
            },
        }
    }

    async fn introspect(
        &self,
        token: &str,
        local: Option<AuthenticatedClaims>,
    ) -> Result<AuthenticatedClaims, Error> {
        let Some(introspector) = &self.0.introspector else {
            return local.ok_or(Error::InvalidToken(Reason::Malformed));
        };
        // A JWT goes to the endpoint of the issuer it was routed to, and the answer is checked
        // by that issuer's validator; an opaque token (no `iss` to read) to the first issuer's.
        let issuer = self.introspected_by(token);
        let discovered = issuer.store.introspection_endpoint();
        introspector
            .introspect(token, local, &issuer.validator, discovered)
            .await
    }

    /// The issuer whose validator checks an introspection answer for `token`.
    fn introspected_by(&self, token: &str) -> &Issuer {
        let issuers = &self.0.issuers;
        issuers.route(token).unwrap_or_else(|_| issuers.first())
    }

    async fn validate_after_refetch(&self, token: &str) -> Result<AuthenticatedClaims, Error> {
        // Only a token of a configured issuer may make that issuer's store fetch.
        let issuer = self.0.issuers.route_strictly(token)?;
        let keys = issuer
            .store
            .refetch()
            .await
            .ok_or_else(|| keys_unavailable(issuer))?;
        // The token missed the cache a moment ago: validate it without a second lookup.
        let validator = &issuer.validator;
        issuer
            .cache
            .verify_and_insert(token, |now| validator.verify_at(token, &keys, now))
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

/// `Guard::explain`: the guard's own checks, each reported (see the `trace` module).
impl Guard {
    /// Runs every check the guard runs on `token` (a bare token, no `Bearer ` prefix) and
    /// reports each, in the order the guard runs them, with the values it compared: the
    /// same validator, key store, introspection and scope check as the extractor, without
    /// the verified-token cache. `result` is what the extractor answers for this token.
    /// For tools (`api-guard explain`), not for the request path.
    pub async fn explain(&self, token: &str) -> Explanation {
        let now = now() as u64;
        let mut recorder = Recorder::default();
        let result = self.explain_into(token, now, &mut recorder).await;
        Explanation {
            checks: recorder.0,
            result,
            now,
        }
    }

    async fn explain_into(
        &self,
        token: &str,
        now: u64,
        recorder: &mut Recorder,
    ) -> Result<AuthenticatedClaims, Error> {
        // The extractor refuses a token outside RFC 6750's syntax before anything else.
        if !bearer::is_b64token(token) {
            let refused = Err(Error::InvalidRequest(Reason::MalformedHeader));
            recorder.record(Check::Token, &refused, || Detail {
                found: Some(format!("{} bytes, not an RFC 6750 b64token", token.len())),
                expected: Some("letters, digits, - . _ ~ + / and = at the end only".into()),
            });
            return refused.map(|()| unreachable!("refused above"));
        }
        let local = if self.introspector_for_opaque(token).is_some() {
            recorder.record(Check::Token, &Ok(()), || Detail {
                found: Some(format!("{} bytes, not a JWT", token.len())),
                expected: Some("a JWT, or an opaque token for introspection".into()),
            });
            None
        } else {
            let claims = self.explain_locally(token, now, recorder).await?;
            if !self
                .0
                .introspector
                .as_ref()
                .is_some_and(Introspector::after_local_checks)
            {
                return self.explain_binding(claims, recorder);
            }
            Some(claims)
        };
        let introspected = self.introspect(token, local).await;
        recorder.record(Check::Introspection, &verdict(&introspected), || {
            let found = match &introspected {
                Ok(_) => "active: true",
                Err(Error::InvalidToken(Reason::Inactive)) => "active: false",
                Err(Error::IntrospectionUnavailable { .. }) => "no usable answer",
                Err(_) => "active: true, with claims that fail the checks",
            };
            let endpoint = self.0.introspector.as_ref().and_then(|i| {
                i.settings().endpoint().map(str::to_owned).or_else(|| {
                    let store = &self.introspected_by(token).store;
                    store.introspection_endpoint().map(|e| e.to_string())
                })
            });
            Detail::new(
                Some(found.to_owned()),
                format!(
                    "active, at {}",
                    endpoint.as_deref().unwrap_or("(no endpoint discovered)")
                ),
            )
        });
        self.explain_binding(introspected?, recorder)
    }

    /// The DPoP binding of the token presented alone (as Bearer), then the scopes: the
    /// order of `Guard::finish`.
    fn explain_binding(
        &self,
        claims: AuthenticatedClaims,
        recorder: &mut Recorder,
    ) -> Result<AuthenticatedClaims, Error> {
        let mode = self.0.settings.dpop_mode();
        let bound = dpop::check_dpop_binding(mode, &claims, None).map_err(Error::from);
        recorder.record(Check::Dpop, &bound, || {
            let found = match claims.dpop_thumbprint() {
                Some(jkt) => format!("bound to the key with thumbprint {jkt} (cnf.jkt)"),
                None => "not bound (no cnf.jkt)".to_owned(),
            };
            Detail::new(Some(found), format!("AUTH_DPOP={}", mode.name()))
        });
        bound?;
        self.explain_scopes(claims, recorder)
    }

    /// The validator's checks, with one refetch for an unknown `kid` as the extractor does.
    async fn explain_locally(
        &self,
        token: &str,
        now: u64,
        recorder: &mut Recorder,
    ) -> Result<AuthenticatedClaims, Error> {
        // With several issuers, the one the token's `iss` names (as the extractor routes it).
        let issuer = match self.0.issuers.route(token) {
            Ok(issuer) => issuer,
            Err(refused) => {
                recorder.record(Check::Key, &Err(refused.clone()), || Detail {
                    found: None,
                    expected: Some(format!(
                        "an `iss` naming one of {}",
                        self.0.settings.issuers().collect::<Vec<_>>().join(", ")
                    )),
                });
                return Err(refused);
            }
        };
        let keys = match issuer.store.keys() {
            Some(keys) => keys,
            None => issuer.store.refetch().await.ok_or_else(|| {
                let unavailable = keys_unavailable(issuer);
                recorder.record(Check::Key, &Err(unavailable.clone()), || Detail {
                    found: None,
                    expected: Some(format!("the key set of {}", issuer.store.status().issuer)),
                });
                unavailable
            })?,
        };
        let mut attempt = Recorder::default();
        let mut verified = issuer
            .validator
            .verify_traced(token, &keys, now, &mut attempt);
        if matches!(verified, Err(Error::InvalidToken(Reason::UnknownKey)))
            && let Some(keys) = issuer.store.refetch().await
        {
            attempt = Recorder::default();
            verified = issuer
                .validator
                .verify_traced(token, &keys, now, &mut attempt);
        }
        recorder.0.extend(attempt.0);
        verified.map(|verified| verified.claims)
    }

    fn explain_scopes(
        &self,
        claims: AuthenticatedClaims,
        recorder: &mut Recorder,
    ) -> Result<AuthenticatedClaims, Error> {
        let granted = claims.scopes().join(" ");
        let checked = self.check_required_scopes(claims);
        recorder.record(Check::Scopes, &verdict(&checked), || {
            Detail::new(Some(granted), self.0.settings.required_scopes().join(" "))
        });
        checked
    }
}

fn verdict<T>(result: &Result<T, Error>) -> Result<(), Error> {
    result.as_ref().map(|_| ()).map_err(Clone::clone)
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

#[cfg(test)]
mod tests {
    use crate::error::{Error, Reason};
    use crate::testing::TestIssuer;

    #[actix_web::test]
    async fn check_answers_as_the_extractor_does_for_a_bare_token() {
        let issuer = TestIssuer::new();
        let guard = issuer.guard_with(issuer.settings().with_required_scopes(["a"]));
        let valid = issuer.token().scopes(["a"]).mint();
        assert_eq!(
            guard.check(&valid).await.map(|c| c.scopes().to_vec()),
            Ok(vec!["a".to_owned()])
        );
        let unknown = issuer.token().unknown_key().mint();
        assert_eq!(
            guard.check(&unknown).await.err(),
            Some(Error::InvalidToken(Reason::UnknownKey))
        );
        let no_scope = issuer.token().mint();
        assert!(matches!(
            guard.check(&no_scope).await,
            Err(Error::InsufficientScope { .. })
        ));
    }
}
