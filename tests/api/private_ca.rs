//! An issuer behind a private CA: its keys are served over https on loopback with a
//! certificate that a test CA signed (tests/api/fixtures, valid for a century). The service
//! trusts it only once given that CA (`AUTH_CA_FILE`, the library's
//! `with_extra_root_certificates`); with the built-in roots alone the fetch fails. The same
//! issuer is then reached through a small CONNECT proxy on loopback that counts its tunnels
//! (`HTTPS_PROXY`, `NO_PROXY`, as curl reads them).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use api_guard_server::dev_issuer::DevIssuer;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::helpers::{client, eventually, read, spawn_app_for, spawn_app_with};
use crate::process::Service;

const CA: &str = include_str!("fixtures/private-ca.pem");

/// Serves `body` as JSON over https on a loopback port, for at most 20 connections, with the
/// fixture certificate for 127.0.0.1; returns the port.
fn serve_https(body: String) -> u16 {
    let certs = CertificateDer::pem_slice_iter(include_bytes!("fixtures/issuer-cert.pem"))
        .collect::<Result<Vec<_>, _>>()
        .expect("the fixture certificate is PEM");
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("fixtures/issuer-key.pem"))
        .expect("the fixture key is PEM");
    let config = Arc::new(
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("the fixture key fits its certificate"),
    );
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let port = listener.local_addr().expect("its address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
            let Ok(connection) = rustls::ServerConnection::new(Arc::clone(&config)) else {
                continue;
            };
            let mut tls = rustls::StreamOwned::new(connection, stream);
            // The request head, whatever it asks: every path gets the key set. A client
            // that refuses the certificate ends the handshake here with an error.
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                match tls.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            if !head.ends_with(b"\r\n\r\n") {
                continue;
            }
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: max-age=300\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(response.as_bytes());
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    port
}

#[actix_web::test]
async fn keys_behind_a_private_ca_load_only_when_that_ca_is_trusted() {
    let (issuer, issuer_server) = DevIssuer::spawn("127.0.0.1:0", |_| {})
        .await
        .expect("dev issuer binds");
    let keys = client()
        .get(format!("{}/v1/keys", issuer.issuer()))
        .send()
        .await
        .expect("the dev issuer answers");
    let jwks = read(keys).await.body.to_string();
    let jwks_uri = format!("https://127.0.0.1:{}/keys", serve_https(jwks));

    // The built-in roots alone: the certificate is refused, no keys, not ready.
    let untrusted = spawn_app_with(|config| {
        config.auth = config.auth.clone().with_jwks_uri(&jwks_uri);
    })
    .await;
    assert_eq!(untrusted.get("/health/ready", &[]).await.status, 503);
    let fetches = untrusted.app.guard().key_store().fetches;
    assert!(
        fetches
            .iter()
            .any(|(outcome, n)| outcome.label() != "success" && *n > 0),
        "{fetches:?}"
    );

    // With the private CA: the keys load over https and the issuer's tokens are accepted.
    let trusted = spawn_app_for(issuer, issuer_server, |config| {
        config.auth = config
            .auth
            .clone()
            .with_jwks_uri(&jwks_uri)
            .with_extra_root_certificates(CA);
    })
    .await;
    assert_eq!(trusted.get("/health/ready", &[]).await.status, 200);
    assert_eq!(trusted.whoami(&trusted.token()).await.status, 200);
}

/// A CONNECT proxy on loopback, for at most 20 connections: it records each request's target
/// and either answers 407 or opens the tunnel and copies bytes both ways.
struct ConnectProxy {
    port: u16,
    targets: Arc<std::sync::Mutex<Vec<String>>>,
}

impl ConnectProxy {
    fn start(refuse: bool) -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let targets = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&targets);
        std::thread::spawn(move || {
            for stream in listener.incoming().take(20) {
                let Ok(mut client) = stream else { continue };
                let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    match client.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let Some(target) = head
                    .strip_prefix("CONNECT ")
                    .and_then(|rest| rest.split(' ').next())
                else {
                    continue;
                };
                seen.lock().unwrap().push(target.to_owned());
                if refuse {
                    let _ = client.write_all(
                        b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n",
                    );
                    continue;
                }
                let Ok(upstream) = std::net::TcpStream::connect(target) else {
                    continue;
                };
                let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                let _ = client.set_read_timeout(None);
                let (mut from_client, mut to_upstream) =
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from_client, &mut to_upstream);
                    let _ = to_upstream.shutdown(std::net::Shutdown::Write);
                });
                let (mut from_upstream, mut to_client) = (upstream, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from_upstream, &mut to_client);
                    let _ = to_client.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        ConnectProxy { port, targets }
    }

    fn tunnels(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }
}

