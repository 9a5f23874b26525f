//! The rule API: the values and functions a Rhai rule sees.
//!
//! A rule runs for one lead on one thread; the lead, its history and the actions asked
//! so far live in a thread-local [`Ctx`] for that run only. Every function that reads or
//! writes it is registered *volatile*, so no optimiser folds a call at compile time.

use super::horizon::{self, Field};
use crate::domain::{Event, Lead, NewSend, SendRecord, StageId, TemplateName, Value};
use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;
use rhai::{Array, Dynamic, Engine, EvalAltResult, FuncRegistration, ImmutableString, Map};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::Arc;

type RResult<T> = Result<T, Box<EvalAltResult>>;

/// An instant, as rules see `now`, `lead.created_at`, `last_event(...)`, with its
/// drift: how many nanoseconds it moves per nanosecond of the clock (`now` 1, a stored
/// instant 0; see [`horizon`]). Values compare by the instant alone.
#[derive(Debug, Clone, Copy)]
pub struct Timestamp(pub DateTime<Utc>, pub i64);

impl Timestamp {
    /// An instant that does not move with the clock (stored, or read from history).
    pub fn fixed(t: DateTime<Utc>) -> Timestamp {
        Timestamp(t, 0)
    }
}

/// A span of time: `days(3)`, `now - lead.created_at`, with its drift as for
/// [`Timestamp`] (`now - lead.created_at` 1, `days(3)` 0).
#[derive(Debug, Clone, Copy)]
pub struct Duration(pub TimeDelta, pub i64);

/// `local(ts)`: the calendar fields of an instant in the lead's time zone.
#[derive(Debug, Clone, Copy)]
pub struct LocalTime {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    /// ISO: Monday = 1 … Sunday = 7.
    pub weekday: i64,
    pub hour: i64,
    pub minute: i64,
    /// The instant, its zone and its drift: a field read of a moving one notes when
    /// that field next changes.
    at: DateTime<Utc>,
    tz: Tz,
    drift: i64,
}

/// The `lead` variable: a handle whose getters read the current state, so a rule sees
/// its own and earlier rules' actions.
#[derive(Debug, Clone, Copy)]
pub struct LeadHandle;

/// What rules may name: the funnel's stages and the templates on disk.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub stages: Vec<StageId>,
    pub templates: BTreeSet<String>,
}

/// An action a rule asked for that changed something.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Send {
        template: String,
        key: Option<String>,
    },
    MoveTo(String),
    Tag(String),
    Untag(String),
    /// `None` removes the attribute (`set("x", ())`).
    Set(String, Option<Value>),
}

/// The state of one lead's evaluation.
pub(crate) struct Ctx {
    pub lead: Lead,
    pub events: Arc<Vec<Event>>,
    /// Per kind, the events older than those loaded (counted, not read).
    pub older: Arc<std::collections::HashMap<String, crate::domain::OlderEvents>>,
    pub sends: Vec<SendRecord>,
    pub now: DateTime<Utc>,
    pub default_tz: Tz,
    pub catalog: Arc<Catalog>,
    /// The running rule's name, for stage-history causes and outbox rows.
    pub rule: String,
    pub moved_in_rule: bool,
    /// Audiences read but never act.
    pub read_only: bool,
    pub actions: Vec<(String, Action)>,
    pub new_sends: Vec<NewSend>,
    pub moves: Vec<(StageId, StageId, String)>,
    /// The earliest instant after `now` at which something read from the clock may
    /// read differently (see [`horizon`]); `None`: nothing read can change. Kept only
    /// when `track` (a simulation asks; the daemon does not pay for it).
    pub horizon: Option<DateTime<Utc>>,
    pub track: bool,
}

impl Ctx {
    /// A fresh evaluation of one lead: rules (`read_only` false) or an audience (true).
    pub fn new(
        loaded: crate::domain::LoadedLead,
        now: DateTime<Utc>,
        default_tz: Tz,
        catalog: Arc<Catalog>,
        rule: String,
        read_only: bool,
    ) -> Ctx {
        Ctx {
            lead: loaded.lead,
            events: Arc::new(loaded.events),
            older: Arc::new(loaded.older),
            sends: loaded.sends,
            now,
            default_tz,
            catalog,
            rule,
            moved_in_rule: false,
            read_only,
            actions: Vec::new(),
            new_sends: Vec::new(),
            moves: Vec::new(),
            horizon: None,
            track: false,
        }
    }

