//! Entry points for the fuzz targets in the repository's `fuzz/` folder: the library's
//! parsers of outside input, reachable only with the non-default `fuzzing` feature and
//! hidden from the documentation. Not part of the API: anything here may change in any
//! release. Each function runs the parser exactly as the library does and reports what it
//! decided, so a target can assert properties of the answer.

use actix_web::http::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use crate::jwks::{KeySet, read_metadata};
use crate::validator::Validator;
use crate::{Algorithm, AuthSettings};

/// The issuer the fuzzing validator expects.
pub const ISSUER: &str = "https://issuer.example";
/// The time the fuzzing validator checks tokens at.
pub const NOW: u64 = 1_700_000_000;
/// The most usable keys one key set holds.
pub const MAX_KEYS: usize = crate::jwks::keyset_max_keys();
/// The most characters of an outside value a message quotes.
pub const MAX_QUOTED_CHARS: usize = crate::outside::MAX_CHARS;

/// The bearer token of a request whose `Authorization` headers are `values` (those that
/// are valid header values at all) and whose query string is `query`; or the refusal's
/// reason code.
pub fn bearer(values: &[&[u8]], query: &str) -> Result<String, &'static str> {
    let mut headers = HeaderMap::new();
    for value in values {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(AUTHORIZATION, value);
        }
    }
    crate::bearer::token_from(&headers, query)
        .map(str::to_owned)
        .map_err(|e| e.reason_code())
}

/// Validates `token` against the key set `jwks` (an empty set if it is not one), for
/// [`ISSUER`] at [`NOW`], every algorithm allowed: the reason code of the refusal, or the
/// client id of an accepted token.
pub fn verify(
    token: &str,
    jwks: &[u8],
    require_at_jwt: bool,
) -> Result<Option<String>, &'static str> {
    let keys = KeySet::from_json(jwks).unwrap_or_default();
    let settings = AuthSettings::new(ISSUER).with_require_at_jwt(require_at_jwt);
    Validator::for_issuer(&settings, settings.issuer())
        .verify_at(token, &keys, NOW)
        .map(|verified| verified.claims.client_id().map(str::to_owned))
        .map_err(|e| e.reason_code())
}

/// Reads `json` as the validator reads a token's claims: `None` if it refuses them, else each
/// registered claim present with its value when it was read as a string.
pub fn claims(json: &str) -> Option<Vec<(&'static str, Option<String>)>> {
    let registered = crate::claims::read(json).ok()?;
    Some(
        registered
            .strings()
            .into_iter()
            .map(|(name, value)| (name, value.map(str::to_owned)))
            .collect(),
    )
}

/// Parses a JWKS document as the key store does and looks up every key for every algorithm,
/// verifying `signature` over `message` with each key found: the number of usable keys, or
/// the message that would be logged.
pub fn key_set(document: &[u8], message: &[u8], signature: &[u8]) -> Result<usize, String> {
    let keys = KeySet::from_json(document)?;
    for alg in Algorithm::ALL {
        let mut kids: Vec<Option<&str>> = keys.kids().into_iter().map(Some).collect();
        kids.push(None);
        for kid in kids {
            if let Ok(key) = keys.key_for(kid, alg) {
                let _ = key.verify(alg, message, signature);
            }
        }
    }
    Ok(keys.len())
}

/// Reads a metadata document fetched from `url` for `issuer`, as discovery does: the
/// `jwks_uri`, and the other endpoints it would keep (`token_endpoint`,
/// `introspection_endpoint`), or the message that would be logged.
pub fn metadata(url: &str, body: &[u8], issuer: &str) -> Result<(String, Vec<String>), String> {
    read_metadata(url, body, issuer).map(|found| {
        let endpoints = [found.token_endpoint, found.introspection_endpoint];
        (found.jwks_uri, endpoints.into_iter().flatten().collect())
    })
}

/// Reads the unverified `iss` of `token` as several issuers' routing does (before any key or
/// signature): the `iss` it would route by, or the refusal's reason code.
pub fn unverified_iss(token: &str) -> Result<String, &'static str> {
    crate::issuers::unverified_iss(token)
}

/// Checks `proof` as the guard checks a request's DPoP proof (RFC 9449 §4.3): method `GET`,
/// the public URL `url` (normalised as the guard normalises it), the access token `token`, at
/// [`NOW`] with a 180 s window and 60 s of leeway, no nonces. The RFC 7638 thumbprint of an
/// accepted proof's key, or the refusal's reason code.
pub fn dpop_proof(proof: &str, url: &str, token: &str) -> Result<String, &'static str> {
    let Some(url) = crate::dpop::htu::normalise(url) else {
        return Err("bad_url");
    };
    let expected = crate::dpop::proof::Expected {
        method: "GET",
        url: &url,
        token: Some(token),
        now: NOW,
        window: std::time::Duration::from_secs(180),
        leeway: std::time::Duration::from_secs(60),
        nonces: None,
        bound_to: None,
    };
    crate::dpop::proof::check(proof, &expected)
        .map(|checked| checked.thumbprint)
        .map_err(|reason| crate::error::Error::from(reason).reason_code())
}

/// A proof's `htu` (or a request's public URL) as the guard compares it; `None` if it is not
/// an absolute http(s) URL.
pub fn dpop_htu(url: &str) -> Option<String> {
    crate::dpop::htu::normalise(url)
}

/// The most bytes a DPoP proof may have.
pub const MAX_DPOP_PROOF_BYTES: usize = crate::dpop::proof::MAX_PROOF_BYTES;
