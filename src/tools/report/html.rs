//! The report as one HTML page: the dashboard `embudo run` serves at `/` and `embudo
//! report --format html` writes to a file. Server-rendered, charts as inline SVG, no
//! script and nothing fetched from elsewhere, so the file works offline and the page
//! reads on a phone (one column, charts scaled by their viewBox).

use super::{Report, Windows, pct_text};

/// `s` with the five HTML-special characters escaped.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn pct(p: Option<f64>) -> String {
    pct_text(p).unwrap_or_else(|| "–".into())
}

fn or_dash(v: &Option<String>) -> String {
    v.as_deref().map_or("–".into(), esc)
}

const STYLE: &str = "
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d2433;background:#f5f6f8}
main{max-width:960px;margin:0 auto;padding:12px}
h1{font-size:1.4em;margin:.4em 0}h2{font-size:1.1em;margin:0 0 .5em}
section{background:#fff;border-radius:8px;padding:12px 14px;margin:12px 0;box-shadow:0 1px 2px #0001}
.meta{color:#5b6475;font-size:.9em}.alert{background:#fde8e8;color:#8a1c1c;padding:8px 12px;border-radius:6px;font-weight:600}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{padding:4px 6px;border-bottom:1px solid #e6e8ec;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}th{color:#5b6475;font-weight:600}
svg{width:100%;height:auto;display:block}svg text{font:15px system-ui,sans-serif;fill:#1d2433}
.none{color:#5b6475}
";

pub(super) fn page(r: &Report) -> String {
    let mut out = String::new();
    out.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    out.push_str("<title>embudo: the funnel</title><style>");
    out.push_str(STYLE);
    out.push_str("</style></head><body><main>\n<h1>The funnel</h1>\n");
    out.push_str(&format!(
        "<p class=\"meta\">at {} · period {} to {}{}</p>\n",
        esc(&r.at),
        esc(r.from.as_deref().unwrap_or("the start")),
        esc(&r.to),
        r.by.as_ref()
            .map(|b| format!(" · segments by {}", esc(b)))
            .unwrap_or_default()
    ));
    if r.paused {
        out.push_str("<p class=\"alert\" id=\"paused\">Sending is paused: nothing leaves until <code>embudo resume</code>.</p>\n");
    }
    for c in &r.paused_campaigns {
        out.push_str(&format!(
            "<p class=\"alert\">Campaign <code>{}</code> is paused.</p>\n",
            esc(c)
        ));
    }
    funnel(r, &mut out);
    stages(r, &mut out);
    templates(r, &mut out);
    conversions(r, &mut out);
    windows(r, &mut out);
    held(r, &mut out);
    firings(r, &mut out);
    out.push_str("</main></body></html>\n");
    out
}

/// The funnel as centred bars, one a stage, as wide as the leads that reached it.
fn funnel(r: &Report, out: &mut String) {
    out.push_str("<section id=\"funnel\"><h2>Leads per stage</h2>\n");
    let max = r
        .stages
        .iter()
        .map(|s| s.reached.max(s.leads))
        .max()
        .unwrap_or(0)
        .max(1);
    let (w, row) = (600.0, 46.0);
    let h = row * r.stages.len() as f64 + 4.0;
    out.push_str(&format!(
        "<svg viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"leads per stage\">"
    ));
    for (i, s) in r.stages.iter().enumerate() {
        let y = i as f64 * row + 2.0;
        let width = (w - 20.0) * s.reached.max(s.leads) as f64 / max as f64;
        let x = (w - width) / 2.0;
        out.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{:.1}\" rx=\"4\" fill=\"#3b6fd8\" opacity=\"{:.2}\"/>",
            row - 8.0,
            1.0 - 0.15 * i as f64
        ));
        let next = match (s.to_next, s.conversion_pct) {
            (Some(_), Some(p)) => format!(" · {p:.1}% to next"),
            _ => String::new(),
        };
        out.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" class=\"stage\" style=\"fill:#fff;font-weight:600;font-size:17px\">{}: {} now · {} reached{}</text>",
            w / 2.0,
            y + row / 2.0,
            esc(&s.stage),
            s.leads,
            s.reached,
            next
        ));
    }
    out.push_str("</svg></section>\n");
}

