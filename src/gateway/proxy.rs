//! The reverse proxy: one handler for every path that is not api-guard's own, and one awc
//! client per worker, keeping connections to the upstream alive between requests. Requests
//! are never retried (a request that failed may have had effects), so a failure is the
//! client's 502 or 504 to handle.

use std::time::Duration;

use actix_web::HttpMessage;
use actix_web::body::BodySize;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{StatusCode, Uri};
use actix_web::{HttpRequest, HttpResponse, web};
use awc::error::{ConnectError, SendRequestError};

use super::access::{Allowed, authorize, normalized};
use super::body::{RequestBody, RequestBodyError, ResponseBody};
use super::error::Error;
use super::headers::{Forwarding, passes_back, to_upstream};
use super::{Gateway, UPSTREAM_CONNECTIONS, UPSTREAM_IDLE, UpstreamSettings};
use crate::telemetry::{REQUEST_ID, RequestId, RouteLabel};
use api_guard::ProofTarget;

/// The route the metrics count proxied requests under.
const ROUTE: &str = "/{upstream:.*}";

/// One worker's way to the upstream: its own client (awc's is not `Send`) and the settings.
#[derive(Clone)]
pub(super) struct Upstream {
    client: awc::Client,
    settings: UpstreamSettings,
}

impl Upstream {
    pub(super) fn new(settings: &UpstreamSettings) -> Self {
        let connector = awc::Connector::new()
            .timeout(settings.connect_timeout)
            .conn_keep_alive(UPSTREAM_IDLE)
            .limit(UPSTREAM_CONNECTIONS);
        let client = awc::Client::builder()
            .connector(connector)
            .timeout(settings.timeout)
            .disable_redirects()
            // No User-Agent of awc's: the client's own goes through.
            .no_default_headers()
            .finish();
        Upstream {
            client,
            settings: settings.clone(),
        }
    }
}

/// Every method, every path no earlier route took.
pub(super) async fn proxy(
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let (Some(gateway), Some(upstream)) = (req.app_data::<Gateway>(), req.app_data::<Upstream>())
    else {
        log::error!("the proxy route is registered without its gateway: use Gateway::configure");
        return Ok(HttpResponse::InternalServerError().finish());
    };
    req.extensions_mut().insert(RouteLabel(ROUTE));
    let settings = &upstream.settings;
    let path = normalized(req.path())?;
    // A DPoP proof names the path as normalised: the one the policy decides on and the
    // upstream receives (`/x//../admin` is `/admin` here, `/x/admin` to RFC 3986 alone).
    // Said only when it differs from the request's own, which the library reads otherwise.
    if path != req.path() {
        req.extensions_mut()
            .insert(ProofTarget::new(req.method().clone(), path.clone()));
    }
    let allowed = authorize(&gateway.0.policy, &req, req.method(), &path).await?;
    if is_websocket(&req) {
        return Err(Error::NotImplemented(
            "WebSocket upgrades are not proxied by this gateway; call the API over plain HTTP",
        )
        .into());
    }
    let size = body_size(&req, settings.max_body_bytes)?;
    let uri = upstream_uri(&settings.origin, &path, req.query_string())?;

    let mut request = upstream.client.request(req.method().clone(), uri);
    let forwarding = Forwarding {
        peer: req.peer_addr().map(|addr| addr.ip()),
        trusted: &gateway.0.trusted,
        forward_token: settings.forward_token,
        preserve_host: settings.preserve_host,
    };
    to_upstream(req.headers(), &forwarding, request.headers_mut());
    // One id in both logs: the caller's when it sent an acceptable one, else api-guard's.
    if let Some(id) = req.extensions().get::<RequestId>()
        && let Ok(value) = HeaderValue::from_str(&id.0)
    {
        request.headers_mut().insert(REQUEST_ID, value);
    }
    if let Allowed::Authenticated(identity) = &allowed {
        identity.write(request.headers_mut());
    }
    let body = RequestBody::new(payload, size, settings.max_body_bytes);
    let answer = request
        .send_body(body)
        .await
        .map_err(|e| failure(e, settings))?;

    let status = answer.status();
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(Error::BadAnswer(
            "101 Switching Protocols to a request without Upgrade".to_owned(),
        )
        .into());
    }
    let mut response = HttpResponse::build(status);
    for (name, value) in answer.headers() {
        if passes_back(answer.headers(), name) {
            response.append_header((name.clone(), value.clone()));
        }
    }
    let size = response_size(&req, status, answer.headers());
    Ok(response.body(ResponseBody::new(answer, size, settings.timeout)))
}

