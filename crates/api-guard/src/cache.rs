//! The verified-token cache: a token seen before answers without a second signature check.
//!
//! Client-credentials clients send the same token until it expires, so most requests repeat
//! a token already verified. The cache is keyed on the whole token (hashed, then compared
//! byte for byte: a hash alone is never trusted), bounded by an estimate of the bytes it
//! holds, and shared by every worker. An entry is served only while
//!
//! - its token has not reached `exp` (no leeway: an entry never outlives its token), and
//!   its `nbf` / `iat` allow it, exactly as the validator would;
//! - the key that verified it is still the key the current key set has for that token: a
//!   refresh that drops or replaces the key makes the entry useless, and it is removed when
//!   next looked at (RFC 7517 key rotation).
//!
//! Anything else (an expired entry, a rotated key) is a miss, and the token goes through
//! the full validation again.
//!
//! A cache belongs to one [`Guard`](crate::Guard) and is filled only by its validator, so a
//! token verified under one issuer, audience or algorithm set is never served to a guard
//! with other settings.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::Algorithm;
use crate::claims::AuthenticatedClaims;
use crate::error::Error;
use crate::jwks::{Key, KeySet};
use crate::validator::{Verified, now};

/// What an entry costs beyond its token and claims: the entry, the map slot, the key and
/// claim containers. An estimate, on the generous side.
const ENTRY_OVERHEAD_BYTES: u64 = 320;
/// The claims' signed JSON is kept (for whoami) with the few registered claims read out of
/// it; a generous bound, which also covers a map built by `AuthenticatedClaims::claims()`.
const CLAIMS_FACTOR: u64 = 4;

/// Counters and size of a guard's verified-token cache, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Requests answered from the cache.
    pub hits: u64,
    /// Requests whose token was not in the cache, or whose entry could no longer be used
    /// (expired, key rotated); they went through full validation.
    pub misses: u64,
    /// Tokens held now.
    pub entries: u64,
    /// Estimated bytes held now.
    pub bytes: u64,
    /// The most bytes the cache may hold; 0 when it is off.
    pub capacity_bytes: u64,
}

/// The verified-token cache, shared by every worker. `capacity_bytes` of 0 turns it off.
pub(crate) struct TokenCache {
    entries: Option<Cache<Box<str>, Arc<Entry>, EntryWeight>>,
    hits: AtomicU64,
    misses: AtomicU64,
    capacity_bytes: u64,
    /// The address of the key set the cache last saw, to notice a new one (see
    /// [`TokenCache::drop_entries_of_old_keys`]).
    key_set: AtomicUsize,
}

/// A verified token's claims and what decides whether they may still be served.
struct Entry {
    claims: AuthenticatedClaims,
    /// The key that verified the token; weak, so a dropped key set frees its keys.
    key: Weak<Key>,
    kid: Option<Box<str>>,
    alg: Algorithm,
    valid_from: f64,
    expires_at: f64,
    weight: u64,
}

#[derive(Clone)]
struct EntryWeight;

impl Weighter<Box<str>, Arc<Entry>> for EntryWeight {
    fn weight(&self, _token: &Box<str>, entry: &Arc<Entry>) -> u64 {
        entry.weight
    }
}

impl TokenCache {
    /// A cache holding about `capacity_bytes` of tokens and claims; 0 for none.
    pub(crate) fn new(capacity_bytes: usize) -> TokenCache {
        let capacity_bytes = capacity_bytes as u64;
        let entries = (capacity_bytes > 0).then(|| {
            // quick_cache sizes its table from the expected number of entries.
            let expected = (capacity_bytes / 2048).max(16) as usize;
            Cache::with_weighter(expected, capacity_bytes, EntryWeight)
        });
        TokenCache {
            entries,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            capacity_bytes,
            key_set: AtomicUsize::new(0),
        }
    }

