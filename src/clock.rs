//! The one clock of a command: the wall clock, `--now T` held at T, or `run --now T`
//! running forward from T.
//!
//! This is the only place that reads the wall clock, so every stamp a command writes
//! and every "now" a rule sees can be chosen (tests, simulation, replaying a day). The
//! documented exceptions are the leases (`store::lease`, `delivery::lease`): a lease
//! must expire in real time whatever `--now` says, or a daemon started in the past
//! would hold it for ever.

use chrono::{DateTime, TimeDelta, Utc};

/// A clock that may be shifted or held.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// The wall clock plus an offset (zero for the system clock): `run --now T` starts
    /// at T and advances in real time.
    Running { offset: TimeDelta },
    /// Always the same instant: a one-shot command's `--now T` (a `tick` at T stamps
    /// every row with T exactly).
    Held(DateTime<Utc>),
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::system()
    }
}

impl Clock {
    pub fn system() -> Clock {
        Clock::Running {
            offset: TimeDelta::zero(),
        }
    }

    /// A clock that reads `start` now and runs forward from it.
    pub fn starting_at(start: DateTime<Utc>) -> Clock {
        Clock::Running {
            offset: start - Utc::now(),
        }
    }

    /// The daemon's clock: `--now T` runs forward from T; none is the wall clock.
    pub fn from_option(start: Option<DateTime<Utc>>) -> Clock {
        start.map(Clock::starting_at).unwrap_or_default()
    }

    /// A one-shot command's clock: `--now T` is held at T; none is the wall clock.
    pub fn held_or_system(at: Option<DateTime<Utc>>) -> Clock {
        at.map(Clock::Held).unwrap_or_default()
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::Running { offset } => Utc::now() + *offset,
            Clock::Held(at) => *at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_clock_does_not_move_and_a_started_one_does() {
        let t = DateTime::parse_from_rfc3339("2026-03-02T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(Clock::held_or_system(Some(t)).now(), t);
        let running = Clock::starting_at(t).now();
        assert!(running >= t && running - t < TimeDelta::seconds(5));
        let wall = Clock::held_or_system(None).now();
        assert!((wall - Utc::now()).abs() < TimeDelta::seconds(5));
    }
}
