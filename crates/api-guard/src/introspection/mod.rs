//! Token introspection (RFC 7662): asking the issuer whether a token is active.
//!
//! Two uses, chosen by [`IntrospectionMode`]: tokens that are not JWTs (opaque tokens) are
//! introspected instead of validated locally (`Opaque`), or JWTs are introspected too, after
//! every local check has passed, so a revoked token is refused (`Always`). api-guard
//! authenticates to the endpoint as its own client, with HTTP Basic (RFC 6749 §2.3.1).
//!
//! - `active: false` is a 401 `invalid_token` (`inactive`).
//! - An active answer still has to pass the issuer, audience and time checks of the
//!   validator; for an opaque token its `iss`, `aud` and `exp` are required, and its claims
//!   (`sub`, `client_id`, `scope`) are the token's [`AuthenticatedClaims`].
//! - No usable answer (unreachable, slower than the timeout, a status other than 200, not an
//!   RFC 7662 answer) is a 503 with `Retry-After`: never a refusal, never an accept.
//!
//! Answers are kept in a cache bounded in memory, keyed by the SHA-256 of the token (the
//! token itself is never kept), for the configured time and never past the token's `exp`.
//! Concurrent requests with one token wait for one call.
//!
//! ```
//! use std::time::Duration;
//! use api_guard::{AuthSettings, Introspection, IntrospectionMode};
//!
//! let settings = AuthSettings::new("https://dev-123456.okta.com/oauth2/default").with_introspection(
//!     Introspection::new(IntrospectionMode::Always, "0oa-api-guard", "its-secret")
//!         .with_cache_ttl(Duration::from_secs(30)),
//! );
//! assert!(settings.validate().is_ok());
//! assert!(!format!("{settings:?}").contains("its-secret"));
//! ```

mod answer;
mod settings;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::jwks::Outbound;
use actix_web::http::header;
use base64::Engine;
use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::claims::{self, AuthenticatedClaims};
use crate::error::{Error, Reason};
use crate::outside::quoted;
use crate::validator::{MAX_TOKEN_BYTES, Validator, now};

pub use settings::{Introspection, IntrospectionMode};

/// The largest introspection answer read; Okta's are a few hundred bytes.
const MAX_ANSWER_BYTES: usize = 16 * 1024;
/// How long a failed call's outcome is shared: the requests that waited for it get it, and
/// the endpoint is not called again by every request while it is down.
const FAILURE_REUSE: Duration = Duration::from_secs(1);
/// What a 503 tells the client to wait.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// The answer cache's memory.
const CACHE_BYTES: u64 = 4 * 1024 * 1024;
/// What an entry costs beyond its claims' JSON.
const ENTRY_OVERHEAD_BYTES: u64 = 256;

/// How one call to the introspection endpoint ended, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IntrospectionOutcome {
    /// `active: true`.
    Active,
    /// `active: false`.
    Inactive,
    /// The connection failed (refused, DNS, TLS).
    Unreachable,
    /// No complete answer within the timeout.
    Timeout,
    /// A status other than 200 (a 401 means the issuer refused api-guard's client).
    Status,
    /// The body was too large, or not an RFC 7662 answer.
    BadAnswer,
    /// No endpoint known yet (discovery has not named one).
    NoEndpoint,
}

impl IntrospectionOutcome {
    /// Every outcome, in the order metrics list them.
    pub const ALL: [IntrospectionOutcome; 7] = [
        IntrospectionOutcome::Active,
        IntrospectionOutcome::Inactive,
        IntrospectionOutcome::Unreachable,
        IntrospectionOutcome::Timeout,
        IntrospectionOutcome::Status,
        IntrospectionOutcome::BadAnswer,
        IntrospectionOutcome::NoEndpoint,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            IntrospectionOutcome::Active => "active",
            IntrospectionOutcome::Inactive => "inactive",
            IntrospectionOutcome::Unreachable => "unreachable",
            IntrospectionOutcome::Timeout => "timeout",
            IntrospectionOutcome::Status => "http_status",
            IntrospectionOutcome::BadAnswer => "bad_answer",
            IntrospectionOutcome::NoEndpoint => "no_endpoint",
        }
    }
}

/// Calls to the introspection endpoint and answers reused, for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IntrospectionStats {
    /// Requests answered from the answer cache (or by a call another request made).
    pub cache_hits: u64,
    /// Calls by outcome, in [`IntrospectionOutcome::ALL`]'s order.
    pub calls: Vec<(IntrospectionOutcome, u64)>,
}

