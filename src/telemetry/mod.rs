//! Logging and metrics: one line per request with method, path, status, latency, request
//! id, client address and, on a rejection, its reason; the same request counted in
//! [`Metrics`]. Never the token: the query string is not logged either.

mod client;
mod drain;
mod logger;
mod metrics;
mod process;

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web::Bytes;

pub use client::TrustedProxies;
pub use drain::Drain;
pub use logger::{LogFormat, init as init_logger};
pub use metrics::{CONTENT_TYPE, Exposition, InFlight, Metrics};
pub use process::{COMMIT, ProcessStats, VERSION, expose_build_info};

use api_guard::AuthError;

/// The header carrying the request id, taken from the caller or generated, and echoed.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Why a response that is not an authentication failure was refused or failed (the
/// gateway's 413, 502, ...), in the response's extensions: the request log and the metrics
/// show it as they show an [`AuthError`]'s reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogReason(pub &'static str);

/// The route a request is counted under when it was served by a default service rather
/// than a route (the gateway's proxy), in the request's extensions; the request log reads it
/// instead of walking the routes again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteLabel(pub &'static str);

/// The id of the current request, in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// What the request-log middleware needs besides the request: the trusted proxies, the
/// metrics, and whether the service is draining. Register it as app data; without it the
/// middleware logs the peer address and counts nothing.
#[derive(Clone, Default)]
pub struct Telemetry(Arc<Inner>);

#[derive(Default)]
struct Inner {
    trusted: TrustedProxies,
    metrics: Metrics,
    drain: Drain,
}

impl Telemetry {
    /// Telemetry believing forwarding headers from `trusted`, closing connections once
    /// `drain` starts.
    pub fn new(trusted: TrustedProxies, drain: Drain) -> Self {
        Telemetry(Arc::new(Inner {
            trusted,
            metrics: Metrics::default(),
            drain,
        }))
    }

    /// The request metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// Requests being served right now.
    pub fn in_flight(&self) -> u64 {
        self.0.metrics.in_flight()
    }

    /// Whether the service is draining.
    pub fn drain(&self) -> &Drain {
        &self.0.drain
    }
}

/// The request-log middleware: `App::new().wrap(from_fn(api_guard::telemetry::log_request))`.
///
/// The request counts as in flight until its response body has been written (see
/// [`Counted`]), so a shutdown that waits for in-flight requests never cuts off an answer.
pub async fn log_request<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<Counted<B>>, actix_web::Error> {
    let started = Instant::now();
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_acceptable_id(v))
        .map_or_else(generate_id, str::to_owned);
    req.extensions_mut().insert(RequestId(id.clone()));
    let telemetry = req.app_data::<Telemetry>().cloned();
    let in_flight = telemetry.as_ref().map(|t| t.metrics().start_request());
    let peer = req.peer_addr().map(|addr| addr.ip());
    let client = match (&telemetry, peer) {
        (Some(t), Some(peer)) => Some(t.0.trusted.client(peer, req.headers())),
        (None, Some(peer)) => Some(peer.to_canonical()),
        (_, None) => None,
    };
    let client = client.map_or_else(|| "-".to_owned(), |ip| ip.to_string());
    // Logged only when it is a well-formed W3C trace context; anything else is dropped.
    let trace = traceparent(req.headers());
    // The route: the pattern of the resource the decoded path matches, as the router matches
    // it (the raw path would put `/api/who%61mi` under `unmatched`); or, for a request a
    // default service served, the RouteLabel it gave the request (read below).
    let unrouted = req.resource_map().match_pattern(req.match_info().as_str());
    let method = req.method().clone();
    // The path is the client's text: bounded, like every outside value in a log line (the
    // logger itself escapes control characters in text and JSON alike).
    let path = bounded(req.path(), MAX_LOGGED_PATH);
    // `auth`: an authentication failure's reason, counted in the metrics; `reason`: that or
    // another refusal's (the gateway's), for the log line (its status is counted already).
    let log = |route: Option<&str>,
               status: StatusCode,
               auth: Option<&'static str>,
               reason: Option<&'static str>| {
        let latency = started.elapsed();
        if let Some(t) = &telemetry {
            let route = route.unwrap_or("unmatched");
            t.metrics()
                .record(route, method.as_str(), status.as_u16(), latency, auth);
        }
        let reason = auth.or(reason);
        let millis = latency.as_secs_f64() * 1000.0;
        let status = status.as_u16();
        let level = if status >= 500 {
            log::Level::Warn
        } else {
            log::Level::Info
        };
        let mut tail = reason.map(|r| format!(" reason={r}")).unwrap_or_default();
        if let Some(trace) = &trace {
            tail.push_str(" traceparent=");
            tail.push_str(trace);
        }
        let traceparent = trace.as_deref();
        log::log!(
            target: "api_guard::request",
            level,
            method:% = method,
            path = path.as_str(),
            status,
            latency_ms = (millis * 10.0).round() / 10.0,
            request_id = id.as_str(),
            client = client.as_str(),
            reason,
            traceparent;
            "{method} {path} {status} {millis:.1}ms id={id} client={client}{tail}"
        );
    };

    let mut response = match next.call(req).await {
        Ok(response) => response,
        Err(error) => {
            // actix turns the error into the response after us; log what it will send. (Only
            // middleware fails this way, e.g. a CORS refusal: handlers' errors are responses.)
            log(
                unrouted.as_deref(),
                error.as_response_error().status_code(),
                auth_reason(Some(&error)),
                None,
            );
            return Err(error);
        }
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    if telemetry.as_ref().is_some_and(|t| t.drain().is_draining()) {
        // Balancers that pool connections drop ours before we stop accepting.
        response
            .response_mut()
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    let auth = auth_reason(response.response().error());
    let reason = response
        .response()
        .extensions()
        .get::<LogReason>()
        .map(|reason| reason.0);
    let label = response.request().extensions().get::<RouteLabel>().copied();
    let route = label.map(|label| label.0).or(unrouted.as_deref());
    log(route, response.status(), auth, reason);
    Ok(response.map_body(|_, body| Counted { body, in_flight }))
}

/// The reason of an authentication failure.
fn auth_reason(error: Option<&actix_web::Error>) -> Option<&'static str> {
    error
        .and_then(|e| e.as_error::<AuthError>())
        .map(AuthError::reason_code)
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted in flight until the server has
    /// written it (or the connection is gone): the body is dropped only then.
    pub struct Counted<B> {
        #[pin]
        body: B,
        in_flight: Option<InFlight>,
    }
}