    /// When `keys` is a key set the cache has not seen before, drops every entry whose key
    /// is not in it, so that tokens of a removed or replaced key stop holding memory. (A
    /// lookup refuses such entries anyway; this frees them.) One atomic load per request;
    /// the sweep runs once per key-set load, by whichever request sees the new set first.
    fn drop_entries_of_old_keys(
        &self,
        entries: &Cache<Box<str>, Arc<Entry>, EntryWeight>,
        keys: &KeySet,
    ) {
        let current = std::ptr::from_ref(keys) as usize;
        let seen = self.key_set.load(Ordering::Acquire);
        if seen == current
            || self
                .key_set
                .compare_exchange(seen, current, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
        if seen != 0 {
            entries.retain(|_, entry| entry.verified_by_current_key(keys));
        }
    }

    /// The claims of `token` from the cache if it was verified before and may still be
    /// served with `keys` as the current key set; else `verify(now)`'s, kept when it passes.
    pub(crate) fn get_or_verify(
        &self,
        token: &str,
        keys: &KeySet,
        verify: impl FnOnce(u64) -> Result<Verified, Error>,
    ) -> Result<AuthenticatedClaims, Error> {
        let now = now();
        if let Some(claims) = self.get(token, keys, now) {
            return Ok(claims);
        }
        Ok(self.insert(token, verify(now as u64)?, now))
    }

    /// `verify(now)`'s claims, kept when it passes, without looking the token up first: for
    /// a token that has just missed (before a key refetch), so it counts as one miss, not two.
    pub(crate) fn verify_and_insert(
        &self,
        token: &str,
        verify: impl FnOnce(u64) -> Result<Verified, Error>,
    ) -> Result<AuthenticatedClaims, Error> {
        let now = now();
        Ok(self.insert(token, verify(now as u64)?, now))
    }

    /// The verified claims of `token` if it is cached and may be served at `now` (seconds
    /// since the epoch) with `keys` as the current key set. Counts a hit or a miss.
    fn get(&self, token: &str, keys: &KeySet, now: f64) -> Option<AuthenticatedClaims> {
        let entries = self.entries.as_ref()?;
        self.drop_entries_of_old_keys(entries, keys);
        let found = entries.get(token);
        match found {
            Some(entry) if entry.may_serve(keys, now) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(entry.claims.clone())
            }
            Some(_) => {
                entries.remove(token);
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Keeps `verified` for `token` (if it can still be served after `now`) and returns its
    /// claims.
    fn insert(&self, token: &str, verified: Verified, now: f64) -> AuthenticatedClaims {
        let Some(entries) = &self.entries else {
            return verified.claims;
        };
        if now >= verified.expires_at {
            return verified.claims;
        }
        let weight = 2 * token.len() as u64
            + CLAIMS_FACTOR * verified.claims_bytes as u64
            + ENTRY_OVERHEAD_BYTES;
        let claims = verified.claims.clone();
        let entry = Entry {
            claims: verified.claims,
            key: Arc::downgrade(&verified.key),
            kid: verified.kid,
            alg: verified.alg,
            valid_from: verified.valid_from,
            expires_at: verified.expires_at,
            weight,
        };
        entries.insert(Box::from(token), Arc::new(entry));
        claims
    }

    /// Hits, misses and size.
    pub(crate) fn stats(&self) -> CacheStats {
        let (entries, bytes) = self
            .entries
            .as_ref()
            .map_or((0, 0), |cache| (cache.len() as u64, cache.weight()));
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries,
            bytes,
            capacity_bytes: self.capacity_bytes,
        }
    }
}

impl Entry {
    fn may_serve(&self, keys: &KeySet, now: f64) -> bool {
        self.valid_from <= now && now < self.expires_at && self.verified_by_current_key(keys)
    }

    /// Whether the key `keys` has for this token is the very key that verified it.
    fn verified_by_current_key(&self, keys: &KeySet) -> bool {
        keys.key_for(self.kid.as_deref(), self.alg)
            .is_ok_and(|key| std::ptr::eq(Arc::as_ptr(key), self.key.as_ptr()))
    }
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    use crate::claims::Registered;

    use super::*;

    /// A key set with RSA keys named `kids` (random-looking moduli: never used to verify).
    fn key_set(kids: &[(&str, u8)]) -> KeySet {
        let keys: Vec<_> = kids
            .iter()
            .map(|(kid, fill)| {
                let n = URL_SAFE_NO_PAD.encode(vec![*fill; 256]);
                json!({"kty": "RSA", "kid": kid, "n": n, "e": "AQAB"})
            })
            .collect();
        KeySet::from_json(json!({ "keys": keys }).to_string().as_bytes()).unwrap_or_default()
    }

    fn verified(keys: &KeySet, kid: &str, valid_from: f64, expires_at: f64) -> Verified {
        Verified {
            claims: AuthenticatedClaims::from_verified("{}", &Registered::default()),
            key: Arc::clone(keys.get(kid).expect("the key is in the set")),
            kid: Some(kid.into()),
            alg: Algorithm::RS256,
            expires_at,
            valid_from,
            claims_bytes: 200,
        }
    }

    const TOKEN: &str = "header.payload.signature";

    #[test]
    fn a_cached_token_is_served_until_its_exp_and_never_at_or_after_it() {
        let keys = key_set(&[("a", 0xC3)]);
        let cache = TokenCache::new(1 << 20);
        cache.insert(TOKEN, verified(&keys, "a", 0.0, 1000.5), 900.0);
        assert!(cache.get(TOKEN, &keys, 900.0).is_some());
        assert!(cache.get(TOKEN, &keys, 1000.4).is_some());
        assert!(cache.get(TOKEN, &keys, 1000.5).is_none(), "at exp");
        assert!(
            cache.get(TOKEN, &keys, 999.0).is_none(),
            "the expired entry is gone"
        );
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.entries), (2, 2, 0));
    }