/// An answer as the guard uses it: the verdict, and until when it may be reused.
struct Cached {
    /// The claims the answer gives (used for opaque tokens), or why the token is refused
    /// or could not be checked.
    verdict: Result<AuthenticatedClaims, Error>,
    /// Seconds since the epoch.
    reuse_until: f64,
    weight: u64,
}

#[derive(Clone)]
struct CachedWeight;

impl Weighter<[u8; 32], Arc<Cached>> for CachedWeight {
    fn weight(&self, _: &[u8; 32], cached: &Arc<Cached>) -> u64 {
        cached.weight
    }
}

/// The introspection client of one guard: settings, answer cache and counters.
pub(crate) struct Introspector {
    settings: Introspection,
    /// `Basic base64(urlencode(id) ":" urlencode(secret))`. Holds the secret: never logged.
    authorization: String,
    outbound: Outbound,
    cache: Cache<[u8; 32], Arc<Cached>, CachedWeight>,
    hits: AtomicU64,
    calls: [AtomicU64; IntrospectionOutcome::ALL.len()],
}

/// Whether `token` has the shape of a JWS in compact form (three segments): the tokens the
/// validator checks. Any other token is opaque.
pub(crate) fn is_jwt_shaped(token: &str) -> bool {
    token.bytes().filter(|&b| b == b'.').count() == 2
}

impl Introspector {
    /// The introspector of `settings`, or `None` when introspection is off.
    pub(crate) fn new(
        settings: Option<&Introspection>,
        outbound: Outbound,
    ) -> Option<Introspector> {
        let settings = settings.filter(|s| s.mode != IntrospectionMode::Off)?;
        // RFC 6749 §2.3.1: id and secret are form-urlencoded before they are joined.
        let form = |value: &str| url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
        let credentials: String = [
            form(&settings.client_id),
            ":".to_owned(),
            form(&settings.client_secret.0),
        ]
        .concat();
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        Some(Introspector {
            settings: settings.clone(),
            authorization: format!("Basic {encoded}"),
            outbound,
            cache: Cache::with_weighter(1024, CACHE_BYTES, CachedWeight),
            hits: AtomicU64::new(0),
            calls: Default::default(),
        })
    }

    /// Whether `token` is introspected instead of validated locally.
    pub(crate) fn takes_opaque(&self, token: &str) -> bool {
        !is_jwt_shaped(token)
    }

    /// Whether JWTs are introspected after the local checks.
    pub(crate) fn after_local_checks(&self) -> bool {
        self.settings.mode == IntrospectionMode::Always
    }

    /// The settings, for reports.
    pub(crate) fn settings(&self) -> &Introspection {
        &self.settings
    }

    /// The reusable answer for `token`, if there is one, applied to `local` (the claims the
    /// local checks gave a JWT; `None` for an opaque token). Never waits.
    pub(crate) fn cached(
        &self,
        token: &str,
        local: Option<&AuthenticatedClaims>,
    ) -> Option<Result<AuthenticatedClaims, Error>> {
        if token.len() > MAX_TOKEN_BYTES {
            return Some(Err(Error::InvalidToken(Reason::TooLarge)));
        }
        let cached = self.cache.get(&digest(token))?;
        if cached.reuse_until <= now() {
            return None;
        }
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(apply(&cached, local))
    }

