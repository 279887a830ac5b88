//! The bypass attempts the gateway is tested against, and how a lax upstream could read a
//! path: shared by the unit tests (`policy::tests`), the `path` fuzz target and black-box
//! tests through the proxy. Not part of the service's behaviour.
//!
//! Sources: Orange Tsai, "Breaking Parser Logic" (Black Hat 2018: `..;/`, `;` parameters,
//! `//`); Apache CVE-2021-41773/42013 (`.%2e`, `%%32%65`); Tomcat CVE-2007-0450 (`%2F`, `\`);
//! Resin and IIS overlong UTF-8 (`%c0%ae`, `%c0%af`); Jetty CVE-2021-34429 (`%u002e`,
//! `..%00`); Orange Tsai's "WorstFit" (fullwidth `．` and `＼`); Envoy's path normalisation
//! options (`merge_slashes`, `path_with_escaped_slashes_action`).

/// Request paths that try to reach `/admin` while looking like `/public/**` (or like no
/// protected rule), one per line of the table. Each is either refused by `normalize` or
/// decided on a path every upstream reads the same way.
pub const ATTEMPTS: &[&str] = &[
    "/public/../admin",
    "/public/%2e%2e/admin",
    "/public/%2E%2E/admin",
    "/public/..%2fadmin",
    "/public/..%2Fadmin",
    "/public/..%5cadmin",
    "/public/.%2e/admin",
    "/public/%2e./admin",
    "/public;/../admin",
    "/public/..;/admin",
    "/public/..;x=1/admin",
    "/public/%2e%2e;/admin",
    "/public/..%3b/admin",
    "//admin",
    "///admin",
    "/admin/",
    "/admin",
    "/Admin",
    "/ADMIN/x",
    "/%61dmin",
    "/%41dmin",
    "/admin;x=1/users",
    "/admin%3bx=1/users",
    "/public/%c0%ae%c0%ae/admin",
    "/public/%c0%af../admin",
    "/public/..%c0%afadmin",
    "/public/..%c1%9cadmin",
    "/public/%e0%80%ae%e0%80%ae/admin",
    "/public/%252e%252e/admin",
    "/public/..%252fadmin",
    "/public/..%255cadmin",
    "/public/%%32%65%%32%65/admin",
    "/public/%2%65%2%65/admin",
    "/public/%u002e%u002e/admin",
    "/%2fadmin",
    "/public%2f..%2fadmin",
    "/public/%00/../admin",
    "/public/..%00/admin",
    "/public/..%0d%0a/admin",
    "/public/..%09/admin",
    "/./admin",
    "/public/./../admin",
    "/public/%2e/%2e%2e/admin",
    "/public\\..\\admin",
    "/public/..\\admin",
    "/public/%2e%2e%2fadmin",
    "/public/%2e%2e%5cadmin",
    "/public/..%2F..%2Fadmin",
    "/public/../../admin",
    "/../admin",
    "/public/..//admin",
    "/public//../admin",
    "/public/x/../../admin",
    "/public/.../admin",
    "/public/..%20/admin",
    "/public/.%20./admin",
    "/public/\u{FF0E}\u{FF0E}/admin",
    "/public/%ef%bc%8e%ef%bc%8e/admin",
    "/public/..%ef%bc%8fadmin",
    "/public/..%ef%bc%bcadmin",
    "/public/\u{2025}/admin",
    "/public#/../admin",
    "/public?/../admin",
    "http://evil.example/admin",
    "admin",
    "*",
    "",
    "/public/x",
    "/admin/../public/x",
];

/// How the laxest upstreams could read a normalised path, structure-wise: percent-decoded
/// twice (invalid escapes left as they are), fullwidth and other look-alike dots and slashes
/// folded, `\` read as `/`, `;` parameters stripped from segments (Tomcat, Jetty), then
/// slashes merged and dot-segments removed (clamped at the root). For a path `normalize`
/// returned, this is the path decoded once: no reading sees another path.
pub fn lax_reading(path: &str) -> String {
    let decoded = decode(&decode(path));
    let folded: String = decoded
        .chars()
        .map(|c| match c {
            '\u{FF0E}' | '\u{FE52}' | '\u{2024}' => '.',
            '\u{FF0F}' | '\u{2215}' | '\u{2044}' | '\u{29F8}' | '\\' => '/',
            '\u{FF3C}' | '\u{FE68}' | '\u{29F5}' | '\u{29F9}' => '/',
            other => other,
        })
        .collect();
    let mut kept: Vec<&str> = Vec::new();
    let pieces: Vec<&str> = folded.split('/').collect();
    let mut trailing = false;
    for (i, piece) in pieces.iter().enumerate().skip(1) {
        let piece = piece.split(';').next().unwrap_or_default();
        let last = i + 1 == pieces.len();
        match piece {
            "" | "." => trailing = last,
            ".." => {
                kept.pop();
                trailing = last;
            }
            segment => {
                kept.push(segment);
                trailing = false;
            }
        }
    }
    let mut out = String::new();
    for segment in &kept {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || trailing {
        out.push('/');
    }
    out
}

/// Percent-decodes once, leniently: an invalid escape is kept as it is; bytes that are not
/// UTF-8 become U+FFFD.
pub fn decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .filter(|pair| pair.iter().all(u8::is_ascii_hexdigit))
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match escape {
            Some(value) => {
                out.push(value);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