    /// Notes that what was just read may change at the instant `when` gives.
    fn note(&mut self, when: impl FnOnce(&Ctx) -> Option<DateTime<Utc>>) {
        if !self.track {
            return;
        }
        if let Some(at) = when(self) {
            self.horizon = Some(self.horizon.map_or(at, |h| h.min(at)));
        }
    }
}

/// Notes, for the evaluation running on this thread, the instant `when(now)` gives;
/// nothing outside an evaluation (a constant folded while compiling).
fn note(when: impl FnOnce(DateTime<Utc>) -> Option<DateTime<Utc>>) {
    CTX.with(|c| {
        if let Some(ctx) = c.borrow_mut().as_mut() {
            ctx.note(|c| when(c.now));
        }
    });
}

/// Notes that a moving value was read in a way we do not follow: at once.
fn note_soon(drift: i64) {
    if drift != 0 {
        note(|now| Some(horizon::soon(now)));
    }
}

/// `when(slope)`, or at once for a slope too steep to compute.
fn steep_or(
    now: DateTime<Utc>,
    slope: Option<i64>,
    when: impl FnOnce(i64) -> Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    match slope {
        Some(s) => when(s),
        None => Some(horizon::soon(now)),
    }
}

/// A comparison of two values `diff` apart, moving apart by `slope`.
fn note_compare(diff: i128, slope: i64) {
    if slope != 0 {
        note(|now| horizon::sign_change(now, diff, slope));
    }
}

fn cmp_ts(a: &Timestamp, b: &Timestamp) -> std::cmp::Ordering {
    note_compare(horizon::nanos_between(a.0, b.0), drift_sum(a.1, b.1, true));
    a.0.cmp(&b.0)
}

fn cmp_dur(a: &Duration, b: &Duration) -> std::cmp::Ordering {
    note_compare(nanos(a.0) - nanos(b.0), drift_sum(a.1, b.1, true));
    a.0.cmp(&b.0)
}

/// The drift of `a + b` (or `a - b`); a sum too steep to follow is noted at once.
fn drift_sum(a: i64, b: i64, minus: bool) -> i64 {
    let d = if minus {
        a.checked_sub(b)
    } else {
        a.checked_add(b)
    };
    d.unwrap_or_else(|| {
        note_soon(1);
        0
    })
}

thread_local! {
    static CTX: RefCell<Option<Ctx>> = const { RefCell::new(None) };
}

/// Installs `ctx` for the rules run on this thread until [`take_ctx`].
pub(crate) fn install_ctx(ctx: Ctx) {
    CTX.with(|c| *c.borrow_mut() = Some(ctx));
}

pub(crate) fn take_ctx() -> Option<Ctx> {
    CTX.with(|c| c.borrow_mut().take())
}

pub(crate) fn with_ctx<R>(f: impl FnOnce(&mut Ctx) -> RResult<R>) -> RResult<R> {
    CTX.with(|c| match c.borrow_mut().as_mut() {
        Some(ctx) => f(ctx),
        None => Err("rule helpers are only available while a rule runs for a lead".into()),
    })
}

fn err<T>(msg: impl Into<String>) -> RResult<T> {
    Err(msg.into().into())
}

impl Ctx {
    fn zone(&self) -> Tz {
        self.lead.timezone.unwrap_or(self.default_tz)
    }

    fn acting(&self, what: &str) -> RResult<()> {
        if self.read_only {
            return err(format!("`{what}` is an action; an audience may only read"));
        }
        Ok(())
    }

    /// Events of `kind` older than those loaded, after `since` when given: all of
    /// them when the window starts before the first, else none (exact unless a
    /// window's start falls among more than `EVENTS_PER_KIND` events of one kind).
    fn older_count(&self, kind: &str, since: Option<DateTime<Utc>>) -> i64 {
        match (self.older.get(kind), since) {
            (Some(o), None) => o.count as i64,
            (Some(o), Some(since)) if since < o.first_at => o.count as i64,
            _ => 0,
        }
    }

