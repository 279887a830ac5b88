//! `spawn_app`: the real service and the real development issuer, each on its own loopback
//! port, talking HTTP. Both are bound before it returns, and the service's first key load
//! has finished, so tests never poll for start-up.

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};
use api_guard_server::dev_issuer::DevIssuer;
use api_guard_server::{Application, Config};
use serde_json::Value;

/// The service under test and the issuer whose tokens it trusts.
pub struct TestApp {
    /// `http://127.0.0.1:{port}` of the service.
    pub address: String,
    /// The development issuer the service fetches its keys from.
    pub issuer: DevIssuer,
    /// The running service.
    pub app: Application,
    issuer_server: ServerHandle,
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: awc::http::header::HeaderMap,
    pub body: Value,
    /// For an answer of the service under test ([`TestApp::get`]): the `resource_metadata`
    /// its Bearer challenges must name (RFC 9728 §5.1). `None` for other servers.
    pub resource_metadata: Option<String>,
}

impl Reply {
    /// A header as text, or `None`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the whole RFC 6750 contract of an auth failure: status, challenge, body.
    #[track_caller]
    pub fn assert_auth_error(&self, status: u16, error: &str, context: &str) {
        assert_eq!(self.status, status, "{context}: status; body {}", self.body);
        assert_eq!(self.body["error"], error, "{context}: body {}", self.body);
        let description = self.body["error_description"].as_str().unwrap_or_default();
        assert!(!description.is_empty(), "{context}: no error_description");
        let challenge = self.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer realm=\"api-guard\""),
            "{context}: challenge {challenge:?}"
        );
        if status != 401 || error != "unauthorized" {
            assert!(
                challenge.contains(&format!("error=\"{error}\"")),
                "{context}: challenge {challenge:?}"
            );
        }
        if let Some(url) = &self.resource_metadata {
            assert!(
                challenge.ends_with(&format!(", resource_metadata=\"{url}\"")),
                "{context}: challenge {challenge:?} does not end with resource_metadata=\"{url}\""
            );
        }
    }
}

/// The `resource_metadata` URL a challenge from `path` (query ignored) of the service at
/// `address` names: the well-known segment between host and path (RFC 9728 §3.1).
pub fn resource_metadata_url(address: &str, path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    format!("{address}/.well-known/oauth-protected-resource{path}")
}

/// The service with default settings, trusting a fresh development issuer.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The service with settings changed by `customize`, trusting a fresh development issuer.
pub async fn spawn_app_with(customize: impl FnOnce(&mut Config)) -> TestApp {
    let (issuer, issuer_server) = DevIssuer::spawn("127.0.0.1:0", |_| {})
        .await
        .expect("dev issuer binds");
    spawn_app_for(issuer, issuer_server, customize).await
}

/// The service trusting `issuer`, which the caller may have put in a state first (failing).
pub async fn spawn_app_for(
    issuer: DevIssuer,
    issuer_server: ServerHandle,
    customize: impl FnOnce(&mut Config),
) -> TestApp {
    let mut config = Config::for_issuer(issuer.issuer()).expect("a loopback issuer is valid");
    config.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    config.workers = 1;
    config.auth = config
        .auth
        .clone()
        .with_jwks_retry(Duration::from_millis(50), Duration::from_millis(200));
    customize(&mut config);
    let app = Application::build(config)
        .await
        .expect("the service starts");
    TestApp {
        address: format!("http://127.0.0.1:{}", app.port()),
        issuer,
        app,
        issuer_server,
    }
}

impl TestApp {
    /// `GET path` with the given headers.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = client().get(format!("{}{path}", self.address));
        for (name, value) in headers {
            request = request.append_header((*name, *value));
        }
        let mut reply = read(request.send().await.expect("the service answers")).await;
        reply.resource_metadata = Some(resource_metadata_url(&self.address, path));
        reply
    }

    /// The exact `WWW-Authenticate` the service sends from `path`: the realm, then `params`
    /// (e.g. `, error="invalid_token"`), then `resource_metadata`.
    pub fn challenge(&self, path: &str, params: &str) -> String {
        let url = resource_metadata_url(&self.address, path);
        format!("Bearer realm=\"api-guard\"{params}, resource_metadata=\"{url}\"")
    }

    /// `GET /api/whoami` with `Authorization: Bearer {token}`.
    pub async fn whoami(&self, token: &str) -> Reply {
        self.get(
            "/api/whoami",
            &[("Authorization", &format!("Bearer {token}"))],
        )
        .await
    }

    /// A normal token of the issuer, with the default scope.
    pub fn token(&self) -> String {
        self.issuer.mint(&["AccessAll"])
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Sending the stop command is enough; the servers end with the test's runtime.
        drop(self.app.handle().stop(false));
        drop(self.issuer_server.stop(false));
    }
}

/// An HTTP client with a timeout, so no test hangs.
pub fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(20))
        .disable_redirects()
        .finish()
}

/// Reads status, headers and the JSON body (`Null` if the body is empty or not JSON).
pub async fn read<S>(mut response: awc::ClientResponse<S>) -> Reply
where
    S: futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> + Unpin,
{
    let body = response
        .body()
        .limit(1 << 20)
        .await
        .expect("a readable body");
    Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        resource_metadata: None,
    }
}

/// Polls `condition` every 20 ms until it holds or `limit` passes; returns whether it held.
/// For state that changes in the background (a retry after an outage), never for start-up.
pub async fn eventually<F, Fut>(limit: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if condition().await {
            return true;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    condition().await
}

/// The real `api-guard` binary with an empty environment but `PATH`, run in `dir` (a fresh
/// temporary directory, so no developer `.env` is read), with stdin closed and stdout and
/// stderr piped.
pub fn binary_in(dir: &std::path::Path) -> std::process::Command {
    use std::process::Stdio;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_api-guard"));
    command
        .env_clear()
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command
}

/// Waits for `child` to exit, polling every 20 ms for at most `limit`. If it is still running
/// then, kills it (by its own PID), reaps it and returns `None`.
pub fn wait_at_most(
    child: &mut std::process::Child,
    limit: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            return Some(status);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Serves `routes` on a loopback port; returns its base URL.
pub async fn serve(routes: impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || App::new().configure(routes.clone()))
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
    actix_web::rt::spawn(server);
    base
}

/// A loopback port bound but not listening: connections to it are refused, and no other test
/// can take it while the returned socket lives.
pub fn refused_port() -> (socket2::Socket, u16) {
    let reserved =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    reserved
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let port = reserved.local_addr().unwrap().as_socket().unwrap().port();
    (reserved, port)
}

/// The service trusting an issuer on a loopback port that refuses connections: it starts, and
/// stays not ready. Keep the socket: while it lives no other test can take the port.
pub async fn spawn_app_with_a_refusing_issuer() -> (TestApp, socket2::Socket) {
    let (reserved, port) = refused_port();
    let app = spawn_app_with(|config| {
        config.auth = config
            .auth
            .clone()
            .with_issuer(format!("http://127.0.0.1:{port}/oauth2/default"));
    })
    .await;
    (app, reserved)
}
