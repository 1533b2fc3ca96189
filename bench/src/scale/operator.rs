//! `keygate-cli sessions count` over a populated Redis while `GET /me` runs: how long the
//! count takes and what it does to the requests' p99.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::Result;
use crate::loadgen;
use crate::redis_admin::Admin;

/// Load before the count starts: the "before" p99.
const BEFORE: Duration = Duration::from_secs(3);
/// The longest a count may take here.
const LONGEST: Duration = Duration::from_secs(300);

/// What one count did.
#[derive(Debug, Clone, Default)]
pub struct CountPoint {
    pub label: String,
    /// The CLI's table.
    pub output: String,
    pub seconds: f64,
    pub p99_before_us: f64,
    pub p99_during_us: f64,
    pub requests_during: usize,
    pub errors: u64,
    /// `SCAN` calls the count made, and Redis µs per call (`INFO commandstats`, summed
    /// over the masters): how long each call held a server.
    pub scan_calls: u64,
    pub scan_us_per_call: f64,
}

/// `keygate-cli`, built beside this binary (`cargo build --release -p keygate-cli`).
pub fn cli_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let cli = exe.with_file_name("keygate-cli");
    if cli.is_file() {
        Ok(cli)
    } else {
        Err(format!(
            "{} not found: build it with `cargo build --release -p keygate-cli`",
            cli.display()
        )
        .into())
    }
}

/// Runs `keygate-cli sessions count --layout <layout>` against `env` (`REDIS_URL` or
/// `REDIS_CLUSTER_URLS`) while `cycle` loads the server on `port`.
#[allow(clippy::too_many_arguments)]
pub fn count_under_load(
    label: &str,
    admins: &mut [Admin],
    env: (&str, &str),
    layout: &str,
    port: u16,
    cycle: &[Vec<(String, String)>],
    connections: usize,
) -> Result<CountPoint> {
    let cli = cli_binary()?;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let load = {
        let stop = Arc::clone(&stop);
        let cycle = cycle.to_vec();
        std::thread::spawn(move || {
            loadgen::run_timed(port, &cycle, connections, LONGEST + BEFORE * 2, stop)
        })
    };
    std::thread::sleep(BEFORE);
    for admin in admins.iter_mut() {
        admin.reset_stats()?;
    }
    let from = started.elapsed();
    let output = Command::new(&cli)
        .args(["sessions", "count", "--layout", layout])
        .env_remove("REDIS_URL")
        .env_remove("REDIS_CLUSTER_URLS")
        .env(env.0, env.1)
        .output();
    let to = started.elapsed();
    let (mut scan_calls, mut scan_usec) = (0, 0);
    for admin in admins.iter_mut() {
        let (calls, usec) = admin.command_usec("scan")?;
        scan_calls += calls;
        scan_usec += usec;
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let timed = load.join().map_err(|_| "the load thread panicked")??;
    let output = output?;
    if !output.status.success() {
        return Err(format!(
            "keygate-cli sessions count failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
    // The first half second warms the connections up.
    let (p99_before_us, _) = timed.quantile_within(500, ms(from), 0.99);
    let (p99_during_us, requests_during) = timed.quantile_within(ms(from), ms(to), 0.99);
    let point = CountPoint {
        label: label.to_owned(),
        output: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        seconds: (to - from).as_secs_f64(),
        p99_before_us,
        p99_during_us,
        requests_during,
        errors: timed.errors,
        scan_calls,
        scan_us_per_call: scan_usec as f64 / scan_calls.max(1) as f64,
    };
    eprintln!(
        "scale:   sessions count ({label}): {:.2} s, {} SCAN calls of {:.0} us; GET /me p99 {:.0} us before, {:.0} us during ({} requests), errors {}",
        point.seconds,
        point.scan_calls,
        point.scan_us_per_call,
        point.p99_before_us,
        point.p99_during_us,
        point.requests_during,
        point.errors
    );
    Ok(point)
}