    #[test]
    fn a_cached_token_is_not_served_before_it_is_valid() {
        let keys = key_set(&[("a", 0xC3)]);
        let cache = TokenCache::new(1 << 20);
        cache.insert(TOKEN, verified(&keys, "a", 500.0, 1000.0), 400.0);
        assert!(cache.get(TOKEN, &keys, 499.9).is_none());
    }

    #[test]
    fn a_token_already_expired_is_not_cached() {
        let keys = key_set(&[("a", 0xC3)]);
        let cache = TokenCache::new(1 << 20);
        cache.insert(TOKEN, verified(&keys, "a", 0.0, 1000.0), 1000.0);
        assert_eq!(cache.stats().entries, 0);
    }

    #[test]
    fn only_the_very_same_token_hits() {
        let keys = key_set(&[("a", 0xC3)]);
        let cache = TokenCache::new(1 << 20);
        cache.insert(TOKEN, verified(&keys, "a", 0.0, 1000.0), 1.0);
        assert!(cache.get("header.payload.signaturE", &keys, 1.0).is_none());
        assert!(cache.get("header.payload.signature.", &keys, 1.0).is_none());
        assert!(cache.get(TOKEN, &keys, 1.0).is_some());
    }

    #[test]
    fn a_token_whose_key_left_the_key_set_is_not_served() {
        let old = key_set(&[("a", 0xC3), ("b", 0xC5)]);
        let cache = TokenCache::new(1 << 20);
        cache.insert(TOKEN, verified(&old, "a", 0.0, 1000.0), 1.0);
        let mut removed = key_set(&[("b", 0xC5)]);
        removed.keep_unchanged_from(&old);
        assert!(cache.get(TOKEN, &removed, 2.0).is_none());
        assert!(
            cache.get(TOKEN, &old, 2.0).is_none(),
            "the entry was dropped"
        );
    }

    #[test]
    fn a_token_whose_kid_now_names_another_key_is_not_served() {
        let old = key_set(&[("a", 0xC3)]);
        let cache = TokenCache::new(1 << 20);
        cache.insert(TOKEN, verified(&old, "a", 0.0, 1000.0), 1.0);
        let mut replaced = key_set(&[("a", 0xC5)]);
        replaced.keep_unchanged_from(&old);
        assert!(cache.get(TOKEN, &replaced, 2.0).is_none());
    }

    #[test]
    fn a_token_whose_key_survived_a_refresh_is_still_served() {
        let old = key_set(&[("a", 0xC3)]);
        let cache = TokenCache::new(1 << 20);
        cache.insert(TOKEN, verified(&old, "a", 0.0, 1000.0), 1.0);
        let mut refreshed = key_set(&[("a", 0xC3), ("b", 0xC5)]);
        refreshed.keep_unchanged_from(&old);
        drop(old);
        assert!(cache.get(TOKEN, &refreshed, 2.0).is_some());
    }

    #[test]
    fn the_cache_stays_within_its_bytes() {
        let keys = key_set(&[("a", 0xC3)]);
        let capacity = 64 * 1024;
        let cache = TokenCache::new(capacity);
        for n in 0..1000 {
            cache.insert(&format!("{TOKEN}{n}"), verified(&keys, "a", 0.0, 1e9), 1.0);
        }
        let stats = cache.stats();
        assert!(stats.bytes <= capacity as u64, "{stats:?}");
        assert!(stats.entries > 10 && stats.entries < 1000, "{stats:?}");
    }

    #[test]
    fn a_cache_of_zero_bytes_is_off() {
        let keys = key_set(&[("a", 0xC3)]);
        let cache = TokenCache::new(0);
        cache.insert(TOKEN, verified(&keys, "a", 0.0, 1000.0), 1.0);
        assert!(cache.get(TOKEN, &keys, 2.0).is_none());
        assert_eq!(cache.stats(), CacheStats::default());
    }
}

/// Properties of the cache over random sequences of inserts, lookups and key-set rotations,
/// checked against a model: an entry is served exactly while its token is within
/// `valid_from..exp` and the key that verified it is still the current set's key for it;
/// never at or past `exp`, never after its key left the set (or was replaced), and only the
/// claims of the very token looked up.
#[cfg(test)]
mod properties {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use proptest::prelude::*;
    use serde_json::json;

    use crate::claims::Registered;

    use super::*;

    const KIDS: [&str; 2] = ["a", "b"];
    const TOKENS: [&str; 3] = ["h.p0.s", "h.p1.s", "h.p2.s"];

