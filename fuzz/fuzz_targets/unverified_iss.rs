//! The unverified `iss` that several issuers' routing reads before any key or signature is
//! looked at, with the input as a token's decoded payload (`e30.{payload}.c2ln`).
//! **Oracle: serde_json.** When `serde_json::Value` parses the payload as an object, the
//! routing agrees with it: a top-level `iss` string given once is routed by exactly that
//! string (never a nested one); no `iss` is a missing claim, a non-string one a bad claim, a
//! repeated one malformed.
#![no_main]

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

/// How many times the top-level object names `iss`.
struct IssCount(usize);

impl<'de> serde::Deserialize<'de> for IssCount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CountVisitor;
        impl<'de> Visitor<'de> for CountVisitor {
            type Value = IssCount;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IssCount, A::Error> {
                let mut count = 0;
                while let Some(name) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    count += usize::from(name == "iss");
                }
                Ok(IssCount(count))
            }
        }
        deserializer.deserialize_map(CountVisitor)
    }
}

fuzz_target!(|payload: &[u8]| {
    let token = format!("e30.{}.c2ln", URL_SAFE_NO_PAD.encode(payload));
    let routed = api_guard::fuzzing::unverified_iss(&token);
    if routed == Err("too_large") {
        return;
    }
    let full = serde_json::from_slice::<Value>(payload).ok();
    // A payload serde_json refuses (say, a lone surrogate escape in a skipped claim) may
    // still be routed: the verified read refuses it after the signature.
    let Some(Value::Object(full)) = full else {
        return;
    };
    let count = serde_json::from_slice::<IssCount>(payload).map_or(0, |c| c.0);
    let expected = match (count, full.get("iss")) {
        (0, _) => Err("missing_claim"),
        (1, Some(Value::String(iss))) => Ok(iss.clone()),
        (1, _) => Err("bad_claim"),
        _ => Err("malformed"),
    };
    assert_eq!(routed, expected, "payload {:?}", String::from_utf8_lossy(payload));
});
