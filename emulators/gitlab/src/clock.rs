//! Injectable "now": real time, real time shifted by an offset, or a fixed instant.

use chrono::{DateTime, Duration, DurationRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// Where the emulator's "now" comes from. Timestamps are kept at millisecond precision,
/// as GitLab renders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Clock {
    #[default]
    Real,
    /// Real time plus this many milliseconds (may be negative).
    Offset(i64),
    /// Always this instant (until moved with `advance`).
    Fixed(DateTime<Utc>),
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        let t = match *self {
            Clock::Real => Utc::now(),
            Clock::Offset(ms) => Utc::now() + Duration::milliseconds(ms),
            Clock::Fixed(t) => t,
        };
        truncate_ms(t)
    }

    /// Moves the clock forward (or back, for a negative duration).
    pub fn advance(&mut self, by: Duration) {
        *self = match *self {
            Clock::Real => Clock::Offset(by.num_milliseconds()),
            Clock::Offset(ms) => Clock::Offset(ms + by.num_milliseconds()),
            Clock::Fixed(t) => Clock::Fixed(t + by),
        };
    }
}

/// Drops sub-millisecond precision so stored and rendered times compare equal.
pub fn truncate_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(t)
}

/// GitLab's JSON timestamp format: `2016-08-11T11:32:35.444Z`.
pub fn render(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// `render` in an instance time zone given as a UTC offset in seconds (Rails renders
/// `iso8601(3)` in `config.time_zone`): `Z` for 0, otherwise `+02:00` style.
pub fn render_in(t: &DateTime<Utc>, offset_secs: i32) -> String {
    match chrono::FixedOffset::east_opt(offset_secs) {
        Some(tz) if offset_secs != 0 => t
            .with_timezone(&tz)
            .format("%Y-%m-%dT%H:%M:%S%.3f%:z")
            .to_string(),
        _ => render(t),
    }
}
