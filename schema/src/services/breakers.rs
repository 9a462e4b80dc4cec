//! Circuit breakers, one per provider instance, on this server instance.
//!
//! A provider that is down would otherwise get every call, and each call would wait for its own
//! timeouts and retries before falling back. The breaker watches the outcome of each attempt on
//! a provider over a sliding window:
//!
//! - **closed**: calls go through. When at least `min_failures` attempts failed in the window and
//!   they are at least `failure_rate_percent` of its attempts, it opens.
//! - **open**: for `open_for`, no call is sent: the attempt fails at once (`CIRCUIT_OPEN` in the
//!   call's attempt chain) and the next fallback is tried without waiting.
//! - **half-open**: after `open_for`, up to `half_open_probes` calls go through as probes. When
//!   that many succeed it closes; one failed probe opens it again.
//!
//! Only the provider's own failures count (an upstream error, a timeout, a plugin fault), never a
//! caller's bad input. A call dropped before its outcome (its client went away) counts as
//! neither, and gives its probe slot back.
//!
//! The state lives in this process. Every server instance learns for itself that a provider is
//! down, within `min_failures` calls; sharing the state through the database would put a write
//! on every call's path to save a handful of failed calls per instance. Each change is
//! published as a `pluginStatusChanged` event carrying the node, counted in `/metrics`, and seen
//! by `PROVIDER_FAILING` alert rules.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::App;
use crate::Error;
use crate::domain::BreakerState;
use crate::events::Event;

/// Buckets of the sliding window.
const BUCKETS: usize = 10;

/// How long a caller is told to wait while every probe slot of a half-open breaker is taken.
const PROBE_WAIT: Duration = Duration::from_secs(1);

/// The breaker thresholds (`[chat.breaker]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Off: every call goes through, whatever the provider does.
    pub enabled: bool,
    /// Failed attempts in the window before the breaker may open.
    pub min_failures: u32,
    /// The share of failed attempts in the window, in percent, at which it opens.
    pub failure_rate_percent: u32,
    /// The sliding window the attempts are counted over.
    pub window: Duration,
    /// How long it stays open before letting probes through.
    pub open_for: Duration,
    /// Probe calls let through at once when half-open; that many successes close it.
    pub half_open_probes: u32,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            min_failures: 5,
            failure_rate_percent: 50,
            window: Duration::from_secs(60),
            open_for: Duration::from_secs(30),
            half_open_probes: 2,
        }
    }
}

/// What one provider's breaker looks like now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerView {
    /// The provider instance.
    pub provider: String,
    /// Closed, open or half-open.
    pub state: BreakerState,
    /// Attempts that failed in the window.
    pub failures: u32,
    /// Attempts in the window.
    pub attempts: u32,
    /// When it last opened, if it is not closed.
    pub opened_at: Option<chrono::DateTime<chrono::Utc>>,
    /// While open, when probes will be let through.
    pub retry_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The failure that opened it.
    pub last_error: Option<String>,
}

/// Counts of one slice of the window.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Which slice since the window's epoch this bucket holds.
    slice: u64,
    ok: u32,
    failed: u32,
}

/// Attempts over the last `window`, in [`BUCKETS`] slices.
#[derive(Debug)]
struct Window {
    epoch: Instant,
    slice: Duration,
    buckets: [Bucket; BUCKETS],
}

impl Window {
    fn new(window: Duration, now: Instant) -> Self {
        let slots = u32::try_from(BUCKETS).unwrap_or(10);
        Self {
            epoch: now,
            slice: (window / slots).max(Duration::from_millis(1)),
            buckets: [Bucket::default(); BUCKETS],
        }
    }

    fn slice_at(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(elapsed / self.slice.as_nanos().max(1)).unwrap_or(u64::MAX)
    }

