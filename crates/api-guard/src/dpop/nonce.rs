//! Server-provided nonces (RFC 9449 §8, §9): a proof must carry the nonce the server gave,
//! so a client cannot make proofs ahead of time. Every replica derives the same nonces from
//! a shared secret and the clock, with no shared state: the nonce of a time step is
//! base64url(HMAC-SHA256(secret, step)). The current and the previous step's nonces are
//! accepted, so a nonce is good for one to two steps.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// How long one nonce is current, in seconds.
pub(crate) const STEP_SECS: u64 = 60;

/// The nonces of one secret.
pub(crate) struct Nonces(hmac::Key);

impl Nonces {
    pub(crate) fn new(secret: &[u8]) -> Self {
        Nonces(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// The nonce to hand out at `now` (seconds since the epoch).
    pub(crate) fn current(&self, now: u64) -> String {
        self.of_step(now / STEP_SECS)
    }

    /// Whether `nonce` is the current or the previous step's.
    pub(crate) fn accepts(&self, nonce: &str, now: u64) -> bool {
        let step = now / STEP_SECS;
        [step, step.saturating_sub(1)]
            .into_iter()
            .any(|step| self.of_step(step) == nonce)
    }

    fn of_step(&self, step: u64) -> String {
        let mut message = *b"api-guard dpop nonce ........";
        message[21..].copy_from_slice(&step.to_be_bytes());
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.0, &message).as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_replicas_with_one_secret_agree_and_nonces_expire_after_two_steps() {
        let (a, b) = (Nonces::new(b"shared secret"), Nonces::new(b"shared secret"));
        let now = 1_800_000_000;
        let nonce = a.current(now);
        assert_eq!(nonce, b.current(now));
        assert!(b.accepts(&nonce, now + STEP_SECS));
        assert!(!b.accepts(&nonce, now + 2 * STEP_SECS));
        assert!(!Nonces::new(b"another").accepts(&nonce, now));
        assert!(!a.accepts("", now));
    }
}
