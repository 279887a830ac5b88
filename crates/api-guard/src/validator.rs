//! Access-token validation: pure and synchronous given a key set (RFC 7515, RFC 7519,
//! RFC 8725, RFC 9068).
//!
//! The steps run in a fixed order and everything read before step 5 is `unverified_`:
//! nothing in the token decides how the token is checked. The algorithm must be on the
//! configured allow-list, the key comes only from the issuer's key set, and the key's own
//! type (and `alg`, when the JWK has one) must agree with the header.

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::claims::{self, AuthenticatedClaims, Claim, Registered};
use crate::error::{Error, Reason};
use crate::jwks::{Key, KeySet};
use crate::{Algorithm, AuthSettings};

/// Tokens longer than this are refused before any parsing. Okta's are about 1 KiB.
pub(crate) const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// What a valid token must satisfy. Built once, from the guard's settings.
#[derive(Debug, Clone)]
pub(crate) struct Validator {
    issuer: String,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway_secs: u64,
    require_at_jwt: bool,
}

/// A token that passed every check, with what the token cache needs to know about it.
#[derive(Debug)]
pub(crate) struct Verified {
    pub(crate) claims: AuthenticatedClaims,
    /// The key that verified the signature.
    pub(crate) key: Arc<Key>,
    /// How the token named that key: its `kid`, or none (then the algorithm picked it).
    pub(crate) kid: Option<Box<str>>,
    pub(crate) alg: Algorithm,
    /// `exp`, in seconds since the epoch.
    pub(crate) expires_at: f64,
    /// The earliest time the token is valid, leeway included (`nbf`, `iat`).
    pub(crate) valid_from: f64,
    /// The size of the decoded claims, for the cache's memory estimate.
    pub(crate) claims_bytes: usize,
}

/// The parts of a compact JWS after the header (RFC 7515 §7.1).
struct Segments<'t> {
    /// `header.payload`, what the signature covers.
    signing_input: &'t str,
    payload_b64: &'t str,
    signature_b64: &'t str,
}

/// Signatures longer than this cannot come from a key we accept (RSA up to 8192 bits).
const MAX_SIGNATURE_BYTES: usize = 8192 / 8;
/// Decoded segments up to this size are decoded on the stack.
const STACK_SEGMENT_BYTES: usize = 2048;

/// The header fields we look at, all unverified until the signature is checked. A derived
/// struct rejects duplicate names (RFC 7515 §4); other parameters issuers add are ignored.
/// The key-carrying and `crit` parameters count when present at all, even as `null`.
/// Strings borrow from the decoded header unless they hold escapes.
#[derive(Deserialize)]
struct UnverifiedHeader<'a> {
    #[serde(borrow)]
    alg: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kid: Option<Cow<'a, str>>,
    #[serde(borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
    #[serde(default, deserialize_with = "present")]
    jku: bool,
    #[serde(default, deserialize_with = "present")]
    jwk: bool,
    #[serde(default, deserialize_with = "present")]
    x5u: bool,
    #[serde(default, deserialize_with = "present")]
    x5c: bool,
}

fn present<'de, D: serde::Deserializer<'de>>(value: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(value).map(|_| true)
}

impl Validator {
    /// A validator for tokens of `issuer` (one of the settings' issuers) meeting `settings`.
    pub(crate) fn for_issuer(settings: &AuthSettings, issuer: &str) -> Self {
        Validator {
            issuer: issuer.to_owned(),
            audiences: settings.audiences().to_vec(),
            algorithms: settings.algorithms().to_vec(),
            leeway_secs: settings.leeway().as_secs(),
            require_at_jwt: settings.require_at_jwt(),
        }
    }