    fn add(&mut self, now: Instant, ok: bool) {
        let slice = self.slice_at(now);
        let index = usize::try_from(slice % BUCKETS as u64).unwrap_or(0);
        let bucket = &mut self.buckets[index];
        if bucket.slice != slice {
            *bucket = Bucket {
                slice,
                ..Bucket::default()
            };
        }
        if ok {
            bucket.ok = bucket.ok.saturating_add(1);
        } else {
            bucket.failed = bucket.failed.saturating_add(1);
        }
    }

    /// Failed attempts and all attempts in the window.
    fn counts(&self, now: Instant) -> (u32, u32) {
        let current = self.slice_at(now);
        let oldest = current.saturating_sub(BUCKETS as u64 - 1);
        self.buckets
            .iter()
            .filter(|b| b.slice >= oldest && b.slice <= current)
            .fold((0u32, 0u32), |(failed, all), b| {
                (
                    failed.saturating_add(b.failed),
                    all.saturating_add(b.failed).saturating_add(b.ok),
                )
            })
    }

    fn clear(&mut self) {
        self.buckets = [Bucket::default(); BUCKETS];
    }
}

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32, succeeded: u32 },
}

impl Phase {
    fn state(self) -> BreakerState {
        match self {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

#[derive(Debug)]
struct State {
    phase: Phase,
    window: Window,
    opened_at: Option<chrono::DateTime<chrono::Utc>>,
    last_error: Option<String>,
}

/// One provider's breaker.
#[derive(Debug)]
struct Breaker {
    provider: String,
    settings: BreakerSettings,
    state: Mutex<State>,
}

/// What a breaker said to a call.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Go; `probe` when the call is one of the half-open probes.
    Go { probe: bool },
    /// Do not call; try again in this long.
    Refuse(Duration),
}

impl Breaker {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves counts only; they are still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Lets a call through or not, moving open to half-open when its time is up. Returns the new
    /// state when it changed.
    fn admit(&self, now: Instant) -> (Verdict, Option<BreakerState>) {
        let s = &self.settings;
        let mut st = self.lock();
        let mut changed = None;
        if let Phase::Open { until } = st.phase {
            if now < until {
                return (Verdict::Refuse(until - now), None);
            }
            st.phase = Phase::HalfOpen {
                in_flight: 0,
                succeeded: 0,
            };
            changed = Some(BreakerState::HalfOpen);
        }
        let verdict = match &mut st.phase {
            Phase::Closed => Verdict::Go { probe: false },
            Phase::HalfOpen {
                in_flight,
                succeeded,
            } => {
                if in_flight.saturating_add(*succeeded) < s.half_open_probes {
                    *in_flight += 1;
                    Verdict::Go { probe: true }
                } else {
                    Verdict::Refuse(PROBE_WAIT)
                }
            }
            Phase::Open { .. } => Verdict::Refuse(s.open_for),
        };
        (verdict, changed)
    }

    /// Records an attempt's outcome (`None`: it ended without one). Returns the new state when
    /// it changed.
    fn report(
        &self,
        now: Instant,
        wall: chrono::DateTime<chrono::Utc>,
        probe: bool,
        outcome: Option<Result<(), &str>>,
    ) -> Option<BreakerState> {
        let s = &self.settings;
        let mut st = self.lock();
        let open = |st: &mut State, error: &str| {
            st.phase = Phase::Open {
                until: now + s.open_for,
            };
            st.opened_at = Some(wall);
            st.last_error = Some(error.chars().take(300).collect());
            st.window.clear();
            Some(BreakerState::Open)
        };
        match (st.phase, probe) {
            (
                Phase::HalfOpen {
                    in_flight,
                    succeeded,
                },
                true,
            ) => match outcome {
                None => {
                    st.phase = Phase::HalfOpen {
                        in_flight: in_flight.saturating_sub(1),
                        succeeded,
                    };
                    None
                }
                Some(Ok(())) if succeeded + 1 >= s.half_open_probes => {
                    st.phase = Phase::Closed;
                    st.opened_at = None;
                    st.last_error = None;
                    st.window.clear();
                    Some(BreakerState::Closed)
                }
                Some(Ok(())) => {
                    st.phase = Phase::HalfOpen {
                        in_flight: in_flight.saturating_sub(1),
                        succeeded: succeeded + 1,
                    };
                    None
                }
                Some(Err(error)) => open(&mut st, error),
            },
            (Phase::Closed, _) => {
                let outcome = outcome?;
                st.window.add(now, outcome.is_ok());
                let error = outcome.err()?;
                let (failed, all) = st.window.counts(now);
                let rate_reached = u64::from(failed) * 100
                    >= u64::from(s.failure_rate_percent) * u64::from(all.max(1));
                if failed >= s.min_failures && rate_reached {
                    open(&mut st, error)
                } else {
                    None
                }
            }
            // A call let through before the breaker opened, or a probe of an earlier half-open
            // round, finishing now: the current round decides, not it.
            _ => None,
        }
    }

    fn view(&self, now: Instant, wall: chrono::DateTime<chrono::Utc>) -> BreakerView {
        let st = self.lock();
        let (failures, attempts) = st.window.counts(now);
        let retry_at = match st.phase {
            Phase::Open { until } => {
                chrono::Duration::from_std(until.saturating_duration_since(now))
                    .ok()
                    .map(|left| wall + left)
            }
            _ => None,
        };
        BreakerView {
            provider: self.provider.clone(),
            state: st.phase.state(),
            failures,
            attempts,
            opened_at: st.opened_at,
            retry_at,
            last_error: st.last_error.clone(),
        }
    }
}

/// Every provider's breaker on this instance, created on a provider's first call.
#[derive(Debug, Default)]
pub struct Breakers {
    settings: BreakerSettings,
    by_provider: RwLock<HashMap<String, Arc<Breaker>>>,
}

/// A call's leave to try a provider. Report how the attempt went with [`Pass::succeeded`] or
/// [`Pass::failed`]; dropping it unreported counts as neither (and frees a probe slot).
#[derive(Debug)]
#[must_use = "report the attempt's outcome, or drop the pass when it had none"]
pub struct Pass {
    breaker: Option<Arc<Breaker>>,
    probe: bool,
}

impl Breakers {
    /// Breakers with these thresholds.
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            by_provider: RwLock::default(),
        }
    }

