//! The report as one CSV table, a figure a row (`section,item,segment,measure,value`),
//! so a spreadsheet or a script can pick any figure without knowing the layout.

use super::Report;

type Put<'a> = dyn FnMut(&str, &str, &str, &str, String) + 'a;

fn opt(v: Option<String>) -> String {
    v.unwrap_or_default()
}

fn num(v: Option<i64>) -> String {
    v.map(|n| n.to_string()).unwrap_or_default()
}

fn pct(v: Option<f64>) -> String {
    v.map(|n| format!("{n:.1}")).unwrap_or_default()
}

pub(super) fn render(r: &Report) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    {
        let mut put = |section: &str, item: &str, segment: &str, measure: &str, value: String| {
            w.write_record([section, item, segment, measure, &value])
                .expect("in memory");
        };
        put("section", "item", "segment", "measure", "value".into());
        stages(r, &mut put);
        templates(r, &mut put);
        the_rest(r, &mut put);
    }
    String::from_utf8(w.into_inner().expect("in memory")).expect("utf-8 in, utf-8 out")
}

fn stages(r: &Report, put: &mut Put) {
    put("period", "", "", "from", opt(r.from.clone()));
    put("period", "", "", "to", r.to.clone());
    for s in &r.stages {
        let i = s.stage.as_str();
        put("stage", i, "", "leads", s.leads.to_string());
        put("stage", i, "", "reached", s.reached.to_string());
        put("stage", i, "", "to_next", num(s.to_next));
        put("stage", i, "", "conversion_pct", pct(s.conversion_pct));
        put(
            "stage",
            i,
            "",
            "finished_stays",
            s.finished_stays.to_string(),
        );
        put("stage", i, "", "mean_stay", opt(s.mean_stay.clone()));
        put("stage", i, "", "median_stay", opt(s.median_stay.clone()));
        put("stage", i, "", "p90_stay", opt(s.p90_stay.clone()));
        put(
            "stage",
            i,
            "",
            "mean_time_so_far",
            opt(s.mean_time_so_far.clone()),
        );
    }
    for g in &r.regressions {
        let item = format!("{}→{}", g.from, g.to);
        put("regression", &item, &g.by, "moves", g.moves.to_string());
    }
}

fn templates(r: &Report, put: &mut Put) {
    for t in &r.templates {
        let i = t.template.as_str();
        for (m, v) in [
            ("sent", t.sent),
            ("bounced", t.bounced),
            ("opened", t.opened),
            ("clicked", t.clicked),
            ("unsubscribed", t.unsubscribed),
            ("moved_on", t.moved_on),
        ] {
            put("template", i, "", m, v.to_string());
        }
        put("template", i, "", "opened_pct", pct(t.opened_pct));
        put("template", i, "", "clicked_pct", pct(t.clicked_pct));
        put("template", i, "", "moved_on_pct", pct(t.moved_on_pct));
        for (state, n) in &t.states {
            put("template", i, "", &format!("state:{state}"), n.to_string());
        }
    }
}

/// Conversions, buying windows, what is held and the next firings.
fn the_rest(r: &Report, put: &mut Put) {
    for c in &r.conversions {
        for f in std::iter::once(&c.all).chain(&c.segments) {
            let seg = f.segment.as_str();
            put("conversion", &c.name, seg, "started", f.started.to_string());
            put(
                "conversion",
                &c.name,
                seg,
                "converted",
                f.converted.to_string(),
            );
            put("conversion", &c.name, seg, "rate_pct", pct(f.rate_pct));
            put(
                "conversion",
                &c.name,
                seg,
                "median_delay",
                opt(f.median_delay.clone()),
            );
        }
    }
    for s in &r.buying_windows.segments {
        for m in &s.months {
            put("month", &m.month, &s.segment, "count", m.count.to_string());
        }
        for (i, n) in s.weeks.iter().enumerate().filter(|(_, n)| **n > 0) {
            put(
                "week",
                &(i + 1).to_string(),
                &s.segment,
                "count",
                n.to_string(),
            );
        }
        put(
            "peak_months",
            "",
            &s.segment,
            "months",
            s.peak_months.join(" "),
        );
    }
    for h in &r.held {
        put("held", &h.reason, "", "emails", h.emails.to_string());
        put(
            "held",
            &h.reason,
            "",
            "earliest_release",
            h.earliest_release.clone(),
        );
    }
    for f in &r.next_firings {
        put("firing", &f.campaign, "", "at", f.at.clone());
    }
}
