//! The servers under test. Each runs in a child process of its own (`keygate-bench serve
//! ...`), so that every framework gets its own runtime with the same number of worker
//! threads and a crash or a blocking incumbent cannot disturb the others or the load
//! generator.
//!
//! Every server has the same two routes: `POST /login` stores the Node seed's user in a new
//! session and answers the token (keygate, GETEX) or sets the session cookie (incumbents);
//! `GET /me` answers the session's user as JSON, or 401.

mod actix;
mod axum;
#[cfg(feature = "incumbents")]
mod incumbent;
mod poem;
pub mod reference;
mod rocket;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keygate::rate_limit::{MAX_WINDOW_LIMIT, Quota, RateLimiter, Window};
use keygate::session::NearCache;
use keygate::{Keygate, RedisStore, SessionConfig, SessionManager};

use crate::Result;
use crate::user::{NODE_CUSTOM, NodeUser};

/// The near cache variants' TTL refresh interval (the examples' `SESSION_NEAR_CACHE=1`).
pub const NEAR_CACHE_TOUCH_EVERY: Duration = Duration::from_secs(60);

/// Worker threads of every server: the machine's two cores.
pub const WORKERS: usize = 2;

/// A web framework.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framework {
    Axum,
    Actix,
    Poem,
    Rocket,
}

impl Framework {
    pub const ALL: [Framework; 4] = [
        Framework::Axum,
        Framework::Actix,
        Framework::Poem,
        Framework::Rocket,
    ];

    pub fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "axum" => Self::Axum,
            "actix" | "actix-web" => Self::Actix,
            "poem" => Self::Poem,
            "rocket" => Self::Rocket,
            other => return Err(format!("unknown framework {other:?}").into()),
        })
    }

    pub fn id(self) -> &'static str {
        match self {
            Self::Axum => "axum",
            Self::Actix => "actix",
            Self::Poem => "poem",
            Self::Rocket => "rocket",
        }
    }

    /// The framework's name and version as used here.
    pub fn label(self) -> &'static str {
        match self {
            Self::Axum => "axum 0.8",
            Self::Actix => "actix-web 4",
            Self::Poem => "poem 3",
            Self::Rocket => "rocket 0.5",
        }
    }

    /// The session crate users of this framework would pick instead of keygate.
    pub fn incumbent(self) -> &'static str {
        match self {
            Self::Axum => "tower-sessions 0.14 + tower-sessions-redis-store 0.16",
            Self::Actix => "actix-session 0.11 RedisSessionStore",
            Self::Poem => "poem 3.1 ServerSession + RedisStorage",
            Self::Rocket => "rocket-session-store 0.2 RedisStore",
        }
    }

    /// How the incumbent is configured so that the TTL slides on every request.
    pub fn incumbent_setup(self) -> &'static str {
        match self {
            Self::Axum => {
                "`Expiry::OnInactivity(30 min)`, `with_always_save(true)`, fred pool of 6 (the store's README)"
            }
            Self::Actix => {
                "`PersistentSession` 30 min + `TtlExtensionPolicy::OnEveryRequest`, default (private) cookie"
            }
            Self::Poem => {
                "`CookieConfig::max_age(30 min)`; the handler sets the user again so the TTL slides"
            }
            Self::Rocket => "the handler calls `get()` then `touch()`, as its docs show",
        }
    }
}