    fn breaker(&self, provider: &str) -> Arc<Breaker> {
        if let Some(b) = self
            .by_provider
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(provider)
        {
            return Arc::clone(b);
        }
        let mut all = self
            .by_provider
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fresh = || {
            Arc::new(Breaker {
                provider: provider.to_owned(),
                settings: self.settings.clone(),
                state: Mutex::new(State {
                    phase: Phase::Closed,
                    window: Window::new(self.settings.window, Instant::now()),
                    opened_at: None,
                    last_error: None,
                }),
            })
        };
        Arc::clone(all.entry(provider.to_owned()).or_insert_with(fresh))
    }

    /// Every provider's breaker that has seen a call, by provider name.
    pub fn views(&self, wall: chrono::DateTime<chrono::Utc>) -> Vec<BreakerView> {
        let now = Instant::now();
        let all = self
            .by_provider
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut views: Vec<BreakerView> = all.values().map(|b| b.view(now, wall)).collect();
        views.sort_by(|a, b| a.provider.cmp(&b.provider));
        views
    }

    /// One provider's breaker (closed, with nothing counted, before its first call).
    pub fn view(&self, provider: &str, wall: chrono::DateTime<chrono::Utc>) -> BreakerView {
        let found = self
            .by_provider
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(provider)
            .cloned();
        match found {
            Some(b) => b.view(Instant::now(), wall),
            None => BreakerView {
                provider: provider.to_owned(),
                state: BreakerState::Closed,
                failures: 0,
                attempts: 0,
                opened_at: None,
                retry_at: None,
                last_error: None,
            },
        }
    }
}