fn stages(r: &Report, out: &mut String) {
    out.push_str(
        "<section id=\"stages\"><h2>Conversion and time in stage</h2><div class=\"scroll\"><table>",
    );
    out.push_str("<tr><th>stage</th><th>now</th><th>reached</th><th>to next</th><th>stays ended</th><th>mean</th><th>median</th><th>p90</th><th>in it so far</th></tr>");
    for s in &r.stages {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.stage),
            s.leads,
            s.reached,
            s.to_next.map_or("–".into(), |n| format!("{n} ({})", pct(s.conversion_pct))),
            s.finished_stays,
            or_dash(&s.mean_stay),
            or_dash(&s.median_stay),
            or_dash(&s.p90_stay),
            or_dash(&s.mean_time_so_far)
        ));
    }
    out.push_str("</table></div>");
    out.push_str("<h2 style=\"margin-top:.8em\">Moves back to an earlier stage</h2>");
    if r.regressions.is_empty() {
        out.push_str("<p class=\"none\">None in the period.</p>");
    } else {
        out.push_str(
            "<div class=\"scroll\"><table><tr><th>from → to</th><th>by</th><th>moves</th></tr>",
        );
        for g in &r.regressions {
            out.push_str(&format!(
                "<tr><td>{} → {}</td><td>{}</td><td>{}</td></tr>",
                esc(&g.from),
                esc(&g.to),
                esc(&g.by),
                g.moves
            ));
        }
        out.push_str("</table></div>");
    }
    out.push_str("</section>\n");
}

/// A bar of `p` per cent, 100 px wide at 100 %.
fn rate_bar(p: Option<f64>) -> String {
    let v = p.unwrap_or(0.0).clamp(0.0, 100.0);
    format!(
        "<svg viewBox=\"0 0 100 8\" style=\"width:60px;display:inline-block;vertical-align:middle\"><rect width=\"100\" height=\"8\" fill=\"#e6e8ec\"/><rect width=\"{v:.1}\" height=\"8\" fill=\"#2f9e6e\"/></svg> {}",
        pct(p)
    )
}

fn templates(r: &Report, out: &mut String) {
    out.push_str(&format!(
        "<section id=\"templates\"><h2>Emails by template</h2><p class=\"meta\">Moved on: recipients who reached a later stage within {} after it.</p>",
        esc(&r.moved_within)
    ));
    if r.templates.is_empty() {
        out.push_str("<p class=\"none\">No email yet.</p></section>\n");
        return;
    }
    out.push_str("<div class=\"scroll\"><table><tr><th>template</th><th>sent</th><th>bounced</th><th>opened</th><th>clicked</th><th>unsubscribed</th><th>moved on</th></tr>");
    for t in &r.templates {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td><td>{} {}</td><td>{}</td><td>{} {}</td></tr>",
            esc(&t.template),
            t.sent,
            t.bounced,
            t.opened,
            rate_bar(t.opened_pct),
            t.clicked,
            rate_bar(t.clicked_pct),
            t.unsubscribed,
            t.moved_on,
            rate_bar(t.moved_on_pct)
        ));
    }
    out.push_str("</table></div></section>\n");
}

