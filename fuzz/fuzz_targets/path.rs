//! Request paths through the gateway's normalisation, then the route policy. The input is a
//! path (bytes that are not UTF-8 replaced, as no `&str` holds them). The oracles: a path
//! accepted is a fixed point (`normalize` is idempotent), starts with `/`, holds no dot
//! segment, `//`, `%2F`, NUL, `;` or `\`, and the laxest upstream reading of it (decoded
//! twice, `;` parameters stripped, `\` as `/`, look-alikes folded) is the path decoded once:
//! no upstream can read another path than the one the policy matched. And a path decided
//! anonymous under the test policy reads, however laxly, as a path under `/public`.
#![no_main]

use std::sync::OnceLock;

use actix_web::http::Method;
use api_guard_server::gateway::bypass::{decode, lax_reading};
use api_guard_server::gateway::path::normalize;
use api_guard_server::gateway::policy::{Access, Policy};
use libfuzzer_sys::fuzz_target;

const POLICY: &str = r#"
default = "authenticated"
[[rule]]
path = "/public/**"
access = "anonymous"
[[rule]]
path = "/admin/**"
scopes = ["admin"]
"#;

fn policy() -> &'static Policy {
    static POLICY_ONCE: OnceLock<Policy> = OnceLock::new();
    POLICY_ONCE.get_or_init(|| Policy::parse(POLICY, "fuzz.toml").expect("the test policy parses"))
}

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let Ok(path) = normalize(&raw) else {
        return;
    };
    assert_eq!(normalize(&path).as_ref(), Ok(&path), "not idempotent: {raw:?}");
    assert!(path.starts_with('/'), "{raw:?} -> {path:?}");
    for bad in ["/../", "/./", "//", "%2F", "%2f", "%5C", "%5c", "\0", ";", "\\", "?", "#"] {
        assert!(!path.contains(bad), "{raw:?} -> {path:?} holds {bad:?}");
    }
    for end in ["/..", "/."] {
        assert!(!path.ends_with(end), "{raw:?} -> {path:?} ends with {end:?}");
    }
    let lax = lax_reading(&path);
    assert_eq!(lax, decode(&path), "{raw:?} -> {path:?}: a lax upstream reads another path");
    if policy().decide(&Method::GET, &path) == Access::Anonymous {
        let public = |p: &str| p == "/public" || p.starts_with("/public/");
        assert!(public(&path) && public(&lax), "{raw:?} -> {path:?} anonymous, read as {lax:?}");
    }
});
