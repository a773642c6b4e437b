//! `index.html`: the pack as one self-contained page for people. Inline CSS and SVG only:
//! no script, no font, no image, no request of any kind, so it opens from a `file://` URL
//! (or an auditor's archive) and prints on A4 or Letter.

use std::collections::BTreeMap;
use std::fmt::Write;

use envelope_audit::rfc3339_millis;

use super::findings::{Finding, Status};
use super::{Facts, data_by_version, versions_in_order};
use crate::key_description::state_name;

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
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

const CSS: &str = r#"
:root { --pass: #1a7f37; --fail: #cf222e; --na: #6e7781; --ink: #1f2328; --rule: #d0d7de; --bg: #f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: var(--ink); margin: 0 auto; max-width: 1100px; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid var(--rule); padding-bottom: 4px; }
.meta { color: var(--na); margin: 0 0 12px; }
.badges span { display: inline-block; padding: 4px 10px; border-radius: 12px; color: #fff; margin-right: 6px; font-weight: 600; }
.PASS { background: var(--pass); } .FAIL { background: var(--fail); } .NA { background: var(--na); }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; }
th, td { text-align: left; vertical-align: top; padding: 5px 8px; border-bottom: 1px solid var(--rule); }
th { background: var(--bg); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.status { color: #fff; font-weight: 700; border-radius: 4px; padding: 1px 6px; white-space: nowrap; }
tr.fail td { background: #ffebe9; }
.refs { color: var(--na); font-size: 12px; }
ul.evidence { margin: 4px 0 0 18px; padding: 0; font-size: 12px; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; word-break: break-all; }
svg { max-width: 100%; height: auto; }
svg text { font: 11px system-ui, sans-serif; fill: var(--ink); }
.legend span { display: inline-block; margin-right: 12px; font-size: 12px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; vertical-align: middle; }
@media print { body { max-width: none; padding: 0; font-size: 11px; } h2 { break-after: avoid; } table, svg { break-inside: avoid; } tr.fail td { -webkit-print-color-adjust: exact; print-color-adjust: exact; } .status, .badges span { -webkit-print-color-adjust: exact; print-color-adjust: exact; } }
"#;

fn status_class(s: Status) -> &'static str {
    match s {
        Status::Pass => "PASS",
        Status::Fail => "FAIL",
        Status::NotApplicable => "NA",
    }
}

/// The page.
pub fn page(facts: &Facts, findings: &[Finding]) -> String {
    let mut h = String::new();
    let count = |s: Status| findings.iter().filter(|f| f.status == s).count();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Encryption evidence {} to {}</title><style>{CSS}</style></head><body>\n",
        esc(&rfc3339_millis(facts.window.0)[..10]),
        esc(&rfc3339_millis(facts.window.1)[..10])
    );
    let _ = write!(
        h,
        "<h1>Encryption evidence</h1><p class=\"meta\">Window {} to {} · generated {} by envelope {} · policy {}</p>\
         <p class=\"badges\"><span class=\"PASS\">{} PASS</span><span class=\"FAIL\">{} FAIL</span><span class=\"NA\">{} N/A</span></p>",
        esc(&rfc3339_millis(facts.window.0)),
        esc(&rfc3339_millis(facts.window.1)),
        esc(&rfc3339_millis(facts.generated_at)),
        env!("CARGO_PKG_VERSION"),
        esc(&facts
            .policy_file
            .as_ref()
            .map_or("defaults".to_owned(), |p| p.display().to_string())),
        count(Status::Pass),
        count(Status::Fail),
        count(Status::NotApplicable),
    );
    findings_table(&mut h, findings);
    keys_section(&mut h, facts);
    data_chart(&mut h, facts);
    timeline(&mut h, facts);
    key_use_chart(&mut h, facts);
    stores_section(&mut h, facts);
    jobs_section(&mut h, facts);
    log_section(&mut h, facts);
    h.push_str("<p class=\"meta\">Every file of this pack is listed with its SHA-256 in manifest.json, signed with the key-use log's checkpoint key when the pack was made with --sign-with.</p>\n</body></html>\n");
    h
}

fn findings_table(h: &mut String, findings: &[Finding]) {
    h.push_str("<h2 id=\"findings\">Findings</h2><table><thead><tr><th>Status</th><th>Check</th><th>Detail</th><th>SOC 2 / HIPAA</th></tr></thead><tbody>\n");
    for f in findings {
        let _ = write!(
            h,
            "<tr class=\"{}\" data-finding=\"{}\"><td><span class=\"status {}\">{}</span></td><td><strong>{}</strong><br><code>{}</code></td><td>{}",
            if f.status == Status::Fail { "fail" } else { "" },
            esc(f.id),
            status_class(f.status),
            f.status.as_str(),
            esc(f.title),
            esc(f.id),
            esc(&f.detail)
        );
        if f.evidence.len() > 1 {
            h.push_str("<ul class=\"evidence\">");
            for e in f.evidence.iter().take(12) {
                let _ = write!(h, "<li>{}</li>", esc(e));
            }
            if f.evidence.len() > 12 {
                let _ = write!(
                    h,
                    "<li>… {} more in evidence.json</li>",
                    f.evidence.len() - 12
                );
            }
            h.push_str("</ul>");
        }
        let _ = writeln!(
            h,
            "</td><td class=\"refs\">{}<br>{}</td></tr>",
            esc(&f.soc2.join(", ")),
            esc(&f.hipaa.join(", "))
        );
    }
    h.push_str("</tbody></table>\n");
}

fn keys_section(h: &mut String, facts: &Facts) {
    h.push_str("<h2 id=\"keys\">Key inventory</h2>\n");
    if facts.keys.is_empty() {
        h.push_str("<p class=\"meta\">No key was named (--key).</p>\n");
        return;
    }
    h.push_str("<table><thead><tr><th>Key</th><th>Owner</th><th>Current</th><th>Versions</th><th>Rotation</th></tr></thead><tbody>\n");
    for k in &facts.keys {
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td>",
            esc(&k.uri),
            esc(k.owner.as_deref().unwrap_or("—"))
        );
        match &k.description {
            Err(e) => {
                let _ = writeln!(h, "<td colspan=\"3\">cannot describe: {}</td></tr>", esc(e));
            }
            Ok(d) => {
                let versions: Vec<String> = d
                    .versions
                    .iter()
                    .map(|v| {
                        format!(
                            "{} {}{}",
                            esc(&v.version),
                            esc(&state_name(&v.state)),
                            v.created_at
                                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                                .map(|t| format!(
                                    " ({})",
                                    &rfc3339_millis(t.as_millis() as u64)[..10]
                                ))
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                let rotation = if d.rotation.automatic {
                    format!(
                        "every {} days",
                        d.rotation.period.map_or(0, |p| p.as_secs() / 86_400)
                    )
                } else {
                    "manual".to_owned()
                };
                let _ = writeln!(
                    h,
                    "<td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(d.current_version.as_deref().unwrap_or("?")),
                    versions.join("<br>"),
                    esc(&rotation)
                );
            }
        }
    }
    h.push_str("</tbody></table>\n");
}

/// Stored values per key version: one horizontal bar each, green for the current version,
/// amber for older ones, red for disabled or destroyed ones.
fn data_chart(h: &mut String, facts: &Facts) {
    h.push_str("<h2 id=\"data\">Data per key version</h2>\n");
    let data = data_by_version(facts);
    if data.is_empty() {
        h.push_str("<p class=\"meta\">No store was named.</p>\n");
        return;
    }
    let max = data.values().copied().max().unwrap_or(1).max(1);
    let row = 26;
    let height = data.len() * row + 10;
    let _ = write!(
        h,
        "<svg role=\"img\" aria-label=\"Stored values per key version\" viewBox=\"0 0 900 {height}\" width=\"900\" height=\"{height}\">"
    );
    for (i, ((provider, key, version), count)) in data.iter().enumerate() {
        let color = match version_status(facts, provider, key, version) {
            VersionStatus::Current => "#1a7f37",
            VersionStatus::Old => "#bf8700",
            VersionStatus::Retired => "#cf222e",
            VersionStatus::Unknown => "#6e7781",
        };
        let y = i * row + 4;
        let width = (*count as f64 / max as f64 * 560.0).max(2.0);
        let _ = write!(
            h,
            "<text x=\"0\" y=\"{}\">{}</text><rect x=\"250\" y=\"{y}\" width=\"{width:.1}\" height=\"18\" fill=\"{color}\"><title>{}</title></rect><text x=\"{:.1}\" y=\"{}\">{count}</text>",
            y + 13,
            esc(&truncate(&format!("{provider}:{key} v{version}"), 38)),
            esc(&format!(
                "{provider}:{key} version {version}: {count} values"
            )),
            255.0 + width,
            y + 13
        );
    }
    h.push_str("</svg>\n<p class=\"legend\"><span><i style=\"background:#1a7f37\"></i>current version</span><span><i style=\"background:#bf8700\"></i>older version</span><span><i style=\"background:#cf222e\"></i>disabled or destroyed</span><span><i style=\"background:#6e7781\"></i>key not inventoried</span></p>\n");
}

enum VersionStatus {
    Current,
    Old,
    Retired,
    Unknown,
}

fn version_status(facts: &Facts, provider: &str, key: &str, version: &str) -> VersionStatus {
    let Some(d) = facts
        .keys
        .iter()
        .find(|k| k.provider == provider && k.key_id == key)
        .and_then(|k| k.description.as_ref().ok())
    else {
        return VersionStatus::Unknown;
    };
    if d.current_version.as_deref() == Some(version) {
        return VersionStatus::Current;
    }
    match d.versions.iter().find(|v| v.version == version) {
        Some(v)
            if matches!(
                state_name(&v.state).as_str(),
                "disabled" | "destroyed" | "pending_destruction"
            ) =>
        {
            VersionStatus::Retired
        }
        _ => VersionStatus::Old,
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}

/// Each key's versions on a time axis, by creation time, with the window shaded.
fn timeline(h: &mut String, facts: &Facts) {
    h.push_str("<h2 id=\"rotation\">Rotation timeline</h2>\n");
    // (key URI, [(created, version, state)]).
    type Dots = Vec<(u64, String, String)>;
    let mut points: Vec<(String, Dots)> = Vec::new();
    for k in &facts.keys {
        let Ok(d) = &k.description else { continue };
        let order = versions_in_order(d);
        let mut dots = Vec::new();
        for version in order {
            let Some(v) = d.versions.iter().find(|v| v.version == version) else {
                continue;
            };
            if let Some(t) = v
                .created_at
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            {
                dots.push((t.as_millis() as u64, version, state_name(&v.state)));
            }
        }
        if !dots.is_empty() {
            points.push((k.uri.clone(), dots));
        }
    }
    if points.is_empty() {
        h.push_str("<p class=\"meta\">No key reported version creation times.</p>\n");
        return;
    }
    let times = points.iter().flat_map(|(_, d)| d.iter().map(|p| p.0));
    let lo = times.clone().min().unwrap_or(0).min(facts.window.0);
    let hi = times.max().unwrap_or(0).max(facts.window.1).max(lo + 1);
    let x = |t: u64| 250.0 + (t - lo) as f64 / (hi - lo) as f64 * 620.0;
    let row = 34;
    let height = points.len() * row + 30;
    let _ = write!(
        h,
        "<svg role=\"img\" aria-label=\"Key versions over time\" viewBox=\"0 0 900 {height}\" width=\"900\" height=\"{height}\"><rect x=\"{:.1}\" y=\"0\" width=\"{:.1}\" height=\"{}\" fill=\"#ddf4ff\"><title>the evidence window</title></rect>",
        x(facts.window.0),
        (x(facts.window.1) - x(facts.window.0)).max(1.0),
        height - 20
    );
    for (i, (uri, dots)) in points.iter().enumerate() {
        let y = i * row + 18;
        let _ = write!(
            h,
            "<text x=\"0\" y=\"{}\">{}</text><line x1=\"250\" x2=\"870\" y1=\"{y}\" y2=\"{y}\" stroke=\"#d0d7de\"/>",
            y + 4,
            esc(&truncate(uri, 38))
        );
        for (t, version, state) in dots {
            let color = if state == "enabled" {
                "#1a7f37"
            } else {
                "#cf222e"
            };
            let _ = write!(
                h,
                "<circle cx=\"{:.1}\" cy=\"{y}\" r=\"6\" fill=\"{color}\"><title>version {} {} created {}</title></circle><text x=\"{:.1}\" y=\"{}\">v{}</text>",
                x(*t),
                esc(version),
                esc(state),
                esc(&rfc3339_millis(*t)),
                x(*t) - 6.0,
                y - 9,
                esc(version)
            );
        }
    }
    let _ = write!(
        h,
        "<text x=\"250\" y=\"{}\">{}</text><text x=\"800\" y=\"{}\">{}</text></svg>",
        height - 4,
        esc(&rfc3339_millis(lo)[..10]),
        height - 4,
        esc(&rfc3339_millis(hi)[..10])
    );
}

/// KMS calls and cache-served operations per day, from the verified log.
fn key_use_chart(h: &mut String, facts: &Facts) {
    h.push_str("<h2 id=\"key-use\">Key use per day</h2>\n");
    let uses = facts.key_use();
    if uses.is_empty() {
        h.push_str("<p class=\"meta\">No key use in the window (or no log named).</p>\n");
        return;
    }
    let mut days: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for ((.., day), u) in &uses {
        let e = days.entry(day.as_str()).or_default();
        e.0 += u.kms.values().sum::<u64>();
        e.1 += u.cached_encrypts + u.cached_decrypts;
    }
    let max = days
        .values()
        .map(|(k, c)| (*k).max(*c))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let scale = |n: u64| {
        if n == 0 {
            0.0
        } else {
            ((n as f64).ln_1p() / max.ln_1p() * 180.0).max(2.0)
        }
    };
    let width = 60 + days.len() * 70;
    let _ = write!(
        h,
        "<svg role=\"img\" aria-label=\"Key use per day\" viewBox=\"0 0 {width} 240\" width=\"{width}\" height=\"240\">"
    );
    for (i, (day, (kms, cached))) in days.iter().enumerate() {
        let x0 = 40 + i * 70;
        let (hk, hc) = (scale(*kms), scale(*cached));
        let _ = write!(
            h,
            "<rect x=\"{x0}\" y=\"{:.1}\" width=\"24\" height=\"{hk:.1}\" fill=\"#0969da\"><title>{day}: {kms} KMS calls</title></rect>\
             <rect x=\"{}\" y=\"{:.1}\" width=\"24\" height=\"{hc:.1}\" fill=\"#8250df\"><title>{day}: {cached} operations served from the cache</title></rect>\
             <text x=\"{x0}\" y=\"{:.1}\">{kms}</text><text x=\"{}\" y=\"{:.1}\">{cached}</text><text x=\"{x0}\" y=\"232\">{}</text>",
            200.0 - hk,
            x0 + 26,
            200.0 - hc,
            196.0 - hk,
            x0 + 26,
            196.0 - hc,
            esc(&day[5..])
        );
    }
    h.push_str("</svg>\n<p class=\"legend\"><span><i style=\"background:#0969da\"></i>KMS calls</span><span><i style=\"background:#8250df\"></i>encryptions and decryptions served by cached DEKs</span><span>(logarithmic heights)</span></p>\n");
    h.push_str("<table><thead><tr><th>Day</th><th>Key</th><th>Version</th><th>KMS calls</th><th>Failures</th><th>Cached encrypts</th><th>Cached decrypts</th></tr></thead><tbody>\n");
    for ((provider, key, version, day), u) in &uses {
        let calls: Vec<String> = u.kms.iter().map(|(op, n)| format!("{op} {n}")).collect();
        let failures: Vec<String> = u.failures.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td><code>{}:{}</code></td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(day),
            esc(provider),
            esc(key),
            esc(version),
            esc(&calls.join(", ")),
            esc(&failures.join(", ")),
            u.cached_encrypts,
            u.cached_decrypts
        );
    }
    h.push_str("</tbody></table>\n");
}

fn stores_section(h: &mut String, facts: &Facts) {
    h.push_str("<h2 id=\"stores\">Census of every store</h2>\n");
    if facts.stores.is_empty() {
        h.push_str("<p class=\"meta\">No store was named.</p>\n");
        return;
    }
    h.push_str("<table><thead><tr><th>Store</th><th>Connection</th><th>Provider:key</th><th>Version</th><th>Suite</th><th>Values</th><th>DEKs</th></tr></thead><tbody>\n");
    for s in &facts.stores {
        let conn = s
            .connection
            .as_ref()
            .map_or("—".to_owned(), |c| c.to_string());
        if s.census.groups.is_empty() {
            let _ = writeln!(
                h,
                "<tr><td>{} <code>{}</code></td><td>{}</td><td colspan=\"5\">no readable values ({} scanned)</td></tr>",
                esc(&s.kind),
                esc(&s.name),
                esc(&conn),
                s.census.scanned
            );
        }
        for (g, c) in &s.census.groups {
            let _ = writeln!(
                h,
                "<tr><td>{} <code>{}</code></td><td>{}</td><td><code>{}:{}</code></td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(&s.kind),
                esc(&s.name),
                esc(&conn),
                esc(&g.provider),
                esc(&g.key_id),
                esc(&g.key_version),
                esc(&g.suite),
                c.count,
                c.deks
            );
        }
        for (kind, (n, _)) in &s.census.unreadable {
            let _ = writeln!(
                h,
                "<tr class=\"fail\"><td>{} <code>{}</code></td><td></td><td colspan=\"3\">unreadable: {}</td><td class=\"num\">{n}</td><td></td></tr>",
                esc(&s.kind),
                esc(&s.name),
                esc(kind)
            );
        }
    }
    h.push_str("</tbody></table>\n");
}

fn jobs_section(h: &mut String, facts: &Facts) {
    h.push_str("<h2 id=\"jobs\">Jobs</h2>\n");
    let log_jobs = facts.log_lines("job");
    let admin = facts.log_lines("admin");
    if facts.ledger_jobs.is_empty() && log_jobs.is_empty() && admin.is_empty() {
        h.push_str("<p class=\"meta\">No job or key administration in the window.</p>\n");
        return;
    }
    if !facts.ledger_jobs.is_empty() {
        h.push_str("<table><thead><tr><th>Job (envelope_jobs)</th><th>Kind</th><th>Store</th><th>Finished</th><th>Scanned</th><th>Changed</th><th>Failed</th><th>Started</th><th>Last update</th></tr></thead><tbody>\n");
        for j in &facts.ledger_jobs {
            let _ = writeln!(
                h,
                "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(j["job_id"].as_str().unwrap_or("")),
                esc(j["kind"].as_str().unwrap_or("")),
                esc(j["store"].as_str().unwrap_or("")),
                if j["finished"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "no"
                },
                j["scanned"],
                j["changed"],
                j["failed"],
                esc(j["started_at"].as_str().unwrap_or("")),
                esc(j["updated_at"].as_str().unwrap_or(""))
            );
        }
        h.push_str("</tbody></table>\n");
    }
    if !log_jobs.is_empty() || !admin.is_empty() {
        h.push_str("<table><thead><tr><th>Time (key-use log)</th><th>Event</th><th>What</th><th>Outcome</th></tr></thead><tbody>\n");
        for l in log_jobs.iter().chain(admin.iter()) {
            let what = [
                l.get("kind"),
                l.get("store"),
                l.get("stores"),
                l.get("target"),
                l.get("version"),
                l.get("job"),
            ]
            .into_iter()
            .flatten()
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map_or(i.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.to_string(),
            })
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" · ");
            let outcome = l
                .get("status")
                .or(l.get("outcome"))
                .and_then(|v| v.as_str())
                .unwrap_or("");
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td></tr>",
                esc(l["time"].as_str().unwrap_or("")),
                esc(l["type"].as_str().unwrap_or("")),
                esc(l["op"].as_str().unwrap_or("")),
                esc(&what),
                esc(outcome)
            );
        }
        h.push_str("</tbody></table>\n");
    }
}

fn log_section(h: &mut String, facts: &Facts) {
    h.push_str("<h2 id=\"log\">Key-use log verification</h2>\n");
    let Some(log) = &facts.log else {
        h.push_str("<p class=\"meta\">No key-use log was named (--log).</p>\n");
        return;
    };
    let r = &log.report;
    let _ = write!(
        h,
        "<p>Log <code>{}</code> in <code>{}</code>: <strong>{}</strong>; {} lines in {} segment(s); {} signed checkpoints verified; {} events lost; from {} to {}.</p>",
        esc(r.log.as_deref().unwrap_or("(unnamed)")),
        esc(&log.dir.display().to_string()),
        r.status(),
        r.lines,
        r.segments,
        r.checkpoints,
        r.lost(),
        esc(r.first_time.as_deref().unwrap_or("—")),
        esc(r.last_time.as_deref().unwrap_or("—"))
    );
    let _ = writeln!(h, "<pre><code>{}</code></pre>", esc(&r.render()));
}