fn conversions(r: &Report, out: &mut String) {
    out.push_str("<section id=\"conversions\"><h2>Conversions</h2>");
    if r.conversions.is_empty() {
        out.push_str("<p class=\"none\">None named: list them under <code>reports.conversions</code> in embudo.yaml.</p></section>\n");
        return;
    }
    out.push_str("<div class=\"scroll\"><table><tr><th>conversion</th><th>segment</th><th>started</th><th>converted</th><th>rate</th><th>median time</th></tr>");
    for c in &r.conversions {
        for f in std::iter::once(&c.all).chain(&c.segments) {
            out.push_str(&format!(
                "<tr><td>{} <span class=\"meta\">{} → {} within {}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.name),
                esc(&c.from),
                esc(&c.to),
                esc(&c.within),
                esc(&f.segment),
                f.started,
                f.converted,
                rate_bar(f.rate_pct),
                or_dash(&f.median_delay)
            ));
        }
    }
    out.push_str("</table></div></section>\n");
}

/// Twelve columns, peak months darker, the count above each.
fn month_chart(s: &Windows) -> String {
    let max = s.months.iter().map(|m| m.count).max().unwrap_or(0).max(1);
    let (w, h, col) = (600.0, 140.0, 50.0);
    let mut svg = format!(
        "<svg viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{} per month, {}\">",
        "events",
        esc(&s.segment)
    );
    for (i, m) in s.months.iter().enumerate() {
        let bar = (h - 40.0) * m.count as f64 / max as f64;
        let x = i as f64 * col + 6.0;
        let peak = s.peak_months.contains(&m.month);
        svg.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bar:.1}\" fill=\"{}\"/>",
            h - 20.0 - bar,
            col - 12.0,
            if peak { "#d9822b" } else { "#9db4e8" }
        ));
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            x + (col - 12.0) / 2.0,
            h - 24.0 - bar,
            m.count,
            x + (col - 12.0) / 2.0,
            h - 5.0,
            m.month
        ));
    }
    svg.push_str("</svg>");
    svg
}

fn windows(r: &Report, out: &mut String) {
    let w = &r.buying_windows;
    out.push_str(&format!(
        "<section id=\"windows\"><h2>Buying windows</h2><p class=\"meta\"><code>{}</code> events per month ({}); peak months (≥ 1.5 × the monthly mean) in orange.</p>",
        esc(&w.kind),
        esc(&w.timezone)
    ));
    for s in &w.segments {
        let peaks = if s.peak_months.is_empty() {
            "no peak".to_string()
        } else {
            format!("peaks: {}", s.peak_months.join(", "))
        };
        out.push_str(&format!(
            "<h3 style=\"font-size:1em;margin:.6em 0 .2em\">{}: {} · {}</h3>{}",
            esc(&s.segment),
            s.total,
            esc(&peaks),
            month_chart(s)
        ));
    }
    out.push_str("</section>\n");
}

fn held(r: &Report, out: &mut String) {
    out.push_str("<section id=\"held\"><h2>Held back by the sending policy</h2>");
    if r.held.is_empty() {
        out.push_str("<p class=\"none\">Nothing.</p>");
    } else {
        out.push_str("<div class=\"scroll\"><table><tr><th>reason</th><th>emails</th><th>first release</th></tr>");
        for h in &r.held {
            out.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(if h.reason.is_empty() {
                    "(none given)"
                } else {
                    &h.reason
                }),
                h.emails,
                esc(&h.earliest_release)
            ));
        }
        out.push_str("</table></div>");
    }
    out.push_str("</section>\n");
}

fn firings(r: &Report, out: &mut String) {
    out.push_str("<section id=\"firings\"><h2>Next campaign firings</h2>");
    if r.next_firings.is_empty() {
        out.push_str("<p class=\"none\">None scheduled.</p>");
    } else {
        out.push_str(
            "<div class=\"scroll\"><table><tr><th>campaign</th><th>when</th><th></th></tr>",
        );
        for f in &r.next_firings {
            out.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&f.campaign),
                esc(&f.local),
                if f.paused { "paused" } else { "" }
            ));
        }
        out.push_str("</table></div>");
    }
    out.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    #[test]
    fn text_is_escaped() {
        assert_eq!(
            super::esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
