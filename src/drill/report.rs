//! A drill's history as one self-contained HTML page (CONTRACT section 7): the summary, a chart
//! of RTO and RPO per drill against the targets (inline SVG), and the table below it. Nothing
//! is loaded from elsewhere: no script at all, the style inline, and a Content-Security-Policy
//! that forbids any fetch. Every value is escaped. Pure.

use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::{EvidenceRecord, Summary, Verdict, human_duration};

/// The page's Content-Security-Policy (also sent as a header): nothing from anywhere, the
/// inline style excepted.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'";

const STYLE: &str = r#"
:root{color-scheme:light;--ok:#1b7a3a;--miss:#a35c00;--bad:#b3261e;--ink:#1c1f24;--muted:#5b6270;--line:#d9dde3}
*{box-sizing:border-box}
body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);background:#fff}
main{max-width:1200px;margin:0 auto;padding:16px}
h1{font-size:1.35rem;margin:0 0 4px;overflow-wrap:anywhere}
h2{font-size:1.05rem;margin:20px 0 8px}
.meta{color:var(--muted);font-size:.9rem;margin:0}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:8px;margin:14px 0}
.tile{border:1px solid var(--line);border-radius:8px;padding:8px 10px}
.tile b{display:block;font-size:1.2rem}
.tile span{color:var(--muted);font-size:.85rem}
.charts{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0;flex:1 1 340px;max-width:560px}
figcaption{font-weight:600;margin-bottom:4px}
svg{width:100%;height:auto;display:block}
svg text{font-family:inherit;fill:var(--muted)}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:.85rem;color:var(--muted);margin:8px 0 0;padding:0;list-style:none}
.key{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-1px;margin-right:4px}
.scroll{overflow-x:auto;border:1px solid var(--line);border-radius:8px}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid var(--line);vertical-align:top;white-space:nowrap}
td.wrap{white-space:normal;min-width:20em;overflow-wrap:anywhere}
td.route{white-space:normal;min-width:14em;max-width:22em;overflow-wrap:anywhere}
.hint{color:var(--muted);font-size:.85rem;margin:0 0 6px}
th{background:#f4f6f8;position:sticky;top:0}
tr:last-child td{border-bottom:0}
.v{font-weight:600}
.v-PASSED{color:var(--ok)}.v-MISSED_TARGET{color:var(--miss)}
.v-BROKEN,.v-STALLED,.v-FAILED,.v-REJECTED,.v-UNKNOWN{color:var(--bad)}
.over{color:var(--miss);font-weight:600}
footer{color:var(--muted);font-size:.8rem;margin-top:16px}
svg .value{fill:var(--ink);font-weight:600}
@media (max-width:640px){
main{padding:12px}
.scroll{overflow:visible;border:0}
.hint{display:none}
table,tbody,tr,td{display:block;width:100%}
thead{display:none}
tr.drill{border:1px solid var(--line);border-radius:8px;margin:0 0 10px;padding:6px 0}
td,td.wrap,td.route{white-space:normal;border:0;padding:3px 12px;min-width:0;max-width:none;display:grid;grid-template-columns:8.5em 1fr;gap:8px;overflow-wrap:anywhere}
td::before{content:attr(data-label);color:var(--muted);font-weight:400}
}
"#;

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
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

/// The page for drill `name`: `records` newest first (as served), `summary` over them.
pub fn render(
    name: &str,
    records: &[EvidenceRecord],
    summary: &Summary,
    now: DateTime<Utc>,
) -> String {
    let mut page = String::with_capacity(16 * 1024 + records.len() * 1024);
    let title = format!("Drill {name}: recovery evidence");
    let _ = write!(
        page,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{title}</title><style>{STYLE}</style></head><body><main>\
         <h1>{title}</h1><p class=\"meta\">{count} drill(s), newest first · generated {now} UTC</p>",
        csp = escape(CONTENT_SECURITY_POLICY),
        title = escape(&title),
        count = records.len(),
        now = now.format("%Y-%m-%d %H:%M"),
    );
    page.push_str(&tiles(summary));
    if records.is_empty() {
        page.push_str("<p>No drill of this name has left evidence yet.</p>");
    } else {
        // The chart reads left to right, oldest to newest.
        let oldest_first: Vec<&EvidenceRecord> = records.iter().rev().collect();
        page.push_str("<h2>RTO and RPO per drill, against the targets</h2><div class=\"charts\">");
        page.push_str(&chart(&oldest_first, Panel::Rto));
        page.push_str(&chart(&oldest_first, Panel::Rpo));
        page.push_str("</div>");
        page.push_str(LEGEND);
        page.push_str(&table(records));
    }
    page.push_str(
        "<footer>RTO: from the submission to Atlas to the end seen (the final outcome's \
         durationSeconds). RPO: from the restore point to the submission, the data a disaster \
         at that moment would have lost. Times in UTC.</footer></main></body></html>\n",
    );
    page
}

const LEGEND: &str = "<ul class=\"legend\">\
<li><span class=\"key\" style=\"background:var(--ok)\"></span>passed</li>\
<li><span class=\"key\" style=\"background:var(--miss)\"></span>missed a target</li>\
<li><span class=\"key\" style=\"background:var(--bad)\"></span>broken, stalled, failed or unknown</li>\
<li><span class=\"key\" style=\"background:none;border-top:2px dashed var(--ink);height:0;border-radius:0\"></span>target</li>\
<li>× no figure</li></ul>";

fn tiles(summary: &Summary) -> String {
    let seconds = |v: Option<u64>| v.map_or_else(|| "–".to_owned(), human_duration);
    let rate = summary
        .pass_rate
        .map_or_else(|| "–".to_owned(), |r| format!("{:.0} %", r * 100.0));
    let last = summary.last_passed_at.as_deref().map_or_else(
        || "never".to_owned(),
        |at| at.get(..16).unwrap_or(at).replace('T', " "),
    );
    let tiles = [
        (
            format!("{} of {}", summary.passed, summary.count),
            format!("passed ({rate})"),
        ),
        (seconds(summary.rto_seconds_median), "RTO median".to_owned()),
        (seconds(summary.rto_seconds_p90), "RTO p90".to_owned()),
        (seconds(summary.rto_seconds_max), "RTO max".to_owned()),
        (seconds(summary.rpo_seconds_max), "RPO max".to_owned()),
        (last, "last passed (UTC)".to_owned()),
    ];
    let mut out = String::from("<div class=\"tiles\">");
    for (value, label) in tiles {
        let _ = write!(
            out,
            "<div class=\"tile\"><b>{}</b><span>{}</span></div>",
            escape(&value),
            escape(&label)
        );
    }
    out.push_str("</div>");
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Panel {
    Rto,
    Rpo,
}

impl Panel {
    fn value(self, r: &EvidenceRecord) -> Option<u64> {
        match self {
            Panel::Rto => r.rto_seconds,
            Panel::Rpo => r.rpo_seconds,
        }
    }

    fn target_seconds(self, r: &EvidenceRecord) -> Option<u64> {
        let minutes = match self {
            Panel::Rto => r.rto_target_minutes,
            Panel::Rpo => r.rpo_target_minutes,
        };
        minutes.map(|m| u64::from(m) * 60)
    }

    fn name(self) -> &'static str {
        match self {
            Panel::Rto => "rto",
            Panel::Rpo => "rpo",
        }
    }

    fn caption(self) -> &'static str {
        match self {
            Panel::Rto => "RTO: time to recover",
            Panel::Rpo => "RPO: data that would be lost",
        }
    }
}

