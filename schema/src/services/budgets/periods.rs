//! Budget periods: when a day, week or month starts over in the configured time zone, and the
//! day a call counts towards in reports.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::BudgetSettings;

/// A budget period.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "BudgetPeriod")]
pub enum Period {
    /// From local midnight to the next.
    Day,
    /// From Monday 00:00 local to the next.
    Week,
    /// From the 1st 00:00 local to the next.
    Month,
    /// Never starts over.
    Total,
}

impl Period {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "DAY",
            Period::Week => "WEEK",
            Period::Month => "MONTH",
            Period::Total => "TOTAL",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "DAY" => Some(Period::Day),
            "WEEK" => Some(Period::Week),
            "MONTH" => Some(Period::Month),
            "TOTAL" => Some(Period::Total),
            _ => None,
        }
    }
}

fn local_midnight(tz: Tz, day: NaiveDate) -> NaiveDateTime {
    let naive = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    tz.from_local_datetime(&naive)
        .earliest()
        .map_or(naive, |t| t.with_timezone(&Utc).naive_utc())
}

/// The period containing `now`: `(start, end)` in UTC; `end` is `None` for `TOTAL`.
pub fn window(
    period: Period,
    tz: Tz,
    now: DateTime<Utc>,
    created: NaiveDateTime,
) -> (NaiveDateTime, Option<NaiveDateTime>) {
    let today = now.with_timezone(&tz).date_naive();
    let (first, next) = match period {
        Period::Total => return (created, None),
        Period::Day => (today, today + Duration::days(1)),
        Period::Week => {
            let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
            (monday, monday + Duration::days(7))
        }
        Period::Month => {
            let first = today.with_day(1).unwrap_or(today);
            let next = if first.month() == 12 {
                NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
            } else {
                NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
            };
            (first, next.unwrap_or(first + Duration::days(31)))
        }
    };
    (local_midnight(tz, first), Some(local_midnight(tz, next)))
}

/// The day a call counts towards in reports: `YYYY-MM-DD` in the configured zone.
pub fn report_day(settings: &BudgetSettings, at: NaiveDateTime) -> String {
    at.and_utc()
        .with_timezone(&settings.timezone)
        .format("%Y-%m-%d")
        .to_string()
}
