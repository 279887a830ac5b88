//! Several issuers: one key store, validator and token cache per issuer, and the routing of a
//! token to the one issuer its `iss` names (RFC 8725 §3.8: the keys that verify a token must
//! belong to its issuer).
//!
//! The `iss` used for routing is read before the signature is checked, so it only *selects*
//! a store: the token's keys are then looked up in that store alone, its signature checked
//! with them, and the verified `iss` compared again with that issuer by its validator. A
//! token claiming issuer A is therefore never verified with a key of issuer B, whatever its
//! `kid`. An `iss` that names no configured issuer (missing, not a string, unknown, or a
//! trailing-`/` variant) is refused before any key lookup, and never causes a fetch.
//!
//! With one issuer nothing is chosen: the token goes straight to the cache and the
//! validator, so the common path costs what it did before several issuers existed. Only
//! before a fetch (an unknown `kid`) is its unverified `iss` checked
//! ([`Issuers::route_strictly`]).
//!
//! ```
//! use api_guard::AuthSettings;
//!
//! let settings = AuthSettings::new("https://dev-123456.okta.com/oauth2/default")
//!     .with_additional_issuers(["https://dev-123456.okta.com/oauth2/aus0second"]);
//! assert_eq!(settings.issuers().count(), 2);
//! assert!(settings.validate().is_ok());
//! ```

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::cache::{CacheStats, TokenCache};
use crate::error::{Error, Reason};
use crate::jwks::{JwksStore, KeyStoreStatus, Outbound, Source};
use crate::settings::AuthSettings;
use crate::validator::{MAX_TOKEN_BYTES, Validator, with_decoded};

/// What one issuer's tokens are checked with: its own validator (which compares the verified
/// `iss` with this issuer), key store and token cache.
pub(crate) struct Issuer {
    pub(crate) validator: Validator,
    pub(crate) store: JwksStore,
    /// Filled by this issuer's validator only: bound to the settings and to this issuer.
    pub(crate) cache: TokenCache,
    url: Box<str>,
}

/// The issuers of one guard, in the settings' order (never empty).
pub(crate) struct Issuers(Box<[Issuer]>);

