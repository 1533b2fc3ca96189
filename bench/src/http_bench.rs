//! The HTTP comparison: per framework, one private Redis and five servers (bare, GETEX,
//! keygate JSON, keygate hash, incumbent) in child processes, driven in alternating rounds.

use std::path::Path;
use std::time::Duration;

use crate::Result;
use crate::args::Options;
use crate::loadgen::{Generator, LoadResult, request_once};
use crate::redis_admin::{self, Admin};
use crate::servers::{Framework, ServeSpec, ServerProcess, Variant, process_cpu_ns};
use crate::stats::median;
use crate::user::OPENID;

/// Everything the HTTP benchmark measured.
#[derive(Debug)]
pub struct HttpReport {
    pub generator: String,
    pub rounds: usize,
    pub duration: Duration,
    pub frameworks: Vec<FrameworkResult>,
}

/// One framework's servers.
#[derive(Debug)]
pub struct FrameworkResult {
    pub framework: Framework,
    pub variants: Vec<VariantResult>,
    /// `MEMORY USAGE` of keygate's per-user index and its member count, after the logins.
    pub index: Option<(u64, u64)>,
}

/// One server's numbers.
#[derive(Debug)]
pub struct VariantResult {
    pub variant: Variant,
    /// Why it did not run, if it did not.
    pub failure: Option<String>,
    /// One load result per round, in round order.
    pub rounds: Vec<LoadResult>,
    /// Redis commands per request, all rounds together, and per command.
    pub commands_per_request: f64,
    pub breakdown: Vec<(String, f64)>,
    /// `MEMORY USAGE` of the session key, and its Redis type.
    pub bytes: Option<u64>,
    pub key_type: Option<String>,
    /// Whether `GET /me` pushed the session's expiry forward.
    pub slides: Option<bool>,
    /// CPU time of the server process and of Redis over all rounds, and the requests
    /// answered then: CPU per request does not depend on what else the machine runs.
    pub server_cpu_ns: u64,
    pub redis_cpu_ns: u64,
    pub requests: u64,
}

impl VariantResult {
    fn new(variant: Variant) -> Self {
        Self {
            variant,
            failure: None,
            rounds: Vec::new(),
            commands_per_request: 0.0,
            breakdown: Vec::new(),
            bytes: None,
            key_type: None,
            slides: None,
            server_cpu_ns: 0,
            redis_cpu_ns: 0,
            requests: 0,
        }
    }

    /// Server CPU µs per request.
    pub fn server_cpu_us(&self) -> Option<f64> {
        (self.requests > 0 && self.server_cpu_ns > 0)
            .then(|| self.server_cpu_ns as f64 / 1e3 / self.requests as f64)
    }

    /// Redis CPU µs per request.
    pub fn redis_cpu_us(&self) -> Option<f64> {
        (self.requests > 0 && self.redis_cpu_ns > 0)
            .then(|| self.redis_cpu_ns as f64 / 1e3 / self.requests as f64)
    }

    pub fn ran(&self) -> bool {
        self.failure.is_none() && !self.rounds.is_empty()
    }

    pub fn rps(&self) -> f64 {
        median(&self.rounds.iter().map(LoadResult::rps).collect::<Vec<_>>())
    }

    pub fn p50_us(&self) -> f64 {
        median(&self.rounds.iter().map(|r| r.p50_us).collect::<Vec<_>>())
    }

    pub fn p99_us(&self) -> f64 {
        median(&self.rounds.iter().map(|r| r.p99_us).collect::<Vec<_>>())
    }

    pub fn errors(&self) -> u64 {
        self.rounds.iter().map(|r| r.errors).sum()
    }
}

impl FrameworkResult {
    pub fn get(&self, variant: Variant) -> Option<&VariantResult> {
        self.variants
            .iter()
            .find(|v| v.variant == variant && v.ran())
    }

    /// Median over rounds of `a`'s req/s over `b`'s in the same round.
    pub fn ratio(&self, a: Variant, b: Variant) -> Option<f64> {
        let (a, b) = (self.get(a)?, self.get(b)?);
        let ratios: Vec<f64> = a
            .rounds
            .iter()
            .zip(&b.rounds)
            .filter(|(_, b)| b.rps() > 0.0)
            .map(|(a, b)| a.rps() / b.rps())
            .collect();
        (!ratios.is_empty()).then(|| median(&ratios))
    }
}

/// A server under test with what its clients send.
struct Running {
    server: ServerProcess,
    header: Option<(String, String)>,
    session_key: Option<String>,
}

