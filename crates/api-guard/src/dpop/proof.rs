//! Checks one DPoP proof (RFC 9449 §4.3) against the request it came with: numbered steps
//! in the RFC's order, everything read before the signature check `unverified_`. What
//! needs the access token's claims (`cnf.jkt`) and the replay store comes after, in the
//! guard.

use std::time::Duration;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::htu;
use super::nonce::Nonces;
use super::replay::ProofId;
use crate::Algorithm;
use crate::error::Reason;
use crate::jwks::parse_proof_key;

/// Proofs longer than this are refused before any parsing.
pub(crate) const MAX_PROOF_BYTES: usize = 8 * 1024;

/// JWK members that only a private (or symmetric) key has (RFC 7518 §6.2.2, §6.3.2, §6.4.1;
/// RFC 8037 §2).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// What the request says a proof must match.
pub(crate) struct Expected<'a> {
    /// The request method, exactly (`htm`).
    pub(crate) method: &'a str,
    /// The request's public URL without query, already normalised (`htu`).
    pub(crate) url: &'a str,
    /// The access token sent with the proof (`ath`); `None` at a token endpoint, where no
    /// token exists yet (RFC 9449 §5).
    pub(crate) token: Option<&'a str>,
    /// Seconds since the epoch.
    pub(crate) now: u64,
    /// How old a proof may be.
    pub(crate) window: Duration,
    /// How far in the future `iat` may be.
    pub(crate) leeway: Duration,
    /// When nonces are on: the proof must carry a current one (RFC 9449 §9).
    pub(crate) nonces: Option<&'a Nonces>,
}

/// A proof that passed every check that does not need the token's claims or the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckedProof {
    /// RFC 7638 thumbprint of the proof's key, base64url: compared with `cnf.jkt`.
    pub(crate) thumbprint: String,
    /// The proof's id in the replay store.
    pub(crate) id: ProofId,
    /// How long the store must remember it: until its `iat` leaves the window.
    pub(crate) ttl: Duration,
}

#[derive(Deserialize)]
struct UnverifiedHeader {
    typ: Option<String>,
    alg: Option<String>,
    jwk: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

fn present<'de, D: serde::Deserializer<'de>>(value: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(value).map(|_| true)
}

/// The claims a proof must carry (RFC 9449 §4.2); others are ignored. A derived struct
/// refuses a name given twice.
#[derive(Deserialize)]
struct Claims {
    jti: String,
    htm: String,
    htu: String,
    iat: f64,
    ath: Option<String>,
    nonce: Option<String>,
}

/// Checks `proof` against `expected`: every check of RFC 9449 §4.3 except the key binding
/// (§4.3 check 12, `cnf.jkt`) and the replay check (check 11), which follow in the guard.
pub(crate) fn check(proof: &str, expected: &Expected<'_>) -> Result<CheckedProof, Reason> {
    // 1–2. One well-formed JWT, not too large (the header count is the caller's).
    if proof.len() > MAX_PROOF_BYTES {
        return Err(Reason::DpopTooLarge);
    }
    let mut parts = proof.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Reason::DpopMalformed);
    };
    let unverified_header: UnverifiedHeader = json_segment(header_b64)?;

    // 4. Explicitly typed (RFC 8725 §3.11): a token or another JWT is not a proof.
    let typed = unverified_header.typ.as_deref().is_some_and(is_dpop_type);
    if !typed {
        return Err(Reason::DpopWrongType);
    }
    // 5. An asymmetric algorithm from our list: `none` and HMAC never parse.
    let alg: Algorithm = unverified_header
        .alg
        .as_deref()
        .and_then(|unverified_alg| unverified_alg.parse().ok())
        .ok_or(Reason::DpopAlgorithmNotAllowed)?;
    if unverified_header.crit {
        return Err(Reason::DpopUnsupportedCritical);
    }
    // 6. A public key only, fit for `alg`.
    let unverified_jwk = unverified_header.jwk.ok_or(Reason::DpopBadKey)?;
    if PRIVATE_MEMBERS
        .iter()
        .any(|member| unverified_jwk.contains_key(*member))
    {
        return Err(Reason::DpopPrivateKey);
    }
    let thumbprint = thumbprint(&unverified_jwk).ok_or(Reason::DpopBadKey)?;
    let key = parse_proof_key(Value::Object(unverified_jwk)).ok_or(Reason::DpopBadKey)?;
    if !key.accepts(alg) {
        return Err(Reason::DpopBadKey);
    }

    // 7. The signature, with the proof's own key: it proves possession of that key, which
    //    the token's `cnf.jkt` must name (checked later).
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| Reason::DpopMalformed)?;
    let signing_input = &proof[..header_b64.len() + 1 + payload_b64.len()];
    if !key.verify(alg, signing_input.as_bytes(), &signature) {
        return Err(Reason::DpopBadSignature);
    }

    // 8–10. The verified claims against the request.
    let claims: Claims = json_segment(payload_b64)?;
    if claims.jti.is_empty() || claims.jti.len() > 256 {
        return Err(Reason::DpopMalformed);
    }
    // §9: without the current nonce the client is told it (the caller adds `DPoP-Nonce`).
    if let Some(nonces) = expected.nonces {
        let fresh = claims
            .nonce
            .as_deref()
            .is_some_and(|nonce| nonces.accepts(nonce, expected.now));
        if !fresh {
            return Err(Reason::DpopUseNonce);
        }
    }
    if claims.htm != expected.method {
        return Err(Reason::DpopWrongMethod);
    }
    if htu::normalise(&claims.htu).as_deref() != Some(expected.url) {
        return Err(Reason::DpopWrongUrl);
    }
    if !claims.iat.is_finite() || claims.iat < 0.0 {
        return Err(Reason::DpopMalformed);
    }
    let now = expected.now as f64;
    if claims.iat > now + expected.leeway.as_secs_f64() {
        return Err(Reason::DpopIssuedInFuture);
    }
    let window = expected.window.as_secs_f64();
    if claims.iat < now - window {
        return Err(Reason::DpopStale);
    }
    // 10 (§4.3 check 10, §7.1): the hash of the very token sent with the proof.
    if let Some(token) = expected.token {
        match claims.ath {
            None => return Err(Reason::DpopMalformed),
            Some(ath) if ath != token_hash(token) => return Err(Reason::DpopWrongTokenHash),
            Some(_) => {}
        }
    }
    // Remembered until `iat` leaves the window, plus a second for the fractions.
    let ttl = Duration::from_secs_f64((claims.iat + window - now).max(0.0) + 1.0);
    Ok(CheckedProof {
        id: ProofId::new(&thumbprint, &claims.jti),
        thumbprint,
        ttl,
    })
}

