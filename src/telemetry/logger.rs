//! The process logger: env_logger's text for people, or with `LOG_FORMAT=json` one JSON
//! object per line for log shippers: `ts` (RFC 3339, UTC), `level`, `target`, `msg`, and the
//! record's structured fields (the request line's method, path, status, latency_ms,
//! request_id, client and reason).
//!
//! Text goes out in env_logger's own format, coloured on a terminal. Anywhere else (a file,
//! a pipe, a container runtime) each record is written as formatted, in one write: without
//! env_logger's pass that strips colour codes byte by byte, and without the terminal check
//! (a system call) it makes on stderr for every record. Control characters in a message
//! cannot reach the output there either (see [`Plain`]).

use std::io::{IsTerminal, Write};

use env_logger::{Target, WriteStyle};

use log::kv::{Key, Value, VisitSource, VisitValue};
use serde_json::{Map, Value as Json};

use crate::config::LogFormat;

/// Installs the logger for the process, filtered by `filter` (env_logger syntax, already
/// validated by the configuration).
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
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            let mut object = Map::new();
            object.insert("ts".into(), buf.timestamp_millis().to_string().into());
            object.insert("level".into(), record.level().as_str().into());
            object.insert("target".into(), record.target().into());
            object.insert("msg".into(), record.args().to_string().into());
            let _ = record.key_values().visit(&mut Fields(&mut object));
            serde_json::to_writer(&mut *buf, &object).map_err(std::io::Error::other)?;
            writeln!(buf)
        });
    }
    if !terminal {
        // Both formats write no colour codes there: nothing to strip, so passed through as
        // is. As a pipe target, stderr is not asked whether it is a terminal per record.
        builder.target(Target::Pipe(Box::new(std::io::stderr())));
        builder.write_style(WriteStyle::Always);
    }
    builder.init();
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
}
