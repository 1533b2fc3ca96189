//! The scale run's Markdown report (`results.md` in the output directory).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::ScaleOptions;
use super::capabilities::CapabilityPoint;
use super::churn::ChurnPoint;
use super::cluster::ClusterReport;
use super::http::HttpPoint;
use super::memory::{BigIndex, IndexShare, MemoryPoint};
use super::operator::CountPoint;
use super::per_user::{CappedPoint, OpPoint};
use crate::Result;
use crate::near_cache_bench::Memory;
use crate::report::{load_average, machine, us, utc_date_time};

const GIB: f64 = (1u64 << 30) as f64;
const MIB: f64 = (1u64 << 20) as f64;

pub struct ScaleReport {
    options: ScaleOptions,
    started: SystemTime,
    pub elapsed: Duration,
    pub capabilities: Vec<CapabilityPoint>,
    pub memory: Vec<MemoryPoint>,
    pub index_shares: Vec<IndexShare>,
    pub big_index: Option<BigIndex>,
    pub near_cache: Option<Memory>,
    pub http: Vec<HttpPoint>,
    pub per_user: Vec<OpPoint>,
    pub capped: Vec<CappedPoint>,
    pub counts: Vec<CountPoint>,
    pub churn: Option<ChurnPoint>,
    pub cluster: Option<ClusterReport>,
}

impl ScaleReport {
    pub fn new(options: &ScaleOptions) -> Self {
        Self {
            options: options.clone(),
            started: SystemTime::now(),
            elapsed: Duration::ZERO,
            capabilities: Vec::new(),
            memory: Vec::new(),
            index_shares: Vec::new(),
            big_index: None,
            near_cache: None,
            http: Vec::new(),
            per_user: Vec::new(),
            capped: Vec::new(),
            counts: Vec::new(),
            churn: None,
            cluster: None,
        }
    }

    pub fn write(&self) -> Result<()> {
        let md = self.markdown();
        println!("{md}");
        std::fs::create_dir_all(&self.options.out)?;
        let path = self.options.out.join("results.md");
        std::fs::write(&path, md)?;
        eprintln!("scale: report written to {}", path.display());
        Ok(())
    }

    fn markdown(&self) -> String {
        let secs = self
            .started
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut md = String::new();
        let _ = writeln!(md, "# keygate at scale, {}\n", utc_date_time(secs));
        let _ = writeln!(
            md,
            "Machine: {} (load average at the end {}); Redis {}, private servers on loopback, \
             no persistence. Command: `keygate-bench scale{}{}` ({:.0} min). Every session was \
             created through `SessionManager::login`, {} logins in flight on one connection; \
             one user per session unless said otherwise. Shared machine: requests per second \
             swing with its load; Redis µs per call and CPU per request do much less.\n",
            machine(),
            load_average(),
            crate::redis_admin::version(),
            if self.options.command_line.is_empty() {
                ""
            } else {
                " "
            },
            self.options.command_line,
            self.elapsed.as_secs_f64() / 60.0,
            super::populate::IN_FLIGHT,
        );
        self.memory_md(&mut md);
        self.http_md(&mut md);
        self.per_user_md(&mut md);
        self.operator_md(&mut md);
        self.churn_md(&mut md);
        self.cluster_md(&mut md);
        self.capabilities_md(&mut md);
        md
    }

