//! The process logger: env_logger's text for people, or with `LOG_FORMAT=json` one JSON
//! object per line for log shippers: `ts` (RFC 3339, UTC), `level`, `target`, `msg`, and the
//! record's structured fields (the request line's method, path, status, latency_ms,
//! request_id, client, reason and traceparent). `LOG_FORMAT=ecs` and `gcp` write the same
//! records under the field names Elastic's (ECS) and Google Cloud Logging's pipelines parse
//! without configuration (see [`ecs`] and [`gcp`]).
//!
//! Text goes out in env_logger's own format, coloured on a terminal. Anywhere else (a file,
//! a pipe, a container runtime) records are written as formatted: without env_logger's pass
//! that strips colour codes byte by byte, and without the terminal check (a system call) it
//! makes on stderr for every record. Control characters in a message cannot reach the output
//! there either (see [`Plain`]).
//!
//! Off a terminal, records are also written in batches, not one `write(2)` per record (at
//! one request line each, that system call was a measurable share of a request): each
//! formatted record is appended whole to a shared buffer, and a thread of its own
//! (`log-writer`), woken by the first line, gathers lines for 2 ms ([`LINGER`]) and writes
//! out everything appended so far in one `write_all`, so under load many lines share one
//! wake-up and one write, in the order they were logged. See [`Batch`]:
//! the buffer is bounded (at [`BATCH_LIMIT`] a logging thread waits for the writer, no line
//! is dropped), and `log::logger().flush()` returns once every line logged before it is
//! written, which `main` calls before the process exits.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use env_logger::{Target, WriteStyle};

use log::kv::{Key, Value, VisitSource, VisitValue};
use serde_json::{Map, Value as Json};

/// How log records are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One line of text per record, for people. The default.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
    /// One JSON object per line with Elastic Common Schema field names.
    Ecs,
    /// One JSON object per line with Google Cloud Logging's field names.
    Gcp,
}