/// Whether the client asks for a WebSocket (RFC 6455 §4.1): not proxied, answered 501.
fn is_websocket(req: &HttpRequest) -> bool {
    req.headers().get_all(header::UPGRADE).any(|value| {
        value.to_str().is_ok_and(|text| {
            text.split(',')
                .any(|protocol| protocol.trim().eq_ignore_ascii_case("websocket"))
        })
    })
}

/// The body the client declared: `Content-Length` (checked against the limit at once),
/// chunked (counted on the way), or none. Another transfer coding is not proxied.
fn body_size(req: &HttpRequest, limit: u64) -> Result<BodySize, Error> {
    let headers = req.headers();
    if let Some(coding) = headers.get(header::TRANSFER_ENCODING) {
        return if coding.as_bytes().eq_ignore_ascii_case(b"chunked") {
            Ok(BodySize::Stream)
        } else {
            Err(Error::NotImplemented(
                "only the chunked transfer coding is proxied",
            ))
        };
    }
    // actix has refused a malformed or repeated Content-Length already.
    match headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        Some(length) if length > limit => Err(Error::TooLarge { limit }),
        Some(length) => Ok(BodySize::Sized(length)),
        None => Ok(BodySize::None),
    }
}

/// `origin`, the normalised path and the query as the client sent it.
fn upstream_uri(origin: &str, path: &str, query: &str) -> Result<Uri, Error> {
    let mut uri = String::with_capacity(origin.len() + path.len() + query.len() + 1);
    uri.push_str(origin);
    uri.push_str(path);
    if !query.is_empty() {
        uri.push('?');
        uri.push_str(query);
    }
    Uri::try_from(uri)
        .map_err(|_| Error::BadForwardedRequest("the request path or query cannot be passed on"))
}

/// The framing of the answer: none for HEAD, 1xx, 204 and 304 (whatever `Content-Length`
/// says, RFC 9110 §6.4.1), the upstream's length, or a stream.
fn response_size(req: &HttpRequest, status: StatusCode, headers: &header::HeaderMap) -> BodySize {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return BodySize::None;
    }
    if req.method() == actix_web::http::Method::HEAD {
        // actix writes this length and no body.
        return length.map_or(BodySize::None, BodySize::Sized);
    }
    length.map_or(BodySize::Stream, BodySize::Sized)
}

/// What a failed exchange with the upstream means for the client.
fn failure(error: SendRequestError, settings: &UpstreamSettings) -> actix_web::Error {
    let secs = |d: Duration| d.as_secs();
    match error {
        SendRequestError::Body(body) => match body.downcast::<RequestBodyError>() {
            Ok(body) => match *body {
                RequestBodyError::TooLarge(limit) => Error::TooLarge { limit }.into(),
                RequestBodyError::Client(e) => Error::BrokenBody(e.to_string()).into(),
            },
            Err(other) => Error::BrokenBody(other.to_string()).into(),
        },
        SendRequestError::Timeout => {
            log::debug!(
                "no answer within UPSTREAM_TIMEOUT_SECS ({} s)",
                secs(settings.timeout)
            );
            Error::Timeout("no response headers within UPSTREAM_TIMEOUT_SECS").into()
        }
        SendRequestError::Connect(ConnectError::Timeout) => {
            log::debug!(
                "no connection within UPSTREAM_CONNECT_TIMEOUT_SECS ({} s)",
                secs(settings.connect_timeout)
            );
            Error::Timeout("no connection within UPSTREAM_CONNECT_TIMEOUT_SECS").into()
        }
        SendRequestError::Response(e) => Error::BadAnswer(e.to_string()).into(),
        SendRequestError::Connect(e) => {
            Error::Unreachable(format!("{} ({e})", settings.origin)).into()
        }
        other => Error::Unreachable(format!("{} ({other})", settings.origin)).into(),
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("origin", &self.settings.origin)
            .finish_non_exhaustive()
    }
}
