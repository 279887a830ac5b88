//! The process logger: env_logger's text for people, or with `LOG_FORMAT=json` one JSON
//! object per line for log shippers: `ts` (RFC 3339, UTC), `level`, `target`, `msg`, and the
//! record's structured fields (the request line's method, path, status, latency_ms,
//! request_id, client and reason).

use std::io::Write;

use log::kv::{Key, Value, VisitSource, VisitValue};
use serde_json::{Map, Value as Json};

use crate::config::LogFormat;

/// Installs the logger for the process, filtered by `filter` (env_logger syntax, already
/// validated by the configuration).
pub fn init(format: LogFormat, filter: &str) {
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(filter);
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
    builder.init();
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
