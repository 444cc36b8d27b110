//! A slog drain that prints raft's log lines the way etcd's zap logger prints its raft package's.
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

use slog::{Drain, Level, OwnedKVList, Record, KV};

/// 0 debug, 1 info, 2 warn, 3 error: lines below it are dropped (etcd's --log-level).
pub static LOG_LEVEL: AtomicU8 = AtomicU8::new(1);

pub struct ZapDrain {
    pub member_id: u64,
}

struct Fields(String);

impl slog::Serializer for Fields {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments) -> slog::Result {
        self.0.push_str(&format!(
            ",{}:{}",
            serde_json::to_string(key).unwrap(),
            serde_json::to_string(&val.to_string()).unwrap()
        ));
        Ok(())
    }
}

fn rank(l: Level) -> u8 {
    match l {
        Level::Trace | Level::Debug => 0,
        Level::Info => 1,
        Level::Warning => 2,
        Level::Error | Level::Critical => 3,
    }
}

/// Now as etcd's zap timestamps: RFC 3339 with microseconds, UTC.
pub fn zap_ts() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // civil-from-days (Howard Hinnant's algorithm)
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z", rem / 3600, rem % 3600 / 60, rem % 60, now.subsec_micros())
}

impl Drain for ZapDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record, values: &OwnedKVList) -> Result<(), slog::Never> {
        if rank(record.level()) < LOG_LEVEL.load(Ordering::Relaxed) {
            return Ok(());
        }
        let level = match record.level() {
            Level::Trace | Level::Debug => "debug",
            Level::Info => "info",
            Level::Warning => "warn",
            Level::Error | Level::Critical => "error",
        };
        let mut fields = Fields(String::new());
        let _ = record.kv().serialize(record, &mut fields);
        let _ = values.serialize(record, &mut fields);
        let msg = format!("{:x} {}", self.member_id, record.msg());
        let line = format!(
            "{{\"level\":\"{level}\",\"ts\":\"{}\",\"caller\":\"raft/{}:{}\",\"msg\":{}{}}}\n",
            zap_ts(),
            record.file().rsplit('/').next().unwrap_or(""),
            record.line(),
            serde_json::to_string(&msg).unwrap(),
            fields.0
        );
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        Ok(())
    }
}

/// One zap JSON line from the server's own code (not raft's), e.g. the transport's peer events.
pub fn zap_log(level: &str, caller: &str, msg: &str, fields: &[(&str, String)]) {
    let rank = match level {
        "debug" => 0,
        "info" => 1,
        "warn" => 2,
        _ => 3,
    };
    if rank < LOG_LEVEL.load(Ordering::Relaxed) {
        return;
    }
    let mut line = format!(
        "{{\"level\":\"{level}\",\"ts\":\"{}\",\"caller\":\"{caller}\",\"msg\":{}",
        zap_ts(),
        serde_json::to_string(msg).unwrap()
    );
    for (k, v) in fields {
        line.push_str(&format!(",{}:{}", serde_json::to_string(k).unwrap(), serde_json::to_string(v).unwrap()));
    }
    line.push_str("}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
