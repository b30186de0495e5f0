//! `--since` / `--until`: look at one window of the logs.
//!
//! A bound is an RFC 3339 time or a duration before the last record of the
//! whole input (`--since 2h`: the last two hours that were logged, which is
//! what a post-mortem of yesterday's incident wants, not "two hours before
//! now"). Records outside the window are dropped before classification, as
//! if the logs had been cut there.

use std::time::Duration;

use crate::config::HumanDuration;
use crate::time::Timestamp;

/// One bound as given.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    At(Timestamp),
    BeforeLast(Duration),
}

impl Bound {
    /// Parses `2026-11-24T10:00:00Z` (any RFC 3339 form) or `90s`, `15m`, `2h`.
    pub fn parse(s: &str) -> Result<Bound, String> {
        let s = s.trim();
        if let Some(ts) = Timestamp::parse_rfc3339(s.as_bytes()) {
            return Ok(Bound::At(ts));
        }
        HumanDuration::parse(s)
            .map(|d| Bound::BeforeLast(d.0))
            .map_err(|_| {
                format!(
                    "`{s}` is neither an RFC 3339 time (2026-11-24T10:00:00Z) nor a duration (90s, 15m, 2h)"
                )
            })
    }

    fn resolve(self, last: Option<Timestamp>) -> Option<Timestamp> {
        match self {
            Bound::At(t) => Some(t),
            Bound::BeforeLast(d) => last.map(|l| l.plus_secs(-d.as_secs_f64())),
        }
    }
}

/// The bounds as given on the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WindowSpec {
    pub since: Option<Bound>,
    pub until: Option<Bound>,
}

impl WindowSpec {
    /// True when a bound needs the time of the last record (a pre-pass).
    pub(crate) fn needs_last_record(&self) -> bool {
        matches!(self.since, Some(Bound::BeforeLast(_)))
            || matches!(self.until, Some(Bound::BeforeLast(_)))
    }

    /// True when no bound was given.
    pub fn is_empty(&self) -> bool {
        self.since.is_none() && self.until.is_none()
    }

    /// The window in record time, given the input's last record. A relative
    /// bound cannot be placed in an input without record times: an error.
    pub(crate) fn resolve(&self, last: Option<Timestamp>) -> Result<Window, String> {
        if last.is_none() && self.needs_last_record() {
            return Err(
                "a duration in --since/--until counts back from the last record, and the input has no record times (use `kubectl logs --timestamps`)".into(),
            );
        }
        let w = Window {
            since: self.since.and_then(|b| b.resolve(last)),
            until: self.until.and_then(|b| b.resolve(last)),
        };
        if let (Some(s), Some(u)) = (w.since, w.until) {
            if s >= u {
                return Err(format!("--since ({s}) is not before --until ({u})"));
            }
        }
        Ok(w)
    }
}

/// A resolved window: `since` ≤ t < `until`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Window {
    #[serde(serialize_with = "ser_ts")]
    pub since: Option<Timestamp>,
    #[serde(serialize_with = "ser_ts")]
    pub until: Option<Timestamp>,
}

fn ser_ts<S: serde::Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.collect_str(t),
        None => s.serialize_none(),
    }
}

impl Window {
    /// Whether a record at `t` is inside.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }

    /// True when it keeps everything.
    pub(crate) fn is_open(&self) -> bool {
        self.since.is_none() && self.until.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000_000;

    #[test]
    fn bounds_are_times_or_durations() {
        assert_eq!(
            Bound::parse("2026-11-24T10:00:00Z"),
            Ok(Bound::At(
                Timestamp::parse_rfc3339(b"2026-11-24T10:00:00Z").unwrap()
            ))
        );
        assert_eq!(
            Bound::parse("2h"),
            Ok(Bound::BeforeLast(Duration::from_secs(7200)))
        );
        assert!(Bound::parse("yesterday").unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn relative_bounds_count_back_from_the_last_record() {
        let spec = WindowSpec {
            since: Some(Bound::BeforeLast(Duration::from_secs(60))),
            until: None,
        };
        assert!(spec.needs_last_record());
        let w = spec.resolve(Some(Timestamp(1000 * SEC))).unwrap();
        assert_eq!(w.since, Some(Timestamp(940 * SEC)));
        assert!(w.contains(Timestamp(940 * SEC)) && !w.contains(Timestamp(939 * SEC)));
        let until = WindowSpec {
            since: Some(Bound::At(Timestamp(10 * SEC))),
            until: Some(Bound::At(Timestamp(10 * SEC))),
        };
        assert!(until.resolve(None).is_err());
        assert!(spec.resolve(None).unwrap_err().contains("--timestamps"));
        let half_open = WindowSpec {
            since: None,
            until: Some(Bound::At(Timestamp(10 * SEC))),
        }
        .resolve(None)
        .unwrap();
        assert!(half_open.contains(Timestamp(9 * SEC)) && !half_open.contains(Timestamp(10 * SEC)));
    }
}
