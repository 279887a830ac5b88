//! The `Authorization` header: up to three header values (split at NUL bytes) and a query
//! string (after the first 0xff byte). A token handed out is always a non-empty RFC 6750
//! b64token taken from the one header, and a refusal is one of the four reasons.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (headers, query) = match data.iter().position(|&b| b == 0xff) {
        Some(at) => (&data[..at], String::from_utf8_lossy(&data[at + 1..]).into_owned()),
        None => (data, String::new()),
    };
    let values: Vec<&[u8]> = headers.split(|&b| b == 0).take(3).collect();
    match api_guard::fuzzing::bearer(&values, &query) {
        Ok(token) => {
            let body = token.trim_end_matches('=');
            assert!(!body.is_empty(), "empty token from {values:?}");
            assert!(
                body.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)),
                "not a b64token: {token:?}"
            );
            assert!(
                values.iter().any(|v| v.ends_with(token.as_bytes())),
                "{token:?} does not end any of {values:?}"
            );
        }
        Err(code) => assert!(
            matches!(
                code,
                "no_header" | "other_scheme" | "token_in_query" | "repeated_header" | "malformed_header"
            ),
            "unexpected reason {code}"
        ),
    }
});