/// One server of a framework.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `GET /me` without any session: the framework's ceiling.
    Bare,
    /// A hand-written handler doing one `GETEX key PX ttl` on a `ConnectionManager`, the
    /// user decoded and encoded again (`reference`).
    Getex,
    /// The same `GETEX`, the stored JSON answered as it is (`reference`).
    GetexVerbatim,
    /// The Java seed's hash session through keygate's touch script by `EVALSHA`, the
    /// fields answered as JSON (`reference`; axum only).
    HashScript,
    /// keygate's GCRA script by `EVALSHA` for the `X-Forwarded-For` address, then the
    /// `GETEX` (`reference`; axum only).
    GcraGetexSpread,
    /// keygate's adapter, JSON codec (`SessionConfig::node_seed("myapp")`).
    Keygate,
    /// keygate's adapter, hash codec (`SessionConfig::java_seed()`).
    KeygateHash,
    /// The session crate users would pick instead.
    Incumbent,
    /// The bare route behind keygate's rate-limit layer, a GCRA quota that admits every
    /// request (axum only).
    LimitedQuota,
    /// [`LimitedQuota`](Variant::LimitedQuota) with the loopback address trusted as a
    /// proxy, and clients that say in `X-Forwarded-For` they are one of
    /// [`SPREAD_ADDRESSES`] addresses in turn: checks of one subject rarely overlap, so
    /// (nearly) every request is a script call of its own (axum only).
    LimitedQuotaSpread,
    /// The bare route behind keygate's rate-limit layer, a sliding window that admits every
    /// request (axum only).
    LimitedWindow,
    /// [`Keygate`](Variant::Keygate) with a Prometheus recorder installed, so every
    /// metric keygate records is recorded for real (axum only).
    KeygateMetrics,
    /// [`Keygate`](Variant::Keygate) with the near cache on (100,000 sessions).
    KeygateNear,
    /// The near cache with room for 1,000 sessions only: with 10,000 sessions in use
    /// round-robin nearly every load misses.
    KeygateNearSmall,
    /// [`Keygate`](Variant::Keygate) behind the GCRA limiter, clients spread over
    /// [`SPREAD_ADDRESSES`] addresses as [`LimitedQuotaSpread`](Variant::LimitedQuotaSpread)'s
    /// (axum only).
    KeygateLimitedSpread,
}

impl Variant {
    /// Every variant, in report order.
    pub const ALL: [Variant; 5] = [
        Variant::Bare,
        Variant::Getex,
        Variant::Keygate,
        Variant::KeygateHash,
        Variant::Incumbent,
    ];

    pub fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "bare" => Self::Bare,
            "getex" => Self::Getex,
            "getex-verbatim" => Self::GetexVerbatim,
            "hash-script" => Self::HashScript,
            "gcra-getex-spread" => Self::GcraGetexSpread,
            "keygate-limited-spread" => Self::KeygateLimitedSpread,
            "keygate" => Self::Keygate,
            "keygate-hash" => Self::KeygateHash,
            "incumbent" => Self::Incumbent,
            "limited-quota" => Self::LimitedQuota,
            "limited-quota-spread" => Self::LimitedQuotaSpread,
            "limited-window" => Self::LimitedWindow,
            "keygate-metrics" => Self::KeygateMetrics,
            "keygate-near" => Self::KeygateNear,
            "keygate-near-small" => Self::KeygateNearSmall,
            other => return Err(format!("unknown variant {other:?}").into()),
        })
    }

    pub fn id(self) -> &'static str {
        match self {
            Self::Bare => "bare",
            Self::Getex => "getex",
            Self::GetexVerbatim => "getex-verbatim",
            Self::HashScript => "hash-script",
            Self::GcraGetexSpread => "gcra-getex-spread",
            Self::KeygateLimitedSpread => "keygate-limited-spread",
            Self::Keygate => "keygate",
            Self::KeygateHash => "keygate-hash",
            Self::Incumbent => "incumbent",
            Self::LimitedQuota => "limited-quota",
            Self::LimitedQuotaSpread => "limited-quota-spread",
            Self::LimitedWindow => "limited-window",
            Self::KeygateMetrics => "keygate-metrics",
            Self::KeygateNear => "keygate-near",
            Self::KeygateNearSmall => "keygate-near-small",
        }
    }

    /// The variant's name in the report.
    pub fn label(self, framework: Framework) -> &'static str {
        match self {
            Self::Bare => "bare (no session)",
            Self::Getex => "hand-written GETEX",
            Self::GetexVerbatim => "hand-written GETEX, JSON verbatim",
            Self::HashScript => "hand-written hash script (EVALSHA)",
            Self::GcraGetexSpread => "hand-written GCRA (EVALSHA) + GETEX, 10,000 addresses",
            Self::KeygateLimitedSpread => "keygate (JSON) + rate limit (GCRA, 10,000 addresses)",
            Self::Keygate => "keygate (JSON)",
            Self::KeygateHash => "keygate (hash)",
            Self::LimitedQuota => "bare + rate limit (GCRA)",
            Self::LimitedQuotaSpread => "bare + rate limit (GCRA, 10,000 addresses)",
            Self::LimitedWindow => "bare + rate limit (window)",
            Self::KeygateMetrics => "keygate (JSON), metrics recorded",
            Self::KeygateNear => "keygate (JSON), near cache",
            Self::KeygateNearSmall => "keygate (JSON), near cache of 1,000",
            Self::Incumbent => match framework {
                Framework::Axum => "tower-sessions",
                Framework::Actix => "actix-session",
                Framework::Poem => "poem ServerSession",
                Framework::Rocket => "rocket-session-store",
            },
        }
    }

    /// Whether clients authenticate with the token in `authorization` (else a cookie).
    pub fn uses_token(self) -> bool {
        matches!(
            self,
            Self::Getex
                | Self::GetexVerbatim
                | Self::HashScript
                | Self::GcraGetexSpread
                | Self::KeygateLimitedSpread
                | Self::Keygate
                | Self::KeygateHash
                | Self::KeygateMetrics
                | Self::KeygateNear
                | Self::KeygateNearSmall
        )
    }

    /// Whether the variant keeps a session in Redis.
    pub fn has_session(self) -> bool {
        !matches!(
            self,
            Self::Bare | Self::LimitedQuota | Self::LimitedQuotaSpread | Self::LimitedWindow
        )
    }

    /// Whether the variant runs keygate's rate-limit layer (axum only), which keys
    /// requests by the peer address.
    pub fn is_limited(self) -> bool {
        matches!(
            self,
            Self::LimitedQuota
                | Self::LimitedQuotaSpread
                | Self::LimitedWindow
                | Self::KeygateLimitedSpread
        )
    }

    /// The key prefix of the variant's sessions: the Java seed's hash sessions, or the
    /// Node seed's JSON ones.
    pub fn is_hash(self) -> bool {
        matches!(self, Self::KeygateHash | Self::HashScript)
    }

    /// The header sets a load generator cycles through for this variant, when it needs
    /// its own: the spread limiter's `X-Forwarded-For` addresses.
    pub fn header_cycle(self) -> Option<Vec<Vec<(String, String)>>> {
        matches!(
            self,
            Self::LimitedQuotaSpread | Self::KeygateLimitedSpread | Self::GcraGetexSpread
        )
        .then(|| {
            (0..SPREAD_ADDRESSES)
                .map(|i| {
                    let address = format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255);
                    vec![("x-forwarded-for".to_owned(), address)]
                })
                .collect()
        })
    }

    /// The Node layout's custom prefix of the variant's sessions. The near cache variants
    /// have their own: every server of a run shares one Redis, and a cache tracking the
    /// others' keys would hear of (and, idle, spend CPU on) every request they serve.
    pub fn node_custom(self) -> &'static str {
        match self {
            Self::KeygateNear => "near",
            Self::KeygateNearSmall => "nearsmall",
            _ => NODE_CUSTOM,
        }
    }

    /// Whether the variant exists on axum only.
    pub fn axum_only(self) -> bool {
        self.is_limited()
            || matches!(
                self,
                Self::KeygateMetrics | Self::HashScript | Self::GcraGetexSpread
            )
    }
}

