//! The validator alone, without HTTP: `cargo bench --bench validator`.
//!
//! Cold: every iteration verifies the signature and parses the claims (a token seen for the
//! first time). Warm: the token is in the verified-token cache (a client repeating its
//! token). Tokens come from the development issuer, shaped like Okta's.

use std::hint::black_box;

use api_guard::auth::jwks::KeySet;
use api_guard::dev_issuer::{DevIssuer, DevIssuerSettings, SigningAlg};
use api_guard::{TokenCache, Validator};
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::Algorithm;

const ISSUER: &str = "http://127.0.0.1:8080/oauth2/default";

/// An issuer signing with a fresh `alg` key, the key set holding it, and a validator for both.
fn setup(alg: SigningAlg) -> (DevIssuer, KeySet, Validator) {
    let issuer = DevIssuer::new(DevIssuerSettings::new(ISSUER)).expect("a dev issuer");
    let kid = issuer.add_key(alg);
    assert!(issuer.use_key(&kid), "the new key signs");
    let jwks = serde_json::json!({ "keys": [issuer.jwk(&kid).expect("the key is published")] });
    let keys = KeySet::from_json(jwks.to_string().as_bytes()).expect("a valid JWKS");
    let validator = Validator::new(
        ISSUER,
        vec!["api://default".into()],
        &[Algorithm::RS256, Algorithm::ES256],
        60,
    );
    (issuer, keys, validator)
}

fn cold(c: &mut Criterion) {
    for (name, alg) in [("RS256", SigningAlg::RS256), ("ES256", SigningAlg::ES256)] {
        let (issuer, keys, validator) = setup(alg);
        let token = issuer.mint(&["AccessAll"]);
        assert!(validator.validate(&token, &keys).is_ok(), "{name}: valid");
        c.bench_function(&format!("validate/cold/{name}"), |b| {
            b.iter(|| validator.validate(black_box(&token), &keys))
        });
    }
}

fn warm(c: &mut Criterion) {
    let (issuer, keys, validator) = setup(SigningAlg::RS256);
    let token = issuer.mint(&["AccessAll"]);
    let cache = TokenCache::new(4 << 20);
    for _ in 0..2 {
        assert!(validator.validate_cached(&token, &keys, &cache).is_ok());
    }
    assert_eq!(cache.stats().hits, 1, "the second validation hit the cache");
    c.bench_function("validate/warm/RS256", |b| {
        b.iter(|| validator.validate_cached(black_box(&token), &keys, &cache))
    });
}

/// What a distinct-token request costs the validator in the service: a token not seen
/// before, so the call misses the cache, verifies, inserts (evicting an older token) and
/// writes the claims JSON whoami answers with. 8,000 tokens cycle through a 1 MiB cache
/// (about 400 tokens): the cache resists scans and keeps a few, so about 5 % of calls hit.
fn distinct(c: &mut Criterion) {
    let (issuer, keys, validator) = setup(SigningAlg::RS256);
    let tokens: Vec<String> = (0..8000).map(|_| issuer.mint(&["AccessAll"])).collect();
    let cache = TokenCache::new(1 << 20);
    let mut next = tokens.iter().cycle();
    c.bench_function("validate/distinct/RS256", |b| {
        b.iter(|| {
            let token = next.next().expect("a cycle never ends");
            validator
                .validate_cached(black_box(token), &keys, &cache)
                .map(|claims| claims.claims_json().len())
        })
    });
    let stats = cache.stats();
    assert!(
        stats.hits * 10 < stats.misses,
        "most calls must miss the cache: {stats:?}"
    );
}

/// The signature check alone, two ways, in one run: what jsonwebtoken does (the RSA key is
/// rebuilt from `n` and `e` on every call) against the key parsed once, as the key set does.
fn signature(c: &mut Criterion) {
    use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    let issuer = DevIssuer::new(DevIssuerSettings::new(ISSUER)).expect("a dev issuer");
    let kid = issuer.signing_kid();
    let token = issuer.mint(&["AccessAll"]);
    let (signing_input, signature_b64) = token.rsplit_once('.').expect("a compact JWS");
    let signature = URL_SAFE_NO_PAD.decode(signature_b64).expect("base64url");
    let jwk = issuer.jwk(&kid).expect("the signing key is published");
    let (n, e) = (
        jwk["n"].as_str().unwrap_or(""),
        jwk["e"].as_str().unwrap_or(""),
    );
    let decoding = jsonwebtoken::DecodingKey::from_rsa_components(n, e).expect("RSA components");
    let der = issuer.public_key_der(&kid).expect("the signing key's DER");
    let parsed = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der).expect("an RSA key");

    let per_call = |input: &[u8]| {
        jsonwebtoken::crypto::verify(signature_b64, input, &decoding, Algorithm::RS256)
            .unwrap_or(false)
    };
    let parsed_once = |input: &[u8]| parsed.verify_sig(input, &signature).is_ok();
    assert!(per_call(signing_input.as_bytes()) && parsed_once(signing_input.as_bytes()));
    let mut group = c.benchmark_group("signature/RS256");
    group.bench_function("jsonwebtoken, key rebuilt per call", |b| {
        b.iter(|| per_call(black_box(signing_input.as_bytes())))
    });
    group.bench_function("aws-lc, key parsed once", |b| {
        b.iter(|| parsed_once(black_box(signing_input.as_bytes())))
    });
    group.finish();
}

criterion_group!(benches, cold, warm, distinct, signature);
criterion_main!(benches);