pub fn run(options: &Options) -> Result<HttpReport> {
    let generator = Generator::choose(options.loadgen)?;
    let describe = generator.describe(options.connections);
    eprintln!("http: {describe}");
    let log_dir = std::env::temp_dir().join(format!("keygate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&log_dir)?;
    let mut frameworks = Vec::new();
    for &framework in &options.frameworks {
        frameworks.push(run_framework(
            framework,
            &Variant::ALL,
            options,
            &generator,
            &log_dir,
        )?);
    }
    let _ = std::fs::remove_dir_all(&log_dir);
    Ok(HttpReport {
        generator: describe,
        rounds: options.rounds,
        duration: options.duration,
        frameworks,
    })
}

/// One framework's `variants`, each in a child process on one private Redis, driven in
/// alternating rounds.
/// The axum keygate route with and without a Prometheus recorder.
pub fn run_metrics(options: &Options) -> Result<FrameworkResult> {
    let generator = Generator::choose(options.loadgen)?;
    let log_dir =
        std::env::temp_dir().join(format!("keygate-bench-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&log_dir)?;
    let result = run_framework(
        Framework::Axum,
        &crate::servers::METRICS,
        options,
        &generator,
        &log_dir,
    );
    let _ = std::fs::remove_dir_all(&log_dir);
    result
}

/// The near cache on axum: one hot session, and 10,000 sessions round-robin.
pub fn run_near_cache(options: &Options) -> Result<(FrameworkResult, FrameworkResult)> {
    let generator = Generator::choose(options.loadgen)?;
    let log_dir = std::env::temp_dir().join(format!("keygate-bench-near-{}", std::process::id()));
    std::fs::create_dir_all(&log_dir)?;
    let variants = crate::servers::NEAR_CACHE;
    let hot = run_framework(Framework::Axum, &variants, options, &generator, &log_dir);
    let spread = hot.as_ref().ok().map(|_| {
        run_framework_with(
            Framework::Axum,
            &variants,
            options,
            &generator,
            &log_dir,
            NEAR_CACHE_SESSIONS,
        )
    });
    let _ = std::fs::remove_dir_all(&log_dir);
    Ok((hot?, spread.ok_or("unreachable")??))
}

/// Sessions used round-robin in the near cache's second scenario.
pub const NEAR_CACHE_SESSIONS: usize = 10_000;

pub fn run_framework(
    framework: Framework,
    variants: &[Variant],
    options: &Options,
    generator: &Generator,
    log_dir: &Path,
) -> Result<FrameworkResult> {
    run_framework_with(framework, variants, options, generator, log_dir, 1)
}

/// [`run_framework`], the token-carrying servers loaded with `sessions` sessions
/// round-robin (planted in Redis beside the one each server logged in) when more than one.
pub fn run_framework_with(
    framework: Framework,
    variants: &[Variant],
    options: &Options,
    generator: &Generator,
    log_dir: &Path,
    sessions: usize,
) -> Result<FrameworkResult> {
    eprintln!("http: {} ...", framework.label());
    let redis = redis_admin::start()?;
    let mut admin = Admin::connect(&redis.url())?;
    let redis_pid = admin.pid()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    let mut results: Vec<VariantResult> = variants.iter().map(|&v| VariantResult::new(v)).collect();
    let mut running: Vec<Option<Running>> = Vec::new();
    for result in &mut results {
        let spec = ServeSpec {
            framework,
            variant: result.variant,
            port: keygate_tests::free_port(),
            redis_url: redis.url(),
        };
        let started = ServerProcess::start(&spec, log_dir)
            .and_then(|server| rt.block_on(log_in(server, result.variant, &mut admin)));
        match started {
            Ok(r) => running.push(Some(r)),
            Err(error) => {
                eprintln!("http:   {}: {error}", result.variant.label(framework));
                result.failure = Some(error.to_string());
                running.push(None);
            }
        }
    }

    // Does `GET /me` push the expiry forward? Wait past a second boundary first: some
    // stores write expiries in whole seconds.
    std::thread::sleep(Duration::from_millis(1100));
    for (result, slot) in results.iter_mut().zip(running.iter_mut()) {
        let Some(r) = slot else { continue };
        if let Err(error) = rt.block_on(check(r, result, &mut admin)) {
            eprintln!("http:   {}: {error}", result.variant.label(framework));
            result.failure = Some(error.to_string());
            *slot = None;
        }
    }
    let index = index_usage(&mut admin)?;
    let planted = if sessions > 1 {
        let mut customs: Vec<&str> = variants.iter().map(|v| v.node_custom()).collect();
        customs.sort_unstable();
        customs.dedup();
        admin.plant_node_sessions(sessions, &customs)?
    } else {
        Vec::new()
    };
    let cycle_for = |r: &Running, variant: Variant| -> Vec<Vec<(String, String)>> {
        if let Some(cycle) = variant.header_cycle() {
            return cycle;
        }
        if planted.is_empty() || !variant.uses_token() {
            return vec![r.header.iter().cloned().collect()];
        }
        planted
            .iter()
            .map(|token| vec![("authorization".to_owned(), token.clone())])
            .collect()
    };

    for (result, slot) in results.iter().zip(&running) {
        if let Some(r) = slot {
            generator.run_cycle(
                r.server.port,
                &cycle_for(r, result.variant),
                options.connections,
                options.warmup,
            )?;
            eprintln!("http:   warmed up {}", result.variant.label(framework));
        }
    }
    let n = results.len();
    let mut calls: Vec<Vec<(String, u64)>> = vec![Vec::new(); n];
    let mut requests = vec![0u64; n];
    for round in 0..options.rounds {
        for k in 0..n {
            // Rotate the order every round so that no server always runs first or last.
            let i = (k + round) % n;
            let Some(r) = running[i].as_mut() else {
                continue;
            };
            admin.reset_stats()?;
            let cpu_before = (r.server.cpu_ns(), process_cpu_ns(redis_pid));
            let load = generator.run_cycle(
                r.server.port,
                &cycle_for(r, results[i].variant),
                options.connections,
                options.duration,
            )?;
            let cpu_after = (r.server.cpu_ns(), process_cpu_ns(redis_pid));
            add_calls(&mut calls[i], admin.command_calls()?);
            requests[i] += load.ok + load.errors;
            if let ((Some(s0), Some(r0)), (Some(s1), Some(r1))) = (cpu_before, cpu_after) {
                results[i].server_cpu_ns += s1.saturating_sub(s0);
                results[i].redis_cpu_ns += r1.saturating_sub(r0);
                results[i].requests += load.ok + load.errors;
            }
            eprintln!(
                "http:   round {} {:<22} {:>9.0} req/s  p50 {:>6.0} us  p99 {:>6.0} us  errors {}  server CPU {:.1} us/req",
                round + 1,
                results[i].variant.label(framework),
                load.rps(),
                load.p50_us,
                load.p99_us,
                load.errors,
                match cpu_after.0.zip(cpu_before.0) {
                    Some((a, b)) if load.ok > 0 =>
                        a.saturating_sub(b) as f64 / 1e3 / load.ok as f64,
                    _ => 0.0,
                }
            );
            if !r.server.alive() {
                results[i].failure = Some(format!("server died: {}", r.server.log_tail()));
                running[i] = None;
            }
            results[i].rounds.push(load);
        }
    }
    for (i, result) in results.iter_mut().enumerate() {
        if requests[i] > 0 {
            let total = requests[i] as f64;
            result.breakdown = calls[i]
                .iter()
                .map(|(name, n)| (name.clone(), *n as f64 / total))
                .collect();
            result.commands_per_request = result.breakdown.iter().fold(0.0, |sum, (_, n)| sum + n);
        }
    }
    drop(running);
    drop(redis);
    Ok(FrameworkResult {
        framework,
        variants: results,
        index,
    })
}

fn add_calls(total: &mut Vec<(String, u64)>, round: Vec<(String, u64)>) {
    for (name, n) in round {
        match total.iter_mut().find(|(t, _)| *t == name) {
            Some((_, t)) => *t += n,
            None => total.push((name, n)),
        }
    }
}

/// Logs in through `POST /login` and finds the session key it created.
async fn log_in(server: ServerProcess, variant: Variant, admin: &mut Admin) -> Result<Running> {
    let before = admin.keys()?;
    let response = request_once("POST", server.port, "/login", &[]).await?;
    if response.status != 200 {
        return Err(format!(
            "POST /login answered {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        )
        .into());
    }
    let header = if !variant.has_session() {
        None
    } else if variant.uses_token() {
        let token = String::from_utf8(response.body)?.trim().to_owned();
        Some(("authorization".to_owned(), token))
    } else {
        let cookie = response
            .header("set-cookie")
            .and_then(|c| c.split(';').next())
            .ok_or("POST /login set no cookie")?;
        Some(("cookie".to_owned(), cookie.to_owned()))
    };
    let session_key = if variant.has_session() {
        let created: Vec<String> = admin
            .keys()?
            .into_iter()
            .filter(|k| !before.contains(k) && !k.starts_with("keygate:"))
            .collect();
        match created.as_slice() {
            [key] => Some(key.clone()),
            other => {
                return Err(format!(
                    "expected one new session key after login, found {}",
                    other.len()
                )
                .into());
            }
        }
    } else {
        None
    };
    Ok(Running {
        server,
        header,
        session_key,
    })
}

/// `GET /me` answers the user, and whether it pushed the expiry forward; bytes per session.
async fn check(r: &mut Running, result: &mut VariantResult, admin: &mut Admin) -> Result<()> {
    let before = match &r.session_key {
        Some(key) => Some(admin.pttl(key)?),
        None => None,
    };
    let headers: Vec<(String, String)> = r.header.iter().cloned().collect();
    let response = request_once("GET", r.server.port, "/me", &headers).await?;
    let body = String::from_utf8_lossy(&response.body);
    if response.status != 200 || !body.contains(OPENID) {
        return Err(format!("GET /me answered {}: {body}", response.status).into());
    }
    if let (Some(key), Some(before)) = (&r.session_key, before) {
        let after = admin.pttl(key)?;
        result.slides = Some(after > before);
        result.bytes = admin.memory_usage(key)?;
        result.key_type = Some(admin.key_type(key)?);
    }
    Ok(())
}

/// keygate's per-user index (`keygate:user-sessions:598`): bytes and members.
fn index_usage(admin: &mut Admin) -> Result<Option<(u64, u64)>> {
    const INDEX: &str = "keygate:user-sessions:598";
    let Some(bytes) = admin.memory_usage(INDEX)? else {
        return Ok(None);
    };
    let members = admin.zcard(INDEX)?;
    Ok(Some((bytes, members)))
}
