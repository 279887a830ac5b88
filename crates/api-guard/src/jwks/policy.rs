//! When to fetch the key set: pure functions of instants, so every decision is unit-tested
//! without sleeping.

use std::time::{Duration, Instant};

/// The timing rules of the key store. Every field's doc ends with its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Floor for the issuer's `Cache-Control: max-age`: refresh no more often than this.
    /// Default: 5 minutes.
    pub min_lifetime: Duration,
    /// Ceiling for `max-age`: refresh at least this often, whatever the issuer says.
    /// Default: 24 hours.
    pub max_lifetime: Duration,
    /// Lifetime when the issuer sends no `max-age` (or `no-cache`/`no-store`).
    /// Default: 1 hour.
    pub default_lifetime: Duration,
    /// Least time between two fetches caused by requests (an unknown `kid`, or no keys yet);
    /// scheduled refreshes do not count. Default: 30 seconds.
    pub cooldown: Duration,
    /// First retry after a failed fetch; doubles on each further failure. Default: 1 second.
    pub retry_initial: Duration,
    /// Longest wait between retries after failures. Default: 60 seconds.
    pub retry_max: Duration,
    /// How long past its lifetime the last good key set stays in use while fetches fail;
    /// after that the keys are dropped and protected routes answer 503. Default: 24 hours.
    pub max_stale: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            min_lifetime: Duration::from_secs(5 * 60),
            max_lifetime: Duration::from_secs(24 * 60 * 60),
            default_lifetime: Duration::from_secs(60 * 60),
            cooldown: Duration::from_secs(30),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            max_stale: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// What a request that needs a fresh key set should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDemand {
    /// A fetch is in flight: wait for it.
    Join,
    /// Start a fetch and wait for it.
    Start,
    /// The last fetch was too recent: answer with the keys we have.
    Refuse,
}

impl RefreshPolicy {
    /// The key set's lifetime given the issuer's `max-age`, clamped to the floor and ceiling.
    pub fn lifetime(&self, max_age: Option<Duration>) -> Duration {
        max_age
            .unwrap_or(self.default_lifetime)
            .clamp(self.min_lifetime, self.max_lifetime.max(self.min_lifetime))
    }

    /// When to refresh a key set fetched at `fetched_at`: at nine tenths of its lifetime,
    /// so the new set is in place before the old one expires.
    pub fn next_refresh(&self, fetched_at: Instant, max_age: Option<Duration>) -> Instant {
        later(fetched_at, self.lifetime(max_age).mul_f64(0.9))
    }

    /// When to retry after `consecutive_failures` (1 for the first) failed fetches.
    pub fn next_retry(&self, failed_at: Instant, consecutive_failures: u32) -> Instant {
        let doublings = consecutive_failures.saturating_sub(1).min(16);
        let wait = self
            .retry_initial
            .saturating_mul(1 << doublings)
            .min(self.retry_max);
        later(failed_at, wait)
    }

    /// Whether a request may cause a fetch now (RFC 8725 does not say; this bounds what an
    /// attacker sending made-up `kid`s can make us do: one fetch per cooldown).
    pub fn on_demand(
        &self,
        now: Instant,
        in_flight: bool,
        last_on_demand: Option<Instant>,
    ) -> OnDemand {
        if in_flight {
            OnDemand::Join
        } else if last_on_demand
            .is_none_or(|last| now.saturating_duration_since(last) >= self.cooldown)
        {
            OnDemand::Start
        } else {
            OnDemand::Refuse
        }
    }

    /// Whether a key set fetched at `fetched_at` with this `lifetime` is too old to use.
    pub fn is_too_stale(&self, now: Instant, fetched_at: Instant, lifetime: Duration) -> bool {
        now.saturating_duration_since(fetched_at) > lifetime.saturating_add(self.max_stale)
    }
}

/// `at + wait`, or a day later if that overflows the platform's clock.
fn later(at: Instant, wait: Duration) -> Instant {
    at.checked_add(wait)
        .or_else(|| at.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(at)
}

/// Reads `max-age` from a `Cache-Control` value; `no-cache`/`no-store` mean "no lifetime
/// given" (the floor then applies, so an issuer cannot make us fetch per request).
pub fn max_age(cache_control: &str) -> Option<Duration> {
    let mut max_age = None;
    for directive in cache_control.split(',').map(str::trim) {
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        match name.to_ascii_lowercase().as_str() {
            "no-cache" | "no-store" => return None,
            "max-age" => {
                max_age = value
                    .trim_matches('"')
                    .parse()
                    .ok()
                    .map(Duration::from_secs)
            }
            _ => {}
        }
    }
    max_age
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn policy() -> RefreshPolicy {
        RefreshPolicy::default()
    }

    #[test]
    fn max_age_is_clamped_between_floor_and_ceiling() {
        let p = policy();
        assert_eq!(p.lifetime(Some(SEC)), p.min_lifetime);
        assert_eq!(p.lifetime(Some(SEC * 7200)), SEC * 7200);
        assert_eq!(p.lifetime(Some(SEC * 10_000_000)), p.max_lifetime);
        assert_eq!(p.lifetime(None), p.default_lifetime);
    }

    #[test]
    fn refresh_happens_ahead_of_expiry() {
        let t0 = Instant::now();
        let next = policy().next_refresh(t0, Some(SEC * 1000));
        assert_eq!(next, t0 + SEC * 900);
    }

    #[test]
    fn retries_back_off_exponentially_up_to_the_maximum() {
        let t0 = Instant::now();
        let p = policy();
        let waits: Vec<Duration> = (1..=8).map(|n| p.next_retry(t0, n) - t0).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60].map(|s| SEC * s));
        assert_eq!(p.next_retry(t0, u32::MAX) - t0, p.retry_max);
    }

    #[test]
    fn a_request_joins_a_fetch_in_flight() {
        let t0 = Instant::now();
        assert_eq!(policy().on_demand(t0, true, Some(t0)), OnDemand::Join);
    }

    #[test]
    fn a_request_starts_a_fetch_only_once_per_cooldown() {
        let t0 = Instant::now();
        let p = policy();
        assert_eq!(p.on_demand(t0, false, None), OnDemand::Start);
        assert_eq!(
            p.on_demand(t0 + SEC * 29, false, Some(t0)),
            OnDemand::Refuse
        );
        assert_eq!(p.on_demand(t0 + SEC * 30, false, Some(t0)), OnDemand::Start);
    }

    #[test]
    fn last_good_keys_stay_usable_for_max_stale_past_their_lifetime() {
        let t0 = Instant::now();
        let p = policy();
        let lifetime = SEC * 3600;
        assert!(!p.is_too_stale(t0 + lifetime + p.max_stale, t0, lifetime));
        assert!(p.is_too_stale(t0 + lifetime + p.max_stale + SEC, t0, lifetime));
    }

    #[test]
    fn cache_control_max_age_is_read_and_no_store_ignored() {
        assert_eq!(max_age("public, max-age=3600"), Some(SEC * 3600));
        assert_eq!(max_age("Max-Age=\"60\", must-revalidate"), Some(SEC * 60));
        assert_eq!(max_age("no-store, max-age=60"), None);
        assert_eq!(max_age("max-age=soon"), None);
        assert_eq!(max_age(""), None);
    }
}