/// The binary, trusting the private CA (a file in the directory returned with it), with its
/// keys at `jwks_uri` and `env` added.
fn service_behind(
    issuer: &DevIssuer,
    jwks_uri: &str,
    env: &[(&str, &str)],
) -> (Service, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, CA).expect("the CA file is written");
    let mut all = vec![
        ("AUTH_ISSUER", issuer.issuer()),
        ("AUTH_JWKS_URI", jwks_uri),
        ("AUTH_CA_FILE", ca.to_str().expect("a UTF-8 path")),
    ];
    all.extend_from_slice(env);
    (Service::start(&all, &[]), dir)
}

async fn ready(service: &Service) -> bool {
    eventually(Duration::from_secs(10), || async {
        client()
            .get(format!("{}/health/ready", service.base()))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await
}

#[actix_web::test]
async fn keys_over_https_go_through_https_proxy_unless_no_proxy_names_the_host() {
    let (issuer, _server) = DevIssuer::spawn("127.0.0.1:0", |_| {})
        .await
        .expect("dev issuer binds");
    let jwks = read(
        client()
            .get(format!("{}/v1/keys", issuer.issuer()))
            .send()
            .await
            .unwrap(),
    )
    .await
    .body
    .to_string();
    let https_port = serve_https(jwks);
    let jwks_uri = format!("https://127.0.0.1:{https_port}/keys");

    // Through the proxy: one tunnel to the key server, TLS inside it with the private CA.
    let proxy = ConnectProxy::start(false);
    let proxy_url = format!("http://127.0.0.1:{}", proxy.port);
    let (mut service, _ca) = service_behind(&issuer, &jwks_uri, &[("HTTPS_PROXY", &proxy_url)]);
    assert!(ready(&service).await, "{}", service.stop());
    let token = issuer.mint(&[]);
    let whoami = client()
        .get(format!("{}/api/whoami", service.base()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(whoami.status(), 200);
    let stderr = service.stop();
    assert_eq!(
        proxy.tunnels(),
        vec![format!("127.0.0.1:{https_port}")],
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("through the proxy {proxy_url} (HTTPS_PROXY)")),
        "{stderr}"
    );

    // curl's lower-case names, and NO_PROXY naming the host: direct, no tunnel.
    let bypassed = ConnectProxy::start(false);
    let (mut service, _ca) = service_behind(
        &issuer,
        &jwks_uri,
        &[
            (
                "https_proxy",
                &format!("http://127.0.0.1:{}", bypassed.port),
            ),
            ("no_proxy", "localhost, 127.0.0.0/8"),
        ],
    );
    assert!(ready(&service).await, "{}", service.stop());
    service.stop();
    assert_eq!(bypassed.tunnels(), Vec::<String>::new());
}

#[actix_web::test]
async fn a_proxy_that_refuses_the_tunnel_is_named_in_the_log_without_its_credentials() {
    let jwks_uri = "https://127.0.0.1:9/keys";
    let (issuer, _server) = DevIssuer::spawn("127.0.0.1:0", |_| {})
        .await
        .expect("dev issuer binds");
    let proxy = ConnectProxy::start(true);
    let proxy_url = format!("http://ops:s3cret-pass@127.0.0.1:{}", proxy.port);
    let (mut service, _ca) = service_behind(&issuer, jwks_uri, &[("HTTPS_PROXY", &proxy_url)]);
    let line = service.wait_for_line("refused CONNECT", Duration::from_secs(15));
    assert!(line.contains("407"), "{line}");
    assert!(
        line.contains(&format!("http://***@127.0.0.1:{}", proxy.port)),
        "{line}"
    );
    let status = client()
        .get(format!("{}/health/ready", service.base()))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 503);
    let stderr = service.stop();
    assert!(!stderr.contains("s3cret"), "{stderr}");
    // The refresher retries; every attempt asked for the same tunnel.
    let tunnels = proxy.tunnels();
    assert!(
        !tunnels.is_empty() && tunnels.iter().all(|t| t == "127.0.0.1:9"),
        "{tunnels:?}"
    );
}
