//! The one clock of a command: the wall clock, or `--now T` running forward from T.

use chrono::{DateTime, TimeDelta, Utc};

/// A clock that may be shifted: `run --now T` starts at T and advances in real time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    offset: TimeDelta,
}

impl Clock {
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that reads `start` now and runs forward from it.
    pub fn starting_at(start: DateTime<Utc>) -> Clock {
        Clock {
            offset: start - Utc::now(),
        }
    }

    pub fn from_option(start: Option<DateTime<Utc>>) -> Clock {
        start.map(Clock::starting_at).unwrap_or_default()
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}
