//! A parsed JSON Web Key Set (RFC 7517 §5), ready for verification.
//!
//! Each JWK is checked on its own: a key that is unusable (symmetric, for encryption, too
//! short, a curve we do not support, bad encoding) is skipped with a warning and never spoils
//! the rest of the set. Each usable key is parsed into aws-lc verification keys once, when
//! the set is loaded, so a request only runs the signature check itself.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use aws_lc_rs::signature::{self, ParsedPublicKey, VerificationAlgorithm};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::Algorithm;
use crate::error::Reason;
use crate::outside::quoted;

/// Most keys a set may hold; issuers publish a handful (Okta: two to four).
pub(crate) const MAX_KEYS: usize = 64;
/// RFC 7518 §3.3: RSA keys of 2048 bits or more; aws-lc verifies up to 8192.
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

/// The kind of public key, which decides the algorithms it may verify (RFC 8725 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// `kty: RSA`: RS256/384/512 and PS256/384/512.
    Rsa,
    /// `kty: EC, crv: P-256`: ES256.
    EcP256,
    /// `kty: EC, crv: P-384`: ES384.
    EcP384,
    /// `kty: OKP, crv: Ed25519`: EdDSA.
    Ed25519,
}

impl KeyKind {
    /// Whether a key of this kind may verify `alg`.
    pub(crate) fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        matches!(
            (self, alg),
            (KeyKind::Rsa, RS256 | RS384 | RS512 | PS256 | PS384 | PS512)
                | (KeyKind::EcP256, ES256)
                | (KeyKind::EcP384, ES384)
                | (KeyKind::Ed25519, EdDSA)
        )
    }
}

/// One usable verification key.
pub(crate) struct Key {
    /// What the key is.
    pub(crate) kind: KeyKind,
    /// The JWK's `alg`, when it names one: then only that algorithm may use the key.
    pub(crate) alg: Option<Algorithm>,
    /// The public key, parsed once for each algorithm it accepts (aws-lc binds a parsed key
    /// to one algorithm; an RSA key without `alg` gets one per RS/PS variant).
    verifiers: Vec<(Algorithm, ParsedPublicKey)>,
}

impl Key {
    /// Whether this key may verify a token whose header says `alg` (RFC 8725 §2.1, §3.1).
    pub(crate) fn accepts(&self, alg: Algorithm) -> bool {
        self.kind.fits(alg) && self.alg.is_none_or(|own| own == alg)
    }

    /// Whether `signature` (already base64url-decoded) is this key's signature of `message`
    /// under `alg`. `false` for an algorithm the key does not accept.
    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.accepts(alg)
            && self
                .verifiers
                .iter()
                .find(|(own, _)| *own == alg)
                .is_some_and(|(_, key)| key.verify_sig(message, signature).is_ok())
    }

    /// Whether `other` is the same key: same kind, same `alg` restriction, same public key.
    fn same_as(&self, other: &Key) -> bool {
        self.kind == other.kind && self.alg == other.alg && self.public_key() == other.public_key()
    }

    /// The public key's encoding (every verifier holds the same key).
    fn public_key(&self) -> &[u8] {
        self.verifiers.first().map_or(&[], |(_, key)| key.as_ref())
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish()
    }
}

/// The verification keys of an issuer, by `kid`. Keys are shared (`Arc`), so that a key
/// unchanged by a refresh stays the very same object: the token cache recognises it.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    by_kid: HashMap<String, Arc<Key>>,
    without_kid: Vec<Arc<Key>>,
}

impl KeySet {
    /// Parses a JWKS document. Fails only if the document itself is not a JWKS; unusable
    /// keys are skipped with a warning.
    pub(crate) fn from_json(document: &[u8]) -> Result<KeySet, String> {
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document = serde_json::from_slice(document).map_err(|e| {
            format!(
                "not a JWK set (an object with a `keys` array): {}",
                quoted(&e.to_string())
            )
        })?;
        let mut set = KeySet::default();
        for (index, jwk) in document.keys.into_iter().enumerate() {
            if set.len() == MAX_KEYS {
                log::warn!(
                    "JWKS: more than {MAX_KEYS} usable keys; ignoring key #{index} and later"
                );
                break;
            }
            match parse_jwk(jwk) {
                Ok((Some(kid), key)) => match set.by_kid.entry(kid) {
                    Entry::Occupied(taken) => log::warn!(
                        "JWKS: key #{index} repeats kid {}; keeping the first",
                        quoted(taken.key())
                    ),
                    Entry::Vacant(free) => {
                        free.insert(Arc::new(key));
                    }
                },
                Ok((None, key)) => set.without_kid.push(Arc::new(key)),
                Err(why) => log::warn!("JWKS: skipping key #{index}: {why}"),
            }
        }
        Ok(set)
    }

