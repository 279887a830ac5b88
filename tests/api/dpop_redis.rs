//! `DPOP_REPLAY_STORE=redis://...` with a real `redis-server` (Debian's; `.ci/run` installs
//! it) on a loopback port: three replicas behind one `PUBLIC_URL` share the proofs they
//! saw, Redis stopped means 503 (never an unchecked accept), and Redis back means service
//! again without a restart.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api_guard_server::dev_issuer::DevIssuer;
use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::json;

use crate::helpers::{Reply, TestApp, eventually, spawn_app_for};

const PUBLIC: &str = "https://api.example.com";

/// A `redis-server` child on `port`, stopped (by its PID) when dropped.
struct Redis(Child);

impl Redis {
    fn start(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs: install it (apt-get install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis(child)
    }

    fn stop(mut self) {
        self.0.kill().expect("redis-server is stopped");
        self.0.wait().expect("redis-server is reaped");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A P-256 client key and its proofs (made here, as in `dpop.rs`).
struct Client(EcdsaKeyPair, String);

impl Client {
    fn new() -> Self {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let point = key.public_key().as_ref();
        let (x, y) = (B64.encode(&point[1..33]), B64.encode(&point[33..65]));
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let thumbprint = B64.encode(digest::digest(&digest::SHA256, canonical.as_bytes()));
        Client(key, thumbprint)
    }

    fn proof(&self, token: &str) -> String {
        let point = self.0.public_key().as_ref();
        let jwk = json!({"kty": "EC", "crv": "P-256",
                         "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])});
        let iat = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti).unwrap();
        let claims = json!({"jti": B64.encode(jti), "htm": "GET", "htu": format!("{PUBLIC}/api/whoami"),
                            "iat": iat, "ath": B64.encode(digest::digest(&digest::SHA256, token.as_bytes()))});
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature = self.0.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", B64.encode(signature.as_ref()))
    }
}

async fn whoami(app: &TestApp, token: &str, proof: &str) -> Reply {
    let auth = format!("DPoP {token}");
    app.get("/api/whoami", &[("Authorization", &auth), ("DPoP", proof)])
        .await
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap()
}

#[actix_web::test]
async fn replicas_sharing_redis_refuse_a_proof_used_at_another_and_answer_503_while_it_is_down() {
    let port = free_port();
    let redis = Redis::start(port);
    let (issuer, issuer_server) = DevIssuer::spawn("127.0.0.1:0", |_| {}).await.unwrap();
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let replica = spawn_app_for(issuer.clone(), issuer_server.clone(), |config| {
            config.public_url = Some(PUBLIC.to_owned());
            config.auth = config.auth.clone().with_public_url(PUBLIC);
            config.dpop_replay_store = Some(format!("127.0.0.1:{port}"));
        })
        .await;
        replicas.push(replica);
    }
    let client = Client::new();
    let token = issuer.mint_bound(&["AccessAll"], &client.1);

    let proof = client.proof(&token);
    let first = whoami(&replicas[0], &token, &proof).await;
    assert_eq!(first.status, 200, "first use at replica 0: {}", first.body);
    for (n, replica) in replicas.iter().enumerate().skip(1) {
        let reply = whoami(replica, &token, &proof).await;
        assert_eq!(
            reply.status, 401,
            "the same proof at replica {n}: {}",
            reply.body
        );
        assert_eq!(
            reply.body["error_description"],
            api_guard::Reason::DpopReplayed.description()
        );
        let fresh = whoami(replica, &token, &client.proof(&token)).await;
        assert_eq!(
            fresh.status, 200,
            "a fresh proof at replica {n}: {}",
            fresh.body
        );
    }

    redis.stop();
    let down = whoami(&replicas[1], &token, &client.proof(&token)).await;
    assert_eq!(down.status, 503, "Redis stopped: {}", down.body);
    assert!(down.header("retry-after").is_some(), "{:?}", down.headers);
    assert_eq!(down.body["error"], "temporarily_unavailable");
    // Bearer tokens need no replay check: they still pass.
    assert_eq!(
        replicas[1]
            .whoami(&issuer.mint(&["AccessAll"]))
            .await
            .status,
        200
    );
    let shows_it = eventually(Duration::from_secs(5), || async {
        let ready = replicas[1].get("/health/ready", &[]).await;
        ready.body["dpop_replay_store"] == "unavailable"
    })
    .await;
    assert!(shows_it, "/health/ready shows the replay store unavailable");

    let _redis = Redis::start(port);
    let back = eventually(Duration::from_secs(10), || async {
        whoami(&replicas[1], &token, &client.proof(&token))
            .await
            .status
            == 200
    })
    .await;
    assert!(
        back,
        "a fresh proof passes once Redis is back, without a restart"
    );
    let ready = replicas[1].get("/health/ready", &[]).await;
    assert_eq!(
        ready.body["dpop_replay_store"], "available",
        "{}",
        ready.body
    );
}