    /// Checks `token` against `keys` as if the time were `now` (seconds since the epoch),
    /// returning its claims and what the token cache needs to know about it.
    pub(crate) fn verify_at(
        &self,
        token: &str,
        keys: &KeySet,
        now: u64,
    ) -> Result<Verified, Error> {
        let invalid = Error::InvalidToken;
        // 1. Size, then shape: three base64url segments (RFC 7515 §7.1).
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid(Reason::TooLarge));
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid(Reason::Malformed));
        };
        if signature_b64.is_empty() {
            return Err(invalid(Reason::Malformed));
        }
        let segments = Segments {
            signing_input: &token[..header_b64.len() + 1 + payload_b64.len()],
            payload_b64,
            signature_b64,
        };
        // The header is parsed where it was decoded (borrowing its strings), and stays there.
        with_decoded(header_b64, |bytes| {
            self.verify_with_header(parse_json(bytes)?, &segments, keys, now)
        })
    }

    fn verify_with_header(
        &self,
        unverified_header: UnverifiedHeader<'_>,
        segments: &Segments<'_>,
        keys: &KeySet,
        now: u64,
    ) -> Result<Verified, Error> {
        let invalid = Error::InvalidToken;

        // 2. The algorithm comes from our allow-list, never from the token (RFC 8725 §3.1):
        //    `none`, HMAC and anything unlisted stop here.
        let alg = unverified_header
            .alg
            .as_deref()
            .and_then(|unverified_alg| unverified_alg.parse::<Algorithm>().ok())
            .filter(|alg| self.algorithms.contains(alg))
            .ok_or(invalid(Reason::AlgorithmNotAllowed))?;

        // 3. Keys come only from the issuer's JWKS; unknown critical extensions reject
        //    (RFC 7515 §4.1.11); explicit typing keeps other JWTs out (RFC 8725 §3.11).
        let unverified = &unverified_header;
        if unverified.jku || unverified.jwk || unverified.x5u || unverified.x5c {
            return Err(invalid(Reason::KeyInHeader));
        }
        if unverified.crit {
            return Err(invalid(Reason::UnsupportedCritical));
        }
        let typed = match unverified.typ.as_deref() {
            None => !self.require_at_jwt,
            Some(typ) if self.require_at_jwt => is_at_jwt(typ),
            Some(typ) => is_access_token_type(typ),
        };
        if !typed {
            return Err(invalid(Reason::WrongType));
        }

        // 4. The key: by `kid`, and it must be made for this algorithm.
        let key = keys
            .key_for(unverified.kid.as_deref(), alg)
            .map_err(invalid)?;

        // 5. The signature over `header.payload` (RFC 7515 §5.2), with the key parsed when
        //    the key set was loaded.
        let mut signature = [0u8; MAX_SIGNATURE_BYTES + 3];
        let verified = URL_SAFE_NO_PAD
            .decode_slice(segments.signature_b64, &mut signature)
            .is_ok_and(|len| key.verify(alg, segments.signing_input.as_bytes(), &signature[..len]));
        if !verified {
            return Err(invalid(Reason::BadSignature));
        }

        // 6. The claims, now verified (RFC 7519 §4.1, RFC 9068 §4), read once: the checked
        //    claims come out of one pass, and the JSON itself is kept for the caller.
        with_decoded(segments.payload_b64, |bytes| {
            let malformed = || invalid(Reason::Malformed);
            let json = std::str::from_utf8(bytes).map_err(|_| malformed())?;
            if !json.trim_ascii_start().starts_with('{') {
                return Err(malformed());
            }
            let claims = claims::read(json).map_err(|_| malformed())?;
            // An ID token of the same issuer must not pass as an access token when its `aud`
            // happens to be configured (RFC 8725 §3.12).
            if claims.id_token_claim {
                return Err(invalid(Reason::WrongType));
            }
            // `sub`, `client_id`, `cid` and `scope` are strings when present: a `null` or a
            // number is malformed, not absent (else a `null` client_id would fall back to cid).
            if !claims.identity_claims_are_strings() {
                return Err(invalid(Reason::BadClaim));
            }
            self.check_issuer(&claims)?;
            self.check_audience(&claims)?;
            let (valid_from, expires_at) = self.check_times(&claims, now)?;
            Ok(Verified {
                claims: AuthenticatedClaims::from_verified(json, &claims),
                key: Arc::clone(key),
                kid: unverified.kid.as_deref().map(Box::from),
                alg,
                expires_at,
                valid_from,
                claims_bytes: json.len(),
            })
        })
    }

    fn check_issuer(&self, claims: &Registered<'_>) -> Result<(), Error> {
        match &claims.iss {
            None => Err(Error::InvalidToken(Reason::MissingClaim)),
            Some(Claim::Str(iss)) if *iss == self.issuer => Ok(()),
            Some(Claim::Str(_)) => Err(Error::InvalidToken(Reason::WrongIssuer)),
            Some(_) => Err(Error::InvalidToken(Reason::BadClaim)),
        }
    }

    fn check_audience(&self, claims: &Registered<'_>) -> Result<(), Error> {
        let ours = |aud: &Cow<'_, str>| self.audiences.iter().any(|own| own == aud);
        let matched = match &claims.aud {
            None => return Err(Error::InvalidToken(Reason::MissingClaim)),
            Some(Claim::Str(aud)) => ours(aud),
            Some(Claim::List {
                strings,
                only_strings: true,
            }) => strings.iter().any(ours),
            Some(_) => return Err(Error::InvalidToken(Reason::BadClaim)),
        };
        if matched {
            Ok(())
        } else {
            Err(Error::InvalidToken(Reason::WrongAudience))
        }
    }

    /// Checks `exp`, `nbf` and `iat` at `now`; returns from when (leeway included) and until
    /// when (`exp`, without leeway) the token may be taken as valid.
    fn check_times(&self, claims: &Registered<'_>, now: u64) -> Result<(f64, f64), Error> {
        let now = now as f64;
        let leeway = self.leeway_secs as f64;
        let exp = numeric_date(&claims.exp)?.ok_or(Error::InvalidToken(Reason::MissingClaim))?;
        // RFC 7519 §4.1.4: must be processed *before* `exp`.
        if now >= exp + leeway {
            return Err(Error::InvalidToken(Reason::Expired));
        }
        let nbf = numeric_date(&claims.nbf)?;
        if nbf.is_some_and(|nbf| nbf > now + leeway) {
            return Err(Error::InvalidToken(Reason::NotYetValid));
        }
        let iat = numeric_date(&claims.iat)?;
        if iat.is_some_and(|iat| iat > now + leeway) {
            return Err(Error::InvalidToken(Reason::IssuedInFuture));
        }
        let valid_from = nbf.unwrap_or(0.0).max(iat.unwrap_or(0.0)) - leeway;
        Ok((valid_from, exp))
    }
}

