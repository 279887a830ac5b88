//! Path normalisation: the one path that the route policy matches and the upstream receives
//! (RFC 3986 §2.3, §2.4, §5.2.4; §6.2.2 syntax-based normalisation).
//!
//! A gateway is bypassed when it and the upstream read one request path two ways ("Breaking
//! Parser Logic", Orange Tsai 2018: Tomcat's `..;/`, nginx's `merge_slashes`, Apache's
//! CVE-2021-41773 `%2e`). So the path is rewritten into one canonical form, and whatever could
//! still be read two ways by some upstream is refused with 400 before any rule is tried.
//!
//! What [`normalize`] does, in order, segment by segment:
//! - percent-decodes the unreserved characters (`%41` → `A`, `%2e` → `.`), keeps every other
//!   escape with upper-case hex (`%3a` → `%3A`), and percent-encodes raw characters a path may
//!   not hold (a space, `"`, `{`, non-ASCII UTF-8): one spelling per path;
//! - decodes once only: `%252e` is `%25` then `2e`, never `.` (and is refused, below);
//! - removes `.` and `..` segments (RFC 3986 §5.2.4), including encoded ones (`%2e%2e`);
//! - merges repeated slashes (`//admin` → `/admin`), as nginx, Tomcat and Go's `ServeMux` do,
//!   and keeps one trailing slash.
//!
//! What it refuses ([`PathError`]): a path not starting with `/` (absolute-form targets are
//! the caller's to split; `*`), `?` or `#` (a query or fragment is not a path), an invalid
//! escape (`%zz`, `%4`, IIS's `%u002e`), an encoded `/` (`%2F`), a `\` raw or encoded (IIS
//! and old Tomcat read it as `/`), `..` above the root, NUL and other control characters, a
//! `;` raw or encoded (Tomcat and Jetty strip `;params` from segments, so `/public/..;/admin`
//! is `/admin` to them; as Spring Security's strict firewall does), an escape of `%` followed
//! by two hex digits (`%2541`: an upstream that decodes twice would read `%41`), escapes that
//! do not decode to UTF-8 (overlong `%c0%ae`, a lone `%ff`: old decoders read `%c0%ae` as
//! `.`), a segment of dots and spaces other than `.` and `..` (`...`, `.. `: Windows trims
//! them), and characters that Unicode folding (NFKC, Windows "best fit") turns into `.`, `/`
//! or `\` (fullwidth `．`, `／`, `＼`, and the like).
//!
//! Matching is case-sensitive (`/Admin` is not `/admin`), as most upstreams are; a policy
//! for an upstream that routes case-insensitively says `case_sensitive = false`.
//!
//! ```
//! use api_guard_server::gateway::path::{normalize, PathError};
//!
//! assert_eq!(normalize("/public/%2E%2e/a%64min//x/").as_deref(), Ok("/admin/x/"));
//! assert_eq!(normalize("/public/..%2fadmin"), Err(PathError::EncodedSlash));
//! assert_eq!(normalize("/public/..;/admin"), Err(PathError::Semicolon));
//! ```

use std::fmt::Write as _;

/// Why a request path is refused with 400 before any rule is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `/`: empty, `*`, relative, or an absolute-form target.
    #[error("the path does not start with `/`")]
    NotAbsolute,
    /// A `?` or `#`: the caller passed a query or a fragment as part of the path.
    #[error("the path holds a `?` or `#`")]
    QueryOrFragment,
    /// A `%` not followed by two hex digits.
    #[error("the path holds an invalid percent-escape (`%` must be followed by two hex digits)")]
    InvalidEscape,
    /// `%2F`: an encoded `/`, which an upstream may or may not read as a separator.
    #[error("the path holds an encoded `/` (`%2F`)")]
    EncodedSlash,
    /// `\` or `%5C`, which some upstreams read as `/`.
    #[error("the path holds a backslash (`\\` or `%5C`)")]
    Backslash,
    /// A `..` segment with nothing left to remove.
    #[error("the path climbs above the root with `..`")]
    AboveRoot,
    /// `%00`.
    #[error("the path holds a NUL (`%00`)")]
    Nul,
    /// A control character, raw or encoded (`%0A`, `%7F`, ...).
    #[error("the path holds a control character")]
    ControlCharacter,
    /// `;` or `%3B`, which Tomcat and Jetty read as the start of path parameters.
    #[error("the path holds a `;` (path parameters are refused)")]
    Semicolon,
    /// `%25` followed by two hex digits: an escape encoded twice.
    #[error("the path holds a percent-escape encoded twice (`%25` and two hex digits)")]
    DoubleEncoded,
    /// Escapes that do not decode to UTF-8, overlong forms included (`%C0%AE`).
    #[error("the path's escapes do not decode to UTF-8 (overlong forms included)")]
    InvalidUtf8,
    /// A segment of dots and spaces other than `.` and `..` (`...`, `.. `).
    #[error("the path holds a segment of dots and spaces other than `.` and `..`")]
    DotLikeSegment,
    /// A character that Unicode folding turns into `.`, `/` or `\` (fullwidth `．` and others).
    #[error("the path holds a character that Unicode folding turns into `.`, `/` or `\\`")]
    Confusable,
}

