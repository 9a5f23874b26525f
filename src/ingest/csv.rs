//! CSV import of leads or events (told apart by the header: a `kind` column means
//! events). Bad rows are reported with their line and skipped; good rows are kept.

use crate::domain::time::parse_instant_or_date;
use crate::domain::{EmailAddress, Event, StageId, Value, ValueMap};
use crate::funnel::config::{Config, parse_tz};
use crate::store::{LeadUpsert, Store, StoreError, UpsertResult};
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Read;
use std::path::Path;

/// The longest name accepted.
pub const MAX_NAME: usize = 200;

/// The most tags on one lead.
pub const MAX_TAGS: usize = 50;
/// The longest tag, attribute key or property key.
pub const MAX_KEY: usize = 64;
/// The longest string value of an attribute or a property.
pub const MAX_VALUE: usize = 1000;
/// The longest event id.
pub const MAX_EVENT_ID: usize = 200;

/// A tag, or an attribute or property key: letters, digits, `_`, `-` and `.`, at most
/// [`MAX_KEY`] characters.
pub fn check_key(what: &str, k: &str) -> Result<(), String> {
    if k.is_empty() {
        return Err(format!("{what} is empty"));
    }
    let n = k.chars().count();
    if n > MAX_KEY {
        return Err(format!(
            "{what} `{k}` has {n} characters; at most {MAX_KEY}"
        ));
    }
    if let Some(c) = k
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "{what} `{}` holds {c:?}; only letters, digits, `_`, `-` and `.` are allowed",
            k.escape_debug()
        ));
    }
    Ok(())
}

/// Attributes or properties: keys as [`check_key`], string values at most
/// [`MAX_VALUE`] characters. `field` is `attrs` or `props` (`attr`/`prop` in a CSV).
pub fn check_values(field: &str, map: &ValueMap) -> Result<(), String> {
    for (k, v) in map {
        check_key("key", k).map_err(|e| format!("{field}.{k}: {e}"))?;
        if let Value::Str(s) = v {
            let n = s.chars().count();
            if n > MAX_VALUE {
                return Err(format!(
                    "{field}.{k}: {n} characters; a value holds at most {MAX_VALUE}"
                ));
            }
        }
    }
    Ok(())
}

/// Tags, as given: at most [`MAX_TAGS`], each as [`check_key`].
pub fn check_tags(tags: &[String]) -> Result<(), String> {
    if tags.len() > MAX_TAGS {
        return Err(format!("tags: {} tags; at most {MAX_TAGS}", tags.len()));
    }
    for t in tags {
        check_key("tag", t).map_err(|e| format!("tags: {e}"))?;
    }
    Ok(())
}

/// An event's own id: at most [`MAX_EVENT_ID`] characters, no control characters.
pub fn check_event_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("id: empty; leave it out or give the event's own id".into());
    }
    let n = id.chars().count();
    if n > MAX_EVENT_ID {
        return Err(format!("id: {n} characters; at most {MAX_EVENT_ID}"));
    }
    if id.chars().any(char::is_control) {
        return Err("id: holds a control character".into());
    }
    Ok(())
}

/// A name without RFC 2047 encoded-word markers (`=?charset?b?…?=`): a name goes into
/// the To header, where such a word would be decoded by mail clients into anything
/// (a line break, another header). The markers are removed; the text stays.
pub fn neutralise_encoded_words(name: &str) -> String {
    let mut s = name.to_string();
    while s.contains("=?") || s.contains("?=") {
        s = s.replace("=?", "").replace("?=", "");
    }
    s
}

/// Rows committed per transaction: each batch costs a fixed handful of statements and
/// one commit (a synced write), so a larger one pays for them over more rows.
const BATCH: usize = 5000;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:1: {message}")]
    Header { path: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A row that was skipped, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRow {
    pub line: u64,
    pub message: String,
}

/// What a CSV holds: leads, or events (a `kind` column).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Holds {
    #[default]
    Leads,
    Events,
}