impl LogFormat {
    /// Every format by its `LOG_FORMAT` name.
    pub const ALL: [(&'static str, LogFormat); 4] = [
        ("text", LogFormat::Text),
        ("json", LogFormat::Json),
        ("ecs", LogFormat::Ecs),
        ("gcp", LogFormat::Gcp),
    ];
}

/// Installs the logger for the process, filtered by `filter` (env_logger syntax, already
/// validated by the configuration). Call `log::logger().flush()` before the process exits,
/// or the last lines logged may not be written.
pub fn init(format: LogFormat, filter: &str) {
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(filter);
    let terminal = std::io::stderr().is_terminal();
    if format == LogFormat::Text && !terminal {
        builder.format(|buf, record| {
            // env_logger's default layout, uncoloured: `[ts LEVEL target] message`.
            write!(
                buf,
                "[{} {:<5} {}] ",
                buf.timestamp_seconds(),
                record.level(),
                record.target()
            )?;
            write!(Plain(&mut *buf), "{}", record.args())?;
            writeln!(buf)
        });
    }
    if format != LogFormat::Text {
        builder.format(move |buf, record| {
            let mut fields = Map::new();
            let _ = record.key_values().visit(&mut Fields(&mut fields));
            let ts = buf.timestamp_millis().to_string();
            let (level, target) = (record.level(), record.target());
            let message = record.args().to_string();
            let object = match format {
                LogFormat::Ecs => ecs(ts, level, target, message, fields),
                LogFormat::Gcp => gcp(ts, level, target, message, fields),
                LogFormat::Text | LogFormat::Json => {
                    let mut object = Map::new();
                    object.insert("ts".into(), ts.into());
                    object.insert("level".into(), level.as_str().into());
                    object.insert("target".into(), target.into());
                    object.insert("msg".into(), message.into());
                    object.extend(fields);
                    object
                }
            };
            serde_json::to_writer(&mut *buf, &object).map_err(std::io::Error::other)?;
            writeln!(buf)
        });
    }
    // Off a terminal, through the batching writer; should its thread fail to start,
    // straight to stderr, one write per record, as before.
    let batch = match terminal {
        true => None,
        false => Batch::spawn(std::io::stderr(), BATCH_LIMIT).ok(),
    };
    if !terminal {
        // Both formats write no colour codes there: nothing to strip, so passed through as
        // is. As a pipe target, stderr is not asked whether it is a terminal per record.
        let target: Box<dyn Write + Send> = match &batch {
            Some(batch) => Box::new(Appender(Arc::clone(batch))),
            None => Box::new(std::io::stderr()),
        };
        builder.target(Target::Pipe(target));
        builder.write_style(WriteStyle::Always);
    }
    let inner = builder.build();
    let max_level = inner.filter();
    if log::set_boxed_logger(Box::new(Logger { inner, batch })).is_ok() {
        log::set_max_level(max_level);
    }
}

/// A record in the Elastic Common Schema: `@timestamp`, `log.level`, `log.logger`,
/// `message`, and for request lines `http.request.method`, `url.path`,
/// `http.response.status_code`, `event.duration` (nanoseconds), `http.request.id`,
/// `client.ip`, `event.reason` and `trace.id` (from a valid `traceparent`). Fields without a
/// value are left out.
fn ecs(
    ts: String,
    level: log::Level,
    target: &str,
    message: String,
    fields: Map<String, Json>,
) -> Map<String, Json> {
    let mut object = Map::new();
    object.insert("@timestamp".into(), ts.into());
    object.insert(
        "log.level".into(),
        level.as_str().to_ascii_lowercase().into(),
    );
    object.insert("log.logger".into(), target.into());
    object.insert("message".into(), message.into());
    object.insert("ecs.version".into(), "8.11.0".into());
    for (key, value) in fields {
        if value.is_null() {
            continue;
        }
        let (key, value) = match key.as_str() {
            "method" => ("http.request.method", value),
            "path" => ("url.path", value),
            "status" => ("http.response.status_code", value),
            "latency_ms" => ("event.duration", Json::from(nanos(&value))),
            "request_id" => ("http.request.id", value),
            "client" => ("client.ip", value),
            "reason" => ("event.reason", value),
            "traceparent" => match value.as_str().and_then(trace_ids) {
                Some((trace, _, _)) => ("trace.id", trace.into()),
                None => continue,
            },
            _ => {
                object.insert(key, value);
                continue;
            }
        };
        object.insert(key.into(), value);
    }
    object
}

/// A record as Google Cloud Logging reads it from a container's output: `severity`, `time`,
/// `message`, `logger`, and for request lines an `httpRequest` object (`requestMethod`,
/// `requestUrl` (the path), `status`, `latency` as "0.001500000s", `remoteIp`) and, from a
/// valid `traceparent`, `logging.googleapis.com/trace`, `.../spanId` (the caller's span) and
/// `.../trace_sampled`. The trace is the bare trace id: Cloud Logging links it to Cloud Trace
/// only in the `projects/PROJECT/traces/ID` form, which needs a project id we do not have.
fn gcp(
    ts: String,
    level: log::Level,
    target: &str,
    message: String,
    fields: Map<String, Json>,
) -> Map<String, Json> {
    let severity = match level {
        log::Level::Error => "ERROR",
        log::Level::Warn => "WARNING",
        log::Level::Info => "INFO",
        log::Level::Debug | log::Level::Trace => "DEBUG",
    };
    let mut object = Map::new();
    object.insert("severity".into(), severity.into());
    object.insert("time".into(), ts.into());
    object.insert("message".into(), message.into());
    object.insert("logger".into(), target.into());
    let mut http = Map::new();
    for (key, value) in fields {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "method" => drop(http.insert("requestMethod".into(), value)),
            "path" => drop(http.insert("requestUrl".into(), value)),
            "status" => drop(http.insert("status".into(), value)),
            "latency_ms" => {
                let secs = value.as_f64().unwrap_or_default() / 1000.0;
                http.insert("latency".into(), format!("{secs:.9}s").into());
            }
            "client" => drop(http.insert("remoteIp".into(), value)),
            "traceparent" => {
                if let Some((trace, span, sampled)) = value.as_str().and_then(trace_ids) {
                    object.insert("logging.googleapis.com/trace".into(), trace.into());
                    object.insert("logging.googleapis.com/spanId".into(), span.into());
                    object.insert(
                        "logging.googleapis.com/trace_sampled".into(),
                        sampled.into(),
                    );
                }
            }
            _ => drop(object.insert(key, value)),
        }
    }
    if !http.is_empty() {
        object.insert("httpRequest".into(), http.into());
    }
    object
}