// The chart's drawing box (SVG user units): the plot between the margins.
const WIDTH: f64 = 400.0;
const HEIGHT: f64 = 230.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 30.0;

fn colour(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Passed => "var(--ok)",
        Verdict::MissedTarget => "var(--miss)",
        _ => "var(--bad)",
    }
}

/// One panel: a bar per drill (a × at the base when it has no figure), each drill's target as
/// a dashed line across its slot, the scale on the left and the dates below.
fn chart(records: &[&EvidenceRecord], panel: Panel) -> String {
    let top = records
        .iter()
        .flat_map(|r| [panel.value(r), panel.target_seconds(r)])
        .flatten()
        .max()
        .unwrap_or(60)
        .max(60) as f64
        * 1.1;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / records.len() as f64;
    let bar = (slot * 0.6).min(36.0);
    let y = |seconds: f64| TOP + plot_h - seconds / top * plot_h;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<figure class=\"chart-{name}\"><figcaption>{caption}</figcaption>\
         <svg class=\"chart\" data-panel=\"{name}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-label=\"{caption}, per drill, oldest on the left\" font-size=\"13\">",
        name = panel.name(),
        caption = escape(panel.caption()),
    );
    for fraction in [0.0, 0.5, 1.0] {
        let seconds = top / 1.1 * fraction;
        let at = y(seconds);
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{x2:.1}\" y1=\"{at:.1}\" y2=\"{at:.1}\" stroke=\"#d9dde3\"/>\
             <text x=\"{lx:.1}\" y=\"{ty:.1}\" text-anchor=\"end\">{label}</text>",
            x2 = WIDTH - RIGHT,
            lx = LEFT - 6.0,
            ty = at + 4.0,
            label = escape(&human_duration(seconds.round() as u64)),
        );
    }
    let label_every = records.len().div_ceil(6).max(1);
    let labels = x_labels(records);
    for (i, record) in records.iter().enumerate() {
        let centre = LEFT + slot * (i as f64 + 0.5);
        svg.push_str(&mark(record, panel, centre, bar, slot, &y));
        if i % label_every == 0 {
            let _ = write!(
                svg,
                "<text x=\"{centre:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\">{}</text>",
                escape(&labels[i]),
                ty = HEIGHT - 10.0,
            );
        }
    }
    svg.push_str("</svg></figure>");
    svg
}