#[derive(Debug, Default)]
pub struct ImportReport {
    pub holds: Holds,
    pub created: usize,
    pub updated: usize,
    pub events: usize,
    /// Events skipped because their `id` was already recorded for their lead.
    pub duplicates: usize,
    pub bad: Vec<BadRow>,
}

enum Kind {
    Leads(LeadColumns),
    Events(EventColumns),
}

struct LeadColumns {
    email: usize,
    name: Option<usize>,
    stage: Option<usize>,
    tags: Option<usize>,
    locale: Option<usize>,
    timezone: Option<usize>,
    created_at: Option<usize>,
    attrs: Vec<(usize, String)>,
}

struct EventColumns {
    email: usize,
    id: Option<usize>,
    kind: usize,
    at: usize,
    props: Vec<(usize, String)>,
}

fn classify(header: &csv::StringRecord) -> Result<Kind, String> {
    let names: Vec<String> = header.iter().map(|h| h.trim().to_string()).collect();
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Err(format!("column `{n}` appears twice"));
        }
    }
    let find = |n: &str| names.iter().position(|h| h == n);
    let email = find("email").ok_or(
        "no `email` column; the header must name one (email,name,stage,tags,… or email,kind,at,…)",
    )?;
    let prefixed = |prefix: &str| -> Result<Vec<(usize, String)>, String> {
        names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.strip_prefix(prefix).map(|k| (i, k.to_string())))
            .map(|(i, k)| {
                if k.is_empty() {
                    Err(format!("column `{prefix}` names no key"))
                } else {
                    Ok((i, k))
                }
            })
            .collect()
    };
    if let Some(kind) = find("kind") {
        let at = find("at").ok_or("an events file needs an `at` column (RFC 3339 time)")?;
        for n in &names {
            if !["email", "kind", "at", "id"].contains(&n.as_str()) && !n.starts_with("prop.") {
                return Err(format!(
                    "unknown column `{n}` in an events file; properties are written prop.{n}"
                ));
            }
        }
        return Ok(Kind::Events(EventColumns {
            email,
            id: find("id"),
            kind,
            at,
            props: prefixed("prop.")?,
        }));
    }
    const KNOWN: [&str; 7] = [
        "email",
        "name",
        "stage",
        "tags",
        "locale",
        "timezone",
        "created_at",
    ];
    for n in &names {
        if !KNOWN.contains(&n.as_str()) && !n.starts_with("attr.") {
            return Err(format!(
                "unknown column `{n}`; the columns are {} and attr.<key> (write attr.{n} to keep it as an attribute)",
                KNOWN.join(", ")
            ));
        }
    }
    Ok(Kind::Leads(LeadColumns {
        email,
        name: find("name"),
        stage: find("stage"),
        tags: find("tags"),
        locale: find("locale"),
        timezone: find("timezone"),
        created_at: find("created_at"),
        attrs: prefixed("attr.")?,
    }))
}

fn cell(r: &csv::StringRecord, i: Option<usize>) -> Option<&str> {
    i.and_then(|i| r.get(i))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn lead_row(cols: &LeadColumns, r: &csv::StringRecord, cfg: &Config) -> Result<LeadUpsert, String> {
    let tags = cell(r, cols.tags)
        .map(|t| t.split(';').map(str::to_string).collect())
        .unwrap_or_default();
    let attrs = cols
        .attrs
        .iter()
        .filter_map(|(i, k)| cell(r, Some(*i)).map(|v| (k.clone(), Value::infer(v))))
        .collect();
    lead_upsert(
        LeadFields {
            email: r.get(cols.email).unwrap_or(""),
            name: cell(r, cols.name),
            stage: cell(r, cols.stage),
            tags,
            locale: cell(r, cols.locale),
            timezone: cell(r, cols.timezone),
            created_at: cell(r, cols.created_at),
            attrs,
        },
        cfg,
    )
}

/// A lead as given (a CSV row or a JSON object), before validation.
pub struct LeadFields<'a> {
    pub email: &'a str,
    pub name: Option<&'a str>,
    pub stage: Option<&'a str>,
    pub tags: Vec<String>,
    pub locale: Option<&'a str>,
    pub timezone: Option<&'a str>,
    pub created_at: Option<&'a str>,
    pub attrs: ValueMap,
}

