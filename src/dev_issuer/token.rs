//! The token endpoint: the client-credentials grant (RFC 6749 §4.4) with client authentication by
//! HTTP Basic or by body parameters (§2.3.1), answering per §5.1 and §5.2. Every failure is an
//! RFC 6749 JSON error, never actix's text body.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HeaderValue, PRAGMA, WWW_AUTHENTICATE,
};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::json;

use super::DevIssuer;

/// A token request is a few hundred bytes; anything near this is not one.
const BODY_LIMIT: usize = 16 * 1024;

/// Clients disagree on padding Basic credentials; RFC 7617 does not make it worth a rejection.
const BASIC: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A §5.2 error: the code, a curated description, and the status that goes with it.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum TokenError {
    InvalidRequest(String),
    InvalidClient(&'static str),
    UnsupportedGrantType,
    InvalidScope(String),
}

impl TokenError {
    pub(super) fn response(&self) -> HttpResponse {
        let (status, code, description) = match self {
            Self::InvalidRequest(why) => (StatusCode::BAD_REQUEST, "invalid_request", why.clone()),
            Self::InvalidClient(why) => (
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                (*why).to_owned(),
            ),
            Self::UnsupportedGrantType => (
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only `client_credentials` is supported".to_owned(),
            ),
            Self::InvalidScope(scope) => (
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                format!("scope `{scope}` is not allowed for this client"),
            ),
        };
        let mut response = HttpResponse::build(status);
        if status == StatusCode::UNAUTHORIZED {
            // §5.2: a 401 for invalid_client carries the challenge of the scheme we accept.
            response.insert_header((WWW_AUTHENTICATE, r#"Basic realm="api-guard-dev-issuer""#));
        }
        no_store(&mut response).json(json!({ "error": code, "error_description": description }))
    }
}

/// §5.1: token responses must not be cached.
pub(super) fn no_store(
    response: &mut actix_web::HttpResponseBuilder,
) -> &mut actix_web::HttpResponseBuilder {
    response
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((PRAGMA, "no-cache"))
}

/// `POST {prefix}/v1/token`.
pub(super) async fn token(
    req: HttpRequest,
    payload: web::Payload,
    issuer: web::Data<DevIssuer>,
) -> HttpResponse {
    let result = match read_form(&req, payload).await {
        Ok(form) => issue(&issuer, req.headers().get(AUTHORIZATION), &form),
        Err(error) => Err(error),
    };
    match result {
        Ok(body) => no_store(&mut HttpResponse::Ok()).json(body),
        Err(error) => {
            log::debug!("development issuer refused a token request: {error:?}");
            error.response()
        }
    }
}

pub(super) async fn read_form(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<HashMap<String, String>, TokenError> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    // §4.4.2: the request is application/x-www-form-urlencoded.
    if !media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(TokenError::InvalidRequest(
            "content type must be `application/x-www-form-urlencoded`".to_owned(),
        ));
    }
    let body = match payload.to_bytes_limited(BODY_LIMIT).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => {
            return Err(TokenError::InvalidRequest(
                "the request body could not be read".to_owned(),
            ));
        }
        Err(_) => {
            return Err(TokenError::InvalidRequest(
                "the request body is too large".to_owned(),
            ));
        }
    };
    parse_form(&body)
}

fn parse_form(body: &[u8]) -> Result<HashMap<String, String>, TokenError> {
    let mut form = HashMap::new();
    // §3.1: a parameter without a value is treated as omitted.
    for (name, value) in url::form_urlencoded::parse(body).filter(|(_, value)| !value.is_empty()) {
        // §3.2: parameters must not be included more than once.
        if form.insert(name.to_string(), value.into_owned()).is_some() {
            return Err(TokenError::InvalidRequest(format!(
                "parameter `{name}` is repeated"
            )));
        }
    }
    Ok(form)
}

fn issue(
    issuer: &DevIssuer,
    authorization: Option<&HeaderValue>,
    form: &HashMap<String, String>,
) -> Result<TokenResponse, TokenError> {
    authenticate(issuer, authorization, form)?;
    match form.get("grant_type").map(String::as_str) {
        None => {
            return Err(TokenError::InvalidRequest(
                "`grant_type` is required".to_owned(),
            ));
        }
        Some("client_credentials") => {}
        Some(_) => return Err(TokenError::UnsupportedGrantType),
    }
    let settings = issuer.settings();
    let granted = select_scopes(form.get("scope").map(String::as_str), &settings.scopes)?;
    let scopes: Vec<&str> = granted.iter().map(String::as_str).collect();
    // A development extension (Okta has none): `token_format=opaque` asks for an opaque
    // token, which only introspection can check.
    let access_token = match form.get("token_format").map(String::as_str) {
        None | Some("jwt") => issuer.mint(&scopes),
        Some("opaque") => issuer.mint_opaque(&scopes),
        Some(_) => {
            return Err(TokenError::InvalidRequest(
                "`token_format` must be `jwt` or `opaque`".to_owned(),
            ));
        }
    };
    Ok(TokenResponse {
        token_type: "Bearer",
        access_token,
        expires_in: settings.token_lifetime.as_secs(),
        scope: scopes.join(" "),
    })
}

/// RFC 6749 §5.1, fields in the order Okta sends them.
#[derive(serde::Serialize)]
struct TokenResponse {
    token_type: &'static str,
    access_token: String,
    expires_in: u64,
    scope: String,
}

/// §2.3.1: Basic credentials when the header is present, else `client_id`/`client_secret` in the body.
pub(super) fn authenticate(
    issuer: &DevIssuer,
    authorization: Option<&HeaderValue>,
    form: &HashMap<String, String>,
) -> Result<(), TokenError> {
    let (client_id, secret) = match authorization {
        Some(header) => {
            let value = header
                .to_str()
                .map_err(|_| TokenError::InvalidClient("malformed basic credentials"))?;
            let (client_id, secret) = basic_credentials(value)?;
            // §2.3: a client must not use more than one authentication method per request.
            if form.contains_key("client_secret") {
                return Err(TokenError::InvalidRequest(
                    "use one client authentication method, not two".to_owned(),
                ));
            }
            if form
                .get("client_id")
                .is_some_and(|body_id| *body_id != client_id)
            {
                return Err(TokenError::InvalidRequest(
                    "`client_id` differs from the basic credentials".to_owned(),
                ));
            }
            (client_id, secret)
        }
        None => match (form.get("client_id"), form.get("client_secret")) {
            (Some(client_id), Some(secret)) => (client_id.clone(), secret.clone()),
            _ => {
                return Err(TokenError::InvalidClient(
                    "client authentication is required",
                ));
            }
        },
    };
    let settings = issuer.settings();
    let secret_matches = aws_lc_rs::constant_time::verify_slices_are_equal(
        secret.as_bytes(),
        settings.client_secret.as_bytes(),
    )
    .is_ok();
    if client_id == settings.client_id && secret_matches {
        Ok(())
    } else {
        Err(TokenError::InvalidClient("client authentication failed"))
    }
}

/// The id and secret of `Basic base64(urlencode(id) ":" urlencode(secret))` (§2.3.1, RFC 7617 §2).
fn basic_credentials(value: &str) -> Result<(String, String), TokenError> {
    let (scheme, encoded) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    // RFC 7235 §2.1: the auth scheme is case-insensitive.
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(TokenError::InvalidClient(
            "only basic client authentication is supported",
        ));
    }
    let malformed = || TokenError::InvalidClient("malformed basic credentials");
    let decoded = BASIC.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (client_id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    Ok((
        form_decode(client_id).ok_or_else(malformed)?,
        form_decode(secret).ok_or_else(malformed)?,
    ))
}

/// application/x-www-form-urlencoded decoding of one value: `+` is a space, `%XX` a byte.
/// A `%` not followed by two hex digits stays literal, as the WHATWG URL standard decodes it.
fn form_decode(value: &str) -> Option<String> {
    let hex = |byte: &u8| char::from(*byte).to_digit(16);
    let mut out = Vec::with_capacity(value.len());
    let mut rest = value.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        match (byte, tail) {
            (b'+', _) => out.push(b' '),
            (b'%', [high, low, after @ ..]) if hex(high).is_some() && hex(low).is_some() => {
                out.push(u8::try_from(hex(high)? * 16 + hex(low)?).ok()?);
                rest = after;
            }
            _ => out.push(byte),
        }
    }
    String::from_utf8(out).ok()
}

