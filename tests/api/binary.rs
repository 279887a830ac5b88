//! The real binary in `--dev` mode, driven like the Okta guide's Postman flow: banner, token
//! request with HTTP Basic, protected and anonymous calls, then SIGTERM and its logs.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ExitStatus};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use base64::Engine;

use crate::helpers::{Reply, binary_in, client, read, wait_at_most};

const CLIENT_ID: &str = "api-guard-dev";
const CLIENT_SECRET: &str = "api-guard-dev-secret";
const BANNER: &str = "api-guard is listening on http://127.0.0.1:";

/// `api-guard --dev` on a free loopback port, running in its own temporary directory.
pub(crate) struct DevService {
    child: Child,
    port: u16,
    banner: Vec<String>,
    stderr: Receiver<String>,
    _dir: tempfile::TempDir,
}

impl DevService {
    /// Starts the binary and reads stdout until the whole banner is printed (at most 20 s).
    fn start() -> DevService {
        Self::start_with(&[])
    }

    /// [`DevService::start`] with more environment variables.
    pub(crate) fn start_with(env: &[(&str, &str)]) -> DevService {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut child = binary_in(dir.path())
            .envs(env.iter().copied())
            .arg("--dev")
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            // Exit soon after SIGTERM: the drain itself is tested in `shutdown`.
            .env("SHUTDOWN_DRAIN_SECS", "0")
            .spawn()
            .expect("the binary starts");
        let (line_tx, lines) = channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (stderr_tx, stderr) = channel();
        let mut stderr_pipe = child.stderr.take().expect("stderr is piped");
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr_pipe.read_to_string(&mut text);
            let _ = stderr_tx.send(text);
        });
        let mut service = DevService {
            child,
            port: 0,
            banner: Vec::new(),
            stderr,
            _dir: dir,
        };

        let deadline = Instant::now() + Duration::from_secs(20);
        let next_line = || {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no complete banner on stdout within 20 s")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("stdout closed before the banner was complete")
                }
            }
        };
        let first = loop {
            let line = next_line();
            if line.starts_with(BANNER) {
                break line;
            }
        };
        let port: String = first[BANNER.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        service.port = port
            .parse()
            .unwrap_or_else(|_| panic!("no port in {first:?}"));
        service.banner.push(first);
        // The banner ends with the curl command for /api/hello.
        while !service
            .banner
            .last()
            .is_some_and(|line| line.contains("/api/hello"))
        {
            service.banner.push(next_line());
        }
        service
    }

    pub(crate) fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn issuer(&self) -> String {
        format!("{}/oauth2/default", self.base())
    }

    /// Sends SIGTERM by PID, waits at most 10 s for the exit, and returns it with stderr.
    pub(crate) fn stop(&mut self) -> (ExitStatus, String) {
        let kill = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill(1) runs");
        assert!(kill.success(), "kill -TERM failed: {kill}");
        let status = wait_at_most(&mut self.child, Duration::from_secs(10));
        let stderr = self
            .stderr
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_default();
        let status =
            status.unwrap_or_else(|| panic!("no exit within 10 s of SIGTERM; stderr:\n{stderr}"));
        (status, stderr)
    }
}