/// Validates a lead the same way whatever it came from; the error names the field.
pub fn lead_upsert(f: LeadFields<'_>, cfg: &Config) -> Result<LeadUpsert, String> {
    let email = EmailAddress::parse(f.email).map_err(|e| format!("email: {e}"))?;
    let stage = f
        .stage
        .map(|s| cfg.stages.stage(s).map_err(|e| format!("stage: {e}")))
        .transpose()?;
    let locale = f
        .locale
        .map(|l| {
            crate::funnel::locale::check_locale(l)
                .map(|_| l.to_string())
                .map_err(|e| format!("locale: {e}"))
        })
        .transpose()?;
    let timezone = f
        .timezone
        .map(|t| parse_tz(t).map_err(|e| format!("timezone: {e}")))
        .transpose()?;
    let created_at = f
        .created_at
        .map(|t| parse_instant_or_date(t).map_err(|e| format!("created_at: {e}")))
        .transpose()?;
    let tags: Vec<String> = f
        .tags
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    check_tags(&tags)?;
    check_values("attrs", &f.attrs)?;
    // A name is one line of text: a line break from a spreadsheet cell becomes a space,
    // and an encoded-word loses its markers.
    let name = f
        .name
        .map(crate::domain::one_line)
        .map(|n| neutralise_encoded_words(&n).trim().to_string())
        .filter(|n| !n.is_empty());
    // It goes into the To header of every email: a header line has a limit.
    if let Some(n) = &name
        && n.chars().count() > MAX_NAME
    {
        return Err(format!(
            "name: {} characters; at most {MAX_NAME}",
            n.chars().count()
        ));
    }
    Ok(LeadUpsert {
        email,
        name,
        stage,
        tags,
        locale,
        timezone,
        created_at,
        attrs: f.attrs,
    })
}

/// An event row: the lead's email, the event, and its own id if the file gives one.
type EventRow = (EmailAddress, Event, Option<String>);

fn event_row(cols: &EventColumns, r: &csv::StringRecord) -> Result<EventRow, String> {
    let email =
        EmailAddress::parse(r.get(cols.email).unwrap_or("")).map_err(|e| format!("email: {e}"))?;
    let kind = cell(r, Some(cols.kind)).ok_or("kind: empty")?;
    crate::domain::ids::check_name("event kind", kind)?;
    let at = parse_instant_or_date(cell(r, Some(cols.at)).ok_or("at: empty")?)
        .map_err(|e| format!("at: {e}"))?;
    let props: ValueMap = cols
        .props
        .iter()
        .filter_map(|(i, k)| cell(r, Some(*i)).map(|v| (k.clone(), Value::infer(v))))
        .collect();
    check_values("prop", &props)?;
    let id = cell(r, cols.id).map(str::to_string);
    if let Some(id) = &id {
        check_event_id(id)?;
    }
    Ok((
        email,
        Event {
            kind: kind.to_string(),
            at,
            props,
        },
        id,
    ))
}