    /// The endpoint's verdict on `token`: reused if a fresh one is cached, else from one call
    /// shared by every request for the same token meanwhile. `endpoint` is the discovered
    /// one, used when none is configured.
    pub(crate) async fn introspect(
        &self,
        token: &str,
        local: Option<AuthenticatedClaims>,
        validator: &Validator,
        discovered: Option<Arc<String>>,
    ) -> Result<AuthenticatedClaims, Error> {
        // Refused as the validator refuses a JWT this size, without troubling the issuer.
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Error::InvalidToken(Reason::TooLarge));
        }
        let key = digest(token);
        // Bounded: a stale entry is removed once, then this request calls or waits.
        for _ in 0..3 {
            match self.cache.get_value_or_guard_async(&key).await {
                Ok(cached) if cached.reuse_until > now() => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return apply(&cached, local.as_ref());
                }
                Ok(stale) => {
                    self.cache.remove_if(&key, |held| Arc::ptr_eq(held, &stale));
                }
                Err(placeholder) => {
                    let endpoint = self
                        .settings
                        .endpoint
                        .clone()
                        .or_else(|| discovered.as_deref().cloned());
                    let cached = Arc::new(
                        self.call_and_judge(token, local.as_ref(), validator, endpoint.as_deref())
                            .await,
                    );
                    let _ = placeholder.insert(Arc::clone(&cached));
                    return apply(&cached, local.as_ref());
                }
            }
        }
        Err(unavailable())
    }

    /// Calls and counters, for metrics.
    pub(crate) fn stats(&self) -> IntrospectionStats {
        IntrospectionStats {
            cache_hits: self.hits.load(Ordering::Relaxed),
            calls: IntrospectionOutcome::ALL
                .iter()
                .map(|&outcome| {
                    (
                        outcome,
                        self.calls[outcome as usize].load(Ordering::Relaxed),
                    )
                })
                .collect(),
        }
    }

    /// One call, judged: what the guard does with the answer, and for how long.
    async fn call_and_judge(
        &self,
        token: &str,
        local: Option<&AuthenticatedClaims>,
        validator: &Validator,
        endpoint: Option<&str>,
    ) -> Cached {
        let called = match endpoint {
            Some(endpoint) => self.call(token, endpoint).await,
            None => Err((
                IntrospectionOutcome::NoEndpoint,
                "no introspection endpoint: the issuer's metadata has not named one (yet); set AUTH_INTROSPECTION_URL".to_owned(),
            )),
        };
        let judged = called.and_then(|body| {
            answer::read(&body)
                .map_err(|why| (IntrospectionOutcome::BadAnswer, why.to_owned()))
                .map(|answer| self.judge(answer, local, validator))
        });
        match judged {
            Ok((outcome, cached)) => {
                self.calls[outcome as usize].fetch_add(1, Ordering::Relaxed);
                cached
            }
            Err((outcome, why)) => {
                self.calls[outcome as usize].fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "introspection at {} failed ({}): {why}; answering 503",
                    endpoint.map_or_else(|| "(no endpoint)".to_owned(), quoted),
                    outcome.label()
                );
                Cached {
                    verdict: Err(unavailable()),
                    reuse_until: now() + FAILURE_REUSE.as_secs_f64(),
                    weight: ENTRY_OVERHEAD_BYTES,
                }
            }
        }
    }

    /// What an answer means for the token: inactive, or active with claims that must pass
    /// the validator's issuer, audience and time checks.
    fn judge(
        &self,
        answer: answer::Answer,
        local: Option<&AuthenticatedClaims>,
        validator: &Validator,
    ) -> (IntrospectionOutcome, Cached) {
        let now = now();
        let ttl_end = now + self.settings.cache_ttl.as_secs_f64();
        let json = match answer {
            answer::Answer::Inactive => {
                let cached = Cached {
                    verdict: Err(Error::InvalidToken(Reason::Inactive)),
                    reuse_until: ttl_end,
                    weight: ENTRY_OVERHEAD_BYTES,
                };
                return (IntrospectionOutcome::Inactive, cached);
            }
            answer::Answer::Active(json) => json,
        };
        let weight = ENTRY_OVERHEAD_BYTES + 2 * json.len() as u64;
        let checked = claims::read(&json)
            .map_err(|_| Error::InvalidToken(Reason::Malformed))
            .and_then(|registered| {
                if !registered.identity_claims_are_strings() {
                    return Err(Error::InvalidToken(Reason::BadClaim));
                }
                let exp = validator.check_introspected(&registered, now as u64, local.is_none())?;
                Ok((AuthenticatedClaims::from_verified(&json, &registered), exp))
            });
        let (verdict, exp) = match checked {
            Ok((claims, exp)) => (Ok(claims), exp),
            Err(error) => (Err(error), None),
        };
        // Never reused past the token's own `exp`: the answer's, or the JWT's.
        let exp = exp.or_else(|| local.and_then(|claims| claims.get("exp")?.as_f64()));
        let reuse_until = exp.map_or(ttl_end, |exp| exp.min(ttl_end));
        (
            IntrospectionOutcome::Active,
            Cached {
                verdict,
                reuse_until,
                weight,
            },
        )
    }

    /// POSTs `token` to `endpoint` (RFC 7662 §2.1) and returns the 200 answer's body.
    async fn call(
        &self,
        token: &str,
        endpoint: &str,
    ) -> Result<Vec<u8>, (IntrospectionOutcome, String)> {
        let timeout = self.settings.timeout;
        let client = self.outbound.client(timeout);
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .append_pair("token_type_hint", "access_token")
            .finish();
        let exchange = async {
            let mut response = client
                .post(endpoint)
                .insert_header((header::AUTHORIZATION, self.authorization.as_str()))
                .insert_header((header::ACCEPT, "application/json"))
                .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
                .send_body(form)
                .await
                .map_err(|e| {
                    let outcome = if matches!(e, awc::error::SendRequestError::Timeout) {
                        IntrospectionOutcome::Timeout
                    } else {
                        IntrospectionOutcome::Unreachable
                    };
                    (outcome, format!("POST: {e}"))
                })?;
            let status = response.status();
            if status != actix_web::http::StatusCode::OK {
                let hint = if status == actix_web::http::StatusCode::UNAUTHORIZED {
                    ": the issuer refused api-guard's client; check AUTH_INTROSPECTION_CLIENT_ID and AUTH_INTROSPECTION_CLIENT_SECRET"
                } else {
                    ""
                };
                return Err((
                    IntrospectionOutcome::Status,
                    format!("status {status}{hint}"),
                ));
            }
            let body = response
                .body()
                .limit(MAX_ANSWER_BYTES)
                .await
                .map_err(|e| (IntrospectionOutcome::BadAnswer, format!("body: {e}")))?;
            Ok(body.to_vec())
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err((
                    IntrospectionOutcome::Timeout,
                    format!("no complete answer within {} ms", timeout.as_millis()),
                ))
            })
    }
}

