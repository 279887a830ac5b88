//! The `htu` comparison (RFC 9449 §4.3 check 9): a proof's `htu` names the request's URL
//! when both are equal after RFC 3986 §6.2.2 syntax-based and §6.2.3 scheme-based
//! normalisation, ignoring query and fragment.
//!
//! Equal: scheme and host in any case, the default port written or not, an empty path and
//! `/`, percent-encoded unreserved characters and the characters themselves, hex digits in
//! either case, dot segments resolved. Different: a trailing `/` (another path), an
//! encoded reserved character such as `%2F` and `/`, user information, another port.

/// The normal form of an `http` or `https` URL without query and fragment, or `None` when
/// `url` is not one (no scheme, user information, a bad port or percent-encoding).
pub(crate) fn normalise(url: &str) -> Option<String> {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..end];
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => "80",
        "https" => "443",
        _ => return None,
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.contains('@') || authority.is_empty() {
        return None;
    }
    let (host, port) = split_port(authority)?;
    let host = percent_normalised(host)?.to_ascii_lowercase();
    if !is_host(&host) {
        return None;
    }
    let mut normal = String::with_capacity(url.len() + 1);
    normal.push_str(&scheme);
    normal.push_str("://");
    normal.push_str(&host);
    if let Some(port) = port.filter(|port| *port != default_port) {
        normal.push(':');
        normal.push_str(port);
    }
    let path = percent_normalised(path)?;
    if !path.bytes().all(is_path_byte) {
        return None;
    }
    let path = without_dot_segments(&path);
    if path.is_empty() {
        normal.push('/');
    } else {
        normal.push_str(&path);
    }
    Some(normal)
}

/// `host[:port]` with the port's leading zeros dropped; `None` for a port that is not a
/// number in range. An empty port (`host:`) counts as absent (RFC 3986 §6.2.3).
fn split_port(authority: &str) -> Option<(&str, Option<&str>)> {
    let colon = match authority.rfind(':') {
        // `[::1]` has colons but no port.
        Some(colon) if !authority[colon..].contains(']') => colon,
        _ => return Some((authority, None)),
    };
    let (host, port) = (&authority[..colon], &authority[colon + 1..]);
    if port.is_empty() {
        return Some((host, None));
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().is_err() {
        return None;
    }
    let trimmed = port.trim_start_matches('0');
    Some((host, Some(if trimmed.is_empty() { "0" } else { trimmed })))
}

/// An IPv6 literal in brackets (the only host with `:`), or a name or IPv4 address of
/// unreserved characters and escapes. A `:` anywhere else would be read as a port the next
/// time the URL is parsed.
fn is_host(host: &str) -> bool {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(literal) => {
            !literal.is_empty()
                && literal
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
        }
        None => {
            !host.is_empty()
                && host.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'%')
                })
        }
    }
}

/// RFC 3986 §3.3 `pchar` and `/`, with `%` for the encoded bytes left encoded.
fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'%'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
        )
}

/// RFC 3986 §6.2.2.1–2: unreserved characters decoded, other escapes in upper case. `None`
/// for a `%` not followed by two hex digits.
fn percent_normalised(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(char::from(bytes[i]));
            i += 1;
            continue;
        }
        let hex = bytes.get(i + 1..i + 3)?;
        let value = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
        if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(value));
        } else {
            out.push('%');
            out.push_str(&format!("{value:02X}"));
        }
        i += 3;
    }
    text.is_ascii().then_some(out)
}

/// RFC 3986 §5.2.4 `remove_dot_segments`.
fn without_dot_segments(path: &str) -> String {
    let mut output: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (index, segment) in segments.iter().enumerate() {
        match *segment {
            "." | ".." => {
                if *segment == ".." && output.len() > 1 {
                    output.pop();
                }
                // A final dot segment leaves the path ending with `/`.
                if index == last {
                    output.push("");
                }
            }
            other => output.push(other),
        }
    }
    output.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &str, b: &str) -> bool {
        normalise(a).is_some() && normalise(a) == normalise(b)
    }

    #[test]
    fn spellings_rfc_3986_calls_equivalent_are_equal() {
        let base = "https://api.example.com/api/whoami";
        for variant in [
            "HTTPS://API.Example.COM/api/whoami",
            "https://api.example.com:443/api/whoami",
            "https://api.example.com:0443/api/whoami",
            "https://api.example.com:/api/whoami",
            "https://api.example.com/%61pi/whoami",
            "https://api.example.com/api/./whoami",
            "https://api.example.com/api/x/../whoami",
            "https://api.example.com/api/whoami?x=1",
            "https://api.example.com/api/whoami#frag",
        ] {
            assert!(same(base, variant), "{variant}");
        }
        assert!(same("http://h", "http://h/"));
        assert!(same("http://h/a%2fb", "http://h/a%2Fb"));
    }

    #[test]
    fn spellings_of_other_resources_differ() {
        let base = "https://api.example.com/api/whoami";
        for variant in [
            "https://api.example.com/api/whoami/",
            "https://api.example.com/API/whoami",
            "http://api.example.com/api/whoami",
            "https://api.example.com:8443/api/whoami",
            "https://api.example.com/api%2Fwhoami",
            "https://other.example.com/api/whoami",
            "https://user@api.example.com/api/whoami",
            "https://api.example.com:99999/api/whoami",
            "https://api.example.com/api/who%zzami",
            "ftp://api.example.com/api/whoami",
            "api.example.com/api/whoami",
            "https:///api/whoami",
            "https://api.example.com/api/wh oami",
            "https://api.example.com/api/whoämi",
        ] {
            assert!(!same(base, variant), "{variant}");
        }
    }

    #[test]
    fn ipv6_hosts_keep_their_colons() {
        assert_eq!(
            normalise("http://[::1]:80/x").as_deref(),
            Some("http://[::1]/x")
        );
        assert_eq!(
            normalise("http://[::1]:8080/x").as_deref(),
            Some("http://[::1]:8080/x")
        );
    }

    /// Found by the `dpop_proof` fuzz target: a host holding a `:` outside brackets, with an
    /// empty port after it, was accepted and normalised to a URL whose next reading took the
    /// text after that `:` for a port, and refused it (normalising was not idempotent).
    #[test]
    fn a_colon_outside_an_ipv6_literal_is_not_part_of_a_host() {
        for url in [
            "https://api.example:x:/orders",
            "https://api.example:443:/orders",
            "https://a:b:c/",
            "https://[::1/x",
            "https://::1]/x",
            "https://[zz]/x",
        ] {
            assert_eq!(normalise(url), None, "{url}");
        }
        for url in [
            "https://api.example:/x",
            "https://API.example:443/x",
            "http://[::1]/",
        ] {
            let once = normalise(url).unwrap_or_else(|| panic!("{url} is a URL"));
            assert_eq!(normalise(&once).as_deref(), Some(once.as_str()), "{url}");
        }
    }
}