/// RFC 7519 §2 NumericDate: a JSON number of seconds; anything else is a malformed claim.
fn numeric_date(claim: &Option<Claim<'_>>) -> Result<Option<f64>, Error> {
    match claim {
        None => Ok(None),
        Some(Claim::Number(secs)) if secs.is_finite() && *secs >= 0.0 => Ok(Some(*secs)),
        Some(_) => Err(Error::InvalidToken(Reason::BadClaim)),
    }
}

/// RFC 9068 §2.1 `at+jwt` (with or without the `application/` prefix), or the generic `JWT`
/// that Auth0-style issuers write. Media types compare case-insensitively.
fn is_access_token_type(typ: &str) -> bool {
    let typ = without_application_prefix(typ);
    typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("jwt")
}

/// RFC 9068 §2.1 `at+jwt` alone (with or without the `application/` prefix): the strict mode.
fn is_at_jwt(typ: &str) -> bool {
    without_application_prefix(typ).eq_ignore_ascii_case("at+jwt")
}

fn without_application_prefix(typ: &str) -> &str {
    match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    }
}

/// Decodes one unpadded base64url segment (RFC 7515 §2) and hands the bytes to `use_bytes`:
/// on the stack when the segment is small, as headers and most claims are.
pub(crate) fn with_decoded<R>(
    segment: &str,
    use_bytes: impl FnOnce(&[u8]) -> Result<R, Error>,
) -> Result<R, Error> {
    let malformed = Error::InvalidToken(Reason::Malformed);
    if base64::decoded_len_estimate(segment.len()) <= STACK_SEGMENT_BYTES {
        let mut buffer = [0u8; STACK_SEGMENT_BYTES];
        let len = URL_SAFE_NO_PAD
            .decode_slice(segment, &mut buffer)
            .map_err(|_| malformed)?;
        use_bytes(&buffer[..len])
    } else {
        use_bytes(&URL_SAFE_NO_PAD.decode(segment).map_err(|_| malformed)?)
    }
}

/// Parses a decoded segment holding a JSON object (RFC 7515 §5.2): an array is not an
/// object, even where a derived struct would accept one.
fn parse_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Error> {
    if !bytes.trim_ascii_start().starts_with(b"{") {
        return Err(Error::InvalidToken(Reason::Malformed));
    }
    serde_json::from_slice(bytes).map_err(|_| Error::InvalidToken(Reason::Malformed))
}

/// Seconds since the epoch, with the fraction: a cache entry must not outlive `exp` by the
/// part of a second a whole-second clock would hide. Validation itself uses whole seconds.
pub(crate) fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_token_types_are_accepted_case_insensitively() {
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/AT+JWT",
            "JWT",
            "jwt",
        ] {
            assert!(is_access_token_type(typ), "{typ}");
        }
        for typ in [
            "dpop+jwt",
            "secevent+jwt",
            "JOSE",
            "",
            "application/",
            "appl",
        ] {
            assert!(!is_access_token_type(typ), "{typ}");
        }
    }

    #[test]
    fn numeric_dates_must_be_non_negative_numbers() {
        assert_eq!(numeric_date(&Some(Claim::Number(1.5))), Ok(Some(1.5)));
        assert_eq!(numeric_date(&None), Ok(None));
        for claim in [
            Claim::Str("1".into()),
            Claim::Number(-1.0),
            Claim::Number(f64::INFINITY),
            Claim::Other,
        ] {
            assert_eq!(
                numeric_date(&Some(claim)),
                Err(Error::InvalidToken(Reason::BadClaim))
            );
        }
    }
}
