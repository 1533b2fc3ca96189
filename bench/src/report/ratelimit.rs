//! The rate-limit section of the report.

use std::fmt::Write as _;

use crate::ratelimit_bench::{CALLERS, FLOOD_CALLERS, FLOODER, RateLimitReport, SUBJECTS};
use crate::servers::{RATE_LIMITED, Variant};
use crate::stats::median;

use super::{us, verdict};

/// `RateLimiter::check` ÷ raw `EVALSHA`.
const DIRECT_TARGET: f64 = 0.8;
/// The axum route behind the limiter ÷ the hand-written GETEX route.
const GETEX_TARGET: f64 = 0.9;

pub fn markdown(md: &mut String, r: &RateLimitReport) {
    let _ = writeln!(md, "## Rate limiter\n");
    flood_markdown(md, r);
    let _ = writeln!(
        md,
        "Decisions per second with {CALLERS} concurrent callers over {SUBJECTS} subjects \
         drawn uniformly at random for every decision (so nearly every decision admits and \
         writes): `RateLimiter::check` on a {}-thread runtime (one multiplexed connection) \
         against `redis-benchmark -c {CALLERS} -r {SUBJECTS} EVALSHA <sha> 1 \
         keygate:rate:{{<name>:ip:__rand_int__}} <args>`, the same script, key form and \
         arguments, on the same private Redis, flushed before each measurement; {} \
         alternating rounds of {:.1} s, order rotated.\n",
        crate::servers::WORKERS,
        r.rounds,
        r.duration.as_secs_f64()
    );
    let _ = writeln!(
        md,
        "| limit | side | decisions/s | p50 | p99 | admitted | errors | keygate ÷ raw (rounds) |"
    );
    let _ = writeln!(md, "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |");
    for row in &r.direct {
        for (side, rounds) in [
            ("`RateLimiter::check`", &row.keygate),
            ("redis-benchmark `EVALSHA`", &row.raw),
        ] {
            let med = |f: fn(&crate::ratelimit_bench::Measured) -> f64| {
                median(&rounds.iter().map(f).collect::<Vec<_>>())
            };
            let keygate = side.starts_with("`Rate");
            let admitted = if keygate {
                format!("{:.0} %", med(|m| m.admitted) * 100.0)
            } else {
                // redis-benchmark does not look at the replies.
                "–".to_owned()
            };
            let ratio = if keygate {
                let spread = row
                    .ratios()
                    .iter()
                    .map(|x| format!("{x:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("{:.2}× ({spread})", row.ratio())
            } else {
                "–".to_owned()
            };
            let _ = writeln!(
                md,
                "| {} | {side} | {:.0} | {} | {} | {} | {} | {ratio} |",
                row.kind.label(),
                med(|m| m.per_sec),
                us(med(|m| m.p50_us)),
                us(med(|m| m.p99_us)),
                admitted,
                rounds.iter().map(|m| m.errors).sum::<u64>(),
            );
        }
    }
    let _ = writeln!(md);
    let fw = &r.http;
    let _ = writeln!(
        md,
        "axum 0.8, `GET /me` answering the Node seed's user: *bare* without anything, the same \
         route behind `RateLimitLayer` (one client address, so limits that admit every \
         request: `Quota::per_second(1_000_000)`, or `Window::new(10_000, 100 ms)`: one hot \
         subject whose log holds thousands of entries at these rates, the window's worst \
         case; per-client logs of a realistic limit are as short as in the table above; a \
         subject's checks that overlap share script calls), the GCRA limiter again with the \
         loopback address trusted as a proxy and each request saying in `X-Forwarded-For` \
         it comes from the next of 10,000 addresses (one script call per request), and the \
         hand-written one-`GETEX` route (the one-round-trip floor). {}; {} alternating \
         rounds of {:.1} s.\n",
        r.generator,
        r.rounds,
        r.http_duration.as_secs_f64()
    );
    super::server_table(md, fw, Variant::Bare, 2);
    let _ = writeln!(md, "\n### Targets\n");
    let _ = writeln!(md, "| target | measured | |");
    let _ = writeln!(md, "| --- | --- | --- |");
    for row in &r.direct {
        let ratio = row.ratio();
        let _ = writeln!(
            md,
            "| {}: `RateLimiter::check` ≥ {DIRECT_TARGET}× raw `EVALSHA` | {ratio:.2}× | {} |",
            row.kind.label(),
            verdict(Some(ratio >= DIRECT_TARGET))
        );
    }
    for limited in RATE_LIMITED.into_iter().filter(|v| v.is_limited()) {
        let ratio = fw.ratio(limited, Variant::Getex);
        let _ = writeln!(
            md,
            "| axum: {} ≥ {GETEX_TARGET}× hand-written GETEX | {} | {} |",
            limited.label(fw.framework),
            ratio.map_or("–".to_owned(), |x| format!("{x:.2}×")),
            verdict(ratio.map(|x| x >= GETEX_TARGET))
        );
    }
    let _ = writeln!(md);
}

/// One address flooding over its limit: script calls per refused check.
fn flood_markdown(md: &mut String, r: &RateLimitReport) {
    let _ = writeln!(
        md,
        "One address over its limit that keeps sending (`{FLOODER}`, budget spent first): \
         `RateLimiter::check` from one sequential caller and from {FLOOD_CALLERS} at once for \
         {:.1} s; script calls counted by Redis (`INFO commandstats`, `evalsha` + `eval`). \
         Target: at most 0.01 script calls per refused check.\n",
        r.duration.as_secs_f64()
    );
    let _ = writeln!(
        md,
        "| limit | callers | checks | checks/s | refused | script calls | per refused check |"
    );
    let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for row in &r.flood {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {} | {} | {:.4} |",
            row.kind.label(),
            row.callers,
            row.checks,
            row.per_sec,
            row.refused,
            row.script_calls,
            row.per_refused()
        );
    }
    let _ = writeln!(md);
}
