//! An issuer behind a private CA: its keys are served over https on loopback with a
//! certificate that a test CA signed (tests/api/fixtures, valid for a century). The service
//! trusts it only once given that CA (`AUTH_CA_FILE`, the library's
//! `with_extra_root_certificates`); with the built-in roots alone the fetch fails.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use api_guard_server::dev_issuer::DevIssuer;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::helpers::{client, read, spawn_app_for, spawn_app_with};

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