    fn memory_md(&self, md: &mut String) {
        let _ = writeln!(md, "## Redis memory per session\n");
        let _ = writeln!(
            md,
            "`INFO memory` `used_memory` grown from the empty server, divided by the sessions \
             (everything a session brings: its key, its per-user index key, its companion, the \
             keyspace's and the expiry table's entries).\n"
        );
        let _ = writeln!(
            md,
            "| layout | option | sessions | bytes/session | keys/session | sessions per GiB | logins/s |"
        );
        let _ = writeln!(md, "| --- | --- | ---: | ---: | ---: | ---: | ---: |");
        for p in &self.memory {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.0} | {:.2} | {:.2} M | {:.0} |",
                p.seed.label(),
                p.extra.label(),
                p.sessions,
                p.bytes_per_session,
                p.keys_per_session,
                GIB / p.bytes_per_session.max(1.0) / 1e6,
                p.logins_per_sec
            );
        }
        let _ = writeln!(md);
        for share in &self.index_shares {
            let _ = writeln!(
                md,
                "- {}, {} sessions: the per-user index (always on; one index key per user here) \
                 takes **{:.0} B** of each session's bytes (freed by deleting the index keys).",
                share.seed.label(),
                share.sessions,
                share.bytes_per_session
            );
        }
        if let Some(big) = &self.big_index {
            let _ = writeln!(
                md,
                "- One user with {} sessions (Node seed): the index key takes {} B \
                 (`MEMORY USAGE`, encoding `{}`), {:.0} B per entry; each of those sessions \
                 costs {:.0} B in all.",
                big.sessions,
                big.index_bytes,
                big.encoding,
                big.index_bytes as f64 / big.sessions as f64,
                big.bytes_per_session
            );
        }
        if let Some(near) = &self.near_cache {
            let _ = writeln!(
                md,
                "- The near cache with {} sessions cached: {:.0} B per session by its own \
                 estimate (`NearCacheStats::bytes`){}.",
                near.sessions,
                near.estimated,
                near.resident.map_or_else(String::new, |r| format!(
                    ", the process grew {r:.0} B per session ({:.0} MiB in all)",
                    r * near.sessions as f64 / MIB
                ))
            );
        }
        let _ = writeln!(md);
    }

    fn http_md(&self, md: &mut String) {
        let _ = writeln!(md, "## GET /me against the population (axum, Node seed)\n");
        let _ = writeln!(
            md,
            "keygate's axum adapter, 2 worker threads, the built-in load generator ({} \
             connections) on the same 2 cores; {} rounds of {} s, medians. Uniform: each \
             request names a session drawn at random from the population; Zipf: drawn with \
             exponent {} (a few sessions make most requests). Redis µs per `GETEX` is \
             `INFO commandstats` usec/calls; each ratio is against the same server's first row (one \
             session for the HTTP routes). The hand-written route (`bench/src/servers/reference`: \
             one `GETEX`, the user decoded and encoded again) and a `GETEX` loop without HTTP \
             (32 tasks on one redis-crate multiplexed connection) ran over the same draws.\n",
            self.options.connections,
            self.options.rounds,
            self.options.duration.as_secs_f64(),
            super::http::ZIPF_EXPONENT
        );
        let _ = writeln!(
            md,
            "| server | sessions in Redis | requests | req/s | p99 | Redis µs/GETEX | × | GETEX/req | Redis CPU µs/req | server CPU µs/req | × | errors |"
        );
        let _ = writeln!(
            md,
            "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        let mut rows: Vec<&HttpPoint> = self.http.iter().collect();
        if let Some(cluster) = &self.cluster {
            rows.push(&cluster.http);
        }
        for p in rows {
            // Each server against its own first row (one session for the HTTP routes).
            let base = self
                .http
                .iter()
                .find(|b| b.server == p.server)
                .cloned()
                .unwrap_or_default();
            let row = format!(
                "| {} | {} | {} | {:.0} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} | {:.2} | {} |",
                p.server,
                p.sessions,
                p.label,
                p.rps,
                us(p.p99_us),
                p.redis_us_per_call,
                p.redis_us_per_call / base.redis_us_per_call.max(1e-9),
                p.calls_per_request,
                p.redis_cpu_us,
                p.server_cpu_us,
                p.server_cpu_us / base.server_cpu_us.max(1e-9),
                p.errors
            )
            .replace("| 0.0 | 0.0 | 0.00 |", "| — | — | — |")
            .replace("| 0 µs |", "| — |");
            let _ = writeln!(md, "{row}");
        }
        let _ = writeln!(md);
    }

    fn per_user_md(&self, md: &mut String) {
        let _ = writeln!(
            md,
            "## A user's own operations as the user's sessions grow\n"
        );
        let _ = writeln!(
            md,
            "One caller, Node seed, no other load; mean wall time per call and Redis commands \
             per call (`INFO commandstats`: a pipeline's commands each count, and so do the \
             commands a script runs besides its `EVALSHA`). The login adds \
             one session each time; `end_session` ends the newest sessions (the last a \
             device list shows).\n"
        );
        let mut counts: Vec<usize> = self.per_user.iter().map(|p| p.sessions).collect();
        counts.dedup();
        let _ = write!(md, "| operation |");
        for c in &counts {
            let _ = write!(md, " {c} session{} |", if *c == 1 { "" } else { "s" });
        }
        let _ = writeln!(md);
        let _ = write!(md, "| --- |");
        for _ in &counts {
            let _ = write!(md, " ---: |");
        }
        let _ = writeln!(md);
        let mut ops: Vec<&str> = Vec::new();
        for p in &self.per_user {
            if !ops.contains(&p.op) {
                ops.push(p.op);
            }
        }
        for op in ops {
            let _ = write!(md, "| {op} |");
            for c in &counts {
                match self
                    .per_user
                    .iter()
                    .find(|p| p.op == op && p.sessions == *c)
                {
                    Some(p) => {
                        let _ = write!(md, " {} ({:.0} commands) |", us(p.mean_us), p.commands);
                    }
                    None => {
                        let _ = write!(md, " |");
                    }
                }
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(md);
        if !self.capped.is_empty() {
            let _ = writeln!(
                md,
                "Logins of one user held at `with_max_sessions_per_user(cap)` (each login ends \
                 the oldest), one caller:\n"
            );
            let _ = writeln!(md, "| cap | logins/s | Redis commands per login |");
            let _ = writeln!(md, "| ---: | ---: | ---: |");
            for c in &self.capped {
                let _ = writeln!(
                    md,
                    "| {} | {:.0} | {:.1} |",
                    c.cap, c.logins_per_sec, c.commands
                );
            }
            let _ = writeln!(md);
        }
    }

    fn operator_md(&self, md: &mut String) {
        let mut counts: Vec<&CountPoint> = self.counts.iter().collect();
        if let Some(c) = self.cluster.as_ref().and_then(|c| c.count.as_ref()) {
            counts.push(c);
        }
        if counts.is_empty() {
            return;
        }
        let _ = writeln!(md, "## keygate-cli sessions count under load\n");
        let _ = writeln!(
            md,
            "`keygate-cli sessions count --layout node:myapp` (SCAN ... MATCH ... TYPE, \
             COUNT 200; one pass per layout and one for the index keys) while `GET /me` runs \
             over the population; p99 of the requests sent in the 2.5 s before and during the \
             count.\n"
        );
        let _ = writeln!(
            md,
            "| where | count took | SCAN calls | Redis µs per SCAN | p99 before | p99 during | requests during | errors |"
        );
        let _ = writeln!(
            md,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for c in &counts {
            let _ = writeln!(
                md,
                "| {} | {:.2} s | {} | {:.0} | {} | {} | {} | {} |",
                c.label,
                c.seconds,
                c.scan_calls,
                c.scan_us_per_call,
                us(c.p99_before_us),
                us(c.p99_during_us),
                c.requests_during,
                c.errors
            );
        }
        let _ = writeln!(md);
        for c in &counts {
            let _ = writeln!(md, "{}:\n\n```text\n{}\n```\n", c.label, c.output);
        }
    }

    fn churn_md(&self, md: &mut String) {
        let Some(c) = &self.churn else { return };
        let _ = writeln!(md, "## Expiry churn\n");
        let _ = writeln!(
            md,
            "{} sessions of {} s idle TTL, created over {:.1} s, all expire while `GET /me` \
             runs over {} other live sessions: Redis expired {} keys over {:.1} s (first to \
             last seen; 90 % within {:.1} s). GET /me p99 {} before, {} during (max {}, {} requests); {} errors.\n",
            c.expiring,
            super::churn::SHORT_IDLE.as_secs(),
            c.created_over_s,
            c.live,
            c.expired,
            c.expired_over_s,
            c.ninety_percent_s,
            us(c.p99_before_us),
            us(c.p99_during_us),
            us(c.max_during_us),
            c.requests_during,
            c.errors
        );
    }

    fn cluster_md(&self, md: &mut String) {
        let Some(c) = &self.cluster else { return };
        let _ = writeln!(md, "## The 3+3 Cluster\n");
        let _ = writeln!(
            md,
            "The tests' Cluster (3 masters, 3 replicas, all 6 processes on the same 2 cores): \
             {} Node-seed sessions created at {:.0} logins/s.\n",
            c.sessions, c.logins_per_sec
        );
        let _ = writeln!(
            md,
            "| master | keys | session keys | index keys | memory grown | bytes/session |"
        );
        let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: |");
        for m in &c.masters {
            let _ = writeln!(
                md,
                "| :{} | {} | {} | {} | {:.1} MiB | {:.0} |",
                m.port,
                m.keys,
                m.session_keys,
                m.index_keys,
                m.used_bytes as f64 / MIB,
                m.used_bytes as f64 / m.session_keys.max(1) as f64
            );
        }
        let _ = writeln!(
            md,
            "\nGET /me on the Cluster is the last row of the request table above (Redis µs per \
             `GETEX` summed over the masters' commandstats).\n"
        );
    }

    fn capabilities_md(&self, md: &mut String) {
        if self.capabilities.is_empty() {
            return;
        }
        let _ = writeln!(md, "## Redis CPU per operation, per capability\n");
        let _ = writeln!(
            md,
            "64 callers on one multiplexed connection (2-thread runtime) for {} s each, one \
             private Redis; Redis CPU from `/proc/<pid>/task/*/schedstat`. \"Per Redis core\" \
             is 1 s of CPU divided by the CPU per operation: what one fully busy Redis \
             (single-threaded) serves when clients and network are elsewhere. Sessions spread \
             over 10,000; near cache hit: a cache holding all of them, miss: one holding 1,000.\n",
            self.options.duration.as_secs_f64()
        );
        let _ = writeln!(
            md,
            "| capability | operation | ops/s here | Redis CPU µs/op | per Redis core | Redis commands/op (scripts' inner commands count) |"
        );
        let _ = writeln!(md, "| --- | --- | ---: | ---: | ---: | ---: |");
        for p in &self.capabilities {
            let per_core = p.per_core();
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {:.2} | {} | {:.2} |",
                p.capability,
                p.operation,
                p.ops_per_sec,
                p.redis_cpu_us,
                if per_core.is_finite() {
                    format!("{:.0}k", per_core / 1e3)
                } else {
                    "no Redis call".to_owned()
                },
                p.commands
            );
        }
        let _ = writeln!(md);
    }
}