    /// The key a token names, if it may verify `alg`: by `kid`, or, for a token without one,
    /// the only key that accepts `alg`. The validator finds keys here, and the token cache
    /// checks here that a cached token's key is still the one the set has for it.
    pub(crate) fn key_for(
        &self,
        unverified_kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<&Arc<Key>, Reason> {
        let key = match unverified_kid {
            Some(kid) => self.by_kid.get(kid).ok_or(Reason::UnknownKey)?,
            None => self.only_key_for(alg).ok_or(Reason::MissingKeyId)?,
        };
        if key.accepts(alg) {
            Ok(key)
        } else {
            Err(Reason::KeyMismatch)
        }
    }

    /// The key named `kid`, whatever it accepts.
    #[cfg(test)]
    pub(crate) fn get(&self, kid: &str) -> Option<&Arc<Key>> {
        self.by_kid.get(kid)
    }

    /// For a token without `kid`: the one key that accepts `alg`, if exactly one does.
    fn only_key_for(&self, alg: Algorithm) -> Option<&Arc<Key>> {
        let mut candidates = self
            .by_kid
            .values()
            .chain(self.without_kid.iter())
            .filter(|key| key.accepts(alg));
        let first = candidates.next()?;
        candidates.next().is_none().then_some(first)
    }

    /// How many usable keys the set holds.
    pub(crate) fn len(&self) -> usize {
        self.by_kid.len() + self.without_kid.len()
    }

    /// Whether the set holds no usable key.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes over from `previous` every key that did not change (same `kid`, kind, `alg` and
    /// public key), so what was verified with it stays recognisably verified by it.
    pub(crate) fn keep_unchanged_from(&mut self, previous: &KeySet) {
        for (kid, key) in &mut self.by_kid {
            if let Some(old) = previous.by_kid.get(kid).filter(|old| old.same_as(key)) {
                *key = Arc::clone(old);
            }
        }
        for key in &mut self.without_kid {
            if let Some(old) = previous.without_kid.iter().find(|old| old.same_as(key)) {
                *key = Arc::clone(old);
            }
        }
    }

    /// The `kid`s of the set, for logs.
    pub(crate) fn kids(&self) -> Vec<&str> {
        let mut kids: Vec<&str> = self.by_kid.keys().map(String::as_str).collect();
        kids.sort_unstable();
        kids
    }
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// The key of a DPoP proof's `jwk` header (RFC 9449 §4.2), checked as strictly as a key of
/// the issuer's set; `None` when it is not a usable public key.
pub(crate) fn parse_proof_key(jwk: serde_json::Value) -> Option<Key> {
    parse_jwk(jwk).ok().map(|(_, key)| key)
}

fn parse_jwk(jwk: serde_json::Value) -> Result<(Option<String>, Key), String> {
    // serde's message quotes the offending value: escaped and bounded like the rest.
    let raw: RawJwk = serde_json::from_value(jwk)
        .map_err(|e| format!("malformed JWK: {}", quoted(&e.to_string())))?;
    let kid = raw.kid.clone();
    // Text from the network goes to logs quoted, escaped and short.
    let name = quoted(kid.as_deref().unwrap_or("(no kid)"));
    if let Some(use_) = raw.use_.as_deref().filter(|u| *u != "sig") {
        return Err(format!("{name} is for {}, not signatures", quoted(use_)));
    }
    if raw
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|op| op == "verify"))
    {
        return Err(format!("{name} has key_ops without `verify`"));
    }
    let kind = kind_of(&raw).map_err(|why| format!("{name}: {why}"))?;
    let alg = match raw.alg.as_deref() {
        None => None,
        Some(alg) => {
            let alg: Algorithm = alg
                .parse()
                .map_err(|_| format!("{name} has unsupported alg {}", quoted(alg)))?;
            if !kind.fits(alg) {
                return Err(format!("{name} says alg `{alg:?}` but is a {kind:?} key"));
            }
            Some(alg)
        }
    };
    let public_key = public_key(&raw, kind).map_err(|why| format!("{name}: {why}"))?;
    let verifiers = ALGORITHMS
        .iter()
        .filter(|(own, _)| kind.fits(*own) && alg.is_none_or(|alg| alg == *own))
        .map(|&(own, verification)| {
            ParsedPublicKey::new(verification, &public_key)
                .map(|parsed| (own, parsed))
                .map_err(|_| format!("{name}: aws-lc rejects the public key"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok((
        kid,
        Key {
            kind,
            alg,
            verifiers,
        },
    ))
}

/// The aws-lc verification algorithm of each JWS algorithm we verify (RFC 7518 §3.1).
const ALGORITHMS: [(Algorithm, &dyn VerificationAlgorithm); 9] = [
    (Algorithm::RS256, &signature::RSA_PKCS1_2048_8192_SHA256),
    (Algorithm::RS384, &signature::RSA_PKCS1_2048_8192_SHA384),
    (Algorithm::RS512, &signature::RSA_PKCS1_2048_8192_SHA512),
    (Algorithm::PS256, &signature::RSA_PSS_2048_8192_SHA256),
    (Algorithm::PS384, &signature::RSA_PSS_2048_8192_SHA384),
    (Algorithm::PS512, &signature::RSA_PSS_2048_8192_SHA512),
    (Algorithm::ES256, &signature::ECDSA_P256_SHA256_FIXED),
    (Algorithm::ES384, &signature::ECDSA_P384_SHA384_FIXED),
    (Algorithm::EdDSA, &signature::ED25519),
];

fn kind_of(raw: &RawJwk) -> Result<KeyKind, String> {
    match (raw.kty.as_str(), raw.crv.as_deref()) {
        ("RSA", _) => Ok(KeyKind::Rsa),
        ("EC", Some("P-256")) => Ok(KeyKind::EcP256),
        ("EC", Some("P-384")) => Ok(KeyKind::EcP384),
        ("OKP", Some("Ed25519")) => Ok(KeyKind::Ed25519),
        ("oct", _) => Err("symmetric keys are never accepted".into()),
        (kty, crv) => Err(format!(
            "unsupported key type {} / curve {}",
            quoted(kty),
            quoted(crv.unwrap_or("-"))
        )),
    }
}

/// The public key as aws-lc parses it: DER `RSAPublicKey` (RFC 8017 §A.1.1), an uncompressed
/// EC point (SEC 1 §2.3.3), or the 32 Ed25519 bytes (RFC 8037 §2).
fn public_key(raw: &RawJwk, kind: KeyKind) -> Result<Vec<u8>, String> {
    match kind {
        KeyKind::Rsa => {
            let n = bytes(&raw.n, "n")?;
            let e = bytes(&raw.e, "e")?;
            let (n, e) = (strip_leading_zeros(&n), strip_leading_zeros(&e));
            let bits = n
                .first()
                .map_or(0, |top| n.len() * 8 - top.leading_zeros() as usize);
            if !RSA_BITS.contains(&bits) {
                return Err(format!(
                    "RSA modulus of {bits} bits is outside {RSA_BITS:?}"
                ));
            }
            // An odd exponent from 3 up to 2^32 - 1, as aws-lc accepts.
            let odd = e.last().is_some_and(|low| low & 1 == 1);
            if !odd || e.len() > 4 || e == [1] {
                return Err("RSA exponent is out of range".into());
            }
            Ok(rsa_public_key_der(n, e))
        }
        KeyKind::EcP256 | KeyKind::EcP384 => {
            let size = if kind == KeyKind::EcP256 { 32 } else { 48 };
            let (x, y) = (bytes(&raw.x, "x")?, bytes(&raw.y, "y")?);
            if x.len() != size || y.len() != size {
                return Err(format!("EC coordinates must be {size} bytes"));
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let curve = if kind == KeyKind::EcP256 {
                &signature::ECDSA_P256_SHA256_FIXED
            } else {
                &signature::ECDSA_P384_SHA384_FIXED
            };
            ParsedPublicKey::new(curve, &point)
                .map_err(|_| "EC point is not on the curve".to_owned())?;
            Ok(point)
        }
        KeyKind::Ed25519 => {
            let x = bytes(&raw.x, "x")?;
            if x.len() != 32 {
                return Err("Ed25519 public key must be 32 bytes".into());
            }
            ParsedPublicKey::new(&signature::ED25519, &x)
                .map_err(|_| "Ed25519 public key is invalid".to_owned())?;
            Ok(x)
        }
    }
}

fn bytes(field: &Option<String>, name: &str) -> Result<Vec<u8>, String> {
    let value = field
        .as_deref()
        .ok_or_else(|| format!("missing `{name}`"))?;
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| format!("`{name}` is not base64url"))
}

/// DER `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` from the
/// big-endian magnitudes `n` and `e` (no leading zero bytes).
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(n.len() + e.len() + 16);
    for magnitude in [n, e] {
        // A leading 0x00 keeps an INTEGER with its top bit set positive (X.690 §8.3).
        let pad = magnitude.first().is_some_and(|top| top & 0x80 != 0);
        body.push(0x02);
        der_length(&mut body, magnitude.len() + usize::from(pad));
        if pad {
            body.push(0x00);
        }
        body.extend_from_slice(magnitude);
    }
    let mut der = Vec::with_capacity(body.len() + 4);
    der.push(0x30);
    der_length(&mut der, body.len());
    der.extend_from_slice(&body);
    der
}

/// A DER length (X.690 §8.1.3): short form below 128, else the long form.
fn der_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let significant = strip_leading_zeros(&bytes);
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn b64(len: usize, fill: u8) -> String {
        URL_SAFE_NO_PAD.encode(vec![fill; len])
    }

    fn rsa(kid: &str) -> serde_json::Value {
        json!({"kty": "RSA", "kid": kid, "n": b64(256, 0xC3), "e": "AQAB"})
    }

    fn parse(keys: serde_json::Value) -> KeySet {
        let document = serde_json::to_vec(&json!({ "keys": keys })).unwrap_or_default();
        KeySet::from_json(&document).unwrap_or_default()
    }

    #[test]
    fn an_unusable_key_is_skipped_and_the_rest_kept() {
        let set = parse(json!([
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "short", "n": b64(128, 0xC3), "e": "AQAB"},
            {"kty": "RSA", "kid": "2047-bit", "n": b64(256, 0x7F), "e": "AQAB"},
            {"kty": "RSA", "kid": "huge", "n": b64(1100, 0xC3), "e": "AQAB"},
            {"kty": "RSA", "kid": "even-e", "n": b64(256, 0xC3), "e": "AQAA"},
            {"kty": "RSA", "kid": "e-is-1", "n": b64(256, 0xC3), "e": "AQ"},
            {"kty": "EC", "kid": "off-curve", "crv": "P-256", "x": b64(32, 1), "y": b64(32, 2)},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": b64(256, 0xC3), "e": "AQAB"},
            {"kty": "EC", "kid": "p521", "crv": "P-521", "x": b64(66, 1), "y": b64(66, 1)},
            {"kty": "RSA", "kid": "liar", "alg": "ES256", "n": b64(256, 0xC3), "e": "AQAB"},
            {"kty": "RSA", "kid": "bad-b64", "n": "!!!", "e": "AQAB"},
            {"kid": "no-kty"},
            rsa("good"),
        ]));
        assert_eq!(set.kids(), ["good"]);
    }

    #[test]
    fn a_document_that_is_not_a_jwks_is_an_error() {
        assert!(KeySet::from_json(b"<html>").is_err());
        assert!(KeySet::from_json(b"{\"keys\": 3}").is_err());
    }

    #[test]
    fn a_jwk_without_alg_or_use_is_accepted_for_its_kind() {
        let set = parse(json!([rsa("a")]));
        let key = set
            .get("a")
            .map(|k| (k.accepts(Algorithm::RS256), k.accepts(Algorithm::PS512)));
        assert_eq!(key, Some((true, true)));
        assert!(!set.get("a").is_some_and(|k| k.accepts(Algorithm::ES256)));
    }

    #[test]
    fn a_jwk_alg_restricts_the_key_to_that_algorithm() {
        let mut jwk = rsa("a");
        jwk["alg"] = json!("RS256");
        let set = parse(json!([jwk]));
        assert!(set.get("a").is_some_and(|k| k.accepts(Algorithm::RS256)));
        assert!(!set.get("a").is_some_and(|k| k.accepts(Algorithm::PS256)));
    }

    #[test]
    fn without_kid_only_a_single_candidate_is_chosen() {
        let one = parse(json!([rsa("a")]));
        assert!(one.only_key_for(Algorithm::RS256).is_some());
        let two = parse(json!([rsa("a"), rsa("b")]));
        assert!(two.only_key_for(Algorithm::RS256).is_none());
    }

    #[test]
    fn a_repeated_kid_keeps_the_first_key() {
        let mut second = rsa("a");
        second["alg"] = json!("PS256");
        let set = parse(json!([rsa("a"), second]));
        assert_eq!(set.len(), 1);
        assert!(set.get("a").is_some_and(|k| k.alg.is_none()));
    }

    #[test]
    fn text_from_the_key_set_reaches_messages_escaped_and_bounded() {
        let forged = format!("RSA\nERROR forged record {}", "x".repeat(50_000));
        for jwk in [
            json!({"kty": forged, "kid": "k"}),
            json!({"kty": "EC", "crv": forged, "kid": "k"}),
            json!({"kty": "RSA", "use": forged, "kid": "k"}),
            json!({"kty": "RSA", "alg": forged, "kid": "k"}),
            json!({"kty": "RSA", "kid": forged, "use": "enc"}),
            json!({"kty": ["RSA", forged], "kid": "k"}),
        ] {
            let why = parse_jwk(jwk).expect_err("an unusable key");
            assert!(!why.contains('\n'), "{why}");
            assert!(why.len() < 600, "{} bytes: {}", why.len(), &why[..200]);
        }
    }
}
