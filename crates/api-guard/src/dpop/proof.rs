//! Checks one DPoP proof (RFC 9449 §4.3) against the request it came with: numbered steps
//! in the RFC's order, everything read before the signature check `unverified_`. What
//! needs the access token's claims (`cnf.jkt`) and the replay store comes after, in the
//! guard.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
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
use crate::jwks::{Key, parse_proof_key};

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
    /// The `cnf.jkt` of the token sent with the proof. A proof's header is remembered (see
    /// [`Headers`]) only when its key is this one: only the holder of a key some issuer
    /// bound a token to can add to the memory, and a made-up key never can.
    pub(crate) bound_to: Option<&'a str>,
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
    // 3–6, or what they gave for this very header before.
    let remembered = HEADERS.get(header_b64);
    let header = match &remembered {
        Some(header) => header,
        None => &check_header(header_b64)?,
    };
    let alg = header.alg;

    // 7. The signature, with the proof's own key: it proves possession of that key, which
    //    the token's `cnf.jkt` must name (checked later).
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| Reason::DpopMalformed)?;
    let signing_input = &proof[..header_b64.len() + 1 + payload_b64.len()];
    if !header.key.verify(alg, signing_input.as_bytes(), &signature) {
        return Err(Reason::DpopBadSignature);
    }
    let thumbprint = header.thumbprint.clone();
    if remembered.is_none() && expected.bound_to == Some(thumbprint.as_str()) {
        // The key signed this proof and a token is bound to it.
        HEADERS.remember(header_b64, header);
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

/// What a proof's header gave once checked (steps 3 to 6): the same for every proof a
/// client signs with one key, so it is remembered (see [`Headers`]).
struct CheckedHeader {
    alg: Algorithm,
    /// RFC 7638 thumbprint of `key`.
    thumbprint: String,
    key: Key,
}

/// 3–6: the header of a proof, `unverified_` until the signature is checked with its key.
fn check_header(header_b64: &str) -> Result<Arc<CheckedHeader>, Reason> {
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
    Ok(Arc::new(CheckedHeader {
        alg,
        thumbprint,
        key,
    }))
}

/// Headers whose key signed a proof sent with a token bound to that key, by their exact
/// base64url text: a client signs every proof with one key under one header, so its header
/// is decoded, its key parsed (a P-256 point checked on the curve, an RSA modulus read) and
/// its thumbprint hashed once, not on every request. A hit is exact, byte for byte, so it
/// gives what checking the same text again would; the signature is still checked. Bounded:
/// at most [`HEADERS_KEPT`] headers of at most [`HEADER_KEPT_BYTES`] each; when full it
/// starts over (a client then parses its key once more).
struct Headers(LazyLock<Mutex<HashMap<Box<str>, Arc<CheckedHeader>>>>);

const HEADERS_KEPT: usize = 256;
/// An RSA-4096 `jwk` header is about 1 KiB of base64url.
const HEADER_KEPT_BYTES: usize = 2048;

static HEADERS: Headers = Headers(LazyLock::new(Mutex::default));

impl Headers {
    fn lock(&self) -> MutexGuard<'_, HashMap<Box<str>, Arc<CheckedHeader>>> {
        // Every change to the map is a single step: a panic cannot leave it half-made.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, header_b64: &str) -> Option<Arc<CheckedHeader>> {
        // A header too long to be kept is not looked for (nor hashed under the lock).
        if header_b64.len() > HEADER_KEPT_BYTES {
            return None;
        }
        self.lock().get(header_b64).cloned()
    }

    fn remember(&self, header_b64: &str, header: &Arc<CheckedHeader>) {
        if header_b64.len() > HEADER_KEPT_BYTES {
            return;
        }
        let mut headers = self.lock();
        if headers.len() >= HEADERS_KEPT {
            headers.clear();
        }
        headers.insert(header_b64.into(), Arc::clone(header));
    }
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

    /// A fresh P-256 key's proof of `GET https://api.example.com/orders` at time 1000, with
    /// `extra` members in its `jwk`; returns the proof and its header's base64url.
    fn signed_proof(
        key: &aws_lc_rs::signature::EcdsaKeyPair,
        extra: Value,
        sign_with: &aws_lc_rs::signature::EcdsaKeyPair,
    ) -> (String, String) {
        use aws_lc_rs::signature::KeyPair;
        let point = key.public_key().as_ref();
        let mut jwk = json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        if let (Value::Object(jwk), Value::Object(extra)) = (&mut jwk, extra) {
            jwk.extend(extra);
        }
        let header = URL_SAFE_NO_PAD
            .encode(json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}).to_string());
        let claims = json!({"jti": "j1", "htm": "GET", "htu": URL, "iat": 1000});
        let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = sign_with
            .sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes())
            .expect("signing works");
        (
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref())),
            header,
        )
    }

    const URL: &str = "https://api.example.com/orders";

    /// What a proof for GET [`URL`] at time 1000 must match, sent with a token bound to the
    /// key `bound_to` names.
    fn expected(bound_to: Option<&str>) -> Expected<'_> {
        Expected {
            method: "GET",
            url: URL,
            token: None,
            now: 1000,
            window: Duration::from_secs(180),
            leeway: Duration::from_secs(60),
            nonces: None,
            bound_to,
        }
    }

    fn new_key() -> aws_lc_rs::signature::EcdsaKeyPair {
        aws_lc_rs::signature::EcdsaKeyPair::generate(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        )
        .expect("a key")
    }

    #[test]
    fn a_header_is_remembered_only_once_its_key_has_signed_a_proof_for_a_token_bound_to_it() {
        let (key, other) = (new_key(), new_key());
        let (proof, header) = signed_proof(&key, json!({}), &key);
        let jkt = check(&proof, &expected(None))
            .expect("a good proof")
            .thumbprint;
        assert!(HEADERS.get(&header).is_none(), "no token bound to the key");
        let other_jkt = check(&signed_proof(&other, json!({}), &other).0, &expected(None))
            .expect("a good proof")
            .thumbprint;
        assert!(check(&proof, &expected(Some(&other_jkt))).is_ok());
        assert!(
            HEADERS.get(&header).is_none(),
            "a token bound to another key"
        );
        let (forged, _) = signed_proof(&key, json!({}), &other);
        assert_eq!(
            check(&forged, &expected(Some(&jkt))),
            Err(Reason::DpopBadSignature)
        );
        assert!(HEADERS.get(&header).is_none(), "a signature by another key");
        check(&proof, &expected(Some(&jkt))).expect("a good proof");
        let remembered = HEADERS
            .get(&header)
            .expect("kept: signed, and the token's key");
        assert_eq!(remembered.thumbprint, jkt);
    }

    #[test]
    fn a_remembered_header_still_needs_its_keys_signature_on_every_proof() {
        let (key, other) = (new_key(), new_key());
        let (proof, header) = signed_proof(&key, json!({}), &key);
        let jkt = check(&proof, &expected(None))
            .expect("a good proof")
            .thumbprint;
        let first = check(&proof, &expected(Some(&jkt))).expect("a good proof");
        assert!(HEADERS.get(&header).is_some());
        // Again, from the memory: the same answer.
        assert_eq!(check(&proof, &expected(Some(&jkt))), Ok(first));
        // The same header over a signature by another key.
        let (forged, _) = signed_proof(&key, json!({}), &other);
        assert_eq!(
            check(&forged, &expected(Some(&jkt))),
            Err(Reason::DpopBadSignature)
        );
    }

    #[test]
    fn a_header_that_differs_by_a_member_is_checked_afresh() {
        let key = new_key();
        let (proof, _) = signed_proof(&key, json!({}), &key);
        let jkt = check(&proof, &expected(None))
            .expect("a good proof")
            .thumbprint;
        assert!(check(&proof, &expected(Some(&jkt))).is_ok());
        // The same key, now marked for encryption, or with a private member.
        let (for_encryption, _) = signed_proof(&key, json!({"use": "enc"}), &key);
        assert_eq!(
            check(&for_encryption, &expected(Some(&jkt))),
            Err(Reason::DpopBadKey)
        );
        let (private, _) = signed_proof(&key, json!({"d": "AAAA"}), &key);
        assert_eq!(
            check(&private, &expected(Some(&jkt))),
            Err(Reason::DpopPrivateKey)
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
