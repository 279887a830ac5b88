//! `GET /metrics`: Prometheus text. Bind it privately in production with `METRICS_ADDR`.

use actix_web::{HttpRequest, HttpResponse, get};
use api_guard::Guard;

use crate::telemetry::{CONTENT_TYPE, Exposition, ProcessStats, Telemetry, expose_build_info};

/// The request metrics, then the values read from shared state at scrape time, then the
/// process's own (`process_*`, read from /proc on Linux) and the build's.
#[get("/metrics")]
pub async fn metrics(req: HttpRequest) -> HttpResponse {
    let mut out = Exposition::default();
    if let Some(telemetry) = req.app_data::<Telemetry>() {
        telemetry.metrics().expose(&mut out);
        let draining = u8::from(telemetry.drain().is_draining());
        out.gauge(
            "api_guard_draining",
            "1 once SIGTERM started the drain",
            draining,
        );
    }
    if let Some(guard) = req.app_data::<Guard>() {
        read_from_guard(&mut out, guard);
    }
    if let Some(process) = ProcessStats::read() {
        process.expose(&mut out);
    }
    expose_build_info(&mut out);
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(out.into_text())
}

/// Metrics read from the guard when scraped. The key store's carry an `issuer` label: one of
/// the configured issuers (never a value from a token), so the label set stays bounded.
fn read_from_guard(out: &mut Exposition, guard: &Guard) {
    let stores = guard.key_stores();
    out.family(
        "api_guard_jwks_keys",
        "Signing keys in the issuer's current key set (0: none loaded)",
        "gauge",
        stores
            .iter()
            .map(|s| (vec![("issuer", s.issuer.as_str())], s.keys)),
    );
    out.family(
        "api_guard_jwks_age_seconds",
        "Seconds since the issuer's current key set was fetched",
        "gauge",
        stores.iter().filter_map(|s| {
            let age = s.age?.as_secs_f64();
            Some((vec![("issuer", s.issuer.as_str())], age))
        }),
    );
    out.family(
        "api_guard_jwks_fetches_total",
        "Key-set fetches (discovery included) by issuer and outcome",
        "counter",
        stores.iter().flat_map(|s| {
            s.fetches.iter().map(|&(outcome, n)| {
                let labels = vec![("issuer", s.issuer.as_str()), ("outcome", outcome.label())];
                (labels, n)
            })
        }),
    );
    let cache = guard.cache_stats();
    out.counter(
        "api_guard_token_cache_hits_total",
        "Requests whose token was answered from the verified-token cache",
        cache.hits,
    );
    out.counter(
        "api_guard_token_cache_misses_total",
        "Requests whose token went through full validation (not cached, expired or key gone)",
        cache.misses,
    );
    out.gauge(
        "api_guard_token_cache_entries",
        "Verified tokens held in the cache",
        cache.entries,
    );
    out.gauge(
        "api_guard_token_cache_bytes",
        "Estimated bytes held by the verified-token cache (AUTH_TOKEN_CACHE_BYTES bounds it)",
        cache.bytes,
    );
    if let Some(introspection) = guard.introspection_stats() {
        expose_introspection(out, &introspection);
    }
}

/// With AUTH_INTROSPECTION on: calls to the endpoint by outcome, and answers reused.
fn expose_introspection(out: &mut Exposition, stats: &api_guard::IntrospectionStats) {
    out.counter_family(
        "api_guard_introspection_calls_total",
        "Calls to the introspection endpoint by outcome",
        "outcome",
        stats.calls.iter().map(|&(outcome, n)| (outcome.label(), n)),
    );
    out.counter(
        "api_guard_introspection_cache_hits_total",
        "Requests whose introspection answer was reused (cached, or shared with a concurrent request)",
        stats.cache_hits,
    );
}
