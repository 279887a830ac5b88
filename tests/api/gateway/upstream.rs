//! The upstreams the proxy is tested against: an actix-web server on a loopback port that
//! echoes what it received (method, path, query, headers, body length and byte sum, the body
//! read as a stream), streams large bodies, or answers late; and raw TCP servers that answer
//! what no HTTP library would send.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use api_guard_server::Config;
use api_guard_server::gateway::UpstreamSettings;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::helpers::{TestApp, serve, spawn_app_with};

/// The echo upstream and how many requests reached it.
pub struct Echo {
    pub origin: String,
    pub hits: Arc<AtomicU64>,
}

impl Echo {
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Starts the echo upstream. Its routes: `/download?bytes=N[&sized]` streams N bytes (chunked,
/// or with a length), `/slow` answers after 3 s, `/stall` sends 1 KiB and then nothing, and
/// every other path echoes the request as JSON.
pub async fn echo_upstream() -> Echo {
    let hits = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&hits);
    let origin = serve(move |cfg| {
        cfg.app_data(web::Data::from(Arc::clone(&counted)))
            .route("/download", web::get().to(download))
            .route("/slow", web::route().to(slow))
            .route("/stall", web::get().to(stall))
            .default_service(web::to(echo));
    })
    .await;
    Echo { origin, hits }
}

async fn echo(
    req: HttpRequest,
    mut body: web::Payload,
    hits: web::Data<AtomicU64>,
) -> HttpResponse {
    hits.fetch_add(1, Ordering::SeqCst);
    let (mut bytes, mut sum) = (0u64, 0u64);
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else {
            return HttpResponse::BadRequest().finish();
        };
        bytes += chunk.len() as u64;
        sum = chunk.iter().fold(sum, |s, &b| s.wrapping_add(u64::from(b)));
    }
    let headers: Vec<Value> = req
        .headers()
        .iter()
        .map(|(name, value)| json!([name.as_str(), String::from_utf8_lossy(value.as_bytes())]))
        .collect();
    HttpResponse::Ok().json(json!({
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "query": req.query_string(),
        "headers": headers,
        "body_bytes": bytes,
        "body_sum": sum,
    }))
}

/// The values of header `name` the echo upstream saw.
pub fn seen(echo: &Value, name: &str) -> Vec<String> {
    echo["headers"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|pair| {
                    pair[0]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
                })
                .filter_map(|pair| pair[1].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The byte at `offset` of every generated body: a pattern that a lost or repeated chunk
/// would change the sum of.
pub fn pattern(offset: u64) -> u8 {
    (offset % 251) as u8
}

/// `n` bytes of [`pattern`] in 64 KiB chunks, generated as they are read.
pub fn generated(n: u64) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> {
    const CHUNK: u64 = 64 * 1024;
    futures_util::stream::unfold(0u64, move |offset| async move {
        if offset >= n {
            return None;
        }
        let len = CHUNK.min(n - offset);
        let chunk: Vec<u8> = (offset..offset + len).map(pattern).collect();
        Some((Ok(Bytes::from(chunk)), offset + len))
    })
}

/// The byte sum of `n` bytes of [`pattern`].
pub fn pattern_sum(n: u64) -> u64 {
    (0..n).fold(0u64, |s, i| s.wrapping_add(u64::from(pattern(i))))
}

async fn download(req: HttpRequest) -> HttpResponse {
    let bytes: u64 =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("bytes").and_then(|b| b.parse().ok()))
            .unwrap_or(0);
    let mut response = HttpResponse::Ok();
    if req.query_string().contains("sized") {
        response.no_chunking(bytes);
    }
    response
        .content_type("application/octet-stream")
        .streaming(generated(bytes))
}

async fn slow() -> HttpResponse {
    actix_web::rt::time::sleep(Duration::from_secs(3)).await;
    HttpResponse::Ok().body("late")
}

async fn stall() -> HttpResponse {
    let first = futures_util::stream::once(async {
        Ok::<_, actix_web::Error>(Bytes::from(vec![b'x'; 1024]))
    });
    HttpResponse::Ok().streaming(first.chain(futures_util::stream::pending()))
}

/// A TCP server on a loopback port that answers each of its next `connections` connections
/// with `answer` once it has read the request head (`None`: resets the connection instead).
pub fn raw_upstream(answer: Option<&'static [u8]>, connections: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(connections) {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            read_head(&mut stream);
            match answer {
                Some(bytes) => {
                    let _ = stream.write_all(bytes);
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                }
                None => {
                    // SO_LINGER 0: closing sends RST, a reset connection.
                    let socket = socket2::Socket::from(stream);
                    let _ = socket.set_linger(Some(Duration::ZERO));
                }
            }
        }
    });
    origin
}

/// Reads up to the end of a request head (at most 64 KiB).
fn read_head(stream: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while head.len() < 65536 && !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    head
}

/// Sends `request` as written on a new connection to `addr` and reads the answer to its end
/// (the request should say `Connection: close`): the status, the head, the body.
pub fn raw_request(addr: SocketAddr, request: &str) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an answer with a head");
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let status = head[9..12].parse().expect("a status code");
    (status, head, answer[split + 4..].to_vec())
}

/// Gateway settings for `origin` with the defaults of the command line.
pub fn settings(origin: &str) -> UpstreamSettings {
    UpstreamSettings {
        origin: origin.to_owned(),
        forward_token: false,
        preserve_host: false,
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(60),
        max_body_bytes: 64 << 20,
    }
}

/// The service in gateway mode in front of `origin`, its settings changed by `customize`.
pub async fn spawn_gateway(
    origin: &str,
    customize: impl FnOnce(&mut UpstreamSettings, &mut Config),
) -> TestApp {
    let mut upstream = settings(origin);
    spawn_app_with(|config| {
        customize(&mut upstream, config);
        config.upstream = Some(upstream);
    })
    .await
}

/// A token of `app`'s issuer that expired an hour ago.
pub fn expired_token(app: &TestApp) -> String {
    let mut claims = app.issuer.standard_claims(&["AccessAll"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    claims["iat"] = json!(now - 7200);
    claims["exp"] = json!(now - 3600);
    app.issuer.mint_with(app.issuer.standard_header(), claims)
}
