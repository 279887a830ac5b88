//! Signing keys of the test kit (and of the service's development issuer, built on it):
//! generation with aws-lc-rs, JWS signatures (RFC 7515 §5.1, RFC 7518 §3) and the public JWK
//! each key publishes (RFC 7517 §4, RFC 7518 §6, RFC 8037 §2).

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::error::Unspecified;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RSA_PKCS1_SHA384,
    RSA_PKCS1_SHA512, RSA_PSS_SHA256, RSA_PSS_SHA384, RSA_PSS_SHA512, RsaEncoding,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::Algorithm;

/// Parsed once at generation: signing never re-reads key material.
enum KeyMaterial {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// One key of the issuer: its private half, and its public half in the forms tests need.
pub(crate) struct SigningKey {
    pub(crate) kid: String,
    pub(crate) alg: Algorithm,
    material: KeyMaterial,
    pub(crate) jwk: Value,
    pub(crate) public_der: Vec<u8>,
}

impl SigningKey {
    /// Generates a fresh key for `alg` under a random `kid`.
    pub(crate) fn generate(alg: Algorithm) -> Result<Self, Unspecified> {
        let kid = random_id(12)?;
        let (material, public_der, params) = match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048)?;
                let public = pair.public_key();
                let der = x509_der(public.as_der())?;
                // RFC 7518 §6.3.1: n and e are unsigned big-endian without leading zeros.
                let params = json!({
                    "kty": "RSA",
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                });
                (KeyMaterial::Rsa(pair), der, params)
            }
            Algorithm::ES256 => ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING, "P-256")?,
            Algorithm::ES384 => ec_key(&ECDSA_P384_SHA384_FIXED_SIGNING, "P-384")?,
            Algorithm::EdDSA => {
                let pair = Ed25519KeyPair::generate()?;
                let raw = pair.public_key().as_ref().to_vec();
                let params = json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(&raw) });
                (KeyMaterial::Ed(pair), raw, params)
            }
        };
        let mut jwk = params;
        if let Some(fields) = jwk.as_object_mut() {
            fields.insert("kid".into(), Value::String(kid.clone()));
            fields.insert("use".into(), Value::String("sig".into()));
            fields.insert("alg".into(), Value::String(alg.name().into()));
        }
        Ok(Self {
            kid,
            alg,
            material,
            jwk,
            public_der,
        })
    }

    /// The JWS signature over `signing_input` (RFC 7515 §5.1 step 5) in this key's algorithm.
    pub(crate) fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, Unspecified> {
        let rng = SystemRandom::new();
        match (&self.material, self.alg) {
            (KeyMaterial::Rsa(pair), alg) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                let padding: &'static dyn RsaEncoding = match alg {
                    Algorithm::RS384 => &RSA_PKCS1_SHA384,
                    Algorithm::RS512 => &RSA_PKCS1_SHA512,
                    Algorithm::PS256 => &RSA_PSS_SHA256,
                    Algorithm::PS384 => &RSA_PSS_SHA384,
                    Algorithm::PS512 => &RSA_PSS_SHA512,
                    _ => &RSA_PKCS1_SHA256,
                };
                pair.sign(padding, &rng, signing_input, &mut signature)?;
                Ok(signature)
            }
            // The FIXED signing algorithms give R || S, the form RFC 7518 §3.4 requires.
            (KeyMaterial::Ec(pair), _) => Ok(pair.sign(&rng, signing_input)?.as_ref().to_vec()),
            (KeyMaterial::Ed(pair), _) => Ok(pair.try_sign(signing_input)?.as_ref().to_vec()),
        }
    }
}

type Generated = (KeyMaterial, Vec<u8>, Value);

fn ec_key(alg: &'static EcdsaSigningAlgorithm, crv: &str) -> Result<Generated, Unspecified> {
    let pair = EcdsaKeyPair::generate(alg)?;
    let public = pair.public_key();
    let der = x509_der(public.as_der())?;
    // An uncompressed SEC1 point is 0x04 || X || Y, each coordinate of equal length (RFC 7518 §6.2.1).
    let point = public.as_ref();
    let (x, y) = point
        .get(1..)
        .map(|xy| xy.split_at(xy.len() / 2))
        .ok_or(Unspecified)?;
    let params = json!({ "kty": "EC", "crv": crv, "x": b64(x), "y": b64(y) });
    Ok((KeyMaterial::Ec(pair), der, params))
}

fn x509_der(der: Result<PublicKeyX509Der<'static>, Unspecified>) -> Result<Vec<u8>, Unspecified> {
    Ok(der?.as_ref().to_vec())
}

/// Base64url without padding, the encoding of every JWS part and JWK member (RFC 7515 §2).
pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `len` random bytes as base64url: URL-safe identifiers for `kid` and `jti`.
pub(crate) fn random_id(len: usize) -> Result<String, Unspecified> {
    let mut bytes = vec![0; len];
    aws_lc_rs::rand::fill(&mut bytes)?;
    Ok(b64(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_publishes_a_jwk_with_kid_use_and_alg() {
        for alg in Algorithm::ALL {
            let key = SigningKey::generate(alg).unwrap();
            assert_eq!(key.jwk["kid"], key.kid.as_str(), "{alg:?}");
            assert_eq!(key.jwk["use"], "sig", "{alg:?}");
            assert_eq!(key.jwk["alg"], alg.name(), "{alg:?}");
            assert_eq!(key.kid.len(), 16, "{alg:?}");
        }
    }

    #[test]
    fn ec_jwk_coordinates_are_the_curve_size() {
        let p256 = SigningKey::generate(Algorithm::ES256).unwrap();
        let p384 = SigningKey::generate(Algorithm::ES384).unwrap();
        let len = |key: &SigningKey, member: &str| {
            URL_SAFE_NO_PAD
                .decode(key.jwk[member].as_str().unwrap())
                .unwrap()
                .len()
        };
        assert_eq!((len(&p256, "x"), len(&p256, "y")), (32, 32));
        assert_eq!((len(&p384, "x"), len(&p384, "y")), (48, 48));
    }

    #[test]
    fn ed25519_public_key_bytes_are_the_raw_32_bytes() {
        let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
        assert_eq!(key.public_der.len(), 32);
        assert_eq!(key.jwk["x"], b64(&key.public_der));
    }
}
