//! The near cache section of the report, and its chart.

use std::fmt::Write as _;

use crate::http_bench::{FrameworkResult, NEAR_CACHE_SESSIONS};
use crate::near_cache_bench::NearCacheReport;
use crate::servers::Variant;

use super::chart::{color, escape};
use super::verdict;

/// The near cache's route ÷ the hand-written GETEX route.
const GETEX_TARGET: f64 = 1.5;
/// Redis commands per request with the cache, steady state.
const COMMANDS_TARGET: f64 = 0.02;

fn table(md: &mut String, fw: &FrameworkResult) {
    super::server_table(md, fw, Variant::Keygate, 3);
    let _ = writeln!(md);
}

pub fn markdown(md: &mut String, r: &NearCacheReport) {
    let _ = writeln!(md, "## Session near cache\n");
    let _ = writeln!(
        md,
        "axum 0.8, `GET /me` answering the Node seed's user: the hand-written one-`GETEX` route \
         (the one-round-trip floor), keygate without the near cache, with it \
         (`NearCache::new(100_000, 60 s)`), and with a cache of 1,000 sessions (with \
         {NEAR_CACHE_SESSIONS} sessions in use nearly every load misses: the cost of a miss). \
         {}; {} alternating rounds of {:.1} s. Redis commands per request count everything \
         the server sent (refreshes and the tracking check included).\n",
        r.generator,
        r.rounds,
        r.duration.as_secs_f64()
    );
    let _ = writeln!(md, "### One hot session\n");
    table(md, &r.hot);
    let _ = writeln!(
        md,
        "### {NEAR_CACHE_SESSIONS} sessions round-robin\n\nEvery connection cycles through \
         {NEAR_CACHE_SESSIONS} sessions (planted in Redis as another instance's logins would \
         be), each from its own offset.\n"
    );
    table(md, &r.spread);
    let m = &r.memory;
    let _ = writeln!(
        md,
        "Memory per cached session ({} sessions of the Node seed's user, 81 bytes of JSON): \
         {:.0} bytes by the cache's own estimate (`NearCacheStats::bytes`), {} of resident \
         memory grown while filling.\n",
        m.sessions,
        m.estimated,
        m.resident
            .map_or("–".to_owned(), |b| format!("{b:.0} bytes"))
    );
    let _ = writeln!(md, "### Targets\n");
    let _ = writeln!(md, "| target | measured | |");
    let _ = writeln!(md, "| --- | --- | --- |");
    for (scenario, fw) in [("one hot session", &r.hot), ("10,000 sessions", &r.spread)] {
        let ratio = fw.ratio(Variant::KeygateNear, Variant::Getex);
        let _ = writeln!(
            md,
            "| near cache ≥ {GETEX_TARGET}× hand-written GETEX, {scenario} | {} | {} |",
            ratio.map_or("–".to_owned(), |x| format!("{x:.2}×")),
            verdict(ratio.map(|x| x >= GETEX_TARGET))
        );
        let cmds = fw.get(Variant::KeygateNear).map(|v| v.commands_per_request);
        let _ = writeln!(
            md,
            "| Redis commands per request ≤ {COMMANDS_TARGET}, {scenario} | {} | {} |",
            cmds.map_or("–".to_owned(), |x| format!("{x:.4}")),
            verdict(cmds.map(|x| x <= COMMANDS_TARGET))
        );
    }
    let miss = r.spread.ratio(Variant::KeygateNearSmall, Variant::Keygate);
    let miss_cmds = r
        .spread
        .get(Variant::KeygateNearSmall)
        .map(|v| v.commands_per_request);
    let _ = writeln!(
        md,
        "| a miss stays one round trip: cache of 1,000 under 10,000 sessions ÷ keygate without the cache | {}, {} Redis commands per request | (report) |",
        miss.map_or("–".to_owned(), |x| format!("{x:.2}×")),
        miss_cmds.map_or("–".to_owned(), |x| format!("{x:.2}"))
    );
    let _ = writeln!(md);
}

/// Bars of both scenarios.
pub fn svg(r: &NearCacheReport, date: &str) -> String {
    const WIDTH: f64 = 900.0;
    const LABEL_W: f64 = 230.0;
    const BAR_H: f64 = 18.0;
    const GAP: f64 = 5.0;
    let groups = [
        ("one hot session", &r.hot),
        ("10,000 sessions round-robin", &r.spread),
    ];
    let max = groups
        .iter()
        .flat_map(|(_, fw)| fw.variants.iter().filter(|v| v.ran()).map(|v| v.rps()))
        .fold(1.0_f64, f64::max);
    let scale = (WIDTH - LABEL_W - 170.0) / max;
    let rows: usize = groups.iter().map(|(_, fw)| fw.variants.len()).sum();
    let height = 64.0 + groups.len() as f64 * 46.0 + rows as f64 * (BAR_H + GAP) + 10.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="12" y="24" font-size="16" font-weight="bold">axum GET /me with the session near cache: requests/s (median of {} rounds)</text>"#,
        r.rounds
    );
    let _ = writeln!(
        out,
        r##"<text x="12" y="44" fill="#555">{} · {} · (×: over the hand-written GETEX route, same rounds)</text>"##,
        escape(date),
        escape(&r.generator)
    );
    let mut y = 64.0;
    for (title, fw) in groups {
        let _ = writeln!(
            out,
            r#"<text x="12" y="{:.0}" font-size="14" font-weight="bold">{}</text>"#,
            y + 18.0,
            escape(title)
        );
        y += 30.0;
        for v in &fw.variants {
            let _ = writeln!(
                out,
                r#"<text x="{:.0}" y="{:.1}" text-anchor="end">{}</text>"#,
                LABEL_W - 8.0,
                y + BAR_H - 5.0,
                escape(v.variant.label(fw.framework))
            );
            if v.ran() {
                let w = (v.rps() * scale).max(1.0);
                let ratio = fw
                    .ratio(v.variant, Variant::Getex)
                    .map_or(String::new(), |x| format!("  ({x:.2}×)"));
                let _ = writeln!(
                    out,
                    r#"<rect x="{LABEL_W}" y="{y:.1}" width="{w:.1}" height="{BAR_H}" fill="{}"/>"#,
                    color(v.variant)
                );
                let _ = writeln!(
                    out,
                    r#"<text x="{:.1}" y="{:.1}">{:.0}{}</text>"#,
                    LABEL_W + w + 6.0,
                    y + BAR_H - 5.0,
                    v.rps(),
                    escape(&ratio)
                );
            }
            y += BAR_H + GAP;
        }
        y += 16.0;
    }
    out.push_str("</svg>\n");
    out
}