    fn events_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Event> + 'a {
        let now = self.now;
        self.events
            .iter()
            .filter(move |e| e.kind == kind && e.at <= now)
    }

    fn send(&mut self, template: &str, key: Option<String>) -> RResult<()> {
        self.acting("send")?;
        let name = TemplateName::parse(template).map_err(|e| -> Box<EvalAltResult> { e.into() })?;
        if !self.catalog.templates.contains(template) {
            return err(format!(
                "unknown template `{template}`; add templates/{template}.html or use one of: {}",
                self.catalog
                    .templates
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let k = key.clone().unwrap_or_default();
        if self.sends.iter().any(|s| s.template == name && s.key == k) {
            return Ok(());
        }
        self.sends.push(SendRecord {
            template: name.clone(),
            key: k.clone(),
            requested_at: self.now,
        });
        self.new_sends.push(NewSend {
            template: name,
            key: k,
            stage: self.lead.stage.clone(),
            rule: self.rule.clone(),
        });
        self.actions.push((
            self.rule.clone(),
            Action::Send {
                template: template.to_string(),
                key,
            },
        ));
        Ok(())
    }

    fn sent_with_key(&self, template: &str, key: &str) -> bool {
        self.sends
            .iter()
            .any(|s| s.template.as_str() == template && s.key == key && s.requested_at <= self.now)
    }

    fn move_to(&mut self, stage: &str) -> RResult<()> {
        self.acting("move_to")?;
        let Some(to) = self
            .catalog
            .stages
            .iter()
            .find(|s| s.as_str() == stage)
            .cloned()
        else {
            return err(format!(
                "unknown stage `{stage}`; the funnel's stages are: {}",
                self.catalog
                    .stages
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        if self.moved_in_rule {
            return err("a second move_to in one rule; a rule may move a lead once a run");
        }
        self.moved_in_rule = true;
        if to == self.lead.stage {
            return Ok(());
        }
        let from = std::mem::replace(&mut self.lead.stage, to.clone());
        self.lead.stage_entered_at = self.now;
        self.moves.push((from, to, format!("rule:{}", self.rule)));
        self.actions
            .push((self.rule.clone(), Action::MoveTo(stage.to_string())));
        Ok(())
    }

    fn tag(&mut self, name: &str, on: bool) -> RResult<()> {
        self.acting(if on { "tag" } else { "untag" })?;
        let name = name.trim();
        if name.is_empty() {
            return err("a tag name cannot be empty");
        }
        let changed = if on {
            self.lead.tags.insert(name.to_string())
        } else {
            self.lead.tags.remove(name)
        };
        if changed {
            let a = if on {
                Action::Tag(name.into())
            } else {
                Action::Untag(name.into())
            };
            self.actions.push((self.rule.clone(), a));
        }
        Ok(())
    }

    fn set(&mut self, key: &str, value: Dynamic) -> RResult<()> {
        self.acting("set")?;
        if key.trim().is_empty() {
            return err("an attribute name cannot be empty");
        }
        // A moving instant stored reads differently at the next evaluation.
        if let Some(t) = value.clone().try_cast::<Timestamp>()
            && t.1 != 0
        {
            self.note(|c| Some(horizon::soon(c.now)));
        }
        let v = from_dynamic(value)?;
        let changed = match &v {
            Some(v) => self.lead.attrs.insert(key.to_string(), v.clone()).as_ref() != Some(v),
            None => self.lead.attrs.remove(key).is_some(),
        };
        if changed {
            self.actions
                .push((self.rule.clone(), Action::Set(key.to_string(), v)));
        }
        Ok(())
    }
}

/// A rule's value as an attribute: `()` removes it.
fn from_dynamic(v: Dynamic) -> RResult<Option<Value>> {
    if v.is_unit() {
        return Ok(None);
    }
    if let Some(i) = v.clone().try_cast::<i64>() {
        return Ok(Some(Value::Int(i)));
    }
    if let Some(f) = v.clone().try_cast::<f64>() {
        return Ok(Some(Value::Float(f)));
    }
    if let Some(b) = v.clone().try_cast::<bool>() {
        return Ok(Some(Value::Bool(b)));
    }
    if let Some(t) = v.clone().try_cast::<Timestamp>() {
        return Ok(Some(Value::DateTime(t.0)));
    }
    if v.is_string() {
        return Ok(Some(Value::Str(v.into_string().unwrap_or_default())));
    }
    err(format!(
        "set: a value must be an integer, float, bool, string, timestamp or () (to remove), not {}",
        v.type_name().rsplit("::").next().unwrap_or("value")
    ))
}

/// A stored value as rules see it: dates and date-times are timestamps.
pub fn to_dynamic(v: &Value) -> Dynamic {
    match v {
        Value::Int(i) => Dynamic::from(*i),
        Value::Float(f) => Dynamic::from(*f),
        Value::Bool(b) => Dynamic::from(*b),
        Value::Str(s) => Dynamic::from(s.clone()),
        Value::Date(_) | Value::DateTime(_) => v
            .as_instant()
            .map(|t| Dynamic::from(Timestamp::fixed(t)))
            .unwrap_or(Dynamic::UNIT),
    }
}

pub fn map_to_rhai(m: &crate::domain::ValueMap) -> Map {
    m.iter()
        .map(|(k, v)| (k.as_str().into(), to_dynamic(v)))
        .collect()
}

/// The calendar fields of `t` in `tz`; `None` when its local time is beyond the
/// calendar's range (never for the timestamps rules can make).
fn local_of(t: DateTime<Utc>, tz: Tz) -> Option<LocalTime> {
    use chrono::{Offset, TimeZone};
    let offset = tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    let l = t.naive_utc().checked_add_offset(offset)?;
    Some(LocalTime {
        year: l.year() as i64,
        month: l.month() as i64,
        day: l.day() as i64,
        weekday: l.weekday().number_from_monday() as i64,
        hour: l.hour() as i64,
        minute: l.minute() as i64,
        at: t,
        tz,
        drift: 0,
    })
}

impl LocalTime {
    /// `field`, noting when it changes if this local time moves with the clock.
    fn read(&self, field: Field, value: i64) -> i64 {
        match self.drift {
            0 => {}
            1 => {
                let (at, tz) = (self.at, self.tz);
                note(|now| {
                    let change = horizon::local_change(at, tz, field);
                    Some(horizon::after(now, horizon::nanos_between(change, at)))
                });
            }
            d => note_soon(d),
        }
        value
    }
}

/// The longest duration a rule may make, either way: about 27,000 years.
pub const MAX_DURATION_DAYS: i64 = 10_000_000;
const NANOS_PER_SEC: i128 = 1_000_000_000;
const MAX_DURATION_NANOS: i128 = MAX_DURATION_DAYS as i128 * 86_400 * NANOS_PER_SEC;
/// Timestamps a rule may make: the years 0 to 9999.
const MIN_YEAR: i32 = 0;
const MAX_YEAR: i32 = 9999;

/// The error of an arithmetic overflow: `what` and the limits it broke.
fn overflow(what: impl std::fmt::Display) -> Box<EvalAltResult> {
    format!(
        "{what} overflows: durations are limited to ±{MAX_DURATION_DAYS} days and timestamps to the years {MIN_YEAR} to {MAX_YEAR}"
    )
    .into()
}

fn nanos(d: TimeDelta) -> i128 {
    d.num_seconds() as i128 * NANOS_PER_SEC + d.subsec_nanos() as i128
}

/// A span of `n` nanoseconds, if within the limits.
fn delta_of(n: i128) -> Option<TimeDelta> {
    if n.abs() > MAX_DURATION_NANOS {
        return None;
    }
    let secs = i64::try_from(n.div_euclid(NANOS_PER_SEC)).ok()?;
    let sub = u32::try_from(n.rem_euclid(NANOS_PER_SEC)).ok()?;
    TimeDelta::new(secs, sub)
}

/// A duration of `n` nanoseconds moving by `drift`, if within the limits; a moving
/// one notes when it would leave them (the same expression then fails).
fn from_nanos(n: i128, drift: i64) -> Option<Duration> {
    let d = Duration(delta_of(n)?, drift);
    if drift != 0 {
        note(|now| horizon::leaves_range(now, n, drift, -MAX_DURATION_NANOS, MAX_DURATION_NANOS));
    }
    Some(d)
}

fn dur_from_f64(name: &str, unit_secs: i64, n: f64) -> RResult<Duration> {
    let ns = n * unit_secs as f64 * NANOS_PER_SEC as f64;
    if !ns.is_finite() || ns.abs() > MAX_DURATION_NANOS as f64 {
        return Err(overflow(format!("{name}({n})")));
    }
    from_nanos(ns.round() as i128, 0).ok_or_else(|| overflow(format!("{name}({n})")))
}

fn dur_from_i64(name: &str, unit_secs: i64, n: i64) -> RResult<Duration> {
    from_nanos(n as i128 * unit_secs as i128 * NANOS_PER_SEC, 0)
        .ok_or_else(|| overflow(format!("{name}({n})")))
}

fn dur_sum(a: Duration, b: Duration, minus: bool) -> RResult<Duration> {
    let (x, y) = (nanos(a.0), nanos(b.0));
    let drift = drift_sum(a.1, b.1, minus);
    from_nanos(if minus { x - y } else { x + y }, drift).ok_or_else(|| {
        overflow(format!(
            "{} {} {}",
            fmt_dur(&a),
            if minus { "-" } else { "+" },
            fmt_dur(&b)
        ))
    })
}

fn dur_times(a: Duration, n: i64) -> RResult<Duration> {
    let drift = a.1.checked_mul(n).unwrap_or_else(|| {
        note_soon(1);
        0
    });
    nanos(a.0)
        .checked_mul(n as i128)
        .and_then(|x| from_nanos(x, drift))
        .ok_or_else(|| overflow(format!("{} * {n}", fmt_dur(&a))))
}

fn dur_between(a: Timestamp, b: Timestamp) -> RResult<Duration> {
    from_nanos(
        nanos(a.0.signed_duration_since(b.0)),
        drift_sum(a.1, b.1, true),
    )
    .ok_or_else(|| overflow(format!("{} - {}", fmt_ts(&a), fmt_ts(&b))))
}

/// The first and last instants of the years rules may use, in nanoseconds.
fn year_range() -> (i128, i128) {
    let edge = |y: i32, first: bool| {
        let d = if first {
            chrono::NaiveDate::from_ymd_opt(y, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0))
        } else {
            chrono::NaiveDate::from_ymd_opt(y, 12, 31)
                .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 999_999_999))
        };
        horizon::instant_nanos(d.expect("a valid date").and_utc())
    };
    (edge(MIN_YEAR, true), edge(MAX_YEAR, false))
}

/// `a` moved by `d` (backwards when `minus`), within the years rules may use.
fn shift(a: Timestamp, d: Duration, minus: bool) -> RResult<Timestamp> {
    let moved = if minus {
        a.0.checked_sub_signed(d.0)
    } else {
        a.0.checked_add_signed(d.0)
    };
    let drift = drift_sum(a.1, d.1, minus);
    let moved = moved.filter(|t| (MIN_YEAR..=MAX_YEAR).contains(&t.year()));
    if let Some(t) = moved
        && drift != 0
    {
        note(|now| {
            let (lo, hi) = year_range();
            horizon::leaves_range(now, horizon::instant_nanos(t), drift, lo, hi)
        });
    }
    moved.map(|t| Timestamp(t, drift)).ok_or_else(|| {
        overflow(format!(
            "{} {} {}",
            fmt_ts(&a),
            if minus { "-" } else { "+" },
            fmt_dur(&d)
        ))
    })
}

/// Whole units of `unit_secs` in `d`, rounded toward zero (as chrono's `num_days`),
/// noting when a moving duration reaches the next.
fn whole(d: &Duration, unit_secs: i64) -> i64 {
    let unit = unit_secs as i128 * NANOS_PER_SEC;
    let v = nanos(d.0);
    if d.1 != 0 {
        let drift = d.1;
        note(|now| horizon::trunc_change(now, v, unit, drift));
    }
    (v / unit) as i64
}

/// The start of a window `within` long that ends at `now`: `count(kind, within)`.
fn window_start(call: &str, now: DateTime<Utc>, within: Duration) -> RResult<DateTime<Utc>> {
    now.checked_sub_signed(within.0)
        .ok_or_else(|| overflow(format!("the window of {call}: now - {}", fmt_dur(&within))))
}

fn fmt_dur(d: &Duration) -> String {
    crate::domain::time::format_duration(d.0)
}

fn fmt_ts(t: &Timestamp) -> String {
    t.0.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

macro_rules! volatile {
    ($engine:expr, $name:expr, $f:expr) => {
        FuncRegistration::new($name)
            .with_volatility(true)
            .register_into_engine($engine, $f);
    };
}

/// Registers the types, operators, read helpers and actions on `engine`, family by
/// family (tests/docs_rules.rs reads the names registered in this file).
pub fn register(engine: &mut Engine) {
    register_time_types(engine);
    register_local_time(engine);
    register_clock(engine);
    register_lead(engine);
    register_history(engine);
    register_sends(engine);
    register_actions(engine);
}

/// Timestamp and Duration: types, checked arithmetic, comparisons, printing.
fn register_time_types(engine: &mut Engine) {
    // Timestamp and Duration: types, arithmetic, comparisons, printing.
    engine
        .register_type_with_name::<Timestamp>("Timestamp")
        .register_type_with_name::<Duration>("Duration")
        .register_type_with_name::<LocalTime>("LocalTime")
        .register_type_with_name::<LeadHandle>("Lead");

    // Checked: an overflow is a rule error, never a panic in the daemon.
    engine.register_fn("-", |a: Timestamp, b: Timestamp| dur_between(a, b));
    engine.register_fn("+", |a: Timestamp, d: Duration| shift(a, d, false));
    engine.register_fn("+", |d: Duration, a: Timestamp| shift(a, d, false));
    engine.register_fn("-", |a: Timestamp, d: Duration| shift(a, d, true));
    engine.register_fn("+", |a: Duration, b: Duration| dur_sum(a, b, false));
    engine.register_fn("-", |a: Duration, b: Duration| dur_sum(a, b, true));
    engine.register_fn("-", |a: Duration| dur_times(a, -1));
    engine.register_fn("*", |a: Duration, n: i64| dur_times(a, n));
    engine.register_fn("*", |n: i64, a: Duration| dur_times(a, n));
    // Each comparison notes when its answer may change (see `horizon`).
    macro_rules! compare {
        ($t:ty, $cmp:ident) => {
            engine.register_fn("==", |a: $t, b: $t| $cmp(&a, &b).is_eq());
            engine.register_fn("!=", |a: $t, b: $t| $cmp(&a, &b).is_ne());
            engine.register_fn("<", |a: $t, b: $t| $cmp(&a, &b).is_lt());
            engine.register_fn("<=", |a: $t, b: $t| $cmp(&a, &b).is_le());
            engine.register_fn(">", |a: $t, b: $t| $cmp(&a, &b).is_gt());
            engine.register_fn(">=", |a: $t, b: $t| $cmp(&a, &b).is_ge());
        };
    }
    compare!(Timestamp, cmp_ts);
    compare!(Duration, cmp_dur);
    // Text changes with every tick of a moving value: noted at once.
    engine.register_fn("to_string", |t: &mut Timestamp| {
        note_soon(t.1);
        fmt_ts(t)
    });
    engine.register_fn("to_debug", |t: &mut Timestamp| {
        note_soon(t.1);
        fmt_ts(t)
    });
    engine.register_fn("to_string", |d: &mut Duration| {
        note_soon(d.1);
        fmt_dur(d)
    });
    engine.register_fn("to_debug", |d: &mut Duration| {
        note_soon(d.1);
        fmt_dur(d)
    });
    engine.register_get("days", |d: &mut Duration| whole(d, 86_400));
    engine.register_get("hours", |d: &mut Duration| whole(d, 3_600));
    engine.register_get("minutes", |d: &mut Duration| whole(d, 60));
    engine.register_get("seconds", |d: &mut Duration| whole(d, 1));
    engine.register_fn("days", |n: i64| dur_from_i64("days", 86_400, n));
    engine.register_fn("hours", |n: i64| dur_from_i64("hours", 3_600, n));
    engine.register_fn("minutes", |n: i64| dur_from_i64("minutes", 60, n));
    engine.register_fn("days", |n: f64| dur_from_f64("days", 86_400, n));
    engine.register_fn("hours", |n: f64| dur_from_f64("hours", 3_600, n));
    engine.register_fn("minutes", |n: f64| dur_from_f64("minutes", 60, n));
}

/// A timestamp read on the lead's wall clock (`local(t)`).
fn register_local_time(engine: &mut Engine) {
    engine.register_get("year", |l: &mut LocalTime| l.read(Field::Year, l.year));
    engine.register_get("month", |l: &mut LocalTime| l.read(Field::Month, l.month));
    engine.register_get("day", |l: &mut LocalTime| l.read(Field::Day, l.day));
    engine.register_get("weekday", |l: &mut LocalTime| {
        l.read(Field::Weekday, l.weekday)
    });
    engine.register_get("hour", |l: &mut LocalTime| l.read(Field::Hour, l.hour));
    engine.register_get("minute", |l: &mut LocalTime| {
        l.read(Field::Minute, l.minute)
    });
    engine.register_fn("to_string", |l: &mut LocalTime| {
        // Down to the minute: changes when the minute does.
        l.read(Field::Minute, 0);
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            l.year, l.month, l.day, l.hour, l.minute
        )
    });
}

/// Time helpers that depend on the clock or the lead's zone.
fn register_clock(engine: &mut Engine) {
    // Time helpers that depend on the clock or the lead's zone.
    volatile!(engine, "days_since", |t: Timestamp| with_ctx(|c| {
        let since = nanos(c.now.signed_duration_since(t.0));
        c.note(|c| {
            steep_or(c.now, 1i64.checked_sub(t.1), |s| {
                horizon::floor_change(c.now, since, horizon::DAY, s)
            })
        });
        Ok(Dynamic::from(
            i64::try_from(since.div_euclid(86_400 * NANOS_PER_SEC))
                .map_err(|_| overflow(format!("days_since({})", fmt_ts(&t))))?,
        ))
    }));
    volatile!(engine, "days_since", |_: ()| Ok::<_, Box<EvalAltResult>>(
        Dynamic::UNIT
    ));
    // Dates held in attributes (a birthday): days until the next anniversary, in the
    // lead's own calendar. A date attribute is midnight UTC and counts by its UTC date.
    volatile!(engine, "days_until_anniversary", |t: Timestamp| with_ctx(
        |c| {
            let zone = c.zone();
            let midnight_utc = t.0.time() == chrono::NaiveTime::MIN;
            let local_date = |t: DateTime<Utc>| {
                use chrono::{Offset, TimeZone};
                let offset = zone.offset_from_utc_datetime(&t.naive_utc()).fix();
                t.naive_utc().checked_add_offset(offset).map(|l| l.date())
            };
            let date = if midnight_utc {
                Some(t.0.date_naive())
            } else {
                local_date(t.0)
            };
            let today = local_date(c.now).filter(|d| d.year() < MAX_YEAR);
            // Today's date changes at the lead's midnight; a moving date at once.
            c.note(|c| {
                Some(match t.1 {
                    0 => horizon::local_change(c.now, zone, Field::Day),
                    _ => horizon::soon(c.now),
                })
            });
            let (Some(date), Some(today)) = (date, today) else {
                return Err(overflow(format!("days_until_anniversary({})", fmt_ts(&t))));
            };
            Ok(Dynamic::from(crate::domain::time::days_to_anniversary(
                date, today,
            )))
        }
    ));
    volatile!(engine, "days_until_anniversary", |_: ()| Ok::<
        _,
        Box<EvalAltResult>,
    >(
        Dynamic::UNIT
    ));
    volatile!(engine, "local", |t: Timestamp| with_ctx(|c| local_of(
        t.0,
        c.zone()
    )
    .map(|l| Dynamic::from(LocalTime { drift: t.1, ..l }))
    .ok_or_else(|| overflow(format!("local({})", fmt_ts(&t))))));
    volatile!(engine, "local", |_: ()| Ok::<_, Box<EvalAltResult>>(
        Dynamic::UNIT
    ));
}

/// The lead's fields, read through the `lead` handle.
fn register_lead(engine: &mut Engine) {
    // The lead.
    volatile!(engine, "get$id", |_: &mut LeadHandle| with_ctx(|c| Ok(c
        .lead
        .id
        .0)));
    volatile!(engine, "get$email", |_: &mut LeadHandle| with_ctx(|c| Ok(
        c.lead.email.to_string()
    )));
    volatile!(engine, "get$name", |_: &mut LeadHandle| with_ctx(|c| Ok(c
        .lead
        .name
        .clone()
        .unwrap_or_default())));
    volatile!(engine, "get$stage", |_: &mut LeadHandle| with_ctx(|c| Ok(
        c.lead.stage.to_string()
    )));
    volatile!(engine, "get$tags", |_: &mut LeadHandle| with_ctx(|c| {
        Ok(c.lead
            .tags
            .iter()
            .map(|t| Dynamic::from(t.clone()))
            .collect::<Array>())
    }));
    volatile!(engine, "get$attrs", |_: &mut LeadHandle| with_ctx(|c| Ok(
        map_to_rhai(&c.lead.attrs)
    )));
    volatile!(engine, "get$locale", |_: &mut LeadHandle| with_ctx(|c| Ok(
        c.lead.locale.clone().unwrap_or_default()
    )));
    volatile!(engine, "get$timezone", |_: &mut LeadHandle| with_ctx(|c| {
        Ok(c.lead
            .timezone
            .map(|t| t.name().to_string())
            .unwrap_or_default())
    }));
    volatile!(engine, "get$created_at", |_: &mut LeadHandle| with_ctx(
        |c| Ok(Timestamp::fixed(c.lead.created_at))
    ));
    volatile!(engine, "get$stage_entered_at", |_: &mut LeadHandle| {
        with_ctx(|c| Ok(Timestamp::fixed(c.lead.stage_entered_at)))
    });
    engine.register_fn("to_string", |_: &mut LeadHandle| "lead".to_string());
}

/// What the lead did (events), as the rules may read them.
fn register_history(engine: &mut Engine) {
    // Events.
    volatile!(engine, "has_event", |kind: ImmutableString| with_ctx(|c| {
        Ok(c.events_of(&kind).next().is_some())
    }));
    volatile!(engine, "count", |kind: ImmutableString| with_ctx(|c| Ok(
        c.events_of(&kind).count() as i64 + c.older_count(&kind, None)
    )));
    volatile!(
        engine,
        "count",
        |kind: ImmutableString, within: Duration| with_ctx(|c| {
            let since = window_start(&format!("count(\"{kind}\", …)"), c.now, within)?;
            // The count drops when its oldest event (or the first of the older ones
            // only counted) leaves the window.
            c.note(|c| {
                let first_older = c.older.get(kind.as_str()).map(|o| o.first_at);
                let times = c.events_of(&kind).map(|e| e.at).chain(first_older);
                steep_or(c.now, 1i64.checked_sub(within.1), |s| {
                    horizon::window_drop(c.now, since, s, times)
                })
            });
            Ok(c.events_of(&kind).filter(|e| e.at > since).count() as i64
                + c.older_count(&kind, Some(since)))
        })
    );
    volatile!(engine, "last_event", |kind: ImmutableString| with_ctx(
        |c| {
            Ok(c.events_of(&kind)
                .map(|e| e.at)
                .max()
                .map(|t| Dynamic::from(Timestamp::fixed(t)))
                .unwrap_or(Dynamic::UNIT))
        }
    ));
    volatile!(
        engine,
        "last_event_props",
        |kind: ImmutableString| with_ctx(|c| {
            Ok(c.events_of(&kind)
                .max_by_key(|e| e.at)
                .map(|e| map_to_rhai(&e.props))
                .unwrap_or_default())
        })
    );
}

/// What the lead was sent, counted by the time each email was requested.
fn register_sends(engine: &mut Engine) {
    volatile!(engine, "sent", |t: ImmutableString| with_ctx(|c| {
        Ok(c.sends
            .iter()
            .any(|s| s.template.as_str() == t.as_str() && s.requested_at <= c.now))
    }));
    volatile!(
        engine,
        "sent",
        |t: ImmutableString, key: ImmutableString| with_ctx(|c| Ok(c.sent_with_key(&t, &key)))
    );
    // `send` takes an integer key (a year), so `sent` does too.
    volatile!(engine, "sent", |t: ImmutableString, key: i64| with_ctx(
        |c| Ok(c.sent_with_key(&t, &key.to_string()))
    ));
    volatile!(engine, "last_sent", |t: ImmutableString| with_ctx(|c| {
        Ok(c.sends
            .iter()
            .filter(|s| s.template.as_str() == t.as_str() && s.requested_at <= c.now)
            .map(|s| s.requested_at)
            .max()
            .map(|t| Dynamic::from(Timestamp::fixed(t)))
            .unwrap_or(Dynamic::UNIT))
    }));
    volatile!(engine, "sent_count", |within: Duration| with_ctx(|c| {
        let since = window_start("sent_count", c.now, within)?;
        c.note(|c| {
            let times = c
                .sends
                .iter()
                .map(|s| s.requested_at)
                .filter(|t| *t <= c.now);
            steep_or(c.now, 1i64.checked_sub(within.1), |s| {
                horizon::window_drop(c.now, since, s, times)
            })
        });
        Ok(c.sends
            .iter()
            .filter(|s| s.requested_at > since && s.requested_at <= c.now)
            .count() as i64)
    }));
}

/// The actions a rule takes (an audience only reads; `acting` refuses them there).
fn register_actions(engine: &mut Engine) {
    // Actions.
    volatile!(engine, "send", |t: ImmutableString| with_ctx(
        |c| c.send(&t, None)
    ));
    volatile!(
        engine,
        "send",
        |t: ImmutableString, key: ImmutableString| with_ctx(|c| c.send(&t, Some(key.to_string())))
    );
    volatile!(engine, "send", |t: ImmutableString, key: i64| with_ctx(
        |c| c.send(&t, Some(key.to_string()))
    ));
    volatile!(engine, "move_to", |s: ImmutableString| with_ctx(
        |c| c.move_to(&s)
    ));
    volatile!(engine, "tag", |s: ImmutableString| with_ctx(
        |c| c.tag(&s, true)
    ));
    volatile!(engine, "untag", |s: ImmutableString| with_ctx(
        |c| c.tag(&s, false)
    ));
    volatile!(engine, "set", |k: ImmutableString, v: Dynamic| with_ctx(
        |c| c.set(&k, v)
    ));
}
