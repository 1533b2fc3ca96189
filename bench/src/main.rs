//! `keygate-bench`: keygate side by side with the session crates users would pick instead,
//! on the same machine, in the same run.
//!
//! ```text
//! keygate-bench all       [options]   every benchmark below, then the report
//! keygate-bench http      [options]   the four frameworks (bare, GETEX, keygate, incumbent)
//! keygate-bench core      [options]   the session manager alone vs a raw GETEX loop
//! keygate-bench lock      [options]   lock acquire+release and hand-over latency
//! keygate-bench flash-sale [options]   flash-sale orders, sold-out rejections, stream consumer
//! keygate-bench ratelimit [options]   limiter decisions vs raw EVALSHA; axum route with/without the limiter
//! keygate-bench metrics   [options]   the axum keygate route with and without a metrics recorder
//! keygate-bench scale     [options]   sessions at a million: memory, cost per request,
//!                                      per-user and operator work, the Cluster
//! keygate-bench gate      [--budget F] the performance gate: instructions per request vs the
//!                                      hand-written routes, under callgrind (bench/gate.budget)
//! ```
//!
//! Every server, Redis included, is private: started by this process on a free loopback
//! port and stopped at the end. See `bench/README.md`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod args;
mod core_bench;
mod flash_sale_bench;
mod gate;
mod http_bench;
mod loadgen;
mod lock_bench;
mod near_cache_bench;
mod ratelimit_bench;
mod redis_admin;
mod report;
mod scale;
mod servers;
mod stats;
mod user;

use std::process::ExitCode;

/// Errors end the run with a message; a benchmark has nobody to hand them to.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match run(&argv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("keygate-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(argv: &[String]) -> Result<()> {
    let command = args::parse(argv)?;
    match command {
        args::Command::Help => {
            println!("{}", args::USAGE);
            Ok(())
        }
        args::Command::Serve(spec) => servers::serve(&spec),
        args::Command::Scale(options) => scale::run(&options),
        args::Command::Gate(budget) => {
            redis_admin::check_redis_server()?;
            gate::run(&budget)
        }
        args::Command::Bench(what, options) => {
            redis_admin::check_redis_server()?;
            let mut report = report::Report::new(&options);
            if what.http {
                report.http = Some(http_bench::run(&options)?);
            }
            if what.core {
                report.core = Some(core_bench::run(&options)?);
            }
            if what.lock {
                report.lock = Some(lock_bench::run(&options)?);
            }
            if what.flash_sale {
                report.flash_sale = Some(flash_sale_bench::run(&options)?);
            }
            if what.ratelimit {
                report.ratelimit = Some(ratelimit_bench::run(&options)?);
            }
            if what.metrics {
                report.metrics = Some(http_bench::run_metrics(&options)?);
            }
            if what.near_cache {
                report.near_cache = Some(near_cache_bench::run(&options)?);
            }
            report.finish();
            report.write()
        }
    }
}
