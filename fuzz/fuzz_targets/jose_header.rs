//! The JOSE header and the compact form. The first byte picks the shape: the input as a
//! whole token, or the rest as the decoded header JSON inside a token (`{header}.e30.c2ln`),
//! with and without strict `at+jwt` typing. No key set is given, so nothing may be
//! accepted: every answer is a refusal, and the strict mode never accepts a type the
//! lenient one refuses.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let token = if mode & 1 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(rest))
    };
    let lenient = api_guard::fuzzing::verify(&token, b"{\"keys\":[]}", false);
    let strict = api_guard::fuzzing::verify(&token, b"{\"keys\":[]}", true);
    assert!(lenient.is_err(), "accepted without keys: {token:?}");
    assert!(strict.is_err(), "accepted without keys: {token:?}");
    if lenient == Err("wrong_type") {
        assert_eq!(strict, Err("wrong_type"), "{token:?}");
    }
});