/// Milliseconds (a JSON number) as whole nanoseconds, ECS's unit for `event.duration`.
fn nanos(millis: &Json) -> u64 {
    let nanos = (millis.as_f64().unwrap_or_default() * 1e6).round();
    if nanos.is_finite() && nanos >= 0.0 {
        // In range: at most u64::MAX nanoseconds (584 years) are representable.
        nanos.min(u64::MAX as f64) as u64
    } else {
        0
    }
}

/// The trace id, parent (span) id and sampled flag of a `traceparent` that
/// [`super::traceparent`] has accepted.
fn trace_ids(traceparent: &str) -> Option<(&str, &str, bool)> {
    let mut parts = traceparent.split('-');
    let (_version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((trace, span, flags & 1 == 1))
}

/// env_logger's logger, and the batching writer behind it if any: env_logger's own `flush`
/// does nothing, this one waits until every line logged so far is written.
struct Logger {
    inner: env_logger::Logger,
    batch: Option<Arc<Batch>>,
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &log::Record) {
        self.inner.log(record);
    }

    fn flush(&self) {
        self.inner.flush();
        if let Some(batch) = &self.batch {
            batch.wait_written();
        }
    }
}

/// How many bytes may wait for the writer thread before a logging thread waits for it
/// (stderr blocked, a pipe nobody reads): memory stays bounded, and no line is dropped.
const BATCH_LIMIT: usize = 1 << 20;

/// What the writer thread keeps of its buffer's capacity after a write: a burst does not
/// hold on to a megabyte for the life of the process.
const BATCH_KEEP: usize = 64 << 10;

/// How long the writer thread, woken by a line, waits for more before it writes: on a
/// busy core, a wake-up (two context switches) and a write per line would cost more than
/// the write alone. A flush, or a logging thread held back by the limit, cuts it short.
const LINGER: Duration = Duration::from_millis(2);

/// The longest a flush waits for stderr to take what was logged.
const FLUSH_LIMIT: Duration = Duration::from_secs(2);

/// Lines waiting to be written, and the thread that writes them (see the module docs).
struct Batch {
    state: Mutex<State>,
    limit: usize,
    /// The writer waits here for lines.
    work: Condvar,
    /// Flushers and logging threads held back by the limit wait here for a write to end.
    done: Condvar,
}

#[derive(Default)]
struct State {
    pending: Vec<u8>,
    /// Bytes appended and bytes written since the start: a flush waits for `written` to
    /// reach what `appended` was when it began.
    appended: u64,
    written: u64,
    /// The writer is waiting for lines: the next append wakes it (a system call), and no
    /// other append does.
    writer_idle: bool,
    /// Threads waiting on `done`: without any, the writer skips waking them.
    waiting: usize,
}

