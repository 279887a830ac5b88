//! A DPoP client (RFC 9449) for trying api-guard: makes a P-256 key, asks the service's
//! issuer for a token bound to it (client credentials with a `DPoP` proof), then calls
//! `GET /api/whoami` with a fresh proof and prints the answer.
//!
//! ```text
//! api-guard --dev &                                   # the service and its issuer
//! cargo run --example dpop-client -- http://127.0.0.1:8080
//! cargo run --example dpop-client -- http://127.0.0.1:8080 --curl   # print a curl command
//! cargo run --example dpop-client -- http://127.0.0.1:8080 --proofs N # for benches/load/dpop
//! ```
//!
//! `--proofs N` prints the bound token on one line, then N proofs for `GET /api/whoami`, one
//! a line, each good for one request: the load benchmark's pool.
//!
//! The issuer is found from the service's protected-resource metadata (RFC 9728), its token
//! endpoint from the issuer's metadata (RFC 8414). Client credentials: `DEV_CLIENT_ID` and
//! `DEV_CLIENT_SECRET`, or the development issuer's defaults. A proof is good for one
//! request, within `DPOP_WINDOW_SECS` (180 by default): make a new one for each call.
#![allow(clippy::unwrap_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

type Failure = Box<dyn std::error::Error>;

/// The client's key: proofs are signed with it, tokens bound to it.
struct DpopKey(EcdsaKeyPair);

impl DpopKey {
    fn jwk(&self) -> Value {
        let point = self.0.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256",
               "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65])})
    }

    /// A proof for one `method url` request, with `ath` when a token goes with it.
    fn proof(&self, method: &str, url: &str, token: Option<&str>) -> Result<String, Failure> {
        let rng = SystemRandom::new();
        let mut jti = [0u8; 16];
        rng.fill(&mut jti)?;
        let iat = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk()});
        let mut claims = json!({"jti": B64.encode(jti), "htm": method, "htu": url, "iat": iat});
        if let Some(token) = token {
            claims["ath"] = json!(B64.encode(digest::digest(&digest::SHA256, token.as_bytes())));
        }
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature = self.0.sign(&rng, input.as_bytes())?;
        Ok(format!("{input}.{}", B64.encode(signature.as_ref())))
    }
}

async fn get_json(client: &awc::Client, url: &str) -> Result<Value, Failure> {
    let mut response = client.get(url).send().await?;
    if !response.status().is_success() {
        return Err(format!("GET {url} answered {}", response.status()).into());
    }
    Ok(response.json().limit(1 << 20).await?)
}

#[actix_web::main]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let curl = args.iter().any(|a| a == "--curl");
    let proofs: Option<usize> = match args.iter().position(|a| a == "--proofs") {
        None => None,
        Some(at) => Some(
            args.get(at + 1)
                .and_then(|n| n.parse().ok())
                .ok_or("--proofs needs a number")?,
        ),
    };
    let Some(service) = args
        .iter()
        .find(|a| !a.starts_with("--") && a.parse::<usize>().is_err())
    else {
        eprintln!("usage: cargo run --example dpop-client -- SERVICE_URL [--curl | --proofs N]");
        eprintln!("   e.g. cargo run --example dpop-client -- http://127.0.0.1:8080");
        std::process::exit(2);
    };
    let service = service.trim_end_matches('/');
    let client = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .finish();
    let metadata = get_json(
        &client,
        &format!("{service}/.well-known/oauth-protected-resource"),
    )
    .await?;
    let issuer = metadata["authorization_servers"][0]
        .as_str()
        .ok_or("the service's metadata names no authorization server")?;
    let issuer_metadata = get_json(
        &client,
        &format!("{issuer}/.well-known/oauth-authorization-server"),
    )
    .await?;
    let token_endpoint = issuer_metadata["token_endpoint"]
        .as_str()
        .ok_or("the issuer's metadata names no token endpoint")?;

    let key = DpopKey(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)?);
    let id = std::env::var("DEV_CLIENT_ID").unwrap_or_else(|_| "api-guard-dev".into());
    let secret =
        std::env::var("DEV_CLIENT_SECRET").unwrap_or_else(|_| "api-guard-dev-secret".into());
    let mut response = client
        .post(token_endpoint)
        .basic_auth(&id, &secret)
        .insert_header(("DPoP", key.proof("POST", token_endpoint, None)?))
        .send_form(&[("grant_type", "client_credentials")])
        .await?;
    let answer: Value = response.json().await?;
    if answer["token_type"] != "DPoP" {
        return Err(format!("the issuer gave no DPoP-bound token: {answer}").into());
    }
    let token = answer["access_token"].as_str().ok_or("no access_token")?;

    let url = format!("{service}/api/whoami");
    if let Some(count) = proofs {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        writeln!(out, "{token}")?;
        for _ in 0..count {
            writeln!(out, "{}", key.proof("GET", &url, Some(token))?)?;
        }
        return Ok(());
    }
    let proof = key.proof("GET", &url, Some(token))?;
    if curl {
        // One request, within the proof window.
        println!("curl -i -H 'Authorization: DPoP {token}' -H 'DPoP: {proof}' {url}");
        return Ok(());
    }
    let mut response = client
        .get(&url)
        .insert_header(("Authorization", format!("DPoP {token}")))
        .insert_header(("DPoP", proof))
        .send()
        .await?;
    let body = response.body().await?;
    println!("GET {url}: {}", response.status());
    println!("{}", String::from_utf8_lossy(&body));
    Ok(())
}
