//! The claims reader against serde_json: it accepts exactly the JSON objects that
//! `serde_json::Value` parses and whose top-level names are distinct, and every claim it
//! reads as a string is that string in the full parse.
#![no_main]

use std::fmt;

use libfuzzer_sys::fuzz_target;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

/// The top-level names of a JSON object, in order, duplicates kept.
struct Names(Vec<String>);

impl<'de> serde::Deserialize<'de> for Names {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NamesVisitor;
        impl<'de> Visitor<'de> for NamesVisitor {
            type Value = Names;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Names, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    names.push(name);
                }
                Ok(Names(names))
            }
        }
        deserializer.deserialize_map(NamesVisitor)
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let full: Option<serde_json::Map<String, Value>> = serde_json::from_str::<Value>(json)
        .ok()
        .and_then(|v| if let Value::Object(map) = v { Some(map) } else { None });
    let distinct = serde_json::from_str::<Names>(json).is_ok_and(|Names(names)| {
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        sorted.len() == names.len()
    });
    let oracle_accepts = full.is_some() && distinct;
    let read = api_guard::fuzzing::claims(json);
    assert_eq!(read.is_some(), oracle_accepts, "disagreement on {json:?}");
    if let (Some(read), Some(full)) = (read, full) {
        for (name, string) in read {
            let value = &full[name];
            match string {
                Some(s) => assert_eq!(value.as_str(), Some(s.as_str()), "{name} in {json:?}"),
                None => assert!(!value.is_string(), "{name} in {json:?} was not read as a string"),
            }
        }
    }
});