/// `typ` is a media type: case-insensitive, with or without `application/`.
fn is_dpop_type(typ: &str) -> bool {
    let typ = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    typ.eq_ignore_ascii_case("dpop+jwt")
}

/// base64url(SHA-256(token)): the `ath` of a proof sent with `token` (RFC 9449 §4.2).
pub(crate) fn token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

/// The RFC 7638 thumbprint (SHA-256, base64url) of a public JWK: the required members in
/// lexicographic order, no whitespace. `None` when a required member is missing or not a
/// string, or the key type is not one we verify.
pub(crate) fn thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    let members: &[&str] = match member("kty")? {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    // `members` are listed in lexicographic order already.
    let mut json = String::from("{");
    for (index, name) in members.iter().enumerate() {
        if index > 0 {
            json.push(',');
        }
        json.push_str(&Value::from(*name).to_string());
        json.push(':');
        json.push_str(&Value::from(member(name)?).to_string());
    }
    json.push('}');
    Some(URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, json.as_bytes())))
}

fn json_segment<T: for<'de> Deserialize<'de>>(segment: &str) -> Result<T, Reason> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| Reason::DpopMalformed)?;
    if !bytes.trim_ascii_start().starts_with(b"{") {
        return Err(Reason::DpopMalformed);
    }
    serde_json::from_slice(&bytes).map_err(|_| Reason::DpopMalformed)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_thumbprint_is_rfc_7638s_own_example() {
        // RFC 7638 §3.1.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        let Value::Object(jwk) = jwk else { panic!() };
        assert_eq!(
            thumbprint(&jwk).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
    }

    #[test]
    fn the_token_hash_is_rfc_9449s_own_example() {
        // RFC 9449 §7.1, Figure 13's token and `ath`.
        assert_eq!(
            token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[test]
    fn the_dpop_type_is_a_case_insensitive_media_type() {
        for typ in ["dpop+jwt", "DPoP+JWT", "application/dpop+jwt"] {
            assert!(is_dpop_type(typ), "{typ}");
        }
        for typ in ["JWT", "at+jwt", "dpop", "", "application/"] {
            assert!(!is_dpop_type(typ), "{typ}");
        }
    }
}
