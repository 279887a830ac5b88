//! Request metrics kept with atomics, and the Prometheus text exposition format (0.0.4).
//!
//! Hand-written rather than `prometheus-client`: we need four counters, one histogram and a
//! few gauges, and recording must stay a handful of relaxed atomic adds with no allocation
//! and no lock. Label sets are bounded: routes are the app's patterns (or `unmatched`),
//! reasons and statuses are finite sets of codes.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;

/// The `Content-Type` of [`Exposition`] text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Statuses from 100 to 599 get a counter each; anything else (actix never sends it) is
/// clamped into the range.
const STATUSES: std::ops::RangeInclusive<u16> = 100..=599;

/// The counters of one route.
struct RouteStats {
    by_status: Box<[AtomicU64]>,
    /// Non-cumulative bucket counts; the last is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Default for RouteStats {
    fn default() -> Self {
        RouteStats {
            by_status: STATUSES.map(|_| AtomicU64::new(0)).collect(),
            buckets: Default::default(),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

/// A labelled value: its label values, and the value.
type Entry<K, T> = Arc<(K, T)>;

/// Values by label, readable without a lock; a new label copies the list once. `K` is the
/// label value (`Box<str>`) or values (a route and a method).
struct Family<K, T> {
    entries: ArcSwap<Vec<Entry<K, T>>>,
    grow: Mutex<()>,
}

/// The label values of a route's counters: its pattern and the request's method.
type RouteKey = (Box<str>, &'static str);

impl<K: Ord + Clone, T: Default> Family<K, T> {
    fn new() -> Self {
        Family {
            entries: ArcSwap::from_pointee(Vec::new()),
            grow: Mutex::new(()),
        }
    }

    /// Calls `f` with the value whose key `is` matches, created from `key` if none does
    /// (so the common case allocates nothing).
    fn with(&self, is: impl Fn(&K) -> bool, key: impl FnOnce() -> K, f: impl FnOnce(&T)) {
        let entries = self.entries.load();
        if let Some(entry) = entries.iter().find(|e| is(&e.0)) {
            return f(&entry.1);
        }
        drop(entries);
        let _grow = self.grow.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.entries.load_full();
        if let Some(entry) = current.iter().find(|e| is(&e.0)) {
            return f(&entry.1);
        }
        let entry = Arc::new((key(), T::default()));
        let mut next = Vec::clone(&current);
        next.push(Arc::clone(&entry));
        self.entries.store(Arc::new(next));
        f(&entry.1);
    }

    /// The entries, sorted by label for a stable exposition.
    fn sorted(&self) -> Vec<Entry<K, T>> {
        let mut entries = Vec::clone(&self.entries.load());
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries
    }
}

/// The request metrics of the service. One per process, shared by every worker.
pub struct Metrics {
    routes: Family<RouteKey, RouteStats>,
    rejections: Family<Box<str>, AtomicU64>,
    in_flight: Arc<AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            routes: Family::new(),
            rejections: Family::new(),
            in_flight: Arc::new(AtomicI64::new(0)),
        }
    }
}

impl Metrics {
    /// Counts a finished request: its route pattern (or `unmatched`), method, status and
    /// latency, and the auth rejection reason if it has one.
    pub fn record(
        &self,
        route: &str,
        method: &str,
        status: u16,
        latency: Duration,
        reason: Option<&str>,
    ) {
        let method = method_label(method);
        let status =
            usize::from(status.clamp(*STATUSES.start(), *STATUSES.end()) - STATUSES.start());
        let secs = latency.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        let is = |key: &RouteKey| &*key.0 == route && key.1 == method;
        self.routes.with(
            is,
            || (Box::from(route), method),
            |stats| {
                stats.by_status[status].fetch_add(1, Ordering::Relaxed);
                stats.buckets[bucket].fetch_add(1, Ordering::Relaxed);
                stats.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
            },
        );
        if let Some(reason) = reason {
            let is = |key: &_| Box::as_ref(key) == reason;
            self.rejections.with(
                is,
                || Box::from(reason),
                |count| {
                    count.fetch_add(1, Ordering::Relaxed);
                },
            );
        }
    }

    /// A request started; the returned guard ends it when dropped (also when cancelled).
    pub fn start_request(&self) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(&self.in_flight))
    }

