//! Human-friendly durations and byte sizes in task files.
//!
//! Durations are written as seconds (`15`, `0.5`) or with a unit (`250ms`, `15s`, `2m`, `1h`).
//! Memory is written as bytes (`67108864`) or with a unit (`64Mi`, `64MiB`, `1G`, `512k`).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer, de};

/// Parses `15`, `0.5`, `250ms`, `15s`, `2m`, `1h` into a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (expected e.g. `15s`, `250ms`, `2m`)"))?;
    let scale = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        "m" | "min" | "mins" => 60.0,
        "h" | "hr" | "hrs" => 3600.0,
        other => {
            return Err(format!(
                "`{text}` has an unknown duration unit `{other}` (use ns, us, ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(value * scale).map_err(|_| format!("`{text}` is out of range"))
}

/// Parses `67108864`, `64Mi`, `64MiB`, `1G`, `512k` into bytes.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (expected e.g. `64Mi`, `1G`)"))?;
    let scale: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "k" | "K" | "KB" => 1e3,
        "M" | "MB" => 1e6,
        "G" | "GB" => 1e9,
        "Ki" | "KiB" => 1024.0,
        "Mi" | "MiB" => 1024.0 * 1024.0,
        "Gi" | "GiB" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "`{text}` has an unknown size unit `{other}` (use k, M, G, Ki, Mi or Gi)"
            ));
        }
    };
    let bytes = value * scale;
    if !(0.0..=u64::MAX as f64).contains(&bytes) {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(bytes.round() as u64)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Int(u64),
    Float(f64),
    Text(String),
}

/// Serde for a [`Duration`] written as seconds or with a unit; serialized as `"<n>ms"` or `"<n>s"`.
pub mod duration {
    use super::*;

    /// Serializes as whole seconds (`"15s"`) when exact, else milliseconds (`"250ms"`).
    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        if value.subsec_nanos() == 0 {
            serializer.serialize_str(&format!("{}s", value.as_secs()))
        } else {
            serializer.serialize_str(&format!("{}ms", value.as_millis()))
        }
    }

    /// Accepts a number of seconds or a string with a unit.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        match NumberOrText::deserialize(deserializer)? {
            NumberOrText::Int(secs) => Ok(Duration::from_secs(secs)),
            NumberOrText::Float(secs) => Duration::try_from_secs_f64(secs)
                .map_err(|_| de::Error::custom(format!("{secs} is not a valid number of seconds"))),
            NumberOrText::Text(text) => parse_duration(&text).map_err(de::Error::custom),
        }
    }
}

/// Serde for an optional [`Duration`].
pub mod option_duration {
    use super::*;

    /// Serializes `None` as null and `Some` like [`super::duration`].
    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => super::duration::serialize(d, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Accepts null, a number of seconds or a string with a unit.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "super::duration")] Duration);
        Ok(Option::<Wrap>::deserialize(deserializer)?.map(|w| w.0))
    }
}

/// Serde for an optional byte size written as a number or with a unit.
pub mod option_bytes {
    use super::*;

    /// Serializes as a plain number of bytes.
    pub fn serialize<S: Serializer>(value: &Option<u64>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(b) => serializer.serialize_u64(*b),
            None => serializer.serialize_none(),
        }
    }

    /// Accepts null, a number of bytes or a string with a unit.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<u64>, D::Error> {
        match Option::<NumberOrText>::deserialize(deserializer)? {
            None => Ok(None),
            Some(NumberOrText::Int(b)) => Ok(Some(b)),
            Some(NumberOrText::Float(b)) if b >= 0.0 => Ok(Some(b.round() as u64)),
            Some(NumberOrText::Float(b)) => Err(de::Error::custom(format!(
                "{b} is not a valid size in bytes"
            ))),
            Some(NumberOrText::Text(text)) => {
                parse_bytes(&text).map(Some).map_err(de::Error::custom)
            }
        }
    }
}

/// `secs` since the Unix epoch as UTC `(year, month, day, hour, minute, second)` (Howard
/// Hinnant's `civil_from_days`), for the timestamps wire formats write.
pub fn utc_parts(secs: u64) -> (i64, i64, i64, u64, u64, u64) {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration("15").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_duration("0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(
            parse_duration("ten")
                .unwrap_err()
                .contains("not a duration")
        );
        assert!(
            parse_duration("5 fortnights")
                .unwrap_err()
                .contains("fortnights")
        );
    }

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert_eq!(parse_bytes("64Mi").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1G").unwrap(), 1_000_000_000);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("3 parsecs").unwrap_err().contains("parsecs"));
    }
}
