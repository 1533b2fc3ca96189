//! `keygate-bench scale`: what sessions cost at a million, on one server and on a Cluster.
//!
//! Every session is created through `SessionManager::login` (the per-user index and the
//! companion keys exist as in production), many logins in flight on one multiplexed
//! connection. Memory is read as `INFO memory` deltas; request costs as Redis µs per call
//! (`INFO commandstats`) and server CPU per request, which the load generator sharing the
//! cores cannot blur. See `bench/README.md` and `docs/capacity.md`.

mod capabilities;
mod cases;
mod churn;
mod cluster;
mod http;
mod memory;
mod operator;
mod per_user;
mod populate;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use keygate::RedisStore;

use crate::Result;
use crate::redis_admin::{self, Admin};
use crate::servers::{Framework, ServeSpec, ServerProcess, Variant};
use crate::user::NODE_CUSTOM;
use cases::{Extra, Seed};
use http::RedisSide;
use memory::AnyManager;

/// Settings of a scale run.
#[derive(Debug, Clone)]
pub struct ScaleOptions {
    /// The largest population on one server (default 1,000,000).
    pub sessions: usize,
    /// The population on the Cluster (default 1,000,000; 0 skips the Cluster).
    pub cluster_sessions: usize,
    /// Sessions that expire at once in the churn run (default 100,000).
    pub churn_sessions: usize,
    pub rounds: usize,
    pub duration: Duration,
    pub connections: usize,
    pub out: PathBuf,
    pub command_line: String,
}

impl Default for ScaleOptions {
    fn default() -> Self {
        Self {
            sessions: 1_000_000,
            cluster_sessions: 1_000_000,
            churn_sessions: 100_000,
            rounds: 3,
            duration: Duration::from_secs(2),
            connections: 32,
            out: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results/scale"),
            command_line: String::new(),
        }
    }
}

/// The populations memory is read at, up to `max`.
fn checkpoints(max: usize) -> Vec<usize> {
    let mut points: Vec<usize> = [10_000, 100_000].into_iter().filter(|n| *n < max).collect();
    points.push(max);
    points
}