/// Characters that NFKC or Windows "best fit" mapping turn into `.`, `/` or `\`.
const CONFUSABLES: &[char] = &[
    '\u{2024}', // ONE DOT LEADER
    '\u{2025}', // TWO DOT LEADER
    '\u{2026}', // HORIZONTAL ELLIPSIS
    '\u{FE52}', // SMALL FULL STOP
    '\u{FF0E}', // FULLWIDTH FULL STOP
    '\u{2044}', // FRACTION SLASH
    '\u{2215}', // DIVISION SLASH
    '\u{29F8}', // BIG SOLIDUS
    '\u{FF0F}', // FULLWIDTH SOLIDUS
    '\u{29F5}', // REVERSE SOLIDUS OPERATOR
    '\u{29F9}', // BIG REVERSE SOLIDUS
    '\u{FE68}', // SMALL REVERSE SOLIDUS
    '\u{FF3C}', // FULLWIDTH REVERSE SOLIDUS
];

/// Normalises the path of a request-target (no query string): percent-decodes unreserved
/// characters, removes dot-segments (RFC 3986 §5.2.4), merges repeated slashes, and refuses
/// what could be read two ways (the module docs list it all). Returns the path rules match
/// and the upstream receives.
///
/// Idempotent: `normalize(normalize(x)?) == normalize(x)` for every accepted `x`. The result
/// starts with `/` and never holds a `.` or `..` segment, `//`, `%2F`, a NUL, `;`, `\`, a
/// lower-case escape or an escape of an unreserved character.
///
/// # Security
///
/// Forward exactly the returned string to the upstream, never the request's own path: the
/// guarantee is that the policy and the upstream read the same path.
pub fn normalize(raw: &str) -> Result<String, PathError> {
    let Some(rest) = raw.strip_prefix('/') else {
        return Err(PathError::NotAbsolute);
    };
    let pieces: Vec<&str> = rest.split('/').collect();
    let mut kept: Vec<String> = Vec::with_capacity(pieces.len());
    let mut trailing_slash = false;
    for (i, piece) in pieces.iter().enumerate() {
        // Every piece is checked, even one a later `..` removes (`/a/%00/../b`).
        let segment = segment(piece)?;
        let last = i + 1 == pieces.len();
        match segment.as_str() {
            "" | "." => trailing_slash = last,
            ".." => {
                kept.pop().ok_or(PathError::AboveRoot)?;
                trailing_slash = last;
            }
            _ => {
                kept.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut path = String::with_capacity(raw.len() + 1);
    for segment in &kept {
        path.push('/');
        path.push_str(segment);
    }
    if path.is_empty() || trailing_slash {
        path.push('/');
    }
    Ok(path)
}

/// One segment in canonical form, or why it is refused.
fn segment(piece: &str) -> Result<String, PathError> {
    let bytes = piece.as_bytes();
    let mut canonical = String::with_capacity(piece.len());
    // The segment fully decoded, to check it as an upstream that decodes would read it.
    let mut decoded: Vec<u8> = Vec::with_capacity(piece.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'%' {
            let value = match (bytes.get(i + 1), bytes.get(i + 2)) {
                (Some(&hi), Some(&lo)) => hex(hi).zip(hex(lo)).map(|(hi, lo)| hi << 4 | lo),
                _ => None,
            }
            .ok_or(PathError::InvalidEscape)?;
            refuse_decoded(value)?;
            if is_unreserved(value) {
                canonical.push(char::from(value));
            } else {
                push_escape(&mut canonical, value);
            }
            decoded.push(value);
            i += 3;
            continue;
        }
        match byte {
            b'\\' => return Err(PathError::Backslash),
            b';' => return Err(PathError::Semicolon),
            b'?' | b'#' => return Err(PathError::QueryOrFragment),
            0 => return Err(PathError::Nul),
            0x01..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
            _ if is_unreserved(byte) || is_raw_allowed(byte) => canonical.push(char::from(byte)),
            _ => push_escape(&mut canonical, byte),
        }
        decoded.push(byte);
        i += 1;
    }
    // A canonical `%25` followed by two hex digits is a second layer of encoding.
    if canonical.match_indices("%25").any(|(at, _)| {
        canonical
            .as_bytes()
            .get(at + 3..at + 5)
            .is_some_and(both_hex)
    }) {
        return Err(PathError::DoubleEncoded);
    }
    let text = std::str::from_utf8(&decoded).map_err(|_| PathError::InvalidUtf8)?;
    if text.contains(CONFUSABLES) {
        return Err(PathError::Confusable);
    }
    let dot_like = !text.is_empty() && text.bytes().all(|b| b == b'.' || b == b' ');
    if dot_like && text != "." && text != ".." {
        return Err(PathError::DotLikeSegment);
    }
    Ok(canonical)
}

/// The escapes refused whatever their place: they mean structure to some upstream.
fn refuse_decoded(value: u8) -> Result<(), PathError> {
    match value {
        b'/' => Err(PathError::EncodedSlash),
        b'\\' => Err(PathError::Backslash),
        b';' => Err(PathError::Semicolon),
        0 => Err(PathError::Nul),
        0x01..=0x1f | 0x7f => Err(PathError::ControlCharacter),
        _ => Ok(()),
    }
}

/// RFC 3986 §2.3: ALPHA / DIGIT / "-" / "." / "_" / "~".
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 §3.3 pchar besides unreserved and escapes: sub-delims (`;` refused before),
/// `:` and `@`.
fn is_raw_allowed(byte: u8) -> bool {
    matches!(
        byte,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=' | b':' | b'@'
    )
}

fn push_escape(out: &mut String, byte: u8) {
    // Writing to a String cannot fail.
    let _ = write!(out, "%{byte:02X}");
}

/// The bytes of a normalised segment with every escape decoded (an invalid one, which a
/// normalised path never holds, is kept as it is). Rules compare segments this way.
pub(crate) fn decoded(segment: &str) -> Decoded<'_> {
    Decoded {
        bytes: segment.as_bytes(),
        at: 0,
    }
}

/// The iterator of [`decoded`].
pub(crate) struct Decoded<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Iterator for Decoded<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.at)?;
        if byte == b'%' {
            let digit = |at: usize| self.bytes.get(at).copied().and_then(hex);
            if let (Some(hi), Some(lo)) = (digit(self.at + 1), digit(self.at + 2)) {
                self.at += 3;
                return Some(hi << 4 | lo);
            }
        }
        self.at += 1;
        Some(byte)
    }
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn both_hex(pair: &[u8]) -> bool {
    pair.iter().all(u8::is_ascii_hexdigit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreserved_escapes_are_decoded_and_others_upper_cased() {
        for (raw, expected) in [
            ("/", "/"),
            ("/%41%42c", "/ABc"),
            ("/a%2db%5F%7e", "/a-b_~"),
            ("/a%3ab%40c%2bd", "/a%3Ab%40c%2Bd"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/café", "/caf%C3%A9"),
            ("/a b\"c{d}", "/a%20b%22c%7Bd%7D"),
            ("/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,="),
            ("/50%25", "/50%25"),
            ("/x%25zz", "/x%25zz"),
        ] {
            assert_eq!(normalize(raw).as_deref(), Ok(expected), "{raw}");
        }
    }

    #[test]
    fn dot_segments_are_removed_and_slashes_merged() {
        for (raw, expected) in [
            ("/a/./b", "/a/b"),
            ("/a/b/../c", "/a/c"),
            ("/a/%2e%2E/c", "/c"),
            ("/a/.%2e/c", "/c"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/a/..", "/"),
            ("/.", "/"),
            ("//a///b//", "/a/b/"),
            ("/a/", "/a/"),
            ("/a/b/../", "/a/"),
            ("/...a/b..", "/...a/b.."),
            ("/a/.b/..c", "/a/.b/..c"),
        ] {
            assert_eq!(normalize(raw).as_deref(), Ok(expected), "{raw}");
        }
    }

    #[test]
    fn ambiguous_paths_are_refused_with_their_reason() {
        use PathError::*;
        for (raw, reason) in [
            ("", NotAbsolute),
            ("*", NotAbsolute),
            ("admin", NotAbsolute),
            ("http://h/admin", NotAbsolute),
            ("/a?b", QueryOrFragment),
            ("/a#b", QueryOrFragment),
            ("/%zz", InvalidEscape),
            ("/%4", InvalidEscape),
            ("/a%", InvalidEscape),
            ("/%u002e", InvalidEscape),
            ("/a%2fb", EncodedSlash),
            ("/a%2Fb", EncodedSlash),
            ("/a\\b", Backslash),
            ("/a%5cb", Backslash),
            ("/..", AboveRoot),
            ("/a/../..", AboveRoot),
            ("/a/%00", Nul),
            ("/a\0", Nul),
            ("/a%0d%0a", ControlCharacter),
            ("/a\t", ControlCharacter),
            ("/a%7f", ControlCharacter),
            ("/a;b", Semicolon),
            ("/a%3bb", Semicolon),
            ("/a%252e", DoubleEncoded),
            ("/a%25%32%65", DoubleEncoded),
            ("/%c0%ae", InvalidUtf8),
            ("/%e0%80%ae", InvalidUtf8),
            ("/%ff", InvalidUtf8),
            ("/%c3", InvalidUtf8),
            ("/...", DotLikeSegment),
            ("/..%20", DotLikeSegment),
            ("/.%20.", DotLikeSegment),
            ("/%ef%bc%8e%ef%bc%8e", Confusable),
            ("/a\u{FF0F}b", Confusable),
        ] {
            assert_eq!(normalize(raw), Err(reason), "{raw:?}");
        }
    }

    #[test]
    fn a_refused_segment_is_refused_even_when_a_later_dot_dot_removes_it() {
        assert_eq!(normalize("/a/%00/../b"), Err(PathError::Nul));
        assert_eq!(normalize("/a/%c0%ae/../b"), Err(PathError::InvalidUtf8));
    }
}