/// The metrics benchmark's servers: keygate without and with a recorder, and the
/// one-round-trip floor.
pub const METRICS: [Variant; 3] = [Variant::Getex, Variant::Keygate, Variant::KeygateMetrics];

/// The near cache benchmark's servers: the one-round-trip floor, keygate without and with
/// the cache, and with a cache too small for the sessions in use.
pub const NEAR_CACHE: [Variant; 4] = [
    Variant::Getex,
    Variant::Keygate,
    Variant::KeygateNear,
    Variant::KeygateNearSmall,
];

/// The rate-limit benchmark's servers: the route without and behind the limiter, and the
/// one-round-trip floor.
pub const RATE_LIMITED: [Variant; 5] = [
    Variant::Bare,
    Variant::Getex,
    Variant::LimitedQuota,
    Variant::LimitedQuotaSpread,
    Variant::LimitedWindow,
];

/// The client addresses of [`Variant::LimitedQuotaSpread`].
pub const SPREAD_ADDRESSES: usize = 10_000;

/// What a `serve` child runs.
#[derive(Debug, Clone)]
pub struct ServeSpec {
    pub framework: Framework,
    pub variant: Variant,
    pub port: u16,
    pub redis_url: String,
}

/// Runs one server in this process until it is killed.
pub fn serve(spec: &ServeSpec) -> Result<()> {
    if spec.variant.axum_only() && spec.framework != Framework::Axum {
        return Err(format!("{} is measured on axum only", spec.variant.id()).into());
    }
    match spec.framework {
        Framework::Axum => axum::serve(spec),
        Framework::Actix => actix::serve(spec),
        Framework::Poem => poem::serve(spec),
        Framework::Rocket => rocket::serve(spec),
    }
}

