//! A JWKS document and its keys, as the key store parses them, with every key looked up for
//! every algorithm and asked to verify a signature. At most MAX_KEYS keys are kept, and the
//! message for a refused document is one line of bounded length (it goes to the log).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (document, signature) = match data.iter().rposition(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    match api_guard::fuzzing::key_set(document, b"header.payload", signature) {
        Ok(keys) => assert!(keys <= api_guard::fuzzing::MAX_KEYS, "{keys} keys"),
        Err(message) => {
            assert!(!message.chars().any(char::is_control), "{message:?}");
            // One quoted serde message (at most MAX_QUOTED_CHARS characters, each escaped to
            // at most 10) besides the fixed text.
            assert!(
                message.chars().count() <= 10 * api_guard::fuzzing::MAX_QUOTED_CHARS + 200,
                "{} characters: {message:?}",
                message.chars().count()
            );
        }
    }
});
