//! Reads the bearer token from a request, per RFC 6750 §2.1 only.
//!
//! The `Authorization` request header is the one accepted method: tokens in the query string
//! (§2.3) or a form body (§2.2) are refused, because they end up in logs and caches.

use actix_web::http::header::{AUTHORIZATION, HeaderMap};

use super::error::{Error, Reason};

/// Returns the token of the single `Authorization: Bearer <token>` header.
///
/// The scheme is case-insensitive (RFC 7235 §2.1). Another scheme counts as no credentials,
/// so the caller is told which scheme we want; a malformed Bearer value is `invalid_request`.
pub fn token_from<'h>(headers: &'h HeaderMap, query: &str) -> Result<&'h str, Error> {
    let mut values = headers.get_all(AUTHORIZATION);
    let Some(value) = values.next() else {
        let reason = if query_has_token(query) {
            Reason::TokenInQuery
        } else {
            Reason::NoHeader
        };
        return Err(Error::MissingToken(reason));
    };
    if values.next().is_some() {
        return Err(Error::InvalidRequest(Reason::RepeatedHeader));
    }
    // What `HeaderValue::to_str` accepts (visible ASCII, space, tab), checked in one pass
    // the compiler vectorises: tokens are a kilobyte and this runs on every request.
    let value = Some(value.as_bytes())
        .filter(|bytes| all_bytes(bytes, |b| b == b'\t' || (b' '..=b'~').contains(&b)))
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .ok_or(Error::InvalidRequest(Reason::MalformedHeader))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Error::MissingToken(Reason::OtherScheme));
    }
    let token = rest.trim_start_matches(' ');
    if is_b64token(token) {
        Ok(token)
    } else {
        Err(Error::InvalidRequest(Reason::MalformedHeader))
    }
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub(crate) fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && all_bytes(body.as_bytes(), |b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// Whether `accept` holds for every byte. Without the early exit of `Iterator::all`, so the
/// loop is branch-free and vectorised.
fn all_bytes(bytes: &[u8], accept: impl Fn(u8) -> bool) -> bool {
    bytes.iter().fold(true, |all, &b| all & accept(b))
}

fn query_has_token(query: &str) -> bool {
    query
        .split('&')
        .any(|pair| pair.split('=').next() == Some("access_token"))
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(AUTHORIZATION, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        for value in [
            "Bearer abc.def.ghi",
            "bearer abc.def.ghi",
            "BEARER abc.def.ghi",
        ] {
            let headers = headers(&[value]);
            assert_eq!(token_from(&headers, ""), Ok("abc.def.ghi"), "{value}");
        }
    }

    #[test]
    fn another_scheme_counts_as_no_credentials() {
        let headers = headers(&["Basic dXNlcjpwYXNz"]);
        let result = token_from(&headers, "");
        assert_eq!(result, Err(Error::MissingToken(Reason::OtherScheme)));
    }

    #[test]
    fn malformed_bearer_values_are_invalid_requests() {
        for value in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer a,b",
            "Bearer ==",
            "Bearer a\tb",
        ] {
            let headers = headers(&[value]);
            assert_eq!(
                token_from(&headers, ""),
                Err(Error::InvalidRequest(Reason::MalformedHeader)),
                "{value:?}"
            );
        }
    }

    #[test]
    fn a_header_value_that_is_not_visible_ascii_is_an_invalid_request() {
        for value in [&b"Bearer a\x80b"[..], b"Basic \xff", b"Bearer \xc3\xa9"] {
            let mut map = HeaderMap::new();
            let header = HeaderValue::from_bytes(value).expect("a header value");
            map.append(AUTHORIZATION, header);
            assert_eq!(
                token_from(&map, ""),
                Err(Error::InvalidRequest(Reason::MalformedHeader)),
                "{value:?}"
            );
        }
    }

    #[test]
    fn two_authorization_headers_are_an_invalid_request() {
        let headers = headers(&["Bearer a.b.c", "Bearer d.e.f"]);
        let result = token_from(&headers, "");
        assert_eq!(result, Err(Error::InvalidRequest(Reason::RepeatedHeader)));
    }

    #[test]
    fn a_token_in_the_query_string_is_not_accepted_but_named() {
        let headers = HeaderMap::new();
        let result = token_from(&headers, "x=1&access_token=abc");
        assert_eq!(result, Err(Error::MissingToken(Reason::TokenInQuery)));
    }
}
