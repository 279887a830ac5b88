//! The route policy file (`AUTH_POLICY_FILE`), as start-up parses it, then decisions on a few
//! paths. The input is the file (bytes that are not UTF-8 replaced: a file that is not UTF-8
//! is refused before parsing). The oracles: no panic; a refusal is one line, `FILE:LINE: ...`
//! with a line inside the file; an accepted policy decides every path and method, and a
//! path is decided the same with or without a trailing slash.
#![no_main]

use actix_web::http::Method;
use api_guard_server::gateway::policy::Policy;
use libfuzzer_sys::fuzz_target;

const PATHS: &[&str] = &["/", "/a", "/a/", "/a/b", "/public/x/y", "/orders/7", "/ADMIN/x"];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Policy::parse(&text, "fuzz.toml") {
        Err(error) => {
            let message = error.to_string();
            assert!(!message.contains('\n'), "two lines: {message:?}");
            assert!(message.starts_with("fuzz.toml:"), "{message:?}");
            let line = error.line().expect("a parse error has a line");
            assert!(line >= 1 && line <= text.lines().count().max(1) + 1, "{message:?}");
        }
        Ok(policy) => {
            for method in [Method::GET, Method::HEAD, Method::POST, Method::DELETE] {
                for path in PATHS {
                    let decided = policy.decide(&method, path);
                    if path.len() > 1 && !path.ends_with('/') {
                        let slashed = format!("{path}/");
                        assert_eq!(decided, policy.decide(&method, &slashed), "{path}");
                    }
                }
            }
        }
    }
});
