//! The report: Markdown (stdout and `results.md`) and an SVG chart (`chart.svg`).

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Result;
use crate::args::Options;
use crate::core_bench::{CALLERS, CoreReport, Impl};
use crate::flash_sale_bench::{CLIENTS, FlashSaleReport};
use crate::http_bench::HttpReport;
use crate::lock_bench::{CONTENDERS, LockReport};
use crate::ratelimit_bench::RateLimitReport;
use crate::redis_admin;
use crate::servers::{Framework, Variant, WORKERS};

mod chart;
mod near_cache;
mod ratelimit;

/// keygate's targets.
const AXUM_TARGET: f64 = 1.5;
const ACTIX_TARGET: f64 = 1.3;
const GETEX_TARGET: f64 = 0.9;

/// Everything measured in one run.
pub struct Report {
    options: Options,
    started: SystemTime,
    load_before: String,
    load_after: String,
    pub http: Option<HttpReport>,
    pub core: Option<CoreReport>,
    pub lock: Option<LockReport>,
    pub flash_sale: Option<FlashSaleReport>,
    pub ratelimit: Option<RateLimitReport>,
    pub metrics: Option<crate::http_bench::FrameworkResult>,
    pub near_cache: Option<crate::near_cache_bench::NearCacheReport>,
}

impl Report {
    pub fn new(options: &Options) -> Self {
        Self {
            options: options.clone(),
            started: SystemTime::now(),
            load_before: load_average(),
            load_after: String::new(),
            http: None,
            core: None,
            lock: None,
            flash_sale: None,
            ratelimit: None,
            metrics: None,
            near_cache: None,
        }
    }

    /// Notes the machine's load at the end.
    pub fn finish(&mut self) {
        self.load_after = load_average();
    }

    /// Prints the Markdown and writes `results.md` and `chart.svg`.
    pub fn write(&self) -> Result<()> {
        let markdown = self.markdown();
        println!("{markdown}");
        std::fs::create_dir_all(&self.options.out)?;
        let md_path = self.options.out.join("results.md");
        std::fs::write(&md_path, &markdown)?;
        eprintln!("wrote {}", md_path.display());
        if let Some(http) = &self.http {
            let svg_path = self.options.out.join("chart.svg");
            std::fs::write(&svg_path, chart::svg(http, &self.date()))?;
            eprintln!("wrote {}", svg_path.display());
        }
        if let Some(near_cache) = &self.near_cache {
            let svg_path = self.options.out.join("near-cache.svg");
            std::fs::write(&svg_path, near_cache::svg(near_cache, &self.date()))?;
            eprintln!("wrote {}", svg_path.display());
        }
        Ok(())
    }

    fn date(&self) -> String {
        let secs = self
            .started
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        utc_date_time(secs)
    }

    fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# keygate benchmark, {}\n", self.date());
        let _ = writeln!(md, "- machine: {}", machine());
        let _ = writeln!(
            md,
            "- load average (1, 5, 15 min) at start: {}; at end: {}",
            self.load_before, self.load_after
        );
        let _ = writeln!(
            md,
            "- Redis {} (private servers, no persistence)",
            redis_admin::version()
        );
        let _ = writeln!(
            md,
            "- command: `cargo run --release -p keygate-bench -- {}`",
            self.options.command_line
        );
        let _ = writeln!(
            md,
            "- every server runs in its own process with {WORKERS} worker threads; rounds \
             alternate the servers of a framework (order rotated each round); ratios are \
             medians of same-round ratios, so only ratios from one run compare\n"
        );
        if let Some(http) = &self.http {
            http_markdown(&mut md, http);
        }
        if let Some(core) = &self.core {
            core_markdown(&mut md, core);
        }
        if let Some(lock) = &self.lock {
            lock_markdown(&mut md, lock);
        }
        if let Some(flash_sale) = &self.flash_sale {
            flash_sale_markdown(&mut md, flash_sale);
        }
        if let Some(ratelimit) = &self.ratelimit {
            ratelimit::markdown(&mut md, ratelimit);
        }
        if let Some(metrics) = &self.metrics {
            metrics_markdown(&mut md, metrics);
        }
        if let Some(near_cache) = &self.near_cache {
            near_cache::markdown(&mut md, near_cache);
        }
        md
    }
}

