//! A hand-written SVG: requests/s per server, grouped by framework, as horizontal bars.
//! Plain SVG text elements, so no fonts are needed to draw it.

use std::fmt::Write as _;

use crate::http_bench::HttpReport;
use crate::servers::Variant;

const WIDTH: f64 = 1000.0;
const LABEL_W: f64 = 190.0;
const RIGHT_PAD: f64 = 250.0;
const BAR_H: f64 = 18.0;
const BAR_GAP: f64 = 5.0;
const GROUP_HEAD: f64 = 30.0;
const GROUP_GAP: f64 = 16.0;
const TOP: f64 = 64.0;

pub(super) fn color(variant: Variant) -> &'static str {
    match variant {
        Variant::Bare => "#b0b7c3",
        Variant::Getex => "#6c7a89",
        Variant::GetexVerbatim => "#8c96a3",
        Variant::HashScript => "#9aa5b1",
        Variant::GcraGetexSpread => "#7f8c8d",
        Variant::KeygateLimitedSpread => "#9467bd",
        Variant::Keygate => "#1f77b4",
        Variant::KeygateHash => "#6baed6",
        Variant::Incumbent => "#e6862e",
        Variant::LimitedQuota => "#2ca02c",
        Variant::LimitedQuotaSpread => "#17becf",
        Variant::LimitedWindow => "#98df8a",
        Variant::KeygateMetrics => "#c5b0d5",
        Variant::KeygateNear => "#d62728",
        Variant::KeygateNearSmall => "#ff9896",
    }
}

pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The chart of one run.
pub fn svg(http: &HttpReport, date: &str) -> String {
    let max = http
        .frameworks
        .iter()
        .flat_map(|f| f.variants.iter().filter(|v| v.ran()).map(|v| v.rps()))
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let scale = (WIDTH - LABEL_W - RIGHT_PAD) / max;
    let rows: usize = http.frameworks.iter().map(|f| f.variants.len()).sum();
    let height = TOP
        + http.frameworks.len() as f64 * (GROUP_HEAD + GROUP_GAP)
        + rows as f64 * (BAR_H + BAR_GAP)
        + 20.0;

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
        r#"<text x="12" y="24" font-size="16" font-weight="bold">GET /me with a live session: requests/s (median of {} rounds)</text>"#,
        http.rounds
    );
    let _ = writeln!(
        out,
        r##"<text x="12" y="44" fill="#555">{} · {} · (×: keygate JSON over the bar's server, same rounds; CPU/req: the server process)</text>"##,
        escape(date),
        escape(&http.generator)
    );
    let mut y = TOP;
    for fw in &http.frameworks {
        let incumbent = fw
            .ratio(Variant::Keygate, Variant::Incumbent)
            .map_or(String::new(), |r| {
                format!(
                    " · keygate {r:.2}× {}",
                    Variant::Incumbent.label(fw.framework)
                )
            });
        let getex = fw
            .ratio(Variant::Keygate, Variant::Getex)
            .map_or(String::new(), |r| format!(" · {r:.2}× GETEX"));
        let _ = writeln!(
            out,
            r#"<text x="12" y="{:.0}" font-size="14" font-weight="bold">{}{}</text>"#,
            y + 18.0,
            escape(fw.framework.label()),
            escape(&format!("{incumbent}{getex}"))
        );
        y += GROUP_HEAD;
        for v in &fw.variants {
            let label = v.variant.label(fw.framework);
            let _ = writeln!(
                out,
                r#"<text x="{:.0}" y="{:.1}" text-anchor="end">{}</text>"#,
                LABEL_W - 8.0,
                y + BAR_H - 5.0,
                escape(label)
            );
            if v.ran() {
                let w = (v.rps() * scale).max(1.0);
                let _ = writeln!(
                    out,
                    r#"<rect x="{LABEL_W}" y="{y:.1}" width="{w:.1}" height="{BAR_H}" fill="{}"/>"#,
                    color(v.variant)
                );
                let ratio = fw
                    .ratio(Variant::Keygate, v.variant)
                    .filter(|_| v.variant != Variant::Keygate)
                    .map_or(String::new(), |r| format!("  ({r:.2}×)"));
                let cpu = v
                    .server_cpu_us()
                    .map_or(String::new(), |c| format!("  · {c:.1} µs CPU/req"));
                let _ = writeln!(
                    out,
                    r##"<text x="{:.1}" y="{:.1}">{:.0}{}<tspan fill="#777">{}</tspan></text>"##,
                    LABEL_W + w + 6.0,
                    y + BAR_H - 5.0,
                    v.rps(),
                    escape(&ratio),
                    escape(&cpu)
                );
            } else {
                let _ = writeln!(
                    out,
                    r##"<text x="{LABEL_W}" y="{:.1}" fill="#a33">did not run</text>"##,
                    y + BAR_H - 5.0
                );
            }
            y += BAR_H + BAR_GAP;
        }
        y += GROUP_GAP;
    }
    out.push_str("</svg>\n");
    out
}
