//! The key store: one per issuer and process, shared by every worker.
//!
//! Readers load the current [`KeySet`] without a lock and never wait on the network; the
//! set is swapped in whole. One refresher thread owns the HTTP client and does all
//! fetching: on schedule (honouring `Cache-Control: max-age` within bounds), and on demand
//! when a token names an unknown `kid`, at most once per cooldown, with concurrent askers
//! joining the fetch in flight. A failed fetch keeps the last good keys, for a bounded time.

mod fetch;
mod keyset;
mod policy;
mod proxy;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use tokio::sync::{mpsc, watch};

pub use fetch::FetchOutcome;
#[cfg(feature = "fuzzing")]
pub(crate) use fetch::read_metadata;
pub(crate) use fetch::{FetchError, Outbound, Source};

/// The most usable keys one key set holds.
#[cfg(feature = "fuzzing")]
pub(crate) const fn keyset_max_keys() -> usize {
    keyset::MAX_KEYS
}
pub(crate) use keyset::{Key, KeySet, parse_proof_key};
pub(crate) use policy::{OnDemand, RefreshPolicy};
pub(crate) use proxy::Proxy;

use fetch::{Fetched, Fetcher};

use crate::outside::quoted;

/// The longest a request waits for an on-demand fetch before answering with what it has.
const JOIN_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest one fetch (discovery included) may take, whatever the network does, so the
/// refresher always gets back to its schedule.
const FETCH_DEADLINE: Duration = Duration::from_secs(45);

/// The shared key store. Cheap to clone; clones share one key set and one refresher.
#[derive(Clone)]
pub(crate) struct JwksStore {
    shared: Arc<Shared>,
    wake: mpsc::UnboundedSender<()>,
}

struct Shared {
    /// The issuer whose keys these are, for log lines.
    issuer: Box<str>,
    keys: ArcSwapOption<KeySet>,
    /// The issuer's `token_endpoint`, kept from the last discovery that named one.
    token_endpoint: ArcSwapOption<String>,
    /// The issuer's `introspection_endpoint`, kept from the last discovery that named one.
    introspection_endpoint: ArcSwapOption<String>,
    state: Mutex<FetchState>,
    /// Counts completed fetch attempts (success or failure); askers wait for it to move.
    completed: watch::Sender<u64>,
    policy: RefreshPolicy,
    /// Fetches by outcome, indexed like [`FetchOutcome::ALL`].
    fetches: [AtomicU64; FetchOutcome::ALL.len()],
}

#[derive(Default)]
struct FetchState {
    in_flight: bool,
    /// The last fetch a request caused; scheduled fetches do not count, so a key rotated
    /// just after a scheduled fetch is still picked up at once.
    last_on_demand: Option<Instant>,
    loaded_at: Option<(Instant, Duration)>,
    consecutive_failures: u32,
    last_error: Option<String>,
}

/// Where the key store stands: for readiness checks, metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyStoreStatus {
    /// The issuer whose keys the store holds, exactly as its tokens carry it in `iss`.
    pub issuer: String,
    /// Keys in the current set (0 when none was ever loaded, or the last set went stale).
    pub keys: usize,
    /// Age of the current set.
    pub age: Option<Duration>,
    /// Fetches that failed since the last success.
    pub consecutive_failures: u32,
    /// The last failure, for the operator.
    pub last_error: Option<String>,
    /// The issuer's `token_endpoint`, once discovery has named a usable one; never with a
    /// fixed JWKS URL.
    pub token_endpoint: Option<String>,
    /// How many fetches ended with each outcome since start-up, in [`FetchOutcome::ALL`]'s order.
    pub fetches: Vec<(FetchOutcome, u64)>,
}

