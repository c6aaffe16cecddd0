//! The one-line request log.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One served request, as logged.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestLog {
    /// When the request arrived.
    pub time: SystemTime,
    /// The HTTP method.
    pub method: String,
    /// The path and query.
    pub path: String,
    /// The status answered.
    pub status: u16,
    /// How long the answer took.
    pub duration: Duration,
}

impl fmt::Display for RequestLog {
    /// `2026-11-22T18:30:00.123Z GET /path 200 0.001234s`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {:.6}s",
            rfc3339(self.time),
            self.method,
            self.path,
            self.status,
            self.duration.as_secs_f64()
        )
    }
}

/// Where request logs go; the default prints one line each to stdout.
pub type LogSink = Arc<dyn Fn(&RequestLog) + Send + Sync>;

/// The default sink: one line per request on stdout.
pub fn stdout_sink() -> LogSink {
    Arc::new(|entry: &RequestLog| {
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), "{entry}");
    })
}

/// Formats `time` as RFC 3339 UTC with milliseconds.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to a (year, month, day) date, by Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc3339_utc() {
        let time = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        assert_eq!(rfc3339(time), "2024-02-29T12:34:56.789Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let entry = RequestLog {
            time,
            method: "POST".into(),
            path: "/echo?x=1".into(),
            status: 408,
            duration: Duration::from_micros(1500),
        };
        assert_eq!(
            entry.to_string(),
            "2024-02-29T12:34:56.789Z POST /echo?x=1 408 0.001500s"
        );
    }
}