/// Asks `provider`'s breaker for leave to call it. Refused while it is open (or every probe slot
/// is taken), with an `UNAVAILABLE` error that says when to try again.
pub fn admit(app: &App, provider: &str) -> Result<Pass, Error> {
    let settings = &app.breakers.settings;
    if !settings.enabled {
        return Ok(Pass {
            breaker: None,
            probe: false,
        });
    }
    let breaker = app.breakers.breaker(provider);
    let (verdict, changed) = breaker.admit(Instant::now());
    if let Some(state) = changed {
        announce(app, provider, state, None);
    }
    match verdict {
        Verdict::Go { probe } => Ok(Pass {
            breaker: Some(breaker),
            probe,
        }),
        Verdict::Refuse(wait) => {
            let labels = [("instance", provider.to_owned())];
            app.metrics.record(|| {
                metrics::counter!("cloudbase_provider_breaker_rejected_total", &labels).increment(1)
            });
            let secs = wait.as_secs_f64().ceil().max(1.0);
            Err(Error::Overloaded {
                message: format!(
                    "provider `{provider}` is failing and its circuit breaker is open; nothing was sent, try again in {secs} s"
                ),
                retry_after_ms: i64::try_from(wait.as_millis()).unwrap_or(i64::MAX).max(1),
            })
        }
    }
}

impl Pass {
    /// The provider answered.
    pub fn succeeded(mut self, app: &App) {
        self.finish(app, Some(Ok(())));
    }

    /// The attempt failed with `error`; it counts against the provider only when the fault is
    /// the provider's.
    pub fn failed(mut self, app: &App, error: &Error) {
        if error.is_provider_fault() {
            let text = error.to_string();
            self.finish(app, Some(Err(&text)));
        } else {
            self.finish(app, None);
        }
    }

    fn finish(&mut self, app: &App, outcome: Option<Result<(), &str>>) {
        let Some(breaker) = self.breaker.take() else {
            return;
        };
        let changed = breaker.report(Instant::now(), app.clock.now(), self.probe, outcome);
        if let Some(state) = changed {
            let reason = outcome.and_then(Result::err);
            announce(app, &breaker.provider, state, reason);
        }
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        if let Some(breaker) = self.breaker.take()
            && self.probe
        {
            // Ended without an outcome: the probe slot is free again. No state change follows
            // from that, so nothing needs announcing.
            breaker.report(Instant::now(), chrono::Utc::now(), true, None);
        }
    }
}