/// The label under each drill: its day (`12-02`), or its day and time, or its time to the
/// second, whichever first tells the drills apart.
fn x_labels(records: &[&EvidenceRecord]) -> Vec<String> {
    let formats: [(usize, usize, bool); 3] = [(5, 10, false), (5, 16, true), (11, 19, false)];
    let label = |r: &EvidenceRecord, (from, to, t): (usize, usize, bool)| {
        let text = r.started_at.get(from..to).unwrap_or("");
        if t {
            text.replace('T', " ")
        } else {
            text.to_owned()
        }
    };
    for format in formats {
        let labels: Vec<String> = records.iter().map(|r| label(r, format)).collect();
        let mut distinct = labels.clone();
        distinct.sort();
        distinct.dedup();
        if distinct.len() == labels.len() {
            return labels;
        }
    }
    records.iter().map(|r| label(r, formats[2])).collect()
}

/// One drill's mark: `<g class="mark">` with its tooltip, its bar or ×, and its target.
fn mark(
    record: &EvidenceRecord,
    panel: Panel,
    centre: f64,
    bar: f64,
    slot: f64,
    y: &dyn Fn(f64) -> f64,
) -> String {
    let base = y(0.0);
    let value = panel.value(record);
    let target = panel.target_seconds(record);
    let tip = format!(
        "{} {}: {} {} (target {})",
        record
            .started_at
            .get(..16)
            .unwrap_or(&record.started_at)
            .replace('T', " "),
        record.verdict,
        panel.name().to_uppercase(),
        value.map_or_else(|| "not measured".to_owned(), human_duration),
        target.map_or_else(|| "none".to_owned(), human_duration),
    );
    let mut g = format!(
        "<g class=\"mark\" data-started-at=\"{}\" data-verdict=\"{}\"><title>{}</title>",
        escape(&record.started_at),
        record.verdict,
        escape(&tip)
    );
    match value {
        Some(seconds) => {
            let top = y(seconds as f64).min(base - 1.5);
            let _ = write!(
                g,
                "<rect x=\"{x:.1}\" y=\"{top:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\" rx=\"2\" fill=\"{c}\"/>",
                x = centre - bar / 2.0,
                h = base - top,
                c = colour(record.verdict),
            );
            // The figure itself above its bar, where the slot is wide enough to read it.
            if slot >= 44.0 {
                let _ = write!(
                    g,
                    "<text class=\"value\" x=\"{centre:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\" font-size=\"11\">{}</text>",
                    escape(&human_duration(seconds)),
                    ty = top - 4.0,
                );
            }
        }
        None => {
            let _ = write!(
                g,
                "<text x=\"{centre:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\" font-size=\"14\" style=\"fill:{c}\">×</text>",
                ty = base - 3.0,
                c = colour(record.verdict),
            );
        }
    }
    if let Some(target) = target {
        let at = y(target as f64);
        let half = (slot * 0.45).min(bar / 2.0 + 8.0);
        let _ = write!(
            g,
            "<line class=\"target\" x1=\"{x1:.1}\" x2=\"{x2:.1}\" y1=\"{at:.1}\" y2=\"{at:.1}\" stroke=\"#1c1f24\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\"/>",
            x1 = centre - half,
            x2 = centre + half,
        );
    }
    g.push_str("</g>");
    g
}

