//! `/metrics` (counts by route, status and reason; the key store's figures), `METRICS_ADDR`,
//! the client address in the request log (`TRUSTED_PROXIES`) and `LOG_FORMAT=json`.

use std::net::SocketAddr;

use serde_json::Value;

use crate::helpers::{client, spawn_app, spawn_app_with};
use crate::process::Service;

async fn scrape(base: &str) -> (u16, String, String) {
    let mut response = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("the service answers");
    let body = response.body().await.expect("a body");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (
        response.status().as_u16(),
        content_type,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[track_caller]
fn assert_sample(text: &str, sample: &str) {
    assert!(
        text.lines().any(|line| line == sample),
        "no `{sample}` in\n{text}"
    );
}

#[actix_web::test]
async fn metrics_count_requests_by_route_and_status_rejections_by_reason_and_key_fetches() {
    let app = spawn_app().await;
    let token = app.token();
    for _ in 0..2 {
        assert_eq!(app.get("/api/hello", &[]).await.status, 200);
    }
    // The second time, the token is answered from the verified-token cache.
    assert_eq!(app.whoami(&token).await.status, 200);
    assert_eq!(app.whoami(&token).await.status, 200);
    assert_eq!(app.get("/api/whoami", &[]).await.status, 401);
    assert_eq!(app.whoami("not.a.token").await.status, 401);
    assert_eq!(app.whoami("also.not.one").await.status, 401);
    assert_eq!(app.get("/no/such/path", &[]).await.status, 404);
    assert_eq!(app.get("/another/missing", &[]).await.status, 404);

    let (status, content_type, text) = scrape(&app.address).await;
    let issuer = app.issuer.issuer();
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    for sample in [
        r#"api_guard_http_requests_total{route="/api/hello",method="GET",status="200"} 2"#,
        r#"api_guard_http_requests_total{route="/api/whoami",method="GET",status="200"} 2"#,
        r#"api_guard_http_requests_total{route="/api/whoami",method="GET",status="401"} 3"#,
        r#"api_guard_http_requests_total{route="unmatched",method="GET",status="404"} 2"#,
        r#"api_guard_http_request_duration_seconds_count{route="/api/whoami",method="GET"} 5"#,
        r#"api_guard_http_request_duration_seconds_bucket{route="/api/hello",method="GET",le="+Inf"} 2"#,
        r#"api_guard_auth_rejections_total{reason="no_header"} 1"#,
        r#"api_guard_auth_rejections_total{reason="malformed"} 2"#,
        &format!(r#"api_guard_jwks_fetches_total{{issuer="{issuer}",outcome="success"}} 1"#),
        &format!(r#"api_guard_jwks_fetches_total{{issuer="{issuer}",outcome="unreachable"}} 0"#),
        &format!(r#"api_guard_jwks_keys{{issuer="{issuer}"}} 1"#),
        "api_guard_http_requests_in_flight 1",
        "api_guard_draining 0",
        // One hit; the misses are the first sight of the token and the two malformed ones.
        "api_guard_token_cache_hits_total 1",
        "api_guard_token_cache_misses_total 3",
        "api_guard_token_cache_entries 1",
    ] {
        assert_sample(&text, sample);
    }
    assert!(
        text.lines().any(|l| l.starts_with(&format!(
            r#"api_guard_jwks_age_seconds{{issuer="{issuer}"}} "#
        ))),
        "{text}"
    );
    // The process's own metrics (read from /proc) and the build's.
    #[cfg(target_os = "linux")]
    for name in [
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_start_time_seconds ",
    ] {
        assert!(text.lines().any(|l| l.starts_with(name)), "{name}: {text}");
    }
    let build_info = format!(
        r#"api_guard_build_info{{version="{}",commit="{}"}} 1"#,
        api_guard_server::telemetry::VERSION,
        api_guard_server::telemetry::COMMIT
    );
    assert_sample(&text, &build_info);
    // Paths nobody routes share one label: the label set stays bounded.
    assert!(!text.contains("/no/such/path"), "{text}");
    // The request log's /metrics request is counted once it is done.
    let (_, _, again) = scrape(&app.address).await;
    assert_sample(
        &again,
        r#"api_guard_http_requests_total{route="/metrics",method="GET",status="200"} 1"#,
    );
}

#[actix_web::test]
async fn metrics_addr_moves_metrics_to_their_own_listener() {
    let app = spawn_app_with(|config| {
        config.metrics_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    let metrics = format!(
        "http://{}",
        app.app.metrics_addr().expect("a metrics listener")
    );
    assert_eq!(app.get("/api/hello", &[]).await.status, 200);
    let public = app.get("/metrics", &[]).await;
    assert_eq!(public.status, 404, "the public listener serves /metrics");
    let (status, _, text) = scrape(&metrics).await;
    assert_eq!(status, 200);
    assert_sample(
        &text,
        r#"api_guard_http_requests_total{route="/api/hello",method="GET",status="200"} 1"#,
    );
    assert_sample(
        &text,
        r#"api_guard_http_requests_total{route="unmatched",method="GET",status="404"} 1"#,
    );
    let issuer = app.issuer.issuer();
    assert_sample(
        &text,
        &format!(r#"api_guard_jwks_keys{{issuer="{issuer}"}} 1"#),
    );
    let api_on_metrics = client()
        .get(format!("{metrics}/api/hello"))
        .send()
        .await
        .expect("the metrics listener answers");
    assert_eq!(
        api_on_metrics.status().as_u16(),
        404,
        "the API leaks onto METRICS_ADDR"
    );
}

async fn get_with(base: &str, path: &str, headers: &[(&str, &str)]) -> u16 {
    let mut request = client().get(format!("{base}{path}"));
    for header in headers {
        request = request.insert_header(*header);
    }
    request
        .send()
        .await
        .expect("the service answers")
        .status()
        .as_u16()
}

const SPOOFED: (&str, &str) = ("X-Forwarded-For", "6.6.6.6, 198.51.100.7");

#[actix_web::test]
async fn json_logs_are_one_object_per_line_with_the_request_fields_and_the_forwarded_client() {
    let mut service = Service::start(
        &[
            ("LOG_FORMAT", "json"),
            ("TRUSTED_PROXIES", "127.0.0.1"),
            ("RUST_LOG", "info"),
        ],
        &["--dev"],
    );
    let base = service.base();
    assert_eq!(
        get_with(&base, "/api/hello", &[("X-Request-Id", "json-1"), SPOOFED]).await,
        200
    );
    let bearer = ("Authorization", "Bearer secret-looking.token.value");
    assert_eq!(
        get_with(&base, "/api/whoami", &[("X-Request-Id", "json-2"), bearer]).await,
        401
    );
    let stderr = service.stop();

    let mut records = Vec::new();
    for line in stderr.lines() {
        let record: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
        for field in ["ts", "level", "target", "msg"] {
            assert!(record[field].is_string(), "{field} missing: {line}");
        }
        let ts = record["ts"].as_str().unwrap();
        assert!(
            ts.len() >= 20 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
            "{ts}"
        );
        records.push(record);
    }
    let request = |id: &str| {
        records
            .iter()
            .find(|r| r["request_id"] == id)
            .unwrap_or_else(|| panic!("no request record {id} in\n{stderr}"))
            .clone()
    };
    let hello = request("json-1");
    assert_eq!(hello["target"], "api_guard::request");
    assert_eq!(hello["method"], "GET");
    assert_eq!(hello["path"], "/api/hello");
    assert_eq!(hello["status"], 200);
    assert!(hello["latency_ms"].is_number(), "{hello}");
    assert_eq!(
        hello["client"], "198.51.100.7",
        "the trusted peer's X-Forwarded-For"
    );
    assert!(hello["reason"].is_null(), "{hello}");
    let whoami = request("json-2");
    assert_eq!(
        (&whoami["status"], &whoami["reason"]),
        (&401.into(), &"malformed".into())
    );
    assert_eq!(whoami["client"], "127.0.0.1");
    assert!(
        !stderr.contains("secret-looking"),
        "the token is in the log"
    );
    assert!(
        records
            .iter()
            .any(|r| r["msg"].as_str().unwrap_or("").contains("SIGTERM received")),
        "the shutdown steps are JSON records too"
    );
}

#[actix_web::test]
async fn forwarded_headers_from_an_untrusted_peer_do_not_change_the_logged_client() {
    let mut service = Service::start(&[("RUST_LOG", "info")], &["--dev"]);
    let base = service.base();
    assert_eq!(
        get_with(&base, "/api/hello", &[("X-Request-Id", "text-1"), SPOOFED]).await,
        200
    );
    let forwarded = ("Forwarded", "for=198.51.100.7");
    assert_eq!(
        get_with(
            &base,
            "/api/hello",
            &[("X-Request-Id", "text-2"), forwarded]
        )
        .await,
        200
    );
    let stderr = service.stop();
    for id in ["text-1", "text-2"] {
        let line = stderr
            .lines()
            .find(|l| l.contains(&format!(" id={id} ")))
            .unwrap_or_else(|| panic!("no line for {id} in\n{stderr}"));
        assert!(line.contains(" client=127.0.0.1"), "{line}");
    }
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Runs `--dev` with `LOG_FORMAT={format}`, sends a request with a valid `traceparent` (id
/// `{format}-1`) and one with garbage (`{format}-2`), and returns those two request records.
async fn two_traced_requests(format: &str) -> (Value, Value) {
    let mut service = Service::start(&[("LOG_FORMAT", format), ("RUST_LOG", "info")], &["--dev"]);
    let base = service.base();
    let (first, second) = (format!("{format}-1"), format!("{format}-2"));
    let traced = [
        ("X-Request-Id", first.as_str()),
        ("traceparent", TRACEPARENT),
    ];
    assert_eq!(get_with(&base, "/api/hello", &traced).await, 200);
    let garbage = [
        ("X-Request-Id", second.as_str()),
        ("traceparent", "00-\"injected\"-0000000000000000-01"),
    ];
    assert_eq!(get_with(&base, "/api/whoami", &garbage).await, 401);
    let stderr = service.stop();
    let records: Vec<Value> = stderr
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
        })
        .collect();
    let find = |id: &str, key: &str| {
        records
            .iter()
            .find(|r| r.pointer(key).and_then(Value::as_str) == Some(id))
            .unwrap_or_else(|| panic!("no record with {key} {id} in\n{stderr}"))
            .clone()
    };
    let id_key = if format == "ecs" {
        "/http.request.id"
    } else {
        "/request_id"
    };
    assert!(
        !stderr.contains("injected"),
        "a garbage traceparent is logged"
    );
    (find(&first, id_key), find(&second, id_key))
}

#[actix_web::test]
async fn ecs_logs_use_elastic_field_names_and_keep_a_valid_traceparent() {
    let (traced, garbage) = two_traced_requests("ecs").await;
    for field in ["@timestamp", "log.level", "message"] {
        assert!(traced[field].is_string(), "{field}: {traced}");
    }
    assert_eq!(traced["log.level"], "info");
    assert_eq!(traced["http.request.method"], "GET");
    assert_eq!(traced["url.path"], "/api/hello");
    assert_eq!(traced["http.response.status_code"], 200);
    assert!(traced["event.duration"].as_u64().is_some(), "{traced}");
    assert_eq!(traced["trace.id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(garbage["http.response.status_code"], 401);
    assert_eq!(garbage["event.reason"], "no_header");
    assert!(garbage.get("trace.id").is_none(), "{garbage}");
}

#[actix_web::test]
async fn gcp_logs_use_cloud_logging_field_names_and_keep_a_valid_traceparent() {
    let (traced, garbage) = two_traced_requests("gcp").await;
    assert_eq!(traced["severity"], "INFO");
    assert!(traced["message"].is_string(), "{traced}");
    let http = &traced["httpRequest"];
    assert_eq!(http["requestMethod"], "GET");
    assert_eq!(http["requestUrl"], "/api/hello");
    assert_eq!(http["status"], 200);
    let latency = http["latency"].as_str().unwrap_or_default();
    assert!(
        latency.ends_with('s') && latency.trim_end_matches('s').parse::<f64>().is_ok(),
        "{latency}"
    );
    assert_eq!(
        traced["logging.googleapis.com/trace"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(traced["logging.googleapis.com/spanId"], "00f067aa0ba902b7");
    assert_eq!(traced["logging.googleapis.com/trace_sampled"], true);
    assert_eq!(garbage["httpRequest"]["status"], 401);
    assert!(
        garbage.get("logging.googleapis.com/trace").is_none(),
        "{garbage}"
    );
}

#[actix_web::test]
async fn the_text_request_line_carries_a_valid_traceparent() {
    let mut service = Service::start(&[("RUST_LOG", "info")], &["--dev"]);
    let base = service.base();
    let traced = [("X-Request-Id", "tp-1"), ("traceparent", TRACEPARENT)];
    assert_eq!(get_with(&base, "/api/hello", &traced).await, 200);
    let stderr = service.stop();
    let line = stderr
        .lines()
        .find(|l| l.contains(" id=tp-1 "))
        .unwrap_or_else(|| panic!("no line for tp-1 in\n{stderr}"));
    assert!(
        line.ends_with(&format!(" traceparent={TRACEPARENT}")),
        "{line}"
    );
}