/// One framework's servers in a table: req/s, latency, CPU and Redis commands per request,
/// the ratios to the GETEX route and to `second` (same rounds), and req/s per round;
/// commands per request with `decimals`.
fn server_table(
    md: &mut String,
    fw: &crate::http_bench::FrameworkResult,
    second: crate::servers::Variant,
    decimals: usize,
) {
    use crate::servers::Variant;
    let _ = writeln!(
        md,
        "| server | req/s | p50 | p99 | errors | server CPU/req | Redis CPU/req | Redis cmds/req | ÷ GETEX | ÷ {} | req/s per round |",
        second.label(fw.framework)
    );
    let _ = writeln!(
        md,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    for v in &fw.variants {
        let name = v.variant.label(fw.framework);
        if let Some(failure) = &v.failure {
            let short: String = failure.chars().take(160).collect();
            let _ = writeln!(
                md,
                "| {name} | did not run: {} | | | | | | | | | |",
                short.replace(['\n', '|'], " ")
            );
            continue;
        }
        let ratio = |b: Variant| {
            fw.ratio(v.variant, b)
                .map_or("–".to_owned(), |x| format!("{x:.2}×"))
        };
        let _ = writeln!(
            md,
            "| {name} | {} | {:.decimals$} | {} | {} | {} |",
            load_cells(v),
            v.commands_per_request,
            ratio(Variant::Getex),
            ratio(second),
            v.rounds
                .iter()
                .map(|l| format!("{:.0}", l.rps()))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
}

/// The metrics section: keygate's axum route with every metric recorded by a
/// real exporter, against the same route without a recorder (target ≥ 0.97×).
fn metrics_markdown(md: &mut String, result: &crate::http_bench::FrameworkResult) {
    use crate::servers::{Framework, Variant};
    const TARGET: f64 = 0.97;
    let _ = writeln!(
        md,
        "## Metrics overhead
"
    );
    let _ = writeln!(md, "| server | req/s (median of rounds) |");
    let _ = writeln!(md, "| --- | ---: |");
    for variant in &result.variants {
        let _ = writeln!(
            md,
            "| {} | {:.0} |",
            variant.variant.label(Framework::Axum),
            variant.rps()
        );
    }
    if let Some(ratio) = result.ratio(Variant::KeygateMetrics, Variant::Keygate) {
        let _ = writeln!(
            md,
            "\nWith metrics ÷ without: **{ratio:.3}×** (target ≥ {TARGET}×: {}).\n",
            if ratio >= TARGET { "met" } else { "missed" }
        );
    }
}

fn http_markdown(md: &mut String, http: &HttpReport) {
    let _ = writeln!(md, "## HTTP: `GET /me` with a live session\n");
    let _ = writeln!(
        md,
        "{}; {} rounds of {:.1} s per server after a warm-up. Every server answers the Node \
         seed's user as JSON. *GETEX* is a hand-written handler doing one `GETEX myapp_<token> \
         PX 1800000` on a `ConnectionManager` and decoding the user, the ceiling for a session \
         that slides; *bare* answers without any session. *CPU/req* is the CPU time the \
         server's process (all threads) and Redis used during the rounds divided by the \
         requests answered: it depends much less than req/s on what else the shared \
         machine runs. Redis commands per request come from `INFO commandstats` (reset before each round; scripts count their inner \
         commands too); bytes per session are `MEMORY USAGE` of the session key.\n",
        http.generator,
        http.rounds,
        http.duration.as_secs_f64()
    );
    let _ = writeln!(
        md,
        "| framework | server | req/s | p50 | p99 | errors | server CPU/req | Redis CPU/req | Redis cmds/req | commands per request | bytes/session | TTL slides | keygate JSON ÷ this |"
    );
    let _ = writeln!(
        md,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | ---: |"
    );
    for fw in &http.frameworks {
        for v in &fw.variants {
            let name = v.variant.label(fw.framework);
            if let Some(failure) = &v.failure {
                let short: String = failure.chars().take(160).collect();
                let _ = writeln!(
                    md,
                    "| {} | {name} | did not run: {} | | | | | | | | | | |",
                    fw.framework.label(),
                    short.replace(['\n', '|'], " ")
                );
                continue;
            }
            let breakdown = v
                .breakdown
                .iter()
                .filter(|(_, n)| *n >= 0.005)
                .map(|(c, n)| format!("{c} {n:.2}"))
                .collect::<Vec<_>>()
                .join(", ");
            let ratio = fw
                .ratio(Variant::Keygate, v.variant)
                .map_or("–".to_owned(), |r| format!("{r:.2}×"));
            let _ = writeln!(
                md,
                "| {} | {name} | {} | {:.2} | {} | {} | {} | {ratio} |",
                fw.framework.label(),
                load_cells(v),
                v.commands_per_request,
                if breakdown.is_empty() {
                    "–".to_owned()
                } else {
                    breakdown
                },
                v.bytes.map_or("–".to_owned(), |b| format!(
                    "{b} ({})",
                    v.key_type.as_deref().unwrap_or("?")
                )),
                match v.slides {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "–",
                },
            );
        }
    }
    let _ = writeln!(md);
    let _ = writeln!(md, "Incumbents as configured:\n");
    for fw in &http.frameworks {
        let _ = writeln!(
            md,
            "- {}: {}: {}",
            fw.framework.label(),
            fw.framework.incumbent(),
            fw.framework.incumbent_setup()
        );
    }
    if let Some((bytes, members)) = http.frameworks.iter().find_map(|f| f.index) {
        let _ = writeln!(
            md,
            "\nkeygate also keeps a per-user index (`keygate:user-sessions:598`, a sorted set \
             never touched on the request path): {bytes} bytes with {members} members here, \
             written once at login.\n"
        );
    }
    targets_markdown(md, http);
    let _ = writeln!(md, "Requests/s per round (same order as above):\n");
    let _ = writeln!(md, "| framework | server | rounds |");
    let _ = writeln!(md, "| --- | --- | --- |");
    for fw in &http.frameworks {
        for v in fw.variants.iter().filter(|v| !v.rounds.is_empty()) {
            let rounds = v
                .rounds
                .iter()
                .map(|r| format!("{:.0}", r.rps()))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                md,
                "| {} | {} | {rounds} |",
                fw.framework.label(),
                v.variant.label(fw.framework)
            );
        }
    }
    let _ = writeln!(md);
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

fn targets_markdown(md: &mut String, http: &HttpReport) {
    let _ = writeln!(md, "### Targets\n");
    let _ = writeln!(md, "| target | measured | |");
    let _ = writeln!(md, "| --- | --- | --- |");
    for fw in &http.frameworks {
        if let Some(k) = fw.get(Variant::Keygate) {
            let slides = k.slides == Some(true);
            let one = (k.commands_per_request - 1.0).abs() < 0.02;
            let _ = writeln!(
                md,
                "| {}: one Redis command per authenticated request, TTL refreshed | {:.2} commands/request ({}), TTL slides: {} | {} |",
                fw.framework.label(),
                k.commands_per_request,
                k.breakdown
                    .iter()
                    .map(|(c, _)| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                if slides { "yes" } else { "no" },
                verdict(Some(one && slides))
            );
        }
    }
    for (framework, target) in [
        (Framework::Axum, AXUM_TARGET),
        (Framework::Actix, ACTIX_TARGET),
    ] {
        if let Some(fw) = http.frameworks.iter().find(|f| f.framework == framework) {
            let ratio = fw.ratio(Variant::Keygate, Variant::Incumbent);
            let _ = writeln!(
                md,
                "| {}: keygate ≥ {target}× {} | {} | {} |",
                framework.label(),
                Variant::Incumbent.label(framework),
                ratio.map_or("–".to_owned(), |r| format!("{r:.2}×")),
                verdict(ratio.map(|r| r >= target))
            );
        }
    }
    for fw in &http.frameworks {
        let ratio = fw.ratio(Variant::Keygate, Variant::Getex);
        let _ = writeln!(
            md,
            "| {}: keygate within 10 % of the hand-written GETEX handler | {} | {} |",
            fw.framework.label(),
            ratio.map_or("–".to_owned(), |r| format!("{r:.2}×")),
            verdict(ratio.map(|r| r >= GETEX_TARGET))
        );
    }
    for fw in &http.frameworks {
        let bytes = |v: Variant| fw.get(v).and_then(|r| r.bytes);
        let (k, i) = (bytes(Variant::Keygate), bytes(Variant::Incumbent));
        let _ = writeln!(
            md,
            "| {}: bytes per session ≤ the incumbent's | keygate {} B, {} {} B | {} |",
            fw.framework.label(),
            k.map_or("–".to_owned(), |b| b.to_string()),
            Variant::Incumbent.label(fw.framework),
            i.map_or("–".to_owned(), |b| b.to_string()),
            verdict(k.zip(i).map(|(k, i)| k <= i))
        );
    }
    let _ = writeln!(md);
}

fn core_markdown(md: &mut String, core: &CoreReport) {
    let _ = writeln!(md, "## Session manager alone\n");
    let _ = writeln!(
        md,
        "Load-and-touch of one JSON session in a loop by 1 and 64 concurrent tasks on a \
         {WORKERS}-thread runtime, one shared connection, {} alternating rounds of {:.1} s.\n",
        core.rounds,
        core.duration.as_secs_f64()
    );
    let _ = writeln!(
        md,
        "| callers | implementation | calls/s | p50 | p99 | errors | keygate ÷ this |"
    );
    let _ = writeln!(md, "| ---: | --- | ---: | ---: | ---: | ---: | ---: |");
    for callers in CALLERS {
        for which in Impl::ALL {
            let Some(rounds) = core.rounds_of(callers, which) else {
                continue;
            };
            let med = |f: fn(&crate::core_bench::Measured) -> f64| {
                crate::stats::median(&rounds.iter().map(f).collect::<Vec<_>>())
            };
            let ratio = core
                .ratio(callers, Impl::Keygate, which)
                .map_or("–".to_owned(), |r| format!("{r:.2}×"));
            let _ = writeln!(
                md,
                "| {callers} | {} | {:.0} | {} | {} | {} | {ratio} |",
                which.label(),
                med(|m| m.per_sec),
                us(med(|m| m.p50_us)),
                us(med(|m| m.p99_us)),
                rounds.iter().map(|m| m.errors).sum::<u64>()
            );
        }
    }
    let _ = writeln!(md);
}

fn lock_markdown(md: &mut String, lock: &LockReport) {
    let _ = writeln!(md, "## Lock\n");
    let _ = writeln!(
        md,
        "Default `LockOptions` (30 s lease renewed in the background, waiters woken by the \
         release message); {:.1} s each.\n",
        lock.duration.as_secs_f64()
    );
    let _ = writeln!(md, "| measurement | value | p50 | p99 | errors |");
    let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: |");
    let _ = writeln!(
        md,
        "| uncontended `try_acquire` + `release`, 1 caller | {:.0} pairs/s | {} | {} | {} |",
        lock.pairs_per_sec,
        us(lock.pair_p50_us),
        us(lock.pair_p99_us),
        lock.uncontended_errors
    );
    let _ = writeln!(
        md,
        "| {CONTENDERS} tasks on one lock: acquisitions | {:.0} /s | | | {} |",
        lock.acquisitions_per_sec, lock.contended_errors
    );
    let _ = writeln!(
        md,
        "| {CONTENDERS} tasks on one lock: hand-over (release start → another task holds it) | {:.0} /s | {} | {} | |",
        lock.handovers_per_sec,
        us(lock.handover_p50_us),
        us(lock.handover_p99_us)
    );
    let _ = writeln!(md);
}

fn flash_sale_markdown(md: &mut String, s: &FlashSaleReport) {
    let _ = writeln!(md, "## Flash sale\n");
    let _ = writeln!(
        md,
        "{CLIENTS} concurrent clients through `FlashSale::order` (one script per attempt), \
         {:.1} s each; then `OrderConsumer` (batch {}, a handler that only counts) drains the \
         orders the first phase put in the stream.\n",
        s.duration.as_secs_f64(),
        s.consumer_batch
    );
    let _ = writeln!(md, "| measurement | value | p50 | p99 |");
    let _ = writeln!(md, "| --- | ---: | ---: | ---: |");
    let _ = writeln!(
        md,
        "| orders taken (ample stock, a new user each attempt) | {:.0} /s | {} | {} |",
        s.orders_per_sec,
        us(s.order_p50_us),
        us(s.order_p99_us)
    );
    let _ = writeln!(
        md,
        "| sold-out rejections | {:.0} /s | {} | {} |",
        s.rejections_per_sec,
        us(s.rejection_p50_us),
        us(s.rejection_p99_us)
    );
    let _ = writeln!(
        md,
        "| stream processing by `OrderConsumer` | {:.0} orders/s ({} of {} in {:.2} s) | | |",
        s.consumed_per_sec(),
        s.consumed,
        s.stream_orders,
        s.consume_secs
    );
    let _ = writeln!(md, "\nUnexpected outcomes or errors: {}.\n", s.errors);
}

/// Microseconds for a table: `850 µs`, `1.23 ms`.
pub(crate) fn us(value: f64) -> String {
    if value >= 1000.0 {
        format!("{:.2} ms", value / 1000.0)
    } else {
        format!("{value:.0} µs")
    }
}

pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|| "unknown".to_owned())
}

pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0.0, |kib| kib as f64 / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {mem_gib:.0} GiB, Linux {kernel}")
}

/// `YYYY-MM-DD HH:MM UTC` from unix seconds (civil-from-days, proleptic Gregorian).
pub(crate) fn utc_date_time(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// A server's req/s, p50, p99, errors, and server and Redis CPU per request: the cells
/// every server table starts with.
fn load_cells(v: &crate::http_bench::VariantResult) -> String {
    let cpu = |c: Option<f64>| c.map_or("–".to_owned(), |c| format!("{c:.1} µs"));
    format!(
        "{:.0} | {} | {} | {} | {} | {}",
        v.rps(),
        us(v.p50_us()),
        us(v.p99_us()),
        v.errors(),
        cpu(v.server_cpu_us()),
        cpu(v.redis_cpu_us()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc_date_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date_time(1_704_067_200 + 3_660), "2024-01-01 01:01 UTC");
        assert_eq!(utc_date_time(951_782_400), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn microseconds_read_well() {
        assert_eq!(us(850.4), "850 µs");
        assert_eq!(us(1234.0), "1.23 ms");
    }
}
