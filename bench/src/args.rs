//! Command-line arguments, parsed by hand.

use std::path::PathBuf;
use std::time::Duration;

use crate::Result;
use crate::servers::{Framework, ServeSpec, Variant};

pub const USAGE: &str = "\
keygate-bench: keygate against the session crates users would pick instead

USAGE:
    keygate-bench <all|http|core|lock|flash-sale|ratelimit|metrics|nearcache> [OPTIONS]
    keygate-bench scale [--sessions N] [--cluster-sessions N] [--churn-sessions N]
                        [--rounds N] [--duration SECS] [--connections N] [--out DIR] [--quick]
                                         sessions at a million: memory, cost per request,
                                         per-user and operator work, expiry churn, the Cluster
                                         (default 1,000,000 sessions; results in
                                         bench/results/scale)
    keygate-bench gate [--budget FILE]   instructions per GET /me under callgrind vs the
                                         hand-written routes (default bench/gate.budget)

OPTIONS:
    --rounds N          alternating rounds per measurement (default 5)
    --duration SECS     length of one measured round (default 2)
    --warmup SECS       load before the first round of each server (default 1)
    --connections N     HTTP keep-alive connections (default 32)
    --frameworks LIST   comma-separated subset of axum,actix,poem,rocket (default all)
    --loadgen KIND      auto (wrk when installed), wrk, or builtin (default auto)
    --out DIR           where results.md and chart.svg go (default bench/results)
    --quick             1 round of 1 s, 0.3 s warm-up: a smoke test, not a measurement
";

/// What to run.
#[derive(Debug)]
pub enum Command {
    Help,
    Bench(What, Options),
    /// Internal: run one server in this (child) process until killed.
    Serve(ServeSpec),
    /// The performance gate, with this budget file.
    Gate(PathBuf),
    /// Sessions at a million: memory, request cost, operator work, the Cluster.
    Scale(crate::scale::ScaleOptions),
}

/// Which benchmarks.
#[derive(Debug, Clone, Copy, Default)]
pub struct What {
    pub http: bool,
    pub core: bool,
    pub lock: bool,
    pub flash_sale: bool,
    pub ratelimit: bool,
    pub metrics: bool,
    pub near_cache: bool,
}

/// Which load generator drives the HTTP servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadGen {
    Auto,
    Wrk,
    Builtin,
}

/// Settings shared by every benchmark.
#[derive(Debug, Clone)]
pub struct Options {
    pub rounds: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub connections: usize,
    pub frameworks: Vec<Framework>,
    pub loadgen: LoadGen,
    pub out: PathBuf,
    pub command_line: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            rounds: 5,
            duration: Duration::from_secs(2),
            warmup: Duration::from_secs(1),
            connections: 32,
            frameworks: Framework::ALL.to_vec(),
            loadgen: LoadGen::Auto,
            out: default_out(),
            command_line: String::new(),
        }
    }
}

/// `bench/results` of the workspace (the crate's manifest directory at build time).
fn default_out() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results")
}

fn value<'a>(it: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<&'a str> {
    it.next()
        .map(String::as_str)
        .ok_or_else(|| format!("{flag} needs a value").into())
}

fn number<T: std::str::FromStr>(text: &str, flag: &str) -> Result<T> {
    text.parse()
        .map_err(|_| format!("{flag}: not a number: {text:?}").into())
}