/// A cached verdict applied to a request: a JWT keeps its own (signed) claims; an opaque
/// token gets the answer's.
fn apply(
    cached: &Cached,
    local: Option<&AuthenticatedClaims>,
) -> Result<AuthenticatedClaims, Error> {
    match (&cached.verdict, local) {
        (Ok(_), Some(local)) => Ok(local.clone()),
        (verdict, _) => verdict.clone(),
    }
}

fn unavailable() -> Error {
    Error::IntrospectionUnavailable {
        retry_after: RETRY_AFTER,
    }
}

/// The cache key: SHA-256 of the token, so the cache never holds a token.
fn digest(token: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_in_any_case_and_name_themselves() {
        for (name, mode) in IntrospectionMode::ALL {
            assert_eq!(name.to_uppercase().parse::<IntrospectionMode>(), Ok(mode));
            assert_eq!(mode.name(), name);
        }
        assert!("sometimes".parse::<IntrospectionMode>().is_err());
    }

    #[test]
    fn the_secret_is_never_in_debug_output_nor_in_problems() {
        let secret = "s3cr3t-value";
        let settings = Introspection::new(IntrospectionMode::Opaque, "client", secret)
            .with_endpoint("http://example.com/introspect");
        assert!(!format!("{settings:?}").contains(secret));
        let (_, problem) = settings.problem(true).expect("http refused");
        assert!(!problem.contains(secret), "{problem}");
        let introspector = Introspector::new(Some(&settings), Outbound::default()).expect("on");
        // The header holds the secret, form-urlencoded then base64 (RFC 6749 §2.3.1).
        let expected = base64::engine::general_purpose::STANDARD.encode("client:s3cr3t-value");
        assert_eq!(introspector.authorization, format!("Basic {expected}"));
    }

    #[test]
    fn credentials_are_form_urlencoded_before_base64() {
        let settings = Introspection::new(IntrospectionMode::Opaque, "my:app", "a b&c%");
        let introspector = Introspector::new(Some(&settings), Outbound::default()).expect("on");
        let expected = base64::engine::general_purpose::STANDARD.encode("my%3Aapp:a+b%26c%25");
        assert_eq!(introspector.authorization, format!("Basic {expected}"));
    }

    #[test]
    fn introspection_needs_its_client_and_a_way_to_its_endpoint() {
        let off = Introspection::new(IntrospectionMode::Off, "", "");
        assert_eq!(off.problem(false), None);
        let problem = |i: Introspection, discovery| i.problem(discovery).map(|(s, _)| s);
        let on = |id: &str, secret: &str| Introspection::new(IntrospectionMode::Always, id, secret);
        assert_eq!(problem(on("", "s"), true), Some("introspection_client_id"));
        assert_eq!(
            problem(on("c", ""), true),
            Some("introspection_client_secret")
        );
        assert_eq!(problem(on("c", "s"), true), None);
        assert_eq!(problem(on("c", "s"), false), Some("introspection_endpoint"));
        assert_eq!(
            problem(
                on("c", "s").with_endpoint("https://i.example/introspect"),
                false
            ),
            None
        );
        assert_eq!(
            problem(on("c", "s").with_timeout(Duration::ZERO), true),
            Some("introspection_timeout")
        );
    }

    #[test]
    fn only_three_segment_tokens_are_jwts() {
        assert!(is_jwt_shaped("a.b.c"));
        for opaque in ["abc", "a.b", "a.b.c.d", "a.b.c.d.e"] {
            assert!(!is_jwt_shaped(opaque), "{opaque}");
        }
    }
}