impl JwksStore {
    /// Starts the refresher thread, which fetches at once. Use [`JwksStore::first_load`] to
    /// wait for that first attempt.
    pub(crate) fn start(
        issuer: &str,
        source: Source,
        policy: RefreshPolicy,
        outbound: Outbound,
    ) -> std::io::Result<JwksStore> {
        // awc's TLS connector needs a process-wide rustls provider; an embedding service may
        // have installed one already, which is fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let (wake, commands) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            issuer: issuer.into(),
            keys: ArcSwapOption::empty(),
            token_endpoint: ArcSwapOption::empty(),
            introspection_endpoint: ArcSwapOption::empty(),
            state: Mutex::new(FetchState {
                in_flight: true,
                ..FetchState::default()
            }),
            completed: watch::Sender::new(0),
            policy,
            fetches: Default::default(),
        });
        let refresher = Refresher {
            shared: Arc::downgrade(&shared),
            commands,
        };
        std::thread::Builder::new()
            .name("jwks-refresher".into())
            .spawn(move || actix_rt::System::new().block_on(refresher.run(source, outbound)))?;
        Ok(JwksStore { shared, wake })
    }

    /// A store that holds `keys` and never fetches: for the test kit, whose issuer lives in
    /// the same process. [`JwksStore::replace_keys`] rotates them.
    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn fixed(issuer: &str, keys: KeySet) -> JwksStore {
        // No refresher receives the wake-ups: on-demand fetches are refused at once.
        let (wake, _) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            issuer: issuer.into(),
            keys: ArcSwapOption::new(Some(Arc::new(keys))),
            token_endpoint: ArcSwapOption::empty(),
            introspection_endpoint: ArcSwapOption::empty(),
            state: Mutex::new(FetchState {
                loaded_at: Some((Instant::now(), Duration::MAX)),
                ..FetchState::default()
            }),
            completed: watch::Sender::new(1),
            policy: RefreshPolicy::default(),
            fetches: Default::default(),
        });
        JwksStore { shared, wake }
    }

    /// Swaps in `keys`, as a refresh would: unchanged keys stay the same objects.
    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn replace_keys(&self, mut keys: KeySet) {
        if let Some(previous) = self.shared.keys.load_full() {
            keys.keep_unchanged_from(&previous);
        }
        self.shared.keys.store(Some(Arc::new(keys)));
    }

    /// The current key set, if one was ever loaded. Never waits.
    pub(crate) fn keys(&self) -> Option<Arc<KeySet>> {
        self.shared.keys.load_full()
    }

    /// The `token_endpoint` the issuer's metadata named, once discovery has succeeded.
    /// `None` before that, and always with a fixed `AUTH_JWKS_URI` (no discovery).
    pub(crate) fn token_endpoint(&self) -> Option<Arc<String>> {
        self.shared.token_endpoint.load_full()
    }

    /// The `introspection_endpoint` the issuer's metadata named, once discovery has
    /// succeeded (RFC 8414 §2). `None` before that, and always with a fixed JWKS URL.
    pub(crate) fn introspection_endpoint(&self) -> Option<Arc<String>> {
        self.shared.introspection_endpoint.load_full()
    }

    /// Whether a key set is loaded: the readiness of the service.
    pub(crate) fn is_ready(&self) -> bool {
        self.shared.keys.load().is_some()
    }

    /// How long a caller should wait before retrying while no keys are loaded.
    pub(crate) fn retry_after(&self) -> Duration {
        self.shared.policy.cooldown.max(Duration::from_secs(1))
    }

    /// Waits until the first fetch attempt has finished, successfully or not.
    pub(crate) async fn first_load(&self) {
        let mut completed = self.shared.completed.subscribe();
        let wait = completed.wait_for(|n| *n > 0);
        let _ = tokio::time::timeout(JOIN_TIMEOUT * 3, wait).await;
    }

    /// Asks for a fresh key set because a token named a `kid` we do not have (or no keys
    /// were ever loaded), and returns the key set once that fetch is done. Within the
    /// cooldown of the last fetch no new fetch starts and the current set is returned.
    pub(crate) async fn refetch(&self) -> Option<Arc<KeySet>> {
        if let Some(seen) = self.request_fetch() {
            let mut completed = self.shared.completed.subscribe();
            let wait = completed.wait_for(|n| *n > seen);
            let _ = tokio::time::timeout(JOIN_TIMEOUT, wait).await;
        }
        self.keys()
    }

    /// Starts an on-demand fetch if the policy allows; returns the completion count to wait
    /// past, or `None` if the request must make do with the current keys. Never waits.
    pub(crate) fn request_fetch(&self) -> Option<u64> {
        let now = Instant::now();
        let mut state = self.shared.lock();
        let seen = *self.shared.completed.borrow();
        match self
            .shared
            .policy
            .on_demand(now, state.in_flight, state.last_on_demand)
        {
            OnDemand::Join => Some(seen),
            OnDemand::Start => {
                state.in_flight = true;
                state.last_on_demand = Some(now);
                if self.wake.send(()).is_err() {
                    // The refresher is gone; nobody would ever clear the flag.
                    state.in_flight = false;
                    return None;
                }
                Some(seen)
            }
            OnDemand::Refuse => None,
        }
    }

    /// Where the store stands.
    pub(crate) fn status(&self) -> KeyStoreStatus {
        let state = self.shared.lock();
        KeyStoreStatus {
            issuer: self.shared.issuer.to_string(),
            keys: self.keys().map_or(0, |k| k.len()),
            age: state.loaded_at.map(|(at, _)| at.elapsed()),
            consecutive_failures: state.consecutive_failures,
            last_error: state.last_error.clone(),
            token_endpoint: self.token_endpoint().map(|url| url.as_str().to_owned()),
            fetches: FetchOutcome::ALL
                .iter()
                .map(|&outcome| {
                    let count = self.shared.fetches[outcome as usize].load(Ordering::Relaxed);
                    (outcome, count)
                })
                .collect(),
        }
    }
}