/// §3.3: the requested scopes if all are allowed, every allowed scope if none was requested
/// (Okta's default when a client-credentials request names no scope).
fn select_scopes(requested: Option<&str>, allowed: &[String]) -> Result<Vec<String>, TokenError> {
    let mut granted: Vec<String> = Vec::new();
    for scope in requested
        .unwrap_or("")
        .split(' ')
        .filter(|scope| !scope.is_empty())
    {
        if !allowed.iter().any(|allowed| allowed == scope) {
            return Err(TokenError::InvalidScope(scope.to_owned()));
        }
        if !granted.iter().any(|seen| seen == scope) {
            granted.push(scope.to_owned());
        }
    }
    if granted.is_empty() {
        return Ok(allowed.to_vec());
    }
    Ok(granted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(raw: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    #[test]
    fn basic_credentials_decode_percent_encoding_and_plus() {
        let decoded = basic_credentials(&basic("my%3Aapp:s%26cret+with%25+spaces")).unwrap();
        assert_eq!(
            decoded,
            ("my:app".to_owned(), "s&cret with% spaces".to_owned())
        );
    }

    #[test]
    fn basic_credentials_accept_any_scheme_case_and_unpadded_base64() {
        let unpadded = base64::engine::general_purpose::STANDARD_NO_PAD.encode("id:s");
        assert_eq!(
            basic_credentials(&format!("bAsIc {unpadded}")).unwrap(),
            ("id".into(), "s".into())
        );
    }

    #[test]
    fn basic_credentials_keep_a_percent_that_starts_no_escape() {
        assert_eq!(
            basic_credentials(&basic("id:100%+sure%4")).unwrap().1,
            "100% sure%4"
        );
    }

    #[test]
    fn basic_credentials_reject_other_schemes_and_malformed_values() {
        let (no_colon, bad_utf8) = (basic("no-colon"), basic("id:%FF"));
        for value in [
            "Bearer abc",
            "Basic",
            "Basic !!!",
            no_colon.as_str(),
            bad_utf8.as_str(),
        ] {
            assert!(
                matches!(basic_credentials(value), Err(TokenError::InvalidClient(_))),
                "{value}"
            );
        }
    }

    #[test]
    fn select_scopes_grants_every_allowed_scope_when_none_is_requested() {
        let allowed = vec!["AccessAll".to_owned(), "read".to_owned()];
        assert_eq!(select_scopes(None, &allowed).unwrap(), allowed);
        assert_eq!(select_scopes(Some("  "), &allowed).unwrap(), allowed);
    }

    #[test]
    fn select_scopes_grants_the_requested_scopes_once_each() {
        let allowed = vec!["AccessAll".to_owned(), "read".to_owned()];
        assert_eq!(
            select_scopes(Some("read  read AccessAll"), &allowed).unwrap(),
            ["read", "AccessAll"]
        );
    }

    #[test]
    fn select_scopes_names_the_first_scope_that_is_not_allowed() {
        let allowed = vec!["AccessAll".to_owned()];
        assert_eq!(
            select_scopes(Some("AccessAll write admin"), &allowed),
            Err(TokenError::InvalidScope("write".to_owned()))
        );
    }

    #[test]
    fn parse_form_rejects_repeated_parameters_and_ignores_empty_ones() {
        assert!(matches!(
            parse_form(b"scope=a&scope=b"),
            Err(TokenError::InvalidRequest(_))
        ));
        let form = parse_form(b"grant_type=client_credentials&scope=").unwrap();
        assert_eq!(
            form.get("grant_type").map(String::as_str),
            Some("client_credentials")
        );
        assert!(!form.contains_key("scope"));
    }
}
