//! Record timestamps.
//!
//! Every gap and every "during the gap" decision is made on the timestamp the
//! container runtime (or LiteLLM) wrote into the record, never on the time we
//! read it, so a backfill after a restart and `report` over old files give the
//! same numbers as live tailing. Kept as nanoseconds since the Unix epoch (UTC)
//! so comparisons and differences are integer operations on the hot path.

use std::fmt;

/// Nanoseconds since 1970-01-01T00:00:00Z.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

const NANOS_PER_SEC: i64 = 1_000_000_000;

impl Timestamp {
    /// The current wall-clock time (only for live-mode housekeeping, never for gaps).
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_nanos() as i64)
    }

    /// Builds a timestamp from seconds (and a fraction) since the epoch.
    pub fn from_secs_f64(secs: f64) -> Self {
        Timestamp((secs * NANOS_PER_SEC as f64) as i64)
    }

    /// Seconds since the epoch, as Prometheus and JSON consumers want them.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / NANOS_PER_SEC as f64
    }

    /// `self - earlier` in seconds (negative when `earlier` is later).
    /// Computed in 128 bits: it never wraps, whatever the two values.
    pub fn seconds_since(self, earlier: Timestamp) -> f64 {
        (i128::from(self.0) - i128::from(earlier.0)) as f64 / NANOS_PER_SEC as f64
    }

    /// 2000-01-01T00:00:00Z: no LiteLLM log line is older.
    pub(crate) const EARLIEST_SANE: Timestamp = Timestamp(946_684_800 * NANOS_PER_SEC);

    /// How far past the wall clock a record time may lie (clock skew between
    /// nodes, time zones mistaken for UTC) before it is called malformed.
    pub(crate) const MAX_FUTURE_SECS: i64 = 86_400;

    /// Whether a record time is plausible: not before 2000, not more than a
    /// day after `now`. Anything else (a year 1677 that would wrap an i64
    /// difference, a year 9999) is a malformed timestamp, never a gap.
    pub fn is_sane_at(self, now: Timestamp) -> bool {
        self >= Self::EARLIEST_SANE
            && self.0 <= now.0.saturating_add(Self::MAX_FUTURE_SECS * NANOS_PER_SEC)
    }

    /// Adds whole seconds.
    pub fn plus_secs(self, secs: f64) -> Self {
        Timestamp(self.0.saturating_add((secs * NANOS_PER_SEC as f64) as i64))
    }

    /// Parses an RFC 3339 timestamp leniently: any number of fraction digits
    /// (containerd trims zeros, CRI-O writes nine), `Z`, a numeric offset, or
    /// no zone at all (LiteLLM's JSON logs; taken as UTC). Returns the
    /// timestamp and the number of bytes consumed.
    ///
    /// Times outside [`Timestamp::is_sane_at`] (before 2000, more than a day
    /// ahead of the wall clock) do not parse: every format then counts the
    /// record as `lines_malformed_total{reason="bad_timestamp"}` (CRI,
    /// docker) or ignores the field (LiteLLM JSON keeps the runtime's time).
    pub fn parse_rfc3339_prefix(s: &[u8]) -> Option<(Timestamp, usize)> {
        if s.len() < 19 {
            return None;
        }
        let base = date_time_secs(&s[..19])?;
        finish_rfc3339(s, base, Timestamp::now())
    }

    /// Parses a whole RFC 3339 timestamp (nothing may follow it).
    pub fn parse_rfc3339(s: &[u8]) -> Option<Timestamp> {
        match Self::parse_rfc3339_prefix(s) {
            Some((ts, n)) if n == s.len() => Some(ts),
            _ => None,
        }
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with microseconds: `2026-11-24T10:15:00.123456Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(NANOS_PER_SEC);
        let nanos = self.0.rem_euclid(NANOS_PER_SEC);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60,
            nanos / 1000
        )
    }
}

impl serde::Serialize for RfcTimestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// A timestamp that serializes as an RFC 3339 string (for JSON APIs and reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RfcTimestamp(pub Timestamp);

// Howard Hinnant's civil calendar algorithms (public domain).
fn digits(s: &[u8]) -> Option<i64> {
    s.iter().try_fold(0i64, |v, &c| {
        c.is_ascii_digit().then(|| v * 10 + i64::from(c - b'0'))
    })
}

/// Seconds since the epoch of `YYYY-MM-DD[Tt ]HH:MM:SS` (the first 19
/// bytes, read as UTC; years 2000–9999). Split from the rest of
/// [`Timestamp::parse_rfc3339_prefix`] so a reader of many lines of the same
/// second (the CRI framer) can cache it.
pub(crate) fn date_time_secs(s: &[u8]) -> Option<i64> {
    if s.len() < 19
        || s[4] != b'-'
        || s[7] != b'-'
        || !matches!(s[10], b'T' | b't' | b' ')
        || s[13] != b':'
        || s[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (digits(&s[0..4])?, digits(&s[5..7])?, digits(&s[8..10])?);
    let (hour, minute, second) = (
        digits(&s[11..13])?,
        digits(&s[14..16])?,
        digits(&s[17..19])?,
    );
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
        || !(2000..=9999).contains(&year)
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// The rest of an RFC 3339 timestamp after its first 19 bytes (whose
/// seconds are `base`): the fraction, any number of digits, then `Z`, a
/// numeric offset or nothing; the timestamp, if sane at `now`, and the
/// bytes consumed.
pub(crate) fn finish_rfc3339(s: &[u8], base: i64, now: Timestamp) -> Option<(Timestamp, usize)> {
    let mut i = 19;
    let mut nanos: i64 = 0;
    if i < s.len() && (s[i] == b'.' || s[i] == b',') {
        i += 1;
        let start = i;
        let mut scale = 100_000_000;
        while i < s.len() && s[i].is_ascii_digit() {
            nanos += i64::from(s[i] - b'0') * scale;
            scale /= 10;
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let mut offset_secs: i64 = 0;
    if i < s.len() {
        match s[i] {
            b'Z' | b'z' => i += 1,
            b'+' | b'-' if s.len() >= i + 6 && s[i + 3] == b':' => {
                let sign = if s[i] == b'-' { -1 } else { 1 };
                let h = digits(&s[i + 1..i + 3])?;
                let m = digits(&s[i + 4..i + 6])?;
                offset_secs = sign * (h * 3600 + m * 60);
                i += 6;
            }
            _ => {}
        }
    }
    let secs = base - offset_secs;
    let ts = Timestamp(secs.checked_mul(NANOS_PER_SEC)?.checked_add(nanos)?);
    ts.is_sane_at(now).then_some((ts, i))
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_containerd_crio_and_zoneless_forms() {
        let z = Timestamp::parse_rfc3339(b"2026-11-24T10:15:00.123456789Z").unwrap();
        let trimmed = Timestamp::parse_rfc3339(b"2026-11-24T10:15:00.123456789+00:00").unwrap();
        assert_eq!(z, trimmed);
        let off = Timestamp::parse_rfc3339(b"2026-11-24T11:15:00.123456789+01:00").unwrap();
        assert_eq!(z, off);
        let short = Timestamp::parse_rfc3339(b"2026-11-24T10:15:00.1Z").unwrap();
        assert_eq!(short.0 % 1_000_000_000, 100_000_000);
        let zoneless = Timestamp::parse_rfc3339(b"2026-11-24T10:15:00.123456789").unwrap();
        assert_eq!(zoneless, z);
        assert_eq!(z.to_string(), "2026-11-24T10:15:00.123456Z");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            &b""[..],
            b"2026-11-24",
            b"2026-13-24T10:15:00Z",
            b"2026-11-24T10:15:00.Z",
            b"xxxx-11-24T10:15:00Z",
            b"2026-11-24T10:15:00Zjunk",
        ] {
            assert!(
                Timestamp::parse_rfc3339(bad).is_none(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn out_of_range_times_do_not_parse_and_differences_never_wrap() {
        for bad in [
            &b"1677-09-21T00:12:44Z"[..],
            b"1970-01-01T00:00:00Z",
            b"1999-12-31T23:59:59.999Z",
            b"1999-12-31T23:30:00-01:00",
            b"2262-04-11T23:47:17Z",
            b"9999-12-31T23:59:59Z",
        ] {
            assert!(
                Timestamp::parse_rfc3339(bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // The limits themselves: 2000-01-01 parses; a day ahead parses, two do not.
        assert_eq!(
            Timestamp::parse_rfc3339(b"2000-01-01T00:00:00Z"),
            Some(Timestamp::EARLIEST_SANE)
        );
        let now = Timestamp::now();
        let ahead = |secs: f64| now.plus_secs(secs).to_string();
        assert!(Timestamp::parse_rfc3339(ahead(3600.0).as_bytes()).is_some());
        assert!(Timestamp::parse_rfc3339(ahead(2.0 * 86_400.0).as_bytes()).is_none());
        // Differences of extreme values are finite and have the right sign.
        let (lo, hi) = (Timestamp(i64::MIN), Timestamp(i64::MAX));
        assert!(hi.seconds_since(lo) > 1.8e10);
        assert!(lo.seconds_since(hi) < -1.8e10);
    }

    #[test]
    fn round_trip() {
        let t = Timestamp::parse_rfc3339(b"2000-02-29T23:59:59.5Z").unwrap();
        assert_eq!(t.to_string(), "2000-02-29T23:59:59.500000Z");
    }
}
