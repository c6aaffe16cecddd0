//! The one-line request log, in the Apache combined format Kubeless's runtimes write.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Conventions;

/// One served request, as logged.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestLog {
    /// When the request arrived.
    pub time: SystemTime,
    /// The client's address, when known.
    pub remote: Option<IpAddr>,
    /// The HTTP method.
    pub method: String,
    /// The path and query.
    pub path: String,
    /// The protocol, as `HTTP/1.1`.
    pub version: String,
    /// The status answered.
    pub status: u16,
    /// The response body's length, when known.
    pub size: Option<u64>,
    /// The `Referer` header.
    pub referer: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// How long the answer took.
    pub duration: Duration,
    /// Whose line this is: Python's or Node's (see [`Conventions`]).
    pub conventions: Conventions,
}

impl fmt::Display for RequestLog {
    /// The Apache combined format, as Kubeless's runtime of [`Conventions`] writes it:
    ///
    /// - Python (wsgi-request-logger's `ApacheFormatter`, which the scheduled-function verify
    ///   greps for `GET / HTTP/1.1" 200 11 ""`): the path without its query, `""` for a
    ///   missing referer or agent, then the response time as `seconds/microseconds`:
    ///   `127.0.0.1 - - [22/Nov/2026:18:30:00 +0000] "GET / HTTP/1.1" 200 11 "" "curl/8.5" 0/620`
    /// - Node (morgan's `combined`): the URL with its query, `-` for what is missing:
    ///   `127.0.0.1 - - [22/Nov/2026:18:30:00 +0000] "GET /?a=1 HTTP/1.1" 200 11 "-" "curl/8.5"`
    ///
    /// Dates are UTC.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let python = self.conventions == Conventions::Python;
        let missing = if python { "" } else { "-" };
        let remote = self.remote.map(|r| r.to_string());
        let path = if python {
            self.path.split('?').next().unwrap_or("")
        } else {
            &self.path
        };
        let size = match self.size {
            Some(size) => size.to_string(),
            None if python => "0".into(),
            None => "-".into(),
        };
        write!(
            f,
            "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\"",
            remote.as_deref().unwrap_or(if python { "" } else { "-" }),
            clf_date(self.time),
            self.method,
            path,
            self.version,
            self.status,
            size,
            self.referer.as_deref().unwrap_or(missing),
            self.user_agent.as_deref().unwrap_or(missing),
        )?;
        if python {
            let micros = self.duration.as_micros();
            write!(f, " {}/{}", micros / 1_000_000, micros % 1_000_000)?;
        }
        Ok(())
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

/// Formats `time` as the common log format's date in UTC: `22/Nov/2026:18:30:00 +0000`.
pub fn clf_date(time: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{day:02}/{}/{year:04}:{:02}:{:02}:{:02} +0000",
        MONTHS[month as usize - 1],
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
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
        assert_eq!(clf_date(time), "29/Feb/2024:12:34:56 +0000");
        let mut entry = RequestLog {
            time,
            remote: Some("10.0.0.7".parse().unwrap()),
            method: "POST".into(),
            path: "/echo?x=1".into(),
            version: "HTTP/1.1".into(),
            status: 408,
            size: Some(11),
            referer: None,
            user_agent: Some("curl/8.5".into()),
            duration: Duration::from_micros(1_500_020),
            conventions: Conventions::Python,
        };
        assert_eq!(
            entry.to_string(),
            r#"10.0.0.7 - - [29/Feb/2024:12:34:56 +0000] "POST /echo HTTP/1.1" 408 11 "" "curl/8.5" 1/500020"#
        );
        entry.conventions = Conventions::Node { module: "m".into() };
        entry.size = None;
        assert_eq!(
            entry.to_string(),
            r#"10.0.0.7 - - [29/Feb/2024:12:34:56 +0000] "POST /echo?x=1 HTTP/1.1" 408 - "-" "curl/8.5""#
        );
    }
}