impl Shared {
    /// The state lock is never held across an await; a poisoned lock still holds valid
    /// plain data, so it is taken over rather than propagated as a panic.
    fn lock(&self) -> std::sync::MutexGuard<'_, FetchState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a finished fetch and returns when the next scheduled one is due.
    fn complete(&self, outcome: Result<Fetched, FetchError>) -> Instant {
        let now = Instant::now();
        let kind = outcome
            .as_ref()
            .map_or_else(|e| e.outcome, |_| FetchOutcome::Success);
        self.fetches[kind as usize].fetch_add(1, Ordering::Relaxed);
        let mut state = self.lock();
        state.in_flight = false;
        let next = match outcome {
            Ok(fetched) => {
                let lifetime = self.policy.lifetime(fetched.max_age);
                let kids: Vec<String> = fetched.keys.kids().into_iter().map(quoted).collect();
                log::info!(
                    "JWKS of {}: loaded {} key(s) [{}] from {}; next refresh in {}s",
                    quoted(&self.issuer),
                    fetched.keys.len(),
                    kids.join(", "),
                    quoted(&fetched.uri),
                    (lifetime.mul_f64(0.9)).as_secs()
                );
                let mut keys = fetched.keys;
                // Unchanged keys stay the same objects, so cached tokens they verified stay
                // valid; tokens of a dropped or replaced key stop being served from the cache.
                if let Some(previous) = self.keys.load_full() {
                    keys.keep_unchanged_from(&previous);
                }
                self.keys.store(Some(Arc::new(keys)));
                if let Some(endpoint) = fetched.token_endpoint {
                    self.token_endpoint.store(Some(Arc::new(endpoint)));
                }
                if let Some(endpoint) = fetched.introspection_endpoint {
                    self.introspection_endpoint.store(Some(Arc::new(endpoint)));
                }
                state.loaded_at = Some((now, lifetime));
                state.consecutive_failures = 0;
                state.last_error = None;
                self.policy.next_refresh(now, fetched.max_age)
            }
            Err(why) => {
                state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                let next = self.policy.next_retry(now, state.consecutive_failures);
                let kept = if self.keys.load().is_some() {
                    "keeping the last good keys"
                } else {
                    "no keys loaded yet"
                };
                log::warn!(
                    "JWKS of {}: fetch failed ({} in a row), {kept}; retrying in {}ms: {why}",
                    quoted(&self.issuer),
                    state.consecutive_failures,
                    next.saturating_duration_since(now).as_millis()
                );
                state.last_error = Some(why.detail);
                next
            }
        };
        self.completed.send_modify(|n| *n += 1);
        next
    }

    /// Drops a key set that stayed unrefreshed for longer than the policy allows.
    fn expire_if_stale(&self) {
        let mut state = self.lock();
        let now = Instant::now();
        let Some((at, lifetime)) = state.loaded_at else {
            return;
        };
        if self.policy.is_too_stale(now, at, lifetime) {
            log::error!(
                "JWKS of {}: keys not refreshed for {}s; dropping them, its tokens answer 503 until the issuer is reachable",
                quoted(&self.issuer),
                now.saturating_duration_since(at).as_secs()
            );
            self.keys.store(None);
            state.loaded_at = None;
        }
    }

    /// Marks a fetch as in flight, so requests join it instead of starting one.
    fn begin_fetch(&self) {
        self.lock().in_flight = true;
    }
}

/// The one task that fetches. It holds the store weakly: when the last [`JwksStore`] is
/// dropped, the channel closes and the thread ends.
struct Refresher {
    shared: Weak<Shared>,
    commands: mpsc::UnboundedReceiver<()>,
}

impl Refresher {
    async fn run(mut self, source: Source, outbound: Outbound) {
        let mut fetcher = Fetcher::new(source, &outbound);
        let mut next = Instant::now();
        let mut woken = true;
        loop {
            let Some(shared) = self.shared.upgrade() else {
                return;
            };
            if woken || Instant::now() >= next {
                shared.begin_fetch();
                let outcome = tokio::time::timeout(FETCH_DEADLINE, fetcher.fetch())
                    .await
                    .unwrap_or_else(|_| {
                        Err(FetchError {
                            outcome: FetchOutcome::Timeout,
                            detail: format!("no answer within {}s", FETCH_DEADLINE.as_secs()),
                        })
                    });
                next = shared.complete(outcome);
            }
            shared.expire_if_stale();
            drop(shared);
            let sleep = tokio::time::sleep_until(next.into());
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(()) => woken = true,
                    None => return,
                },
                () = sleep => woken = false,
            }
        }
    }
}