/// Worker threads of a server: [`WORKERS`], or `KEYGATE_BENCH_WORKERS` (bench/callgrind.sh
/// sets 1: under callgrind, idle workers looking for work would count in every request).
pub fn workers() -> usize {
    std::env::var("KEYGATE_BENCH_WORKERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(WORKERS)
}

/// The tokio runtime of the servers that run on one (axum, poem, rocket): one thread when
/// one worker is asked for.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    let workers = workers();
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(workers);
        builder
    };
    Ok(builder.enable_all().build()?)
}

/// Connects to `url`, or to the Redis Cluster whose seed URLs `url` lists separated by
/// commas (the scale benchmark's Cluster runs).
pub async fn connect(url: &str) -> Result<RedisStore> {
    if url.contains(',') {
        let seeds: Vec<&str> = url.split(',').collect();
        return Ok(RedisStore::connect_with(keygate::RedisOptions::cluster(seeds)).await?);
    }
    Ok(RedisStore::connect(url).await?)
}

/// keygate's gate for the JSON (`node_seed("myapp")`) or the hash (`java_seed()`) layout.
pub async fn keygate_gate(url: &str, variant: Variant) -> Result<Keygate<NodeUser>> {
    let config = match variant {
        Variant::KeygateHash => SessionConfig::java_seed(),
        Variant::KeygateNear => SessionConfig::node_seed(variant.node_custom())
            .with_near_cache(NearCache::new(100_000, NEAR_CACHE_TOUCH_EVERY)),
        Variant::KeygateNearSmall => SessionConfig::node_seed(variant.node_custom())
            .with_near_cache(NearCache::new(1_000, NEAR_CACHE_TOUCH_EVERY)),
        _ => SessionConfig::node_seed(NODE_CUSTOM),
    };
    let store = connect(url).await?;
    Ok(Keygate::new(SessionManager::new(store, config)?))
}

/// The limiter of the rate-limited servers. All load comes from one address, so the limit
/// is one that admits every request, to measure the cost of a decision rather than of a
/// refusal: a quota of a million a second, or a window of the most requests
/// ([`MAX_WINDOW_LIMIT`]) in 100 ms, whose log then holds thousands of entries (the
/// window's worst case: one hot subject).
pub async fn limiter(url: &str, variant: Variant) -> Result<RateLimiter> {
    let store = connect(url).await?;
    Ok(match variant {
        Variant::LimitedWindow => RateLimiter::new(
            store,
            "bench-window",
            Window::new(MAX_WINDOW_LIMIT, Duration::from_millis(100)),
        )?,
        _ => RateLimiter::new(store, "bench-quota", Quota::per_second(1_000_000))?,
    })
}

/// The error of a variant this framework (or this build) does not serve.
pub fn not_built(variant: Variant) -> crate::Error {
    if variant == Variant::Incumbent {
        "the incumbents are not in this build (feature `incumbents`)".into()
    } else {
        format!("{} is not served by this framework", variant.id()).into()
    }
}

/// CPU time a process has used so far, summed over its threads (`/proc/<pid>/task/*/
/// schedstat`, nanoseconds); `None` where that is not readable.
pub fn process_cpu_ns(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0u64;
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// A server running in a child process; killed (by its pid) when dropped.
pub struct ServerProcess {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `keygate-bench serve ...` and waits until it accepts connections.
    pub fn start(spec: &ServeSpec, log_dir: &Path) -> Result<Self> {
        let exe = std::env::current_exe()?;
        let log = log_dir.join(format!("{}-{}.log", spec.framework.id(), spec.variant.id()));
        let file = std::fs::File::create(&log)?;
        let child = Command::new(exe)
            .args([
                "serve",
                spec.framework.id(),
                spec.variant.id(),
                &spec.port.to_string(),
                &spec.redis_url,
            ])
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()?;
        let mut server = Self {
            child,
            port: spec.port,
            log,
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(
                    format!("server exited at start ({status}): {}", self.log_tail()).into(),
                );
            }
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(
                    format!("server did not listen within 30 s: {}", self.log_tail()).into(),
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The end of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(2000);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        text[start..].to_owned()
    }

    /// CPU time the process has used so far, all threads, in ns.
    pub fn cpu_ns(&self) -> Option<u64> {
        process_cpu_ns(self.child.id())
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