    #[derive(Debug, Clone)]
    enum Op {
        Insert {
            token: usize,
            kid: usize,
            valid_from: u16,
            lifetime: u16,
            at: u16,
        },
        Get {
            token: usize,
            at: u16,
        },
        /// A new key set: per kid, absent or a key of one of three moduli.
        Rotate([Option<u8>; 2]),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            1 => (0..3usize, 0..2usize, 0..400u16, 0..400u16, 0..800u16).prop_map(
                |(token, kid, valid_from, lifetime, at)| Op::Insert {
                    token,
                    kid,
                    valid_from,
                    lifetime,
                    at
                }
            ),
            3 => (0..3usize, 0..800u16).prop_map(|(token, at)| Op::Get { token, at }),
            1 => prop::array::uniform2(prop::option::of(0..3u8)).prop_map(Op::Rotate),
        ]
    }

    fn key_set(fills: [Option<u8>; 2], previous: Option<&KeySet>) -> KeySet {
        let keys: Vec<_> = KIDS
            .iter()
            .zip(fills)
            .filter_map(|(kid, fill)| {
                let n = URL_SAFE_NO_PAD.encode(vec![0xC3 + 2 * fill?; 256]);
                Some(json!({"kty": "RSA", "kid": kid, "n": n, "e": "AQAB"}))
            })
            .collect();
        let mut set =
            KeySet::from_json(json!({ "keys": keys }).to_string().as_bytes()).expect("a key set");
        if let Some(previous) = previous {
            set.keep_unchanged_from(previous);
        }
        set
    }

    /// What the model knows of a cached token: which generation of which key verified it.
    #[derive(Debug, Clone, Copy)]
    struct Record {
        kid: usize,
        generation: u64,
        valid_from: f64,
        expires_at: f64,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn the_cache_serves_exactly_what_the_model_allows(ops in prop::collection::vec(op(), 1..60)) {
            let cache = TokenCache::new(1 << 20);
            let mut fills = [Some(0u8), Some(0u8)];
            let mut keys = key_set(fills, None);
            // The generation of each kid's current key: a new key (or one that comes back
            // after leaving) is a new generation.
            let mut generations = [Some(1u64), Some(2u64)];
            let mut next_generation = 3;
            let mut model: [Option<Record>; 3] = [None; 3];
            for op in ops {
                match op {
                    Op::Rotate(new) => {
                        for kid in 0..2 {
                            if new[kid] != fills[kid] || new[kid].is_none() {
                                generations[kid] = new[kid].map(|_| {
                                    next_generation += 1;
                                    next_generation
                                });
                            }
                        }
                        fills = new;
                        keys = key_set(fills, Some(&keys));
                    }
                    Op::Insert { token, kid, valid_from, lifetime, at } => {
                        let Some(generation) = generations[kid] else { continue };
                        let (valid_from, expires_at) =
                            (f64::from(valid_from), f64::from(valid_from) + f64::from(lifetime) + 0.5);
                        let claims = format!("{{\"token\":{token}}}");
                        let verified = Verified {
                            claims: AuthenticatedClaims::from_verified(&claims, &Registered::default()),
                            key: Arc::clone(keys.get(KIDS[kid]).expect("the key is in the set")),
                            kid: Some(KIDS[kid].into()),
                            alg: Algorithm::RS256,
                            expires_at,
                            valid_from,
                            claims_bytes: claims.len(),
                        };
                        cache.insert(TOKENS[token], verified, f64::from(at));
                        if f64::from(at) < expires_at {
                            model[token] = Some(Record { kid, generation, valid_from, expires_at });
                        }
                    }
                    Op::Get { token, at } => {
                        let now = f64::from(at);
                        let served = cache.get(TOKENS[token], &keys, now);
                        let allowed = model[token].filter(|r| {
                            r.valid_from <= now
                                && now < r.expires_at
                                && generations[r.kid] == Some(r.generation)
                        });
                        match (&served, allowed) {
                            (Some(claims), Some(record)) => {
                                prop_assert!(now < record.expires_at, "served at or past exp");
                                let own = format!("{{\"token\":{token}}}");
                                prop_assert_eq!(claims.claims_json(), own.as_str());
                            }
                            (None, None) => model[token] = None,
                            (Some(_), None) => prop_assert!(
                                false,
                                "served {} at {} though the model forbids it: {:?}, keys {:?}",
                                TOKENS[token], now, model[token], generations
                            ),
                            (None, Some(record)) => prop_assert!(
                                false,
                                "refused {} at {} though servable: {:?}",
                                TOKENS[token], now, record
                            ),
                        }
                    }
                }
            }
        }
    }
}
