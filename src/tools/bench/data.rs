//! The bench's data: leads over 40 time zones and a year of events, the same bytes on
//! every run (a fixed-seed generator), so two runs and two machines measure the same work.

use chrono::{DateTime, TimeDelta, Utc};
use std::io::{BufWriter, Write};
use std::path::Path;

/// Forty zones on every continent, so quiet hours and local days fall everywhere.
const ZONES: [&str; 40] = [
    "Europe/Madrid",
    "Europe/Lisbon",
    "Europe/London",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Rome",
    "Europe/Athens",
    "Europe/Helsinki",
    "Europe/Moscow",
    "Europe/Istanbul",
    "Atlantic/Canary",
    "Atlantic/Azores",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Anchorage",
    "America/Mexico_City",
    "America/Bogota",
    "America/Lima",
    "America/Santiago",
    "America/Buenos_Aires",
    "America/Sao_Paulo",
    "America/Caracas",
    "America/Halifax",
    "America/St_Johns",
    "Pacific/Honolulu",
    "Pacific/Auckland",
    "Australia/Sydney",
    "Australia/Perth",
    "Asia/Tokyo",
    "Asia/Shanghai",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Dubai",
    "Asia/Singapore",
    "Asia/Jakarta",
    "Africa/Cairo",
    "Africa/Lagos",
    "Africa/Johannesburg",
];

/// splitmix64: tiny, fast, and the same sequence everywhere for the same seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The address of lead `i`: events and requests name leads by it.
pub fn email(i: usize) -> String {
    format!("lead{i}@bench.example")
}

/// A second, rounded instant `within` before `end`.
fn before(rng: &mut Rng, end: DateTime<Utc>, within: TimeDelta) -> String {
    let secs = rng.below(within.num_seconds().max(1) as u64) as i64;
    (end - TimeDelta::seconds(secs)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `n` leads created over the year before `t0`: a third in English, the rest in
/// Spanish, each in one of 40 zones, with a tag and a segment attribute.
pub fn write_leads(path: &Path, n: usize, t0: DateTime<Utc>, seed: u64) -> std::io::Result<()> {
    let mut rng = Rng::new(seed);
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        out,
        "email,name,tags,locale,timezone,created_at,attr.segment"
    )?;
    for i in 0..n {
        let (tag, segment) = if rng.below(3) == 0 {
            ("office", "empresa")
        } else {
            ("school", "familia")
        };
        let locale = if i % 3 == 0 { "en" } else { "es" };
        let zone = ZONES[rng.below(ZONES.len() as u64) as usize];
        let created = before(&mut rng, t0 - TimeDelta::hours(1), TimeDelta::days(365));
        writeln!(
            out,
            "{},Lead {i},{tag},{locale},{zone},{created},{segment}",
            email(i)
        )?;
    }
    out.flush()
}

/// `n` events over the `span` before `end`, each for one of `leads` leads: mostly page
/// views, some quote requests, few purchases (so the rules move some leads on).
pub fn write_events(
    path: &Path,
    n: usize,
    leads: usize,
    end: DateTime<Utc>,
    span: TimeDelta,
    seed: u64,
) -> std::io::Result<()> {
    let mut rng = Rng::new(seed);
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "email,kind,at,prop.url")?;
    for _ in 0..n {
        let lead = rng.below(leads as u64) as usize;
        let kind = match rng.below(100) {
            0 => "purchase",
            1..=3 => "quote_requested",
            _ => "page_view",
        };
        let at = before(&mut rng, end, span);
        let page = rng.below(20);
        writeln!(out, "{},{kind},{at},/p/{page}", email(lead))?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_writes_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let t0: DateTime<Utc> = "2026-03-02T10:00:00Z".parse().unwrap();
        let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        write_events(&a, 500, 50, t0, TimeDelta::days(365), 7).unwrap();
        write_events(&b, 500, 50, t0, TimeDelta::days(365), 7).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let text = std::fs::read_to_string(&a).unwrap();
        assert_eq!(text.lines().count(), 501);
        assert!(
            text.lines()
                .skip(1)
                .all(|l| l.split(',').nth(2).unwrap() <= "2026-03-02T10:00:00Z")
        );
    }
}
