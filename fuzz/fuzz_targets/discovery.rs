//! Discovery metadata as the key store reads it, for an https issuer and a loopback http
//! one. A `jwks_uri` (or token or introspection endpoint) kept is an https URL (or loopback
//! http for the loopback issuer), and a message for the log is one line of bounded length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use url::Url;

const URL: &str = "https://issuer.example/.well-known/openid-configuration";

fuzz_target!(|data: &[u8]| {
    for issuer in ["https://issuer.example", "http://127.0.0.1:9"] {
        // Half the inputs get the expected issuer spliced in, so the rest of the document is
        // reached more often than by chance.
        let body = match data.split_first() {
            Some((&b'!', rest)) => {
                let text = String::from_utf8_lossy(rest).replace("ISS", issuer);
                text.into_bytes()
            }
            _ => data.to_vec(),
        };
        match api_guard::fuzzing::metadata(URL, &body, issuer) {
            Ok((jwks_uri, endpoints)) => {
                for used in std::iter::once(&jwks_uri).chain(endpoints.iter()) {
                    let parsed = Url::parse(used).expect("a used URL parses");
                    let loopback_issuer = issuer.starts_with("http:");
                    assert!(
                        parsed.scheme() == "https" || (loopback_issuer && parsed.scheme() == "http"),
                        "{used}"
                    );
                    assert!(!used.chars().any(char::is_control), "{used:?}");
                }
            }
            Err(message) => {
                assert!(!message.chars().any(char::is_control), "{message:?}");
                // One quoted value (at most MAX_QUOTED_CHARS characters, each escaped to at
                // most 10) besides the fixed text and the URL.
                assert!(
                    message.chars().count() <= 10 * api_guard::fuzzing::MAX_QUOTED_CHARS + 400,
                    "{} characters: {message:?}",
                    message.chars().count()
                );
            }
        }
    }
});