impl<B: MessageBody> MessageBody for Counted<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        self.project().body.poll_next(cx)
    }
}

/// The request's W3C `traceparent` (Trace Context §3.2), if there is exactly one and it is
/// well formed: `version-traceid-parentid-flags`, lowercase hex of 2, 32, 16 and 2 digits,
/// version not `ff`, neither id all zeros. Version `00` is exactly that; a later version may
/// append `-` and more, which is cut off (its first four fields are read as `00`'s). The
/// value returned is the 55 checked characters only, so nothing else reaches the log.
pub fn traceparent(headers: &actix_web::http::header::HeaderMap) -> Option<String> {
    let mut values = headers.get_all("traceparent");
    let value = values.next()?.to_str().ok()?;
    if values.next().is_some() {
        return None;
    }
    let value = value.trim_matches([' ', '\t']);
    let head = value.get(..55)?;
    let hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let mut parts = head.split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let well_formed = parts.next().is_none()
        && hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && hex(parent, 16)
        && parent.bytes().any(|b| b != b'0')
        && hex(flags, 2);
    let rest = &value[55..];
    let fits_version = if version == "00" {
        rest.is_empty()
    } else {
        rest.is_empty() || rest.starts_with('-')
    };
    (well_formed && fits_version).then(|| head.to_owned())
}

/// Printable ASCII of sensible length, so a caller cannot inject into logs.
/// The most bytes of a request path the request log keeps.
const MAX_LOGGED_PATH: usize = 1024;

/// `text` if it has at most `max` bytes, else its first `max` bytes (at a character
/// boundary), `…` and the full length.
fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…({} bytes)", &text[..end], text.len())
}

fn is_acceptable_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// A fresh request id: 24 hex digits of 96 random bits. The random bytes are drawn from the
/// system's generator 64 ids at a time (a call per request cost a thirtieth of a request).
fn generate_id() -> String {
    const BATCH: usize = 64;
    thread_local! {
        static RANDOM: RefCell<([[u8; 12]; BATCH], usize)> = const { RefCell::new(([[0; 12]; BATCH], BATCH)) };
    }
    let bytes = RANDOM.with_borrow_mut(|(batch, used)| {
        if *used == BATCH {
            if aws_lc_rs::rand::fill(batch.as_flattened_mut()).is_err() {
                return None;
            }
            *used = 0;
        }
        *used += 1;
        Some(batch[*used - 1])
    });
    let Some(bytes) = bytes else {
        return format!("{:x}", std::process::id());
    };
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(2 * bytes.len());
    for b in bytes {
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_single_well_formed_traceparent_is_kept() {
        use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
        let parse = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(
                    HeaderName::from_static("traceparent"),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            traceparent(&headers)
        };
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(parse(&[good]).as_deref(), Some(good));
        // A later version may carry more after a dash; the known fields are kept.
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra";
        assert_eq!(parse(&[future]).as_deref(), Some(&future[..55]));
        for bad in [
            "",
            "garbage",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 x=\"y\"",
        ] {
            assert_eq!(parse(&[bad]), None, "{bad:?}");
        }
        assert_eq!(parse(&[good, good]), None, "two traceparent headers");
    }

    #[test]
    fn a_logged_path_is_bounded() {
        assert_eq!(bounded("/api/whoami", 1024), "/api/whoami");
        let long = format!("/{}", "a".repeat(100_000));
        let logged = bounded(&long, MAX_LOGGED_PATH);
        assert!(logged.len() < MAX_LOGGED_PATH + 40, "{}", logged.len());
        assert!(logged.ends_with("…(100001 bytes)"), "{}", &logged[1000..]);
        assert_eq!(bounded("ééé", 3), "é…(6 bytes)");
    }

    #[test]
    fn request_ids_must_be_short_printable_ascii() {
        assert!(is_acceptable_id("abc-123"));
        assert!(!is_acceptable_id(""));
        assert!(!is_acceptable_id("a b"));
        assert!(!is_acceptable_id(&"x".repeat(129)));
        assert_eq!(generate_id().len(), 24);
    }

    #[test]
    fn generated_ids_differ_across_batches() {
        let ids: std::collections::HashSet<String> = (0..200).map(|_| generate_id()).collect();
        assert_eq!(ids.len(), 200);
        assert!(
            ids.iter()
                .all(|id| id.bytes().all(|b| b.is_ascii_hexdigit()))
        );
    }
}