fn seconds(text: &str, flag: &str) -> Result<Duration> {
    let secs: f64 = number(text, flag)?;
    if !(0.0..=600.0).contains(&secs) {
        return Err(format!("{flag}: {secs} s is out of range (0..=600)").into());
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn parse(argv: &[String]) -> Result<Command> {
    let Some(first) = argv.first() else {
        return Ok(Command::Help);
    };
    let what = match first.as_str() {
        "-h" | "--help" | "help" => return Ok(Command::Help),
        "serve" => return parse_serve(&argv[1..]),
        "gate" => {
            return match &argv[1..] {
                [] => Ok(Command::Gate(
                    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("gate.budget"),
                )),
                [flag, path] if flag == "--budget" => Ok(Command::Gate(PathBuf::from(path))),
                _ => Err("usage: keygate-bench gate [--budget FILE]".into()),
            };
        }
        "scale" => return parse_scale(argv),
        "all" => What {
            http: true,
            core: true,
            lock: true,
            flash_sale: true,
            ratelimit: true,
            metrics: true,
            near_cache: true,
        },
        "http" => What {
            http: true,
            ..What::default()
        },
        "core" => What {
            core: true,
            ..What::default()
        },
        "lock" => What {
            lock: true,
            ..What::default()
        },
        "flash-sale" => What {
            flash_sale: true,
            ..What::default()
        },
        "ratelimit" => What {
            ratelimit: true,
            ..What::default()
        },
        "metrics" => What {
            metrics: true,
            ..What::default()
        },
        "nearcache" => What {
            near_cache: true,
            ..What::default()
        },
        other => return Err(format!("unknown command {other:?}\n\n{USAGE}").into()),
    };
    let mut options = Options {
        command_line: argv.join(" "),
        ..Options::default()
    };
    let mut it = argv[1..].iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--rounds" => options.rounds = number(value(&mut it, flag)?, flag)?,
            "--duration" => options.duration = seconds(value(&mut it, flag)?, flag)?,
            "--warmup" => options.warmup = seconds(value(&mut it, flag)?, flag)?,
            "--connections" => options.connections = number(value(&mut it, flag)?, flag)?,
            "--frameworks" => {
                options.frameworks = value(&mut it, flag)?
                    .split(',')
                    .map(Framework::parse)
                    .collect::<Result<_>>()?;
            }
            "--loadgen" => {
                options.loadgen = match value(&mut it, flag)? {
                    "auto" => LoadGen::Auto,
                    "wrk" => LoadGen::Wrk,
                    "builtin" => LoadGen::Builtin,
                    other => return Err(format!("--loadgen: unknown {other:?}").into()),
                }
            }
            "--out" => options.out = PathBuf::from(value(&mut it, flag)?),
            "--quick" => {
                options.rounds = 1;
                options.duration = Duration::from_secs(1);
                options.warmup = Duration::from_millis(300);
            }
            other => return Err(format!("unknown option {other:?}\n\n{USAGE}").into()),
        }
    }
    if options.rounds == 0 || options.connections == 0 || options.duration.is_zero() {
        return Err("--rounds, --connections and --duration must be positive".into());
    }
    if options.connections > 1024 {
        return Err("--connections: at most 1024".into());
    }
    if options.rounds > 20 {
        return Err("--rounds: at most 20".into());
    }
    Ok(Command::Bench(what, options))
}

/// `serve <framework> <variant> <port> <redis url>`
fn parse_serve(rest: &[String]) -> Result<Command> {
    let [framework, variant, port, redis] = rest else {
        return Err("usage: keygate-bench serve <framework> <variant> <port> <redis url>".into());
    };
    Ok(Command::Serve(ServeSpec {
        framework: Framework::parse(framework)?,
        variant: Variant::parse(variant)?,
        port: number(port, "port")?,
        redis_url: redis.clone(),
    }))
}

/// `scale [OPTIONS]`.
fn parse_scale(argv: &[String]) -> Result<Command> {
    let mut options = crate::scale::ScaleOptions {
        command_line: argv[1..].join(" "),
        ..crate::scale::ScaleOptions::default()
    };
    let mut it = argv[1..].iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--sessions" => options.sessions = number(value(&mut it, flag)?, flag)?,
            "--cluster-sessions" => options.cluster_sessions = number(value(&mut it, flag)?, flag)?,
            "--churn-sessions" => options.churn_sessions = number(value(&mut it, flag)?, flag)?,
            "--rounds" => options.rounds = number(value(&mut it, flag)?, flag)?,
            "--duration" => options.duration = seconds(value(&mut it, flag)?, flag)?,
            "--connections" => options.connections = number(value(&mut it, flag)?, flag)?,
            "--out" => options.out = PathBuf::from(value(&mut it, flag)?),
            "--quick" => {
                options.sessions = 20_000;
                options.cluster_sessions = 20_000;
                options.churn_sessions = 10_000;
                options.rounds = 1;
                options.duration = Duration::from_secs(1);
            }
            other => return Err(format!("unknown option {other:?}\n\n{USAGE}").into()),
        }
    }
    if options.sessions < 10_000 || options.sessions > 10_000_000 {
        return Err("--sessions: between 10,000 and 10,000,000".into());
    }
    if options.cluster_sessions > 10_000_000 || options.churn_sessions == 0 {
        return Err("--cluster-sessions: at most 10,000,000; --churn-sessions: positive".into());
    }
    if options.rounds == 0 || options.rounds > 20 || options.connections == 0 {
        return Err("--rounds: 1..=20; --connections: positive".into());
    }
    if options.connections > 1024 || options.duration.is_zero() {
        return Err("--connections: at most 1024; --duration: positive".into());
    }
    Ok(Command::Scale(options))
}