/// Logs, counts and publishes a breaker's change of state.
fn announce(app: &App, provider: &str, state: BreakerState, reason: Option<&str>) {
    match state {
        BreakerState::Open => {
            tracing::warn!(%provider, reason = reason.unwrap_or(""), open_for_secs = app.breakers.settings.open_for.as_secs(), "circuit breaker opened: calls to this provider fail over at once");
        }
        BreakerState::HalfOpen => {
            tracing::info!(%provider, "circuit breaker half-open: letting probe calls through");
        }
        BreakerState::Closed => {
            tracing::info!(%provider, "circuit breaker closed: the provider answers again");
        }
    }
    let labels = [("instance", provider.to_owned())];
    let to = [
        ("instance", provider.to_owned()),
        ("state", state.as_str().to_owned()),
    ];
    let level = match state {
        BreakerState::Closed => 0.0,
        BreakerState::HalfOpen => 1.0,
        BreakerState::Open => 2.0,
    };
    app.metrics.record(|| {
        metrics::gauge!("cloudbase_provider_breaker_state", &labels).set(level);
        metrics::counter!("cloudbase_provider_breaker_transitions_total", &to).increment(1);
    });
    let row = app
        .plugins
        .plugins()
        .into_iter()
        .find(|r| r.instance.as_deref() == Some(provider));
    app.events.publish(Event::PluginStatusChanged {
        name: row
            .as_ref()
            .map_or_else(|| provider.to_owned(), |r| r.name.clone()),
        instance: Some(provider.to_owned()),
        status: row
            .as_ref()
            .map_or(crate::domain::PluginStatus::Loaded, |r| r.status),
        version: row.and_then(|r| r.version),
        breaker: Some(state),
        node: Some(app.node.clone()),
        reason: reason.map(str::to_owned),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            enabled: true,
            min_failures: 3,
            failure_rate_percent: 50,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(5),
            half_open_probes: 2,
        }
    }

    fn breaker(now: Instant) -> Breaker {
        Breaker {
            provider: "p".into(),
            settings: settings(),
            state: Mutex::new(State {
                phase: Phase::Closed,
                window: Window::new(Duration::from_secs(10), now),
                opened_at: None,
                last_error: None,
            }),
        }
    }

    fn report(b: &Breaker, now: Instant, probe: bool, ok: bool) -> Option<BreakerState> {
        let outcome = if ok { Ok(()) } else { Err("boom") };
        b.report(now, chrono::Utc::now(), probe, Some(outcome))
    }

    #[test]
    fn opens_on_enough_failures_at_the_rate_and_not_before() {
        let t0 = Instant::now();
        let b = breaker(t0);
        for _ in 0..3 {
            assert_eq!(report(&b, t0, false, true), None);
        }
        assert_eq!(report(&b, t0, false, false), None);
        assert_eq!(report(&b, t0, false, false), None);
        // 3 of 6 failed: the minimum and 50%.
        assert_eq!(report(&b, t0, false, false), Some(BreakerState::Open));
        assert!(matches!(b.admit(t0).0, Verdict::Refuse(_)));
    }

    #[test]
    fn a_low_failure_rate_keeps_it_closed() {
        let t0 = Instant::now();
        let b = breaker(t0);
        for _ in 0..10 {
            report(&b, t0, false, true);
        }
        for _ in 0..4 {
            assert_eq!(report(&b, t0, false, false), None, "4 of 14 is under 50%");
        }
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let t0 = Instant::now();
        let b = breaker(t0);
        report(&b, t0, false, false);
        report(&b, t0, false, false);
        let later = t0 + Duration::from_secs(11);
        assert_eq!(
            report(&b, later, false, false),
            None,
            "only one failure is recent"
        );
        assert_eq!(b.view(later, chrono::Utc::now()).failures, 1);
    }

    #[test]
    fn half_open_lets_a_bounded_number_of_probes_through_and_closes_on_their_success() {
        let t0 = Instant::now();
        let b = breaker(t0);
        for _ in 0..3 {
            report(&b, t0, false, false);
        }
        let t1 = t0 + Duration::from_secs(6);
        assert_eq!(
            b.admit(t1),
            (Verdict::Go { probe: true }, Some(BreakerState::HalfOpen))
        );
        assert_eq!(b.admit(t1), (Verdict::Go { probe: true }, None));
        assert!(
            matches!(b.admit(t1).0, Verdict::Refuse(_)),
            "two probes at most"
        );
        // A call let through while closed, ending now, does not decide anything.
        assert_eq!(report(&b, t1, false, true), None);
        assert_eq!(report(&b, t1, true, true), None);
        assert!(
            matches!(b.admit(t1).0, Verdict::Refuse(_)),
            "one probe still out"
        );
        assert_eq!(report(&b, t1, true, true), Some(BreakerState::Closed));
        assert_eq!(b.admit(t1), (Verdict::Go { probe: false }, None));
    }

    #[test]
    fn a_failed_probe_opens_it_again_and_a_dropped_one_frees_its_slot() {
        let t0 = Instant::now();
        let b = breaker(t0);
        for _ in 0..3 {
            report(&b, t0, false, false);
        }
        let t1 = t0 + Duration::from_secs(6);
        assert!(matches!(b.admit(t1).0, Verdict::Go { probe: true }));
        assert!(matches!(b.admit(t1).0, Verdict::Go { probe: true }));
        assert_eq!(b.report(t1, chrono::Utc::now(), true, None), None);
        assert!(
            matches!(b.admit(t1).0, Verdict::Go { probe: true }),
            "the dropped probe's slot is free"
        );
        assert_eq!(report(&b, t1, true, false), Some(BreakerState::Open));
        let (verdict, _) = b.admit(t1 + Duration::from_secs(1));
        assert_eq!(verdict, Verdict::Refuse(Duration::from_secs(4)));
    }
}
