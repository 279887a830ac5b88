//! 64 MiB each way through the real binary, whose memory is read from /proc before and after:
//! bodies are streamed, never held whole.

use std::time::Duration;

use actix_web::body::SizedStream;
use futures_util::StreamExt;

use super::upstream::{echo_upstream, generated, pattern, pattern_sum};
use crate::helpers::{client, read};
use crate::process::Service;

const SIZE: u64 = 64 << 20;

/// `VmHWM` (peak resident set) and `VmRSS` of process `pid`, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc is readable");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[actix_web::test]
async fn a_64_mib_upload_and_a_64_mib_download_stream_through_with_flat_memory() {
    let upstream = echo_upstream().await;
    let mut service = Service::start(
        &[
            ("UPSTREAM_URL", upstream.origin.as_str()),
            ("WORKERS", "1"),
            ("SHUTDOWN_DRAIN_SECS", "0"),
        ],
        &["--dev"],
    );
    let base = service.base();
    let token = read(
        client()
            .post(format!("{base}/oauth2/default/v1/token"))
            .basic_auth("api-guard-dev", "api-guard-dev-secret")
            .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
            .send_body("grant_type=client_credentials&scope=AccessAll")
            .await
            .unwrap(),
    )
    .await;
    let token = token.body["access_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let slow_client = || {
        awc::Client::builder()
            .timeout(Duration::from_secs(120))
            .finish()
    };
    // One small request first, so the baseline includes a warm connection to the upstream.
    let warm = client()
        .get(format!("{base}/warm"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), 200);
    let (_, before) = memory_kib(service.child.id());

    // Upload, with a Content-Length (the default limit is exactly 64 MiB).
    let upload = slow_client()
        .post(format!("{base}/upload"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send_body(SizedStream::new(SIZE, generated(SIZE)))
        .await
        .expect("the upload is answered");
    let reply = read(upload).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["body_bytes"], SIZE);
    assert_eq!(reply.body["body_sum"], pattern_sum(SIZE));

    // Download, chunked from the upstream, read piece by piece here.
    let mut download = slow_client()
        .get(format!("{base}/download?bytes={SIZE}"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send()
        .await
        .expect("the download is answered");
    assert_eq!(download.status(), 200);
    let mut received = 0u64;
    let mut mismatches = 0u64;
    while let Some(chunk) = download.next().await {
        let chunk = chunk.expect("the download does not break off");
        for &byte in chunk.iter() {
            if byte != pattern(received) {
                mismatches += 1;
            }
            received += 1;
        }
    }
    assert_eq!((received, mismatches), (SIZE, 0));

    let (peak, after) = memory_kib(service.child.id());
    let stderr = service.stop();
    eprintln!(
        "gateway memory: VmRSS {before} KiB before, {after} KiB after, VmHWM {peak} KiB, through 64 MiB each way"
    );
    // A body held whole would add 65536 KiB; 16 MiB leaves room for allocator slack.
    assert!(
        peak < before + 16 * 1024,
        "the peak RSS grew from {before} KiB to {peak} KiB; stderr:\n{stderr}"
    );
}