fn table(records: &[EvidenceRecord]) -> String {
    let mut out = String::from(
        "<h2>Drills</h2><p class=\"hint\">The table scrolls sideways when it is wider than the window: the request, the people, the Atlas jobs and the reason follow the restore point.</p><div class=\"scroll\"><table><thead><tr>\
         <th>Started (UTC)</th><th>Verdict</th><th>RTO / target</th><th>RPO / target</th>\
         <th>Restore point (UTC)</th><th>Source → target</th><th>Request</th>\
         <th>Requested by</th><th>Approved by</th><th>Atlas jobs</th><th>Reason</th>\
         </tr></thead><tbody>",
    );
    for r in records {
        let missed = |m: super::Missed| r.missed.contains(&m);
        let _ = write!(
            out,
            "<tr class=\"drill\" data-started-at=\"{started}\"><td data-label=\"Started (UTC)\">{started_h}</td>\
             <td data-label=\"Verdict\" class=\"v v-{verdict}\">{verdict_h}</td><td data-label=\"RTO / target\">{rto}</td>\
             <td data-label=\"RPO / target\">{rpo}</td><td data-label=\"Restore point\">{point}</td>\
             <td data-label=\"Source → target\" class=\"route\">{route}</td><td data-label=\"Request\">{request}</td>\
             <td data-label=\"Requested by\">{by}</td><td data-label=\"Approved by\">{approved}</td>\
             <td data-label=\"Atlas jobs\">{jobs}</td><td data-label=\"Reason\" class=\"wrap\">{reason}</td></tr>",
            started = escape(&r.started_at),
            started_h = escape(&short_time(&r.started_at)),
            verdict = r.verdict,
            verdict_h = escape(&verdict_text(r)),
            rto = figure(
                r.rto_seconds,
                r.rto_target_minutes,
                missed(super::Missed::Rto)
            ),
            rpo = figure(
                r.rpo_seconds,
                r.rpo_target_minutes,
                missed(super::Missed::Rpo)
            ),
            point = escape(&r.restore_point_time.map_or_else(
                || "–".to_owned(),
                |t| t.format("%Y-%m-%d %H:%M:%S").to_string()
            )),
            route = escape(&r.source_to_target()),
            request = escape(r.request_id.as_deref().unwrap_or("–")),
            by = escape(r.requested_by.as_deref().unwrap_or("–")),
            approved = escape(r.approved_by.as_deref().unwrap_or("–")),
            jobs = escape(&r.atlas_job_ids.join(" ")),
            reason = escape(r.reason.as_deref().unwrap_or("")),
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

fn short_time(started_at: &str) -> String {
    started_at.get(..19).unwrap_or(started_at).replace('T', " ")
}

fn verdict_text(r: &EvidenceRecord) -> String {
    if r.missed.is_empty() {
        r.verdict.to_string()
    } else {
        let missed: Vec<&str> = r
            .missed
            .iter()
            .map(|m| match m {
                super::Missed::Rto => "RTO",
                super::Missed::Rpo => "RPO",
            })
            .collect();
        format!("{} ({})", r.verdict, missed.join(", "))
    }
}

/// A figure and its target: `42 min / 2 h`, the figure marked when it missed.
fn figure(seconds: Option<u64>, target_minutes: Option<u32>, missed: bool) -> String {
    let value = escape(&seconds.map_or_else(|| "–".to_owned(), human_duration));
    let value = if missed {
        format!("<span class=\"over\">{value}</span>")
    } else {
        value
    };
    // One element, so the phone layout keeps the figure and its target on one line.
    match target_minutes {
        Some(m) => format!(
            "<span>{value} <span class=\"meta\">/ {}</span></span>",
            escape(&human_duration(u64::from(m) * 60))
        ),
        None => format!("<span>{value}</span>"),
    }
}
