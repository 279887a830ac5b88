//! The `Host` check of the development issuer and of `api-guard --dev`: only requests to a
//! loopback host are answered, against DNS rebinding.

use actix_web::HttpResponse;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;

/// Refuses (421 Misdirected Request) a request whose `Host` is not a loopback name or
/// address. A web page of a domain that an attacker re-points at 127.0.0.1 (DNS rebinding)
/// is same-origin with whatever listens here, but its requests carry the attacker's `Host`:
/// so the development issuer answers only `localhost`, `*.localhost`, `127.0.0.0/8` and
/// `[::1]`, with any port. Wrapped around the development issuer's routes, and around the whole
/// service under `--dev`.
pub async fn loopback_host_only<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    // No `Host` at all is no browser's request (browsers always send one): not rebinding.
    if host.is_none_or(is_loopback_host) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let response = HttpResponse::MisdirectedRequest()
        .content_type("text/plain; charset=utf-8")
        .body("the development issuer answers only requests to a loopback host: use http://127.0.0.1:PORT or http://localhost:PORT\n");
    Ok(req.into_response(response).map_into_right_body())
}

/// Whether `host` (a `Host` header: a name or address, with an optional port) is a loopback
/// name (`localhost`, `*.localhost`, RFC 6761 §6.3) or a loopback address.
pub fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // `[::1]` or `[::1]:8080`
        Some(rest) => match rest.split_once(']') {
            Some((inside, "")) => inside,
            Some((inside, port)) if port.strip_prefix(':').is_some_and(is_port) => inside,
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        },
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if let Ok(ip) = name.parse::<std::net::IpAddr>() {
        return ip.is_loopback();
    }
    name == "localhost" || name.ends_with(".localhost")
}

fn is_port(digits: &str) -> bool {
    (1..=5).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_and_addresses_with_any_port_are_loopback() {
        for host in [
            "localhost",
            "LOCALHOST:8080",
            "localhost.",
            "app.localhost:3000",
            "127.0.0.1",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:8080",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "attacker.example",
            "attacker.example:8080",
            "localhost.attacker.example",
            "127.0.0.1.nip.io",
            "0.0.0.0:8080",
            "192.0.2.1",
            "[2001:db8::1]:80",
            "::1",
            "[::1]x",
            "localhost:",
            "localhost:123456",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