    /// Requests being served right now.
    pub fn in_flight(&self) -> u64 {
        u64::try_from(self.in_flight.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Writes the request metrics.
    pub fn expose(&self, out: &mut Exposition) {
        let routes = self.routes.sorted();
        out.header(
            "api_guard_http_requests_total",
            "HTTP requests by route pattern (`unmatched`: no route), method and status",
            "counter",
        );
        for entry in &routes {
            let ((route, method), stats) = (&entry.0, &entry.1);
            for (offset, count) in stats.by_status.iter().enumerate() {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    let status = usize::from(*STATUSES.start()) + offset;
                    out.sample(
                        "api_guard_http_requests_total",
                        &[
                            ("route", route),
                            ("method", method),
                            ("status", &status.to_string()),
                        ],
                        count,
                    );
                }
            }
        }
        out.header(
            "api_guard_http_request_duration_seconds",
            "Time from request head to response, by route pattern and method",
            "histogram",
        );
        for entry in &routes {
            let ((route, method), stats) = (&entry.0, &entry.1);
            let name = "api_guard_http_request_duration_seconds";
            let mut cumulative = 0;
            for (i, count) in stats.buckets.iter().enumerate() {
                cumulative += count.load(Ordering::Relaxed);
                let le = BUCKETS
                    .get(i)
                    .map_or_else(|| "+Inf".to_owned(), f64::to_string);
                out.sample(
                    &format!("{name}_bucket"),
                    &[("route", route), ("method", method), ("le", &le)],
                    cumulative,
                );
            }
            let sum = Duration::from_nanos(stats.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
            let labels = [("route", &**route), ("method", method)];
            out.sample(&format!("{name}_sum"), &labels, sum);
            out.sample(&format!("{name}_count"), &labels, cumulative);
        }
        out.counter_family(
            "api_guard_auth_rejections_total",
            "Requests refused by authentication, by reason (the request log's reason=)",
            "reason",
            self.rejections
                .sorted()
                .iter()
                .map(|e| (&*e.0, e.1.load(Ordering::Relaxed))),
        );
        out.gauge(
            "api_guard_http_requests_in_flight",
            "Requests being served",
            self.in_flight(),
        );
    }
}

/// The `method` label: the methods of RFC 9110 §9 and PATCH as they are, any other `other`,
/// so a client cannot grow the label set.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("other")
}

/// A request being served; see [`Metrics::start_request`].
pub struct InFlight(Arc<AtomicI64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Prometheus text being written. Each metric read at scrape time is one call:
/// `out.gauge("api_guard_jwks_keys", "Signing keys loaded", keys)`.
#[derive(Default)]
pub struct Exposition(String);

impl Exposition {
    /// A counter without labels.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, help, "counter");
        self.sample(name, &[], value);
    }

    /// A gauge without labels.
    pub fn gauge(&mut self, name: &str, help: &str, value: impl std::fmt::Display) {
        self.header(name, help, "gauge");
        self.sample(name, &[], value);
    }

    /// A counter without labels whose value is not a whole number (CPU seconds).
    pub fn counter_f64(&mut self, name: &str, help: &str, value: f64) {
        self.header(name, help, "counter");
        self.sample(name, &[], value);
    }

    /// An info metric: a gauge of 1 whose labels are the information.
    pub fn info(&mut self, name: &str, help: &str, labels: &[(&str, &str)]) {
        self.header(name, help, "gauge");
        self.sample(name, labels, 1);
    }

    /// A counter with one label.
    pub fn counter_family<'a>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: impl IntoIterator<Item = (&'a str, u64)>,
    ) {
        self.header(name, help, "counter");
        for (value, count) in values {
            self.sample(name, &[(label, value)], count);
        }
    }

    /// A metric of `kind` (`counter`, `gauge`) whose samples carry labels of their own:
    /// `rows` of label pairs and a value.
    pub fn family<'a, V: std::fmt::Display>(
        &mut self,
        name: &str,
        help: &str,
        kind: &str,
        rows: impl IntoIterator<Item = (Vec<(&'a str, &'a str)>, V)>,
    ) {
        self.header(name, help, kind);
        for (labels, value) in rows {
            self.sample(name, &labels, value);
        }
    }

    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        for (i, (label, value)) in labels.iter().enumerate() {
            self.0.push(if i == 0 { '{' } else { ',' });
            self.0.push_str(label);
            self.0.push_str("=\"");
            for c in value.chars() {
                match c {
                    '\\' => self.0.push_str("\\\\"),
                    '"' => self.0.push_str("\\\""),
                    '\n' => self.0.push_str("\\n"),
                    c => self.0.push(c),
                }
            }
            self.0.push('"');
        }
        if !labels.is_empty() {
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// The text.
    pub fn into_text(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_status_and_reason_with_a_cumulative_histogram() {
        let metrics = Metrics::default();
        metrics.record("/a", "GET", 200, Duration::from_micros(300), None);
        metrics.record("/a", "GET", 401, Duration::from_millis(3), Some("expired"));
        metrics.record("/a", "POST", 405, Duration::from_millis(3), None);
        metrics.record("unmatched", "BREW", 404, Duration::from_secs(60), None);
        let _request = metrics.start_request();
        let mut out = Exposition::default();
        metrics.expose(&mut out);
        let text = out.into_text();
        for line in [
            "api_guard_http_requests_total{route=\"/a\",method=\"GET\",status=\"200\"} 1",
            "api_guard_http_requests_total{route=\"/a\",method=\"GET\",status=\"401\"} 1",
            "api_guard_http_requests_total{route=\"/a\",method=\"POST\",status=\"405\"} 1",
            "api_guard_http_requests_total{route=\"unmatched\",method=\"other\",status=\"404\"} 1",
            "api_guard_http_request_duration_seconds_bucket{route=\"/a\",method=\"GET\",le=\"0.0005\"} 1",
            "api_guard_http_request_duration_seconds_bucket{route=\"/a\",method=\"GET\",le=\"0.0025\"} 1",
            "api_guard_http_request_duration_seconds_bucket{route=\"/a\",method=\"GET\",le=\"0.005\"} 2",
            "api_guard_http_request_duration_seconds_bucket{route=\"unmatched\",method=\"other\",le=\"10\"} 0",
            "api_guard_http_request_duration_seconds_bucket{route=\"unmatched\",method=\"other\",le=\"+Inf\"} 1",
            "api_guard_http_request_duration_seconds_count{route=\"/a\",method=\"GET\"} 2",
            "api_guard_auth_rejections_total{reason=\"expired\"} 1",
            "api_guard_http_requests_in_flight 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = Exposition::default();
        out.counter_family("m", "h", "l", [("a\"b\\c\nd", 1)]);
        assert!(out.into_text().ends_with("m{l=\"a\\\"b\\\\c\\nd\"} 1\n"));
    }
}