/// Imports `path` into `store`, stamping rows with `now`.
pub async fn import_file(
    store: &Store,
    cfg: &Config,
    path: &Path,
    update_stage: bool,
    now: DateTime<Utc>,
) -> Result<ImportReport, ImportError> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| ImportError::Read {
        path: shown.clone(),
        source,
    })?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} importing {msg} [{bar:30}] {bytes}/{total_bytes} ({eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(shown.clone());
    import_reader(
        store,
        cfg,
        &shown,
        bar.wrap_read(file),
        update_stage,
        now,
        |pos| bar.set_position(pos),
    )
    .await
    .inspect(|_| bar.finish_and_clear())
}

/// Imports CSV from any reader; `path` names it in messages.
///
/// A batch is parsed while the one before it is written: the writing waits mostly on
/// SQLite's thread, so parsing meanwhile takes the reading and checking of rows off
/// the critical path. Batches are still written one at a time, in file order.
pub async fn import_reader<R: Read>(
    store: &Store,
    cfg: &Config,
    path: &str,
    reader: R,
    update_stage: bool,
    now: DateTime<Utc>,
    progress: impl Fn(u64),
) -> Result<ImportReport, ImportError> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::None)
        .from_reader(reader);
    let header = rdr
        .headers()
        .map_err(|e| ImportError::Header {
            path: path.into(),
            message: e.to_string(),
        })?
        .clone();
    let kind = classify(&header).map_err(|message| ImportError::Header {
        path: path.into(),
        message,
    })?;
    let mut report = ImportReport {
        holds: if matches!(kind, Kind::Events(_)) {
            Holds::Events
        } else {
            Holds::Leads
        },
        ..Default::default()
    };
    let mut rows = Rows {
        rdr,
        record: csv::StringRecord::new(),
        fields: header.len(),
        kind,
        cfg,
        progress,
        ended: false,
    };
    let mut batch = rows.next_batch(&mut report.bad).await;
    while !batch.is_empty() {
        let (written, next) = tokio::join!(
            write_batch(store, cfg, batch, update_stage, now),
            rows.next_batch(&mut report.bad)
        );
        report.absorb(written?);
        batch = next;
    }
    report.bad.sort_by_key(|b| b.line);
    Ok(report)
}

impl ImportReport {
    /// Adds a batch's counts and bad rows to the file's.
    fn absorb(&mut self, batch: ImportReport) {
        self.created += batch.created;
        self.updated += batch.updated;
        self.events += batch.events;
        self.duplicates += batch.duplicates;
        self.bad.extend(batch.bad);
    }
}

/// The good rows of one batch, checked and ready to write.
enum Batch {
    Leads(Vec<LeadUpsert>),
    Events(Vec<(u64, EventRow)>),
}

impl Batch {
    fn is_empty(&self) -> bool {
        match self {
            Batch::Leads(rows) => rows.is_empty(),
            Batch::Events(rows) => rows.is_empty(),
        }
    }
}

/// The file's rows, read a batch at a time.
struct Rows<'c, R: Read, P: Fn(u64)> {
    rdr: csv::Reader<R>,
    record: csv::StringRecord,
    /// The header's field count.
    fields: usize,
    kind: Kind,
    cfg: &'c Config,
    progress: P,
    /// The reader failed or the file ended.
    ended: bool,
}

/// Records read between two yields to the batch being written, so it sends its next
/// statement soon after SQLite finishes the last.
const YIELD_EVERY: usize = 64;

impl<R: Read, P: Fn(u64)> Rows<'_, R, P> {
    /// Up to [`BATCH`] good rows; bad ones go to `bad` with their line. Empty at the end.
    async fn next_batch(&mut self, bad: &mut Vec<BadRow>) -> Batch {
        let mut batch = match self.kind {
            Kind::Leads(_) => Batch::Leads(Vec::with_capacity(BATCH)),
            Kind::Events(_) => Batch::Events(Vec::with_capacity(BATCH)),
        };
        let mut read = 0;
        while !self.ended && batch_len(&batch) < BATCH {
            read += 1;
            if read % YIELD_EVERY == 0 {
                tokio::task::yield_now().await;
            }
            let line = match next_row(&mut self.rdr, &mut self.record, self.fields) {
                Row::End => {
                    self.ended = true;
                    break;
                }
                Row::Skip => continue,
                Row::Bad(b) => {
                    self.ended = b.io;
                    bad.push(b.row);
                    continue;
                }
                Row::Read(line) => line,
            };
            let checked = match (&self.kind, &mut batch) {
                (Kind::Leads(cols), Batch::Leads(rows)) => {
                    lead_row(cols, &self.record, self.cfg).map(|l| rows.push(l))
                }
                (Kind::Events(cols), Batch::Events(rows)) => {
                    event_row(cols, &self.record).map(|e| rows.push((line, e)))
                }
                _ => unreachable!("a batch is made for the file's kind"),
            };
            if let Err(message) = checked {
                bad.push(BadRow { line, message });
            }
            (self.progress)(self.rdr.position().byte());
        }
        batch
    }
}