impl Batch {
    /// Starts the writer thread, writing to `sink`.
    fn spawn(sink: impl Write + Send + 'static, limit: usize) -> std::io::Result<Arc<Batch>> {
        let batch = Arc::new(Batch {
            state: Mutex::default(),
            limit,
            work: Condvar::new(),
            done: Condvar::new(),
        });
        let writer = Arc::clone(&batch);
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer.write_out(sink))?;
        Ok(batch)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state consistent: every change to it
        // is a single step.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait_done<'a>(&self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        state.waiting += 1;
        // A lingering writer: write now.
        self.work.notify_one();
        let mut state = self
            .done
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner);
        state.waiting -= 1;
        state
    }

    /// Appends one formatted record, whole; waits first while the buffer is at its limit.
    fn append(&self, bytes: &[u8]) {
        let mut state = self.lock();
        while state.pending.len() >= self.limit {
            state = self.wait_done(state);
        }
        state.pending.extend_from_slice(bytes);
        state.appended += bytes.len() as u64;
        let wake = std::mem::take(&mut state.writer_idle);
        drop(state);
        if wake {
            self.work.notify_one();
        }
    }

    /// Returns once everything appended before the call is written, or after
    /// [`FLUSH_LIMIT`] if stderr does not take it (a pipe nobody reads): exiting must not
    /// hang on the log.
    fn wait_written(&self) {
        let deadline = Instant::now() + FLUSH_LIMIT;
        let mut state = self.lock();
        let target = state.appended;
        state.waiting += 1;
        while state.written < target {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.work.notify_one();
            state = match self.done.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        state.waiting -= 1;
    }

    /// The writer thread: woken by a line, gathers lines for [`LINGER`], takes all of them
    /// and writes them in one `write_all`, and so on. A failed write (stderr closed) loses those lines, as a direct write would.
    fn write_out(&self, mut sink: impl Write) {
        let mut lines = Vec::new();
        loop {
            let mut state = self.lock();
            while state.pending.is_empty() {
                state.writer_idle = true;
                state = self
                    .work
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            state.writer_idle = false;
            // More lines for a moment, unless someone waits for these.
            let until = Instant::now() + LINGER;
            while state.waiting == 0 {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                state = match self.work.wait_timeout(state, left) {
                    Ok((state, _)) => state,
                    Err(poisoned) => poisoned.into_inner().0,
                };
            }
            std::mem::swap(&mut state.pending, &mut lines);
            let upto = state.appended;
            drop(state);
            let _ = sink.write_all(&lines).and_then(|()| sink.flush());
            lines.clear();
            lines.shrink_to(BATCH_KEEP);
            let mut state = self.lock();
            state.written = upto;
            let waiting = state.waiting > 0;
            drop(state);
            if waiting {
                self.done.notify_all();
            }
        }
    }
}

/// env_logger's target off a terminal: hands each formatted record to the [`Batch`].
/// env_logger flushes its target after every record; that flush only hands over (the
/// writer thread writes), or there would be nothing to batch. [`Logger`]'s flush waits.
struct Appender(Arc<Batch>);

impl Write for Appender {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.append(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes a message as one record: continuation lines indented by four spaces, as
/// env_logger's default format does, and any other control character (an escape sequence
/// from a remote error, say) replaced by `?`, as the stripping would have removed it.
struct Plain<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Plain<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut rest = bytes;
        while let Some(at) = rest
            .iter()
            .position(|b| b.is_ascii_control() && *b != b'\t')
        {
            self.0.write_all(&rest[..at])?;
            self.0
                .write_all(if rest[at] == b'\n' { b"\n    " } else { b"?" })?;
            rest = &rest[at + 1..];
        }
        self.0.write_all(rest)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Copies a record's structured fields into the JSON object, numbers as numbers and a
/// missing value (`None`) as `null`.
struct Fields<'a>(&'a mut Map<String, Json>);

impl<'kvs> VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let mut json = ToJson(Json::Null);
        value.visit(&mut json)?;
        self.0.insert(key.as_str().to_owned(), json.0);
        Ok(())
    }
}

struct ToJson(Json);

impl<'v> VisitValue<'v> for ToJson {
    fn visit_any(&mut self, value: Value) -> Result<(), log::kv::Error> {
        self.0 = Json::from(value.to_string());
        Ok(())
    }

    fn visit_null(&mut self) -> Result<(), log::kv::Error> {
        self.0 = Json::Null;
        Ok(())
    }

    fn visit_u64(&mut self, value: u64) -> Result<(), log::kv::Error> {
        self.0 = Json::from(value);
        Ok(())
    }

    fn visit_i64(&mut self, value: i64) -> Result<(), log::kv::Error> {
        self.0 = Json::from(value);
        Ok(())
    }

    fn visit_f64(&mut self, value: f64) -> Result<(), log::kv::Error> {
        self.0 = Json::from(value);
        Ok(())
    }

    fn visit_bool(&mut self, value: bool) -> Result<(), log::kv::Error> {
        self.0 = Json::from(value);
        Ok(())
    }

