//! Where the proofs already accepted are remembered, so each is accepted once (RFC 9449
//! §11.1): the [`ReplayStore`] trait, and the in-process [`MemoryReplayStore`] every guard
//! has unless given another (a store shared by replicas, such as the service's Redis one).
//!
//! ```
//! use std::time::Duration;
//! use api_guard::{MemoryReplayStore, ProofId, ReplayStore, Remembered};
//!
//! # actix_web::rt::System::new().block_on(async {
//! let store = MemoryReplayStore::new(1000);
//! let id = ProofId::new("thumbprint", "jti-1");
//! let ttl = Duration::from_secs(60);
//! assert_eq!(store.remember(id, ttl).await, Ok(Remembered::First));
//! assert_eq!(store.remember(id, ttl).await, Ok(Remembered::Replayed));
//! # });
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;

/// Identifies one proof: SHA-256 of its key's thumbprint and its `jti`, so entries have a
/// fixed size whatever the client sends, and two clients' `jti`s never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProofId([u8; 32]);

impl ProofId {
    /// The id of the proof with `jti`, signed by the key whose RFC 7638 thumbprint is
    /// `thumbprint`.
    pub fn new(thumbprint: &str, jti: &str) -> Self {
        let mut context = digest::Context::new(&digest::SHA256);
        context.update(thumbprint.as_bytes());
        context.update(b"\0");
        context.update(jti.as_bytes());
        let mut id = [0u8; 32];
        id.copy_from_slice(context.finish().as_ref());
        ProofId(id)
    }

    /// The id as 64 lowercase hex digits, e.g. for a key in a shared store.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Whether a proof was new to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remembered {
    /// First use: accept it.
    First,
    /// Seen within its lifetime: refuse it.
    Replayed,
}

/// Why a store could not answer. The request is refused with 503, never accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayStoreError {
    /// The store cannot be reached (a shared store's server is down).
    #[error("the replay store cannot be reached")]
    Unavailable,
    /// The store holds as many proofs as it may.
    #[error("the replay store is full")]
    Full,
}

/// What [`ReplayStore::remember`] returns.
pub type ReplayFuture = Pin<Box<dyn Future<Output = Result<Remembered, ReplayStoreError>> + Send>>;

/// A set of proof ids, each kept for a time: the guard asks it, after every other check of
/// a proof has passed, whether the proof is new.
///
/// # Security
///
/// An implementation must answer [`Remembered::First`] for an id at most once during its
/// `ttl`, also when several replicas share it, and answer an error rather than `First`
/// when it cannot tell.
pub trait ReplayStore: Send + Sync + 'static {
    /// Records `id` for `ttl`; answers whether it was new.
    fn remember(&self, id: ProofId, ttl: Duration) -> ReplayFuture;

    /// Whether the store can answer now, for a readiness check. Default: true.
    fn is_available(&self) -> bool {
        true
    }
}

/// The in-process store: a map of ids to their expiry, bounded by a number of entries.
/// Expired entries are dropped as time passes; when the map is full of live entries, new
/// proofs are refused ([`ReplayStoreError::Full`], 503) rather than the memory growing.
/// 48 bytes an entry, 50 to 100 with the hash table's overhead.
#[derive(Debug)]
pub struct MemoryReplayStore {
    capacity: usize,
    inner: Mutex<Entries>,
}

#[derive(Debug)]
struct Entries {
    expiry: HashMap<ProofId, Instant>,
    /// When expired entries were last swept.
    last_sweep: Instant,
}

/// How often expired entries are swept when the map is not full.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// How often at most a full map is swept: a sweep walks every entry, and a flood of proofs
/// against a full map must not make each request pay for one.
const FULL_SWEEP_EVERY: Duration = Duration::from_secs(1);

impl MemoryReplayStore {
    /// A store of at most `capacity` live proofs.
    pub fn new(capacity: usize) -> Self {
        MemoryReplayStore {
            capacity,
            inner: Mutex::new(Entries {
                expiry: HashMap::new(),
                last_sweep: Instant::now(),
            }),
        }
    }

    /// How many proofs it holds now (expired ones not swept yet included).
    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |entries| entries.expiry.len())
    }

    /// Whether it holds no proof.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`ReplayStore::remember`], synchronously, at `now`.
    pub(crate) fn remember_at(
        &self,
        id: ProofId,
        ttl: Duration,
        now: Instant,
    ) -> Result<Remembered, ReplayStoreError> {
        // A poisoned lock only means another thread panicked mid-insert: the map is intact.
        let mut entries = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let since_sweep = now.saturating_duration_since(entries.last_sweep);
        let full = entries.expiry.len() >= self.capacity;
        if since_sweep >= SWEEP_EVERY || (full && since_sweep >= FULL_SWEEP_EVERY) {
            entries.expiry.retain(|_, expires| *expires > now);
            entries.last_sweep = now;
        }
        match entries.expiry.get(&id) {
            Some(expires) if *expires > now => return Ok(Remembered::Replayed),
            Some(_) => {}
            None if entries.expiry.len() >= self.capacity => {
                return Err(ReplayStoreError::Full);
            }
            None => {}
        }
        entries.expiry.insert(id, now + ttl);
        Ok(Remembered::First)
    }
}

impl ReplayStore for MemoryReplayStore {
    fn remember(&self, id: ProofId, ttl: Duration) -> ReplayFuture {
        let answer = self.remember_at(id, ttl, Instant::now());
        Box::pin(std::future::ready(answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    fn id(n: u32) -> ProofId {
        ProofId::new("key", &n.to_string())
    }

    #[test]
    fn a_proof_is_first_once_within_its_lifetime_and_again_after_it() {
        let store = MemoryReplayStore::new(10);
        let t0 = Instant::now();
        assert_eq!(store.remember_at(id(1), TTL, t0), Ok(Remembered::First));
        let later = t0 + TTL - Duration::from_secs(1);
        assert_eq!(
            store.remember_at(id(1), TTL, later),
            Ok(Remembered::Replayed)
        );
        assert_eq!(
            store.remember_at(id(1), TTL, t0 + TTL),
            Ok(Remembered::First)
        );
    }

    #[test]
    fn the_same_jti_under_another_key_is_another_proof() {
        assert_ne!(ProofId::new("a", "1"), ProofId::new("b", "1"));
        assert_ne!(ProofId::new("a\x001", ""), ProofId::new("a", "1"));
    }

    #[test]
    fn a_full_store_refuses_new_proofs_until_entries_expire() {
        let store = MemoryReplayStore::new(3);
        let t0 = Instant::now();
        for n in 0..3 {
            assert_eq!(store.remember_at(id(n), TTL, t0), Ok(Remembered::First));
        }
        assert_eq!(
            store.remember_at(id(9), TTL, t0),
            Err(ReplayStoreError::Full)
        );
        // A known proof is still told apart while full.
        assert_eq!(store.remember_at(id(0), TTL, t0), Ok(Remembered::Replayed));
        assert_eq!(
            store.remember_at(id(9), TTL, t0 + TTL),
            Ok(Remembered::First)
        );
        assert_eq!(store.len(), 1);
    }
}
