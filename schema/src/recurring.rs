//! A background task's failure that repeats every round (the database down, a full disk): said
//! when it starts, then at most once a [`QUIET_FOR`] with how many rounds failed meanwhile, and
//! once more when a round works again. A task on a 250 ms tick would otherwise write four
//! warnings a second for as long as the failure lasts, and a stored warning is one more write to
//! the database that is failing.

use std::time::{Duration, Instant};

/// The least time between two warnings of one task.
pub const QUIET_FOR: Duration = Duration::from_secs(60);

/// One task's recurring failure.
#[derive(Debug, Default)]
pub struct Recurring {
    /// When the last warning was written, while failing.
    warned_at: Option<Instant>,
    /// Rounds that failed since then without a warning.
    unsaid: u64,
}

impl Recurring {
    /// A round failed: `warn` runs (with how many failures went unsaid before this one) when the
    /// failure is new or [`QUIET_FOR`] has passed since the last warning.
    pub fn failed(&mut self, warn: impl FnOnce(u64)) {
        if self.warned_at.is_none_or(|at| at.elapsed() >= QUIET_FOR) {
            warn(self.unsaid);
            self.warned_at = Some(Instant::now());
            self.unsaid = 0;
        } else {
            self.unsaid += 1;
        }
    }

    /// A round worked: `said` runs once if it was failing.
    pub fn worked(&mut self, said: impl FnOnce()) {
        if self.warned_at.take().is_some() {
            self.unsaid = 0;
            said();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lasting_failure_is_said_once_then_its_end() {
        let mut r = Recurring::default();
        let mut said = Vec::new();
        for _ in 0..5 {
            r.failed(|unsaid| said.push(format!("failed ({unsaid} unsaid)")));
        }
        r.worked(|| said.push("works".into()));
        r.worked(|| said.push("works again".into()));
        r.failed(|unsaid| said.push(format!("failed ({unsaid} unsaid)")));
        assert_eq!(said, ["failed (0 unsaid)", "works", "failed (0 unsaid)"]);
    }

    #[test]
    fn after_the_quiet_time_it_is_said_again_with_the_rounds_between() {
        let mut r = Recurring::default();
        let mut said = Vec::new();
        r.failed(|n| said.push(n));
        r.failed(|n| said.push(n));
        r.failed(|n| said.push(n));
        // As if the first warning were older than the quiet time.
        r.warned_at = Instant::now().checked_sub(QUIET_FOR);
        r.failed(|n| said.push(n));
        assert_eq!(said, [0, 2]);
    }
}
