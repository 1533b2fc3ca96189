//! One `redis-server` process under a watchdog shell, the setup's temp directory, and the
//! `INFO` parsing the setups share.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use std::sync::Arc;

use crate::server::free_port;
use crate::tls::{Pki, admin_client};

/// A free loopback port not yet handed to this setup.
fn fresh_port(taken: &mut HashSet<u16>) -> u16 {
    loop {
        let port = free_port();
        if taken.insert(port) {
            return port;
        }
    }
}

/// How long a process may take to answer `PING` after start.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a cluster or a sentinel group may take to settle after start.
pub(super) const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the command in `$@` in the background and kills it (`SIGKILL`) when stdin closes.
const WATCHDOG: &str =
    r#""$@" & pid=$!; read -r line; kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; exit 0"#;
/// Removes the directory in `$1` when stdin closes.
const JANITOR: &str = r#"read -r line; rm -rf "$1"; exit 0"#;

fn server_binary() -> String {
    std::env::var("KEYGATE_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

pub(super) fn cli_binary() -> String {
    std::env::var("KEYGATE_REDIS_CLI").unwrap_or_else(|_| "redis-cli".to_owned())
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A per-setup temp directory, removed when the handle drops or the test process exits.
pub(crate) struct TempDir {
    pub(crate) path: PathBuf,
    janitor: Option<(Child, ChildStdin)>,
}

impl TempDir {
    pub(crate) fn new(kind: &str) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "keygate-{kind}-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        let mut janitor = Command::new("sh")
            .arg("-c")
            .arg(JANITOR)
            .arg("keygate-janitor")
            .arg(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run sh: {e}"));
        let stdin = janitor.stdin.take().expect("piped stdin");
        Self {
            path,
            janitor: Some((janitor, stdin)),
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some((mut child, stdin)) = self.janitor.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// One `redis-server` process (a cluster node, a master, a replica or a sentinel).
pub(super) struct Node {
    pub(super) port: u16,
    dir: PathBuf,
    args: Vec<String>,
    /// Set for a TLS-only node: admin connections use the test CA and client certificate.
    tls: Option<Arc<Pki>>,
    watchdog: Option<(Child, ChildStdin)>,
    /// The server's own pid, for killing it like a crash.
    pid: Option<u32>,
}

impl Node {
    /// Starts a node on fresh ports (`port` for clients, `extra` for what else the node
    /// needs, such as a cluster bus), retrying with new ones when a port was taken between
    /// choosing and binding it. `make` gives the node's directory and arguments.
    pub(super) fn start_fresh(
        taken: &mut HashSet<u16>,
        tls: Option<&Arc<Pki>>,
        make: impl Fn(u16, u16) -> (PathBuf, Vec<String>),
    ) -> Self {
        for _ in 0..5 {
            let (port, extra) = (fresh_port(taken), fresh_port(taken));
            let (dir, args) = make(port, extra);
            std::fs::create_dir_all(&dir)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
            let mut node = Self {
                port,
                dir,
                args,
                tls: tls.cloned(),
                watchdog: None,
                pid: None,
            };
            match node.launch() {
                Ok(()) => return node,
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!("{log}"),
            }
        }
        panic!("no free loopback port for redis-server after 5 tries");
    }

    /// Starts the process and waits until it answers `PING`; on failure, why (with the
    /// server's log).
    fn launch(&mut self) -> Result<(), String> {
        let log_path = self.dir.join("redis.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|e| panic!("cannot create the redis log: {e}"));
        let logged_before = log.metadata().map_or(0, |m| m.len());
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("keygate-redis")
            .arg(server_binary())
            .args(&self.args)
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run sh: {e}"));
        let stdin = child.stdin.take().expect("piped stdin");
        self.watchdog = Some((child, stdin));
        let this_run = || {
            let log = std::fs::read(&log_path).unwrap_or_default();
            let start = usize::try_from(logged_before).unwrap_or(0).min(log.len());
            String::from_utf8_lossy(&log[start..]).into_owned()
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.ping() {
            let log = this_run();
            if log.contains("aborting") || log.contains("Fatal error") {
                self.stop_watchdog();
                return Err(format!(
                    "`{}` on port {} exited at start: {log}",
                    server_binary(),
                    self.port
                ));
            }
            if Instant::now() >= deadline {
                self.stop_watchdog();
                return Err(format!(
                    "`{}` on port {} did not answer PING within {START_TIMEOUT:?} (install \
                     Redis or set KEYGATE_REDIS_SERVER): {log}",
                    server_binary(),
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let info: String = self.query(redis::cmd("INFO").arg("server"));
        self.pid = info_field(&info, "process_id").and_then(|p| p.parse().ok());
        Ok(())
    }

    pub(super) fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn connection(&self, timeout: Duration) -> redis::RedisResult<redis::Connection> {
        let client = match &self.tls {
            Some(pki) => admin_client(pki, self.port, None, true)?,
            None => redis::Client::open(self.url())?,
        };
        let conn = client.get_connection_with_timeout(timeout)?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(conn)
    }

    fn ping(&self) -> bool {
        self.connection(Duration::from_millis(200))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    pub(super) fn try_query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> redis::RedisResult<T> {
        cmd.query(&mut self.connection(Duration::from_secs(2))?)
    }

    pub(super) fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        self.try_query(cmd)
            .unwrap_or_else(|e| panic!("admin command on port {}: {e}", self.port))
    }

    pub(super) fn is_running(&self) -> bool {
        self.pid.is_some()
    }

    /// Kills the server with `SIGKILL`, as a crash would, and waits until it is gone.
    pub(super) fn kill(&mut self) {
        let Some(pid) = self.pid.take() else {
            return;
        };
        let status = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -9 {pid} failed");
        let deadline = Instant::now() + START_TIMEOUT;
        while self.ping() {
            assert!(
                Instant::now() < deadline,
                "port {} still answers",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop_watchdog();
    }

    fn stop_watchdog(&mut self) {
        if let Some((mut child, stdin)) = self.watchdog.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }

    /// Starts the server again with the same arguments and directory.
    pub(super) fn restart(&mut self) {
        self.kill();
        if let Err(log) = self.launch() {
            panic!("{log}");
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.pid = None;
        self.stop_watchdog();
    }
}

/// `field:value` lines of an `INFO` reply.
pub(super) fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
}

/// The `INFO replication` of a node as a map.
pub(super) fn replication(node: &Node) -> Option<HashMap<String, String>> {
    let info: String = node.try_query(redis::cmd("INFO").arg("replication")).ok()?;
    Some(
        info.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect(),
    )
}

/// Whether every replica connected to this master has its whole replication stream.
pub(super) fn replicas_caught_up(master: &Node) -> bool {
    let Some(info) = replication(master) else {
        return false;
    };
    let Some(offset) = info.get("master_repl_offset") else {
        return false;
    };
    let replicas: usize = info
        .get("connected_slaves")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let wanted = format!("offset={offset}");
    (0..replicas).all(|i| {
        info.get(&format!("slave{i}"))
            .is_some_and(|line| line.split(',').any(|kv| kv == wanted))
    })
}

pub(super) fn redis_cli_present() {
    let found = Command::new(cli_binary())
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "`{}` not found: install redis-tools (redis-cli) or set KEYGATE_REDIS_CLI",
        cli_binary()
    );
}
