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
use crate::trace::{Check, Detail, NoTrace, Trace};
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
        self.verify_traced(token, keys, now, &mut NoTrace)
    }

    /// [`Validator::verify_at`], reporting each check to `trace`.
    pub(crate) fn verify_traced<T: Trace>(
        &self,
        token: &str,
        keys: &KeySet,
        now: u64,
        trace: &mut T,
    ) -> Result<Verified, Error> {
        let invalid = Error::InvalidToken;
        // 1. Size, then shape: three base64url segments (RFC 7515 §7.1).
        let mut parts = token.split('.');
        let shape = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            _ if token.len() > MAX_TOKEN_BYTES => Err(invalid(Reason::TooLarge)),
            (Some(header), Some(payload), Some(signature), None) if !signature.is_empty() => {
                Ok((header, payload, signature))
            }
            _ => Err(invalid(Reason::Malformed)),
        };
        trace.record(Check::Token, &verdict(&shape), || Detail {
            found: Some(format!(
                "{} bytes, {} segments",
                token.len(),
                token.split('.').count()
            )),
            expected: Some(format!(
                "at most {MAX_TOKEN_BYTES} bytes, 3 segments (a JWS in compact form)"
            )),
        });
        let (header_b64, payload_b64, signature_b64) = shape?;
        let segments = Segments {
            signing_input: &token[..header_b64.len() + 1 + payload_b64.len()],
            payload_b64,
            signature_b64,
        };
        // The header is parsed where it was decoded (borrowing its strings), and stays there.
        let mut decoded = false;
        let verified = with_decoded(header_b64, |bytes| {
            decoded = true;
            match parse_json(bytes) {
                Ok(header) => self.verify_with_header(header, &segments, keys, now, trace),
                Err(error) => {
                    trace.record(Check::Header, &Err(error.clone()), || Detail {
                        found: Some("not a JSON object naming each parameter once".into()),
                        expected: None,
                    });
                    Err(error)
                }
            }
        });
        if !decoded {
            trace.record(Check::Header, &verdict(&verified), || Detail {
                found: Some("not base64url".into()),
                expected: None,
            });
        }
        verified
    }

    fn verify_with_header<T: Trace>(
        &self,
        unverified_header: UnverifiedHeader<'_>,
        segments: &Segments<'_>,
        keys: &KeySet,
        now: u64,
        trace: &mut T,
    ) -> Result<Verified, Error> {
        let invalid = Error::InvalidToken;
        let unverified = &unverified_header;

        // 2. Keys come only from the issuer's JWKS; unknown critical extensions reject
        //    (RFC 7515 §4.1.11). Checked here, refused after the algorithm.
        let header = if unverified.jku || unverified.jwk || unverified.x5u || unverified.x5c {
            Err(invalid(Reason::KeyInHeader))
        } else if unverified.crit {
            Err(invalid(Reason::UnsupportedCritical))
        } else {
            Ok(())
        };
        trace.record(Check::Header, &header, || Detail {
            found: Some(format!(
                "alg {}, kid {}, typ {}{}",
                shown(unverified.alg.as_deref()),
                shown(unverified.kid.as_deref()),
                shown(unverified.typ.as_deref()),
                if unverified.crit { ", crit" } else { "" }
            )),
            expected: Some("no jku, jwk, x5u, x5c or crit".into()),
        });

        // 3. The algorithm comes from our allow-list, never from the token (RFC 8725 §3.1):
        //    `none`, HMAC and anything unlisted stop here.
        let alg = unverified
            .alg
            .as_deref()
            .and_then(|unverified_alg| unverified_alg.parse::<Algorithm>().ok())
            .filter(|alg| self.algorithms.contains(alg))
            .ok_or(invalid(Reason::AlgorithmNotAllowed));
        trace.record(Check::Algorithm, &verdict(&alg), || {
            let allowed: Vec<&str> = self.algorithms.iter().map(|a| a.name()).collect();
            Detail::new(
                unverified.alg.as_deref().map(str::to_owned),
                allowed.join(","),
            )
        });
        // The algorithm is refused first, then a key in the header, then `crit`.
        let alg = alg?;
        header?;

        // 4. Explicit typing keeps other JWTs out (RFC 8725 §3.11).
        let typed = match unverified.typ.as_deref() {
            None => !self.require_at_jwt,
            Some(typ) if self.require_at_jwt => is_at_jwt(typ),
            Some(typ) => is_access_token_type(typ),
        };
        let typed = if typed {
            Ok(())
        } else {
            Err(invalid(Reason::WrongType))
        };
        trace.record(Check::Type, &typed, || {
            let expected = if self.require_at_jwt {
                "at+jwt (strict typing)"
            } else {
                "at+jwt, JWT or none"
            };
            Detail::new(unverified.typ.as_deref().map(str::to_owned), expected)
        });
        typed?;

        // 5. The key: by `kid`, and it must be made for this algorithm.
        let key = keys
            .key_for(unverified.kid.as_deref(), alg)
            .map_err(invalid);
        trace.record(Check::Key, &verdict(&key), || {
            Detail::new(
                unverified.kid.as_deref().map(str::to_owned),
                format!(
                    "one of the issuer's {} published key(s) for {}",
                    keys.len(),
                    alg.name()
                ),
            )
        });
        let key = key?;

        // 6. The signature over `header.payload` (RFC 7515 §5.2), with the key parsed when
        //    the key set was loaded.
        let mut signature = [0u8; MAX_SIGNATURE_BYTES + 3];
        let verified = URL_SAFE_NO_PAD
            .decode_slice(segments.signature_b64, &mut signature)
            .is_ok_and(|len| key.verify(alg, segments.signing_input.as_bytes(), &signature[..len]));
        let verified = if verified {
            Ok(())
        } else {
            Err(invalid(Reason::BadSignature))
        };
        trace.record(Check::Signature, &verified, || Detail {
            found: None,
            expected: Some(format!("{} with the issuer's key", alg.name())),
        });
        verified?;

        // 7. The claims, now verified (RFC 7519 §4.1, RFC 9068 §4), read once: the checked
        //    claims come out of one pass, and the JSON itself is kept for the caller.
        with_decoded(segments.payload_b64, |bytes| {
            let malformed = || invalid(Reason::Malformed);
            let read = std::str::from_utf8(bytes)
                .ok()
                .filter(|json| json.trim_ascii_start().starts_with('{'))
                .and_then(|json| Some((json, claims::read(json).ok()?)))
                .ok_or_else(malformed);
            let shape = read.as_ref().map_err(Clone::clone).and_then(|(_, claims)| {
                // An ID token of the same issuer must not pass as an access token when its
                // `aud` happens to be configured (RFC 8725 §3.12).
                if claims.id_token_claim {
                    return Err(invalid(Reason::WrongType));
                }
                // `sub`, `client_id`, `cid` and `scope` are strings when present: a `null`
                // or a number is malformed, not absent (else a `null` client_id would fall
                // back to cid).
                if !claims.identity_claims_are_strings() {
                    return Err(invalid(Reason::BadClaim));
                }
                Ok(())
            });
            trace.record(Check::Claims, &shape, || Detail {
                found: None,
                expected: Some(
                    "a JSON object, each claim once, no ID-token claim (nonce, at_hash, c_hash), sub, client_id, cid and scope strings".into(),
                ),
            });
            shape?;
            let (json, claims) = read?;
            let issuer = self.check_issuer(&claims);
            trace.record(Check::Issuer, &issuer, || {
                Detail::new(shown_claim(&claims.iss), self.issuer.clone())
            });
            if !T::GO_ON {
                issuer.clone()?;
            }
            let audience = self.check_audience(&claims);
            trace.record(Check::Audience, &audience, || {
                Detail::new(shown_claim(&claims.aud), self.audiences.join(","))
            });
            if !T::GO_ON {
                audience.clone()?;
            }
            let times = self.check_times(&claims, now, trace);
            issuer?;
            audience?;
            let (valid_from, expires_at) = times?;
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
    fn check_times<T: Trace>(
        &self,
        claims: &Registered<'_>,
        now: u64,
        trace: &mut T,
    ) -> Result<(f64, f64), Error> {
        let expected = |rule: &str| format!("{rule} (leeway {}s)", self.leeway_secs);
        let now = now as f64;
        let leeway = self.leeway_secs as f64;
        // RFC 7519 §4.1.4: must be processed *before* `exp`.
        let exp = numeric_date(&claims.exp).and_then(|exp| match exp {
            None => Err(Error::InvalidToken(Reason::MissingClaim)),
            Some(exp) if now >= exp + leeway => Err(Error::InvalidToken(Reason::Expired)),
            Some(exp) => Ok(exp),
        });
        trace.record(Check::Expiry, &verdict(&exp), || {
            Detail::new(shown_claim(&claims.exp), expected("in the future"))
        });
        if !T::GO_ON {
            exp.clone()?;
        }
        let nbf = numeric_date(&claims.nbf).and_then(|nbf| match nbf {
            Some(nbf) if nbf > now + leeway => Err(Error::InvalidToken(Reason::NotYetValid)),
            nbf => Ok(nbf),
        });
        trace.record(Check::NotBefore, &verdict(&nbf), || {
            Detail::new(shown_claim(&claims.nbf), expected("in the past, or none"))
        });
        if !T::GO_ON {
            nbf.clone()?;
        }
        let iat = numeric_date(&claims.iat).and_then(|iat| match iat {
            Some(iat) if iat > now + leeway => Err(Error::InvalidToken(Reason::IssuedInFuture)),
            iat => Ok(iat),
        });
        trace.record(Check::IssuedAt, &verdict(&iat), || {
            Detail::new(shown_claim(&claims.iat), expected("in the past, or none"))
        });
        let (exp, nbf, iat) = (exp?, nbf?, iat?);
        let valid_from = nbf.unwrap_or(0.0).max(iat.unwrap_or(0.0)) - leeway;
        Ok((valid_from, exp))
    }
}

/// The pass or failure of a step that produced a value, for a report.
fn verdict<T>(result: &Result<T, Error>) -> Result<(), Error> {
    result.as_ref().map(|_| ()).map_err(Clone::clone)
}

impl Validator {
    /// Checks an active introspection answer's claims (RFC 7662 §2.2) as a token's would be
    /// checked: `iss`, `aud`, then `exp`, `nbf` and `iat` at `now`. For an opaque token
    /// (`required`) the answer is all there is, so `iss`, `aud` and `exp` must be present;
    /// for a JWT, already checked locally, the answer's are checked when it has them.
    /// Returns the answer's `exp`, if any.
    pub(crate) fn check_introspected(
        &self,
        claims: &Registered<'_>,
        now: u64,
        required: bool,
    ) -> Result<Option<f64>, Error> {
        if required || claims.iss.is_some() {
            self.check_issuer(claims)?;
        }
        if required || claims.aud.is_some() {
            self.check_audience(claims)?;
        }
        if required || claims.exp.is_some() {
            let (_, exp) = self.check_times(claims, now, &mut NoTrace)?;
            return Ok(Some(exp));
        }
        Ok(None)
    }
}

/// An unverified header value for a report.
fn shown(value: Option<&str>) -> String {
    value.map_or_else(|| "(none)".to_owned(), |v| format!("{v:?}"))
}

/// A claim's value for a report: a string as is, a number, a list of strings joined.
fn shown_claim(claim: &Option<Claim<'_>>) -> Option<String> {
    Some(match claim.as_ref()? {
        Claim::Str(value) => value.to_string(),
        Claim::Number(value) => value.to_string(),
        Claim::List {
            strings,
            only_strings,
        } => {
            let listed = strings.join(",");
            if *only_strings {
                format!("[{listed}]")
            } else {
                format!("[{listed}, and values that are not strings]")
            }
        }
        Claim::Other => "(not a string, number or list)".to_owned(),
    })
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