    fn visit_str(&mut self, value: &str) -> Result<(), log::kv::Error> {
        self.0 = Json::from(value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(message: &str) -> String {
        let mut out = Vec::new();
        let _ = write!(Plain(&mut out), "{message}");
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn plain_text_indents_continuation_lines_and_replaces_control_characters() {
        assert_eq!(
            plain("GET /api/hello 200 0.1ms id=a"),
            "GET /api/hello 200 0.1ms id=a"
        );
        assert_eq!(plain("first\nsecond"), "first\n    second");
        assert_eq!(plain("a\x1b[31mred\r\x00\tz"), "a?[31mred??\tz");
    }

    /// A sink in memory the test can read, and hold shut: while shut, a write waits (the
    /// writer thread stuck, as on a pipe nobody reads).
    #[derive(Clone, Default)]
    struct Sink(Arc<SinkShared>);

    #[derive(Default)]
    struct SinkShared {
        state: Mutex<SinkState>,
        opened: Condvar,
    }

    #[derive(Default)]
    struct SinkState {
        bytes: Vec<u8>,
        open: bool,
        /// A write has begun (and, while shut, is waiting).
        entered: bool,
    }

    impl Sink {
        fn open(open: bool) -> Sink {
            let sink = Sink::default();
            sink.set_open(open);
            sink
        }

        fn set_open(&self, open: bool) {
            self.0.state.lock().unwrap().open = open;
            self.0.opened.notify_all();
        }

        fn entered(&self) -> bool {
            self.0.state.lock().unwrap().entered
        }

        fn text(&self) -> String {
            String::from_utf8(self.0.state.lock().unwrap().bytes.clone()).unwrap()
        }
    }

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let mut state = self.0.state.lock().unwrap();
            state.entered = true;
            while !state.open {
                state = self.0.opened.wait(state).unwrap();
            }
            state.bytes.extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Polls `done` until it holds, at most 10 s.
    fn poll(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "not within 10 s: {what}");
            std::thread::yield_now();
        }
    }

    #[test]
    fn batched_lines_arrive_whole_in_order_and_flush_waits_for_all_of_them() {
        const THREADS: usize = 4;
        const LINES: usize = 5_000;
        let sink = Sink::open(true);
        let batch = Batch::spawn(sink.clone(), BATCH_LIMIT).unwrap();
        std::thread::scope(|scope| {
            for thread in 0..THREADS {
                let batch = &batch;
                scope.spawn(move || {
                    let mut appender = Appender(Arc::clone(batch));
                    for line in 0..LINES {
                        // As env_logger does: the record formatted, then one write_all.
                        let record = format!("thread {thread} line {line} end\n");
                        appender.write_all(record.as_bytes()).unwrap();
                        appender.flush().unwrap();
                    }
                });
            }
        });
        batch.wait_written();

        // No polling: what flush waited for is there when it returns.
        let text = sink.text();
        let mut next = [0; THREADS];
        for line in text.lines() {
            let words: Vec<&str> = line.split(' ').collect();
            assert!(
                matches!(words[..], ["thread", _, "line", _, "end"]),
                "a line cut or mixed with another: {line:?}"
            );
            let thread: usize = words[1].parse().unwrap();
            let number: usize = words[3].parse().unwrap();
            assert_eq!(number, next[thread], "thread {thread}'s lines out of order");
            next[thread] += 1;
        }
        assert_eq!(next, [LINES; THREADS], "lines missing");
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn a_stuck_writer_holds_logging_threads_back_at_the_limit_and_loses_nothing() {
        const LIMIT: usize = 100;
        let line = "0123456789012345678\n"; // 20 bytes
        let sink = Sink::open(false);
        let batch = Batch::spawn(sink.clone(), LIMIT).unwrap();
        // The writer takes a first line and is stuck writing it.
        batch.append(line.as_bytes());
        poll("the writer writes", || sink.entered());
        let logger = {
            let batch = Arc::clone(&batch);
            std::thread::spawn(move || {
                for _ in 0..50 {
                    batch.append(line.as_bytes());
                }
            })
        };
        // The logging thread fills the buffer to the limit and must then wait, not grow it.
        let mut pending = None;
        poll("the logging thread finishes or waits", || {
            let state = batch.lock();
            pending = (state.waiting > 0).then_some(state.pending.len());
            pending.is_some() || logger.is_finished()
        });
        let pending = pending.expect("the buffer grew past its limit instead");
        assert!(
            (LIMIT..LIMIT + line.len()).contains(&pending),
            "{pending} bytes pending"
        );

        sink.set_open(true);
        logger.join().unwrap();
        batch.wait_written();
        assert_eq!(sink.text(), line.repeat(51));
    }
}