pub fn run(options: &ScaleOptions) -> Result<()> {
    redis_admin::check_redis_server()?;
    operator::cli_binary()?;
    let started = std::time::Instant::now();
    let log_dir = std::env::temp_dir().join(format!("keygate-bench-scale-{}", std::process::id()));
    std::fs::create_dir_all(&log_dir)?;
    let mut report = report::ScaleReport::new(options);

    // First, while this process has allocated little: its resident memory growth is the
    // cache's then.
    eprintln!("scale: the near cache's memory ...");
    report.near_cache = Some(crate::near_cache_bench::memory(100_000)?);
    report.capabilities = capabilities::run(options.duration)?;

    eprintln!("scale: one server, {} sessions ...", options.sessions);
    let redis = redis_admin::start()?;
    let url = redis.url();
    let mut admin = Admin::connect(&url)?;
    let pid = admin.pid()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let store = rt.block_on(RedisStore::connect(&url))?;
    let spec = ServeSpec {
        framework: Framework::Axum,
        variant: Variant::Keygate,
        port: keygate_tests::free_port(),
        redis_url: url.clone(),
    };
    let server = ServerProcess::start(&spec, &log_dir)?;
    // The floor beside it: one GETEX and the user decoded, on the same keys.
    let reference = ServerProcess::start(
        &ServeSpec {
            variant: Variant::Getex,
            port: keygate_tests::free_port(),
            ..spec.clone()
        },
        &log_dir,
    )?;
    let mut http_admins = vec![Admin::connect(&url)?];
    let mut side = RedisSide {
        admins: &mut http_admins,
        pids: vec![pid],
        command: "getex",
    };
    // keygate's route and the hand-written one, each over the same draws.
    let measure = |label: &str, sessions: usize, side: &mut RedisSide<'_>, tokens: &[&str]| {
        let cycle = http::headers(tokens);
        [(http::KEYGATE, &server), (http::HAND_WRITTEN, &reference)]
            .into_iter()
            .map(|(name, srv)| {
                http::measure(
                    name,
                    label,
                    sessions,
                    srv,
                    side,
                    &cycle,
                    options.connections,
                    options.rounds,
                    options.duration,
                )
            })
            .collect::<Result<Vec<_>>>()
    };

    // JSON, the Node seed: memory, and GET /me at 1, 10k and the full population.
    let node = AnyManager::new(store.clone(), Seed::NodeJson, Extra::Plain)?;
    let hot = rt.block_on(node.login_range("hot", 0, 1, true))?.0;
    report
        .http
        .extend(measure("1 session", 1, &mut side, &[hot[0].as_str()])?);
    admin.flush()?;
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3);
    let mut full: Vec<String> = Vec::new();
    let points = rt.block_on(memory::grow(
        &mut admin,
        &node,
        Seed::NodeJson,
        Extra::Plain,
        "u",
        &checkpoints(options.sessions),
        true,
        |n, tokens, raw_admin| {
            if n == 10_000 || n == options.sessions {
                let label = format!("{n} sessions, uniform");
                let draws = http::uniform(tokens, &mut rng);
                report.http.extend(measure(&label, n, &mut side, &draws)?);
                let keys = draws.iter().map(|t| format!("{NODE_CUSTOM}_{t}")).collect();
                let raw = tokio::task::block_in_place(|| {
                    tokio::runtime::Handle::current().block_on(http::raw_getex(
                        &format!("{n} sessions, uniform"),
                        n,
                        &url,
                        raw_admin,
                        keys,
                        options.duration,
                    ))
                })?;
                report.http.push(raw);
            }
            if n == options.sessions {
                let label = format!("{n} sessions, Zipf");
                report.http.extend(measure(
                    &label,
                    n,
                    &mut side,
                    &http::zipf(tokens, &mut rng),
                )?);
                full = tokens.to_vec();
            }
            Ok(())
        },
    ))?;
    report.memory.extend(points);
    let cycle = http::headers(&http::uniform(&full, &mut rng));
    drop(full);
    report.counts.push(operator::count_under_load(
        "one server",
        std::slice::from_mut(&mut admin),
        ("REDIS_URL", &url),
        &format!("node:{NODE_CUSTOM}"),
        server.port,
        &cycle,
        options.connections,
    )?);
    drop(cycle);
    report.index_shares.push(memory::index_share(
        &mut admin,
        Seed::NodeJson,
        options.sessions,
    )?);

    eprintln!("scale: per-user operations ...");
    admin.flush()?;
    report.per_user = rt.block_on(per_user::run(&store, &mut admin, &[1, 100, 1_000]))?;
    report.capped = rt.block_on(per_user::capped(&store, &mut admin, &[10, 100, 1_000]))?;
    admin.flush()?;
    report.big_index = Some(rt.block_on(memory::big_index(&mut admin, &node, 1_000))?);

    eprintln!("scale: expiry churn ...");
    admin.flush()?;
    report.churn = Some(rt.block_on(churn::run(
        &store,
        &url,
        server.port,
        10_000,
        options.churn_sessions,
        options.connections,
    ))?);
    drop(server);
    drop(reference);

    eprintln!("scale: the Java seed's hash sessions and the options ...");
    admin.flush()?;
    let java = AnyManager::new(store.clone(), Seed::JavaHash, Extra::Plain)?;
    let points = rt.block_on(memory::grow(
        &mut admin,
        &java,
        Seed::JavaHash,
        Extra::Plain,
        "u",
        &checkpoints(options.sessions),
        false,
        |_, _, _| Ok(()),
    ))?;
    report.memory.extend(points);
    report.index_shares.push(memory::index_share(
        &mut admin,
        Seed::JavaHash,
        options.sessions,
    )?);
    let smaller = checkpoints(options.sessions.min(100_000));
    for (seed, extra) in [
        (Seed::NodeJson, Extra::Lifetime),
        (Seed::NodeJson, Extra::LoginLimits),
        (Seed::NodeJson, Extra::ShortTokens),
        (Seed::JavaHash, Extra::Lifetime),
    ] {
        admin.flush()?;
        let manager = AnyManager::new(store.clone(), seed, extra)?;
        let points = rt.block_on(memory::grow(
            &mut admin,
            &manager,
            seed,
            extra,
            "u",
            &smaller,
            false,
            |_, _, _| Ok(()),
        ))?;
        report.memory.extend(points);
    }
    drop(store);
    drop(rt);
    drop(redis);

    if options.cluster_sessions > 0 {
        report.cluster = Some(cluster::run(&cluster::Settings {
            sessions: options.cluster_sessions,
            connections: options.connections,
            rounds: options.rounds,
            duration: options.duration,
            log_dir: &log_dir,
        })?);
    }
    report.elapsed = started.elapsed();
    let _ = std::fs::remove_dir_all(&log_dir);
    report.write()
}
