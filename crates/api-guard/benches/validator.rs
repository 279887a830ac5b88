//! The guard's validation alone, without HTTP: `cargo bench -p api-guard --features test-util`.
//!
//! Cold: every iteration verifies the signature and parses the claims (a token seen for the
//! first time; the token cache is off). Warm: the token is in the verified-token cache (a
//! client repeating its token). Distinct: a pool of tokens cycling through a cache too small
//! to hold them, as a service receiving a different token on each request. Tokens come from
//! the test kit, shaped like Okta's.

use std::hint::black_box;

use api_guard::Algorithm;
use api_guard::testing::TestIssuer;
use criterion::{Criterion, criterion_group, criterion_main};

/// An issuer signing with a fresh `alg` key.
fn issuer(alg: Algorithm) -> TestIssuer {
    let issuer = TestIssuer::new();
    let kid = issuer.add_key(alg);
    assert!(issuer.use_key(&kid), "the new key signs");
    issuer
}

fn cold(c: &mut Criterion) {
    for alg in [Algorithm::RS256, Algorithm::ES256] {
        let issuer = issuer(alg);
        let guard = issuer.guard_with(issuer.settings().with_token_cache_bytes(0));
        let token = issuer.token().scopes(["AccessAll"]).mint();
        assert!(guard.verify(&token).is_ok(), "{alg}: valid");
        c.bench_function(&format!("validate/cold/{alg}"), |b| {
            b.iter(|| guard.verify(black_box(&token)))
        });
    }
}

fn warm(c: &mut Criterion) {
    let issuer = issuer(Algorithm::RS256);
    let guard = issuer.guard();
    let token = issuer.token().scopes(["AccessAll"]).mint();
    for _ in 0..2 {
        assert!(guard.verify(&token).is_ok());
    }
    assert_eq!(
        guard.cache_stats().hits,
        1,
        "the second validation hit the cache"
    );
    c.bench_function("validate/warm/RS256", |b| {
        b.iter(|| guard.verify(black_box(&token)))
    });
}

/// What a distinct-token request costs: a token not seen before, so the call misses the
/// cache, verifies and inserts (evicting an older token). 8,000 tokens cycle through a 1 MiB
/// cache (about 400 tokens): the cache resists scans and keeps a few, so few calls hit.
fn distinct(c: &mut Criterion) {
    let issuer = issuer(Algorithm::RS256);
    let guard = issuer.guard_with(issuer.settings().with_token_cache_bytes(1 << 20));
    let tokens: Vec<String> = (0..8_000)
        .map(|n| {
            issuer
                .token()
                .subject(format!("client-{n}"))
                .scopes(["AccessAll"])
                .mint()
        })
        .collect();
    let mut next = tokens.iter().cycle();
    c.bench_function("validate/distinct/RS256", |b| {
        b.iter(|| guard.verify(black_box(next.next().map_or("", String::as_str))))
    });
    let stats = guard.cache_stats();
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

    let issuer = TestIssuer::new();
    let kid = issuer.signing_kid();
    let token = issuer.token().scopes(["AccessAll"]).mint();
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
        jsonwebtoken::crypto::verify(
            signature_b64,
            input,
            &decoding,
            jsonwebtoken::Algorithm::RS256,
        )
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
