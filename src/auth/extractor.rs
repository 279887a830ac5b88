//! The `AuthenticatedClaims` extractor and its shared state, the [`Guard`].
//!
//! A handler that takes `AuthenticatedClaims` is protected; one that does not is anonymous.
//! The common case (a known key) completes synchronously; only an unknown `kid` awaits the
//! key store's one refetch.

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::future::{Either, LocalBoxFuture, Ready, ready};

use super::bearer;
use super::cache::{CacheStats, DEFAULT_TOKEN_CACHE_BYTES, TokenCache};
use super::claims::AuthenticatedClaims;
use super::error::{Error, Reason};
use super::jwks::{JwksStore, KeySet, Source};
use super::validator::Validator;
use crate::config::{Config, Issuer};

/// Everything the extractor needs: the validator, the shared key store, the verified-token
/// cache, and the scopes every protected route requires. Build it once per process and
/// register it with [`configure`].
#[derive(Clone)]
pub struct Guard(Arc<Inner>);

struct Inner {
    validator: Validator,
    store: JwksStore,
    cache: TokenCache,
    required_scopes: Vec<String>,
}

/// The outcome of the synchronous part of authentication.
enum Step {
    Done(Result<AuthenticatedClaims, Error>),
    /// The token names a `kid` we do not have: refetch, then validate again.
    NeedsKeys(String),
}

impl Guard {
    /// A guard validating with `validator` against the keys of `store`, requiring
    /// `required_scopes` (all of them) on every protected route, with a token cache of the
    /// default size.
    pub fn new(validator: Validator, store: JwksStore, required_scopes: Vec<String>) -> Self {
        Guard::with_cache(
            validator,
            store,
            required_scopes,
            TokenCache::new(DEFAULT_TOKEN_CACHE_BYTES),
        )
    }

    /// [`Guard::new`] with the given token cache (`TokenCache::new(0)` for none).
    pub fn with_cache(
        validator: Validator,
        store: JwksStore,
        required_scopes: Vec<String>,
        cache: TokenCache,
    ) -> Self {
        Guard(Arc::new(Inner {
            validator,
            store,
            cache,
            required_scopes,
        }))
    }

    /// Starts the key store for `config`'s issuer (fetching at once, in the background) and
    /// builds the guard. Call it once per process, outside `HttpServer::new`.
    pub fn start(config: &Config) -> std::io::Result<Guard> {
        let Issuer::Url(issuer) = &config.issuer else {
            return Err(std::io::Error::other(
                "the development issuer's URL is known only once it is bound: use `Application::build`",
            ));
        };
        let source = match &config.jwks_uri {
            Some(jwks_uri) => Source::Fixed {
                jwks_uri: jwks_uri.clone(),
            },
            None => Source::Discover {
                issuer: issuer.as_str().to_owned(),
            },
        };
        let store = JwksStore::start(source, config.refresh.clone())?;
        let validator = Validator::new(
            issuer.as_str(),
            config.audiences.clone(),
            &config.algorithms,
            config.leeway_secs,
        );
        Ok(Guard::with_cache(
            validator,
            store,
            config.required_scopes.clone(),
            TokenCache::new(config.token_cache_bytes),
        ))
    }

    /// The shared key store.
    pub fn store(&self) -> &JwksStore {
        &self.0.store
    }

    /// The validator.
    pub fn validator(&self) -> &Validator {
        &self.0.validator
    }

    /// Hits, misses and size of the verified-token cache.
    pub fn cache_stats(&self) -> CacheStats {
        self.0.cache.stats()
    }

    fn authenticate(&self, req: &HttpRequest) -> Step {
        let token = match bearer::token_from(req.headers(), req.query_string()) {
            Ok(token) => token,
            Err(error) => return Step::Done(Err(error)),
        };
        let Some(keys) = self.0.store.keys() else {
            return Step::Done(Err(self.keys_unavailable()));
        };
        match self.validate(token, &keys) {
            Err(Error::InvalidToken(Reason::UnknownKey)) => Step::NeedsKeys(token.to_owned()),
            result => Step::Done(result.and_then(|claims| self.check_scopes(claims))),
        }
    }

    async fn authenticate_after_refetch(self, token: String) -> Result<AuthenticatedClaims, Error> {
        let keys = self
            .0
            .store
            .refetch()
            .await
            .ok_or_else(|| self.keys_unavailable())?;
        // The token missed the cache a moment ago: validate it without a second lookup.
        let claims = self
            .0
            .validator
            .validate_and_cache(&token, &keys, &self.0.cache)?;
        self.check_scopes(claims)
    }

    fn validate(&self, token: &str, keys: &KeySet) -> Result<AuthenticatedClaims, Error> {
        self.0.validator.validate_cached(token, keys, &self.0.cache)
    }

    fn keys_unavailable(&self) -> Error {
        // No key was ever loaded: ask for a fetch (bounded by the cooldown) without waiting.
        let _ = self.0.store.request_fetch();
        Error::KeysUnavailable {
            retry_after: self.0.store.retry_after(),
        }
    }

    fn check_scopes(&self, claims: AuthenticatedClaims) -> Result<AuthenticatedClaims, Error> {
        let required = &self.0.required_scopes;
        if required.iter().all(|scope| claims.has_scope(scope)) {
            Ok(claims)
        } else {
            Err(Error::InsufficientScope {
                required: required.clone(),
            })
        }
    }
}

impl FromRequest for AuthenticatedClaims {
    type Error = Error;
    type Future = Either<Ready<Result<Self, Error>>, LocalBoxFuture<'static, Result<Self, Error>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        if let Some(claims) = req.extensions().get::<AuthenticatedClaims>() {
            return Either::Left(ready(Ok(claims.clone())));
        }
        let Some(guard) = req.app_data::<Guard>() else {
            log::error!(
                "{} {} takes AuthenticatedClaims but no Guard is registered: add `.configure(api_guard::configure(guard))` to the App",
                req.method(),
                req.path()
            );
            return Either::Left(ready(Err(Error::NotConfigured)));
        };
        match guard.authenticate(req) {
            Step::Done(result) => Either::Left(ready(result)),
            Step::NeedsKeys(token) => {
                Either::Right(Box::pin(guard.clone().authenticate_after_refetch(token)))
            }
        }
    }
}

/// Registers `guard` so that `AuthenticatedClaims` works in every handler of the app.
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

/// Middleware that requires a valid token on every route of the scope it wraps, for
/// handlers that do not take `AuthenticatedClaims` themselves. Handlers that do get the
/// claims it verified without a second validation.
///
/// ```no_run
/// use actix_web::{App, HttpResponse, middleware::from_fn, web};
///
/// # fn app(guard: api_guard::Guard) {
/// let app = App::new().configure(api_guard::configure(guard)).service(
///     web::scope("/admin")
///         .wrap(from_fn(api_guard::require_token))
///         .route("/stats", web::get().to(|| async { HttpResponse::Ok().finish() })),
/// );
/// # }
/// ```
pub async fn require_token(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    match req.extract::<AuthenticatedClaims>().await {
        Ok(claims) => {
            req.extensions_mut().insert(claims);
            next.call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err(error) => Ok(req.error_response(error).map_into_right_body()),
    }
}
