//! The report as text for a terminal.

use super::{Report, pct_text};

fn opt_pct(p: Option<f64>) -> String {
    pct_text(p).unwrap_or_else(|| "-".into())
}

pub(super) fn render(r: &Report) -> String {
    let mut out = format!("funnel at {}\n", r.at);
    out.push_str(&format!(
        "period: {} to {}{}\n",
        r.from.as_deref().unwrap_or("the start"),
        r.to,
        r.by.as_ref()
            .map(|b| format!(", segments by {b}"))
            .unwrap_or_default()
    ));
    if r.paused {
        out.push_str("SENDING IS PAUSED: nothing leaves until `embudo resume`\n");
    }
    for c in &r.paused_campaigns {
        out.push_str(&format!(
            "campaign `{c}` is paused (embudo resume --campaign {c})\n"
        ));
    }
    stages(r, &mut out);
    templates(r, &mut out);
    conversions(r, &mut out);
    windows(r, &mut out);
    out.push_str("\nheld back by the sending policy\n");
    if r.held.is_empty() {
        out.push_str("  nothing\n");
    }
    for h in &r.held {
        out.push_str(&format!(
            "  {:>5} email(s): {} (first release {})\n",
            h.emails, h.reason, h.earliest_release
        ));
    }
    out.push_str("\nnext campaign firings\n");
    if r.next_firings.is_empty() {
        out.push_str("  none scheduled\n");
    }
    for f in &r.next_firings {
        let paused = if f.paused { " (paused)" } else { "" };
        out.push_str(&format!(
            "  {:<20} {} ({}){paused}\n",
            f.campaign, f.local, f.at
        ));
    }
    out
}

fn stages(r: &Report, out: &mut String) {
    out.push('\n');
    out.push_str(&format!(
        "{:<14} {:>7} {:>8} {:>16} {:>7} {:>10} {:>10} {:>10} {:>12}\n",
        "stage",
        "leads",
        "reached",
        "to next stage",
        "stays",
        "mean stay",
        "median",
        "p90",
        "in it so far"
    ));
    for s in &r.stages {
        let d = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:<14} {:>7} {:>8} {:>16} {:>7} {:>10} {:>10} {:>10} {:>12}\n",
            s.stage,
            s.leads,
            s.reached,
            s.to_next_text(),
            s.finished_stays,
            d(&s.mean_stay),
            d(&s.median_stay),
            d(&s.p90_stay),
            d(&s.mean_time_so_far)
        ));
    }
    out.push_str("\nmoves back to an earlier stage\n");
    if r.regressions.is_empty() {
        out.push_str("  none\n");
    }
    for g in &r.regressions {
        out.push_str(&format!(
            "  {} → {}: {} (by {})\n",
            g.from, g.to, g.moves, g.by
        ));
    }
}

fn templates(r: &Report, out: &mut String) {
    out.push_str(&format!(
        "\nemails by template (moved on: to a later stage within {} after it)\n",
        r.moved_within
    ));
    if r.templates.is_empty() {
        out.push_str("  none yet\n");
        return;
    }
    out.push_str(&format!(
        "  {:<20} {:>6} {:>7} {:>14} {:>14} {:>7} {:>14}  rows by state\n",
        "template", "sent", "bounced", "opened", "clicked", "unsubs", "moved on"
    ));
    for t in &r.templates {
        let states: Vec<String> = t.states.iter().map(|(s, n)| format!("{s} {n}")).collect();
        out.push_str(&format!(
            "  {:<20} {:>6} {:>7} {:>14} {:>14} {:>7} {:>14}  {}\n",
            t.template,
            t.sent,
            t.bounced,
            format!("{} ({})", t.opened, opt_pct(t.opened_pct)),
            format!("{} ({})", t.clicked, opt_pct(t.clicked_pct)),
            t.unsubscribed,
            format!("{} ({})", t.moved_on, opt_pct(t.moved_on_pct)),
            states.join(", ")
        ));
    }
}

fn conversions(r: &Report, out: &mut String) {
    out.push_str("\nconversions\n");
    if r.conversions.is_empty() {
        out.push_str("  none named (reports.conversions in embudo.yaml)\n");
    }
    for c in &r.conversions {
        out.push_str(&format!(
            "  {} ({} → {} within {})\n",
            c.name, c.from, c.to, c.within
        ));
        for f in std::iter::once(&c.all).chain(&c.segments) {
            out.push_str(&format!(
                "    {:<18} {:>6} started {:>6} converted {:>7}  median {}\n",
                f.segment,
                f.started,
                f.converted,
                opt_pct(f.rate_pct),
                f.median_delay.as_deref().unwrap_or("-")
            ));
        }
    }
}

fn windows(r: &Report, out: &mut String) {
    let w = &r.buying_windows;
    out.push_str(&format!(
        "\nbuying windows: `{}` events per month ({})\n",
        w.kind, w.timezone
    ));
    out.push_str(&format!("  {:<18}", "segment"));
    for m in w
        .segments
        .first()
        .map(|s| s.months.as_slice())
        .unwrap_or_default()
    {
        out.push_str(&format!(" {:>5}", m.month));
    }
    out.push_str("  peak months\n");
    for s in &w.segments {
        out.push_str(&format!("  {:<18}", s.segment));
        for m in &s.months {
            out.push_str(&format!(" {:>5}", m.count));
        }
        let peaks = if s.peak_months.is_empty() {
            "-".to_string()
        } else {
            s.peak_months.join(", ")
        };
        out.push_str(&format!("  {peaks}\n"));
    }
}
