//! Text that came from the network, made fit for a log line: quoted, escaped and bounded.
//!
//! A JWK's `kty`, a discovered `jwks_uri` or a `kid` is whatever the issuer (or whoever
//! answers in its place) sent. Written raw, a newline forges a log record and a megabyte
//! fills the disk; so every such value goes through [`quoted`] before it reaches a message,
//! in the text and JSON formats alike.

use std::fmt::Write;

/// The most characters of an outside value that a log message keeps.
pub(crate) const MAX_CHARS: usize = 120;

/// `text` in double quotes, every character outside printable ASCII (and `"` and `\`)
/// escaped as `\u{…}` or `\"`/`\\`, cut after [`MAX_CHARS`] characters with `…` and the
/// full length in characters.
pub(crate) fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_CHARS) + 2);
    out.push('"');
    for (kept, c) in text.chars().enumerate() {
        if kept == MAX_CHARS {
            let _ = write!(out, "\"… ({} characters)", text.chars().count());
            return out;
        }
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            other => {
                let _ = write!(out, "\\u{{{:x}}}", other as u32);
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_quotes_are_escaped_and_length_is_bounded() {
        assert_eq!(quoted("RSA"), "\"RSA\"");
        assert_eq!(quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(
            quoted("x\ny\r\u{1b}[31m\u{202e}"),
            "\"x\\u{a}y\\u{d}\\u{1b}[31m\\u{202e}\""
        );
        let long = quoted(&"A".repeat(100_000));
        assert!(long.len() < MAX_CHARS + 40, "{}", long.len());
        assert!(long.ends_with("… (100000 characters)"), "{long}");
    }
}