fn batch_len(b: &Batch) -> usize {
    match b {
        Batch::Leads(rows) => rows.len(),
        Batch::Events(rows) => rows.len(),
    }
}

/// Writes one batch; returns its counts and the rows it could not store.
async fn write_batch(
    store: &Store,
    cfg: &Config,
    batch: Batch,
    update_stage: bool,
    now: DateTime<Utc>,
) -> Result<ImportReport, StoreError> {
    let mut report = ImportReport::default();
    match batch {
        Batch::Leads(rows) => {
            flush_leads(store, cfg, &rows, update_stage, now, &mut report).await?
        }
        Batch::Events(rows) => flush_events(store, rows, now, &mut report).await?,
    }
    Ok(report)
}

/// What reading the next record gave.
enum Row {
    End,
    /// A blank line.
    Skip,
    Bad(BadRead),
    /// A record with as many fields as the header, at this line.
    Read(u64),
}

struct BadRead {
    row: BadRow,
    /// The reader failed (not the row): stop reading.
    io: bool,
}

/// Reads one record into `record`, telling an unreadable row or a wrong field count
/// (most often an unterminated quote, whose extent it names) from a good one.
fn next_row<R: Read>(
    rdr: &mut csv::Reader<R>,
    record: &mut csv::StringRecord,
    fields: usize,
) -> Row {
    let line = rdr.position().line();
    match rdr.read_record(record) {
        Ok(false) => return Row::End,
        Ok(true) => {}
        Err(e) => {
            let line = e.position().map(|p| p.line()).unwrap_or(line);
            return Row::Bad(BadRead {
                row: BadRow {
                    line,
                    message: format!("unreadable row: {e}"),
                },
                io: matches!(e.kind(), csv::ErrorKind::Io(_)),
            });
        }
    }
    let line = record.position().map(|p| p.line()).unwrap_or(line);
    if record.iter().all(|c| c.trim().is_empty()) {
        return Row::Skip;
    }
    if record.len() != fields {
        let breaks: usize = record.iter().map(|c| c.matches('\n').count()).sum();
        let trailing = record.iter().next_back().is_some_and(|c| c.ends_with('\n'));
        let end = line + breaks as u64 - u64::from(trailing);
        let mut message = format!("{} fields, the header has {fields}", record.len());
        if end > line {
            message.push_str(&format!(
                "; an unterminated quote? this row runs to line {end}, so lines {}–{end} were not read as rows",
                line + 1
            ));
        }
        return Row::Bad(BadRead {
            row: BadRow { line, message },
            io: false,
        });
    }
    Row::Read(line)
}

async fn flush_leads(
    store: &Store,
    cfg: &Config,
    rows: &[LeadUpsert],
    update_stage: bool,
    now: DateTime<Utc>,
    report: &mut ImportReport,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let initial: StageId = cfg.stages.initial().clone();
    for r in store
        .upsert_leads(rows, &initial, update_stage, now)
        .await?
    {
        match r {
            UpsertResult::Created(_) => report.created += 1,
            UpsertResult::Updated(_) => report.updated += 1,
        }
    }
    Ok(())
}

async fn flush_events(
    store: &Store,
    rows: Vec<(u64, EventRow)>,
    now: DateTime<Utc>,
    report: &mut ImportReport,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    // The batch's leads in one look-up, not one per row.
    let emails: Vec<EmailAddress> = rows
        .iter()
        .map(|(_, (email, _, _))| email.clone())
        .collect();
    let ids = store.lead_ids_by_email(&emails).await?;
    let mut ok = Vec::with_capacity(rows.len());
    for ((line, (email, e, event_id)), id) in rows.into_iter().zip(ids) {
        match id {
            Some(id) => ok.push((id, e, event_id)),
            None => report.bad.push(BadRow {
                line,
                message: format!("email: no lead `{email}`; import the leads first"),
            }),
        }
    }
    let r = store.record_events(&ok, now).await?;
    report.events += r.recorded;
    report.duplicates += r.duplicates;
    Ok(())
}
