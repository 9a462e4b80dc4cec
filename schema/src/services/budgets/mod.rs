//! Budgets that cannot be overspent, even under concurrency or across instances.
//!
//! At admission a call reserves its worst-case cost in every budget that applies (the user's and
//! the global ones) with one conditional UPDATE each (`spent + reserved + cost <= limit`), in the
//! transaction that inserts its `PENDING` record: all or nothing. When the call ends, its
//! reservations are released and the actual cost added, in the transaction that finishes the
//! record and updates the daily rollup. Reservations expire, and the sweeper releases those a
//! crash left behind. Periods (day, week, month) start over in the configured time zone.
//!
//! - [`periods`]: day, week, month and total periods in the configured zone, and report days.
//! - [`reserve`]: admission, which reserves a call's worst case in every budget that applies.
//! - [`settlement`]: settling a finished call, threshold events, the sweeper of stale reservations.
//! - [`manage`]: creating, changing, removing and listing budgets, and a new user's budget.

pub mod manage;
pub mod periods;
pub mod reserve;
pub mod settlement;

use chrono::Duration;
use chrono_tz::Tz;

pub use manage::{
    BudgetInput, create, delete, key_budget, list, new_user_budget, thresholds, update,
};
pub use periods::{Period, report_day, window};
pub use reserve::{Planned, Worst, admit, applicable, plan, refused};
pub use settlement::{raise_thresholds, settle, sweep};

/// Budget settings, from config.
#[derive(Debug, Clone)]
pub struct BudgetSettings {
    /// Periods start over at local midnight (and Monday, and the 1st) in this zone.
    pub timezone: Tz,
    /// How long a reservation holds before the sweeper releases it.
    pub reservation_ttl: Duration,
}