impl Drop for DevService {
    fn drop(&mut self) {
        // A failed assertion must not leave the child running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The token request of the Okta guide: HTTP Basic client authentication, a form body.
async fn token_request(service: &DevService, secret: &str, body: &str, request_id: &str) -> Reply {
    let request = client()
        .post(format!("{}/v1/token", service.issuer()))
        .basic_auth(CLIENT_ID, secret)
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Request-Id", request_id));
    read(
        request
            .send_body(body.to_owned())
            .await
            .expect("the token endpoint answers"),
    )
    .await
}

async fn get(
    service: &DevService,
    path: &str,
    authorization: Option<&str>,
    request_id: &str,
) -> Reply {
    let mut request = client()
        .get(format!("{}{path}", service.base()))
        .insert_header(("X-Request-Id", request_id));
    if let Some(authorization) = authorization {
        request = request.insert_header(("Authorization", authorization));
    }
    read(request.send().await.expect("the service answers")).await
}

const CLIENT_CREDENTIALS: &str = "grant_type=client_credentials&scope=AccessAll";

#[test]
fn dev_mode_prints_a_banner_with_the_issuer_the_client_credentials_and_curl_commands() {
    let mut service = DevService::start();
    let (base, issuer) = (service.base(), service.issuer());
    let banner = service.banner.join("\n");
    let has_line = |words: &[&str]| {
        service
            .banner
            .iter()
            .any(|line| line.split_whitespace().eq(words.iter().copied()))
    };
    assert!(
        has_line(&["issuer", &issuer]),
        "issuer {issuer} missing:\n{banner}"
    );
    assert!(
        has_line(&["client", "id", CLIENT_ID]),
        "client id missing:\n{banner}"
    );
    assert!(
        has_line(&["client", "secret", CLIENT_SECRET]),
        "client secret missing:\n{banner}"
    );
    let token_endpoint = format!("{issuer}/v1/token");
    let token_curl = service.banner.iter().any(|line| {
        line.contains("curl ")
            && line.contains(&token_endpoint)
            && line.contains(&format!("{CLIENT_ID}:{CLIENT_SECRET}"))
            && line.contains("grant_type=client_credentials")
    });
    assert!(
        token_curl,
        "no curl command for {token_endpoint}:\n{banner}"
    );
    let whoami_curl = service.banner.iter().any(|line| {
        line.contains("curl ")
            && line.contains(&format!("{base}/api/whoami"))
            && line.contains("Authorization: Bearer")
    });
    assert!(
        whoami_curl,
        "no curl command for {base}/api/whoami with a token:\n{banner}"
    );
    service.stop();
}

#[actix_web::test]
async fn dev_mode_serves_the_okta_client_credentials_flow_over_http() {
    let mut service = DevService::start();

    let token = token_request(&service, CLIENT_SECRET, CLIENT_CREDENTIALS, "flow-token").await;
    assert_eq!(token.status, 200, "{}", token.body);
    assert_eq!(token.body["token_type"], "Bearer");
    assert_eq!(token.body["scope"], "AccessAll");
    assert!(
        token.body["expires_in"]
            .as_u64()
            .is_some_and(|secs| secs > 0),
        "{}",
        token.body
    );
    let access_token = token.body["access_token"]
        .as_str()
        .expect("an access_token")
        .to_owned();
    assert!(!access_token.is_empty());

    let bearer = format!("Bearer {access_token}");
    let whoami = get(&service, "/api/whoami", Some(&bearer), "flow-whoami").await;
    assert_eq!(whoami.status, 200, "{}", whoami.body);
    assert_eq!(whoami.body["client_id"], CLIENT_ID);
    let anonymous = get(&service, "/api/whoami", None, "flow-whoami-anonymous").await;
    anonymous.assert_auth_error(401, "unauthorized", "whoami without a token");
    let hello = get(&service, "/api/hello", None, "flow-hello").await;
    assert_eq!(hello.status, 200, "{}", hello.body);

    let wrong_secret = token_request(
        &service,
        "not-the-secret",
        CLIENT_CREDENTIALS,
        "flow-wrong-secret",
    )
    .await;
    assert_eq!(
        (wrong_secret.status, &wrong_secret.body["error"]),
        (401, &"invalid_client".into())
    );
    let bad_scope = token_request(
        &service,
        CLIENT_SECRET,
        "grant_type=client_credentials&scope=nope",
        "flow-scope",
    )
    .await;
    assert_eq!(
        (bad_scope.status, &bad_scope.body["error"]),
        (400, &"invalid_scope".into())
    );
    let password = token_request(
        &service,
        CLIENT_SECRET,
        "grant_type=password&scope=AccessAll",
        "flow-grant",
    )
    .await;
    assert_eq!(
        (password.status, &password.body["error"]),
        (400, &"unsupported_grant_type".into())
    );
    service.stop();
}

#[actix_web::test]
async fn dev_mode_exits_with_code_0_on_sigterm() {
    let mut service = DevService::start();
    assert_eq!(
        get(&service, "/health/live", None, "live").await.status,
        200
    );
    let (status, stderr) = service.stop();
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
}

#[actix_web::test]
async fn dev_mode_logs_one_line_per_request_with_its_reason_and_never_the_token_or_the_client_secret()
 {
    let mut service = DevService::start();
    let token = token_request(&service, CLIENT_SECRET, CLIENT_CREDENTIALS, "log-1").await;
    assert_eq!(token.status, 200, "{}", token.body);
    let access_token = token.body["access_token"]
        .as_str()
        .expect("an access_token")
        .to_owned();
    let bearer = format!("Bearer {access_token}");
    // (request id, the line's "METHOD path status", the reason it must carry)
    let mut sent = vec![(
        "log-1",
        "POST /oauth2/default/v1/token 200".to_owned(),
        None,
    )];
    for (id, authorization, status, reason) in [
        ("log-2", Some(bearer.as_str()), 200, None),
        ("log-3", None, 401, Some("no_header")),
        ("log-4", Some("Bearer not.a.token"), 401, Some("malformed")),
    ] {
        let reply = get(&service, "/api/whoami", authorization, id).await;
        assert_eq!(reply.status, status, "{id}: {}", reply.body);
        sent.push((id, format!("GET /api/whoami {status}"), reason));
    }
    assert_eq!(get(&service, "/api/hello", None, "log-5").await.status, 200);
    sent.push(("log-5", "GET /api/hello 200".to_owned(), None));
    assert_eq!(
        token_request(&service, "wrong-secret", CLIENT_CREDENTIALS, "log-6")
            .await
            .status,
        401
    );
    sent.push((
        "log-6",
        "POST /oauth2/default/v1/token 401".to_owned(),
        None,
    ));
    assert_eq!(
        token_request(&service, CLIENT_SECRET, "grant_type=password", "log-7")
            .await
            .status,
        400
    );
    sent.push((
        "log-7",
        "POST /oauth2/default/v1/token 400".to_owned(),
        None,
    ));

    let (_, stderr) = service.stop();
    let request_lines: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("api_guard::request]"))
        .collect();
    for (id, request, reason) in &sent {
        let tag = format!("id={id}");
        let lines: Vec<&&str> = request_lines
            .iter()
            .filter(|line| line.split_whitespace().any(|word| word == tag))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "{id}: expected one request line, got {lines:?}\n{stderr}"
        );
        assert!(
            lines[0].contains(&format!("] {request} ")),
            "{id}: {:?} is not `{request}`",
            lines[0]
        );
        if let Some(reason) = reason {
            assert!(
                lines[0].ends_with(&format!("reason={reason}")),
                "{id}: {:?} lacks reason={reason}",
                lines[0]
            );
        }
    }
    // Every other request line is the service fetching its own issuer's metadata and keys.
    let others: Vec<&&str> = request_lines
        .iter()
        .filter(|line| !line.contains(" id=log-"))
        .collect();
    for line in &others {
        assert!(
            line.contains("] GET /oauth2/default/.well-known/")
                || line.contains("] GET /oauth2/default/v1/keys "),
            "a request line for a request nobody made: {line}"
        );
    }

    assert!(
        !stderr.contains(&access_token),
        "the access token is in the log:\n{stderr}"
    );
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    for secret in [CLIENT_SECRET, "wrong-secret", basic.as_str()] {
        assert!(
            !stderr.contains(secret),
            "`{secret}` is in the log:\n{stderr}"
        );
    }
}