impl Issuers {
    /// Starts a key store for each issuer of `settings` (checked already).
    pub(crate) fn start(settings: &AuthSettings, outbound: &Outbound) -> std::io::Result<Issuers> {
        let stores = settings
            .issuers()
            .map(|issuer| {
                let source = match settings.jwks_uri() {
                    Some(jwks_uri) => Source::Fixed {
                        jwks_uri: jwks_uri.to_owned(),
                    },
                    None => Source::Discover {
                        issuer: issuer.to_owned(),
                    },
                };
                JwksStore::start(issuer, source, settings.refresh.clone(), outbound.clone())
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Issuers::with_stores(settings, stores))
    }

    /// The issuers of `settings`, the n-th with the n-th of `stores`.
    pub(crate) fn with_stores(settings: &AuthSettings, stores: Vec<JwksStore>) -> Issuers {
        let count = settings.issuers().count();
        // The token cache's memory is shared out, so the setting bounds the whole.
        let cache_bytes = settings.token_cache_bytes() / count.max(1);
        let issuers = settings
            .issuers()
            .zip(stores)
            .map(|(url, store)| Issuer {
                validator: Validator::for_issuer(settings, url),
                store,
                cache: TokenCache::new(cache_bytes),
                url: url.into(),
            })
            .collect();
        Issuers(issuers)
    }

    /// The issuer whose store and validator check `token`. With one issuer that is the one
    /// issuer, without reading the token; with several, the one its unverified `iss` names.
    pub(crate) fn route(&self, token: &str) -> Result<&Issuer, Error> {
        match &*self.0 {
            [only] => Ok(only),
            _ => self.route_strictly(token),
        }
    }

    /// The issuer the unverified `iss` of `token` names, also with one issuer: what must hold
    /// before a token may cause a fetch.
    pub(crate) fn route_strictly(&self, token: &str) -> Result<&Issuer, Error> {
        with_unverified_iss(token, |unverified_iss| {
            self.0
                .iter()
                .find(|issuer| *issuer.url == *unverified_iss)
                .ok_or(Error::InvalidToken(Reason::WrongIssuer))
        })
    }

    /// Waits until every store's first fetch has ended (each at most about 45 seconds; they
    /// run at the same time).
    pub(crate) async fn first_load(&self) {
        futures_util::future::join_all(self.0.iter().map(|issuer| issuer.store.first_load())).await;
    }

    /// Whether at least one issuer's keys are loaded.
    pub(crate) fn is_ready(&self) -> bool {
        self.0.iter().any(|issuer| issuer.store.is_ready())
    }

    /// Each issuer's key store, in the settings' order.
    pub(crate) fn statuses(&self) -> Vec<KeyStoreStatus> {
        self.0.iter().map(|issuer| issuer.store.status()).collect()
    }

    /// The first issuer's key store (the one of [`AuthSettings::issuer`]).
    pub(crate) fn first(&self) -> &Issuer {
        &self.0[0]
    }

    /// The token caches' counters, added up.
    pub(crate) fn cache_stats(&self) -> CacheStats {
        self.0
            .iter()
            .map(|issuer| issuer.cache.stats())
            .fold(CacheStats::default(), |sum, one| CacheStats {
                hits: sum.hits + one.hits,
                misses: sum.misses + one.misses,
                entries: sum.entries + one.entries,
                bytes: sum.bytes + one.bytes,
                capacity_bytes: sum.capacity_bytes + one.capacity_bytes,
            })
    }
}

/// Calls `route` with the token's unverified `iss`, read from its payload without checking
/// anything else: a token too large or without a decodable payload is malformed, a payload
/// without `iss` misses a claim, an `iss` that is not a string is a bad claim, and one given
/// twice is malformed (as the verified read would find), all refused before any key is looked up. The payload is decoded on the stack when
/// small, and read in one pass that keeps nothing but `iss`.
fn with_unverified_iss<R>(
    token: &str,
    route: impl FnOnce(&str) -> Result<R, Error>,
) -> Result<R, Error> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Error::InvalidToken(Reason::TooLarge));
    }
    let mut parts = token.split('.');
    let (Some(_), Some(unverified_payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::InvalidToken(Reason::Malformed));
    };
    with_decoded(unverified_payload, |bytes| {
        if !bytes.trim_ascii_start().starts_with(b"{") {
            return Err(Error::InvalidToken(Reason::Malformed));
        }
        let unverified: UnverifiedIss<'_> =
            serde_json::from_slice(bytes).map_err(|_| Error::InvalidToken(Reason::Malformed))?;
        match unverified.0 {
            None => Err(Error::InvalidToken(Reason::MissingClaim)),
            Some(Iss::Str(unverified_iss)) => route(&unverified_iss),
            Some(Iss::Other) => Err(Error::InvalidToken(Reason::BadClaim)),
        }
    })
}

/// The unverified `iss` of `token`, owned, or the refusal's reason code: for the fuzz target.
#[cfg(feature = "fuzzing")]
pub(crate) fn unverified_iss(token: &str) -> Result<String, &'static str> {
    with_unverified_iss(token, |iss| Ok(iss.to_owned())).map_err(|e| e.reason_code())
}

/// A payload's `iss`, all else skipped without being kept.
struct UnverifiedIss<'a>(Option<Iss<'a>>);

enum Iss<'a> {
    /// Borrowed from the payload unless it holds escapes.
    Str(Cow<'a, str>),
    /// A number, `null`, a boolean, an array or an object.
    Other,
}

impl<'de> serde::Deserialize<'de> for UnverifiedIss<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(IssVisitor)
    }
}

struct IssVisitor;

impl<'de> Visitor<'de> for IssVisitor {
    type Value = UnverifiedIss<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut iss = None;
        while let Some(name) = map.next_key::<Cow<'de, str>>()? {
            if name != "iss" {
                map.next_value::<IgnoredAny>()?;
            } else if iss.is_some() {
                // Which of the two would the verified read take? Neither: refuse.
                return Err(de::Error::custom("claim iss given twice"));
            } else {
                iss = Some(map.next_value::<Iss<'de>>()?);
            }
        }
        Ok(UnverifiedIss(iss))
    }
}

impl<'de> serde::Deserialize<'de> for Iss<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(IssValueVisitor)
    }
}

struct IssValueVisitor;

impl<'de> Visitor<'de> for IssValueVisitor {
    type Value = Iss<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Iss::Str(Cow::Borrowed(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Iss::Str(Cow::Owned(value.to_owned())))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Iss::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Iss::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Iss::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Iss::Other)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Iss::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Iss::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Iss::Other)
    }
}

#[cfg(test)]
mod tests;
