//! The gateway under a route policy file (`AUTH_POLICY_FILE`): anonymous, scoped and denied
//! rules, through the proxy and through forward-auth, and bypass attempts that must never
//! reach a protected path anonymously.
//!
//! Runs the real binary with `--dev` (whose issuer grants the scope `AccessAll`), so it
//! depends only on the setting's name and file format, not on the policy's Rust API.

use std::time::Duration;

use super::upstream::{echo_upstream, seen};
use crate::helpers::{Reply, client, read};
use crate::process::Service;

const POLICY: &str = r#"
default = "authenticated"

[[rule]]
path = "/public/**"
access = "anonymous"

[[rule]]
path = "/orders/**"
methods = ["POST", "PUT", "DELETE"]
scopes = ["orders:write"]

[[rule]]
path = "/reports/**"
scopes = ["AccessAll"]

[[rule]]
path = "/internal/**"
access = "deny"
"#;

struct Gateway {
    service: Service,
    token: String,
    _policy: tempfile::NamedTempFile,
}

async fn start(upstream: &str, extra: &[(&str, &str)]) -> Gateway {
    let policy = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(policy.path(), POLICY).unwrap();
    let path = policy.path().to_str().unwrap().to_owned();
    let mut env = vec![
        ("UPSTREAM_URL", upstream),
        ("AUTH_POLICY_FILE", path.as_str()),
        ("WORKERS", "1"),
        ("SHUTDOWN_DRAIN_SECS", "0"),
    ];
    env.extend_from_slice(extra);
    let service = Service::start(&env, &["--dev"]);
    let token = read(
        client()
            .post(format!("{}/oauth2/default/v1/token", service.base()))
            .basic_auth("api-guard-dev", "api-guard-dev-secret")
            .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
            .send_body("grant_type=client_credentials&scope=AccessAll")
            .await
            .unwrap(),
    )
    .await;
    let token = token.body["access_token"].as_str().unwrap().to_owned();
    Gateway {
        service,
        token,
        _policy: policy,
    }
}

impl Gateway {
    async fn call(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        // Written as given: awc would normalise nothing, but a `Uri` must still parse.
        let mut request = client()
            .request(method.parse().unwrap(), format!("{}{path}", self.service.base()))
            .timeout(Duration::from_secs(10));
        for (name, value) in headers {
            request = request.insert_header((*name, *value));
        }
        read(request.send().await.unwrap()).await
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }
}

#[actix_web::test]
async fn each_kind_of_rule_is_applied_by_the_proxy() {
    let upstream = echo_upstream().await;
    let gateway = start(&upstream.origin, &[]).await;
    let bearer = gateway.bearer();

    let open = gateway.call("GET", "/public/docs", &[("X-Auth-Subject", "admin")]).await;
    assert_eq!(open.status, 200, "anonymous rule: {}", open.body);
    assert!(seen(&open.body, "x-auth-subject").is_empty(), "spoofed on an anonymous route");

    let read_only = gateway.call("GET", "/orders/7", &[("Authorization", &bearer)]).await;
    assert_eq!(read_only.status, 200, "methods: GET falls to the default: {}", read_only.body);

    let write = gateway.call("POST", "/orders/7", &[("Authorization", &bearer)]).await;
    assert_eq!(write.status, 403, "{}", write.body);
    assert_eq!(write.body["error"], "insufficient_scope");
    let challenge = write.header("www-authenticate").unwrap_or_default();
    assert!(challenge.contains("scope=\"orders:write\""), "{challenge}");

    let scoped = gateway.call("GET", "/reports/q3", &[("Authorization", &bearer)]).await;
    assert_eq!(scoped.status, 200, "{}", scoped.body);

    let denied = gateway.call("GET", "/internal/x", &[("Authorization", &bearer)]).await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert_eq!(denied.body["error"], "access_denied");

    let protected = gateway.call("GET", "/reports/q3", &[]).await;
    assert_eq!(protected.status, 401, "{}", protected.body);
    // Only the anonymous call, the GET of /orders/7 and the scoped call reached it.
    assert_eq!(upstream.hits(), 3);
}

#[actix_web::test]
async fn bypass_attempts_never_reach_a_denied_path() {
    let upstream = echo_upstream().await;
    let gateway = start(&upstream.origin, &[]).await;
    for path in [
        "/public/../internal/x",
        "/public/%2e%2e/internal/x",
        "/public/%2E%2E/internal/x",
        "/public/..%2finternal/x",
        "/public/..%2Finternal/x",
        "/public%2f..%2finternal/x",
        "/public/..%5cinternal/x",
        "/public/.%2e/internal/x",
        "//internal/x",
        "/./internal/x",
        "/public/..;/internal/x",
    ] {
        let reply = gateway.call("GET", path, &[]).await;
        assert!(
            matches!(reply.status, 400 | 401 | 403),
            "{path}: {} {}",
            reply.status,
            reply.body
        );
    }
    assert_eq!(upstream.hits(), 0);
}

#[actix_web::test]
async fn forward_auth_applies_the_policy_to_the_original_request() {
    let upstream = echo_upstream().await;
    let gateway = start(&upstream.origin, &[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let bearer = gateway.bearer();
    let verify = |method: &'static str, uri: &'static str, token: bool| {
        let bearer = bearer.clone();
        let gateway = &gateway;
        async move {
            let mut headers = vec![("X-Original-Method", method), ("X-Original-URI", uri)];
            if token {
                headers.push(("Authorization", bearer.as_str()));
            }
            gateway.call("GET", "/auth/verify", &headers).await
        }
    };
    assert_eq!(verify("GET", "/public/a", false).await.status, 200);
    let lacking = verify("DELETE", "/orders/1", true).await;
    assert_eq!(lacking.status, 403, "{}", lacking.body);
    assert_eq!(lacking.body["error"], "insufficient_scope");
    assert_eq!(verify("GET", "/reports/q3", true).await.status, 200);
    assert_eq!(verify("GET", "/internal/x", true).await.status, 403);
    assert_eq!(verify("GET", "/public/..%2finternal", true).await.status, 400);
    assert_eq!(verify("GET", "/reports/q3", false).await.status, 401);
}
