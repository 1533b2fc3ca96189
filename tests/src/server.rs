//! Private `redis-server` processes on free loopback ports, owned by the test that started
//! them and stopped when dropped. Tests never touch a Redis they did not start.
//!
//! The binary is `redis-server` from `PATH`, or `$KEYGATE_REDIS_SERVER`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::tls::{Pki, admin_client};

/// How long a server may take to answer `PING` after start.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A private Redis server.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    extra_args: Vec<String>,
    tls: Option<(Arc<Pki>, TlsServer)>,
    child: Option<Child>,
}

/// How a TLS-only test server ([`RedisServer::start_tls`]) is set up. It serves TLS only
/// (`--port 0`), with a certificate of the shared test CA ([`Pki::shared`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct TlsServer {
    /// `tls-auth-clients yes`: clients must present a certificate of the test CA.
    pub require_client_cert: bool,
    /// Serve a certificate that expired a month ago.
    pub expired_cert: bool,
}

fn binary() -> String {
    std::env::var("KEYGATE_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free loopback port: {e}"))
}

impl RedisServer {
    /// Starts a server with no persistence on a free loopback port.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments (e.g. `["--requirepass", "pw"]`).
    pub fn start_with(args: &[&str]) -> Self {
        Self::start_inner(args, None)
    }

    /// Starts a TLS-only server (`--port 0 --tls-port <free port>`) with certificates of
    /// the shared test CA, and extra arguments.
    pub fn start_tls(tls: TlsServer, args: &[&str]) -> Self {
        Self::start_inner(args, Some((Pki::shared(), tls)))
    }

    fn start_inner(args: &[&str], tls: Option<(Arc<Pki>, TlsServer)>) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("keygate-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let mut server = Self {
            port,
            dir,
            extra_args: args.iter().map(|a| (*a).to_owned()).collect(),
            tls,
            child: None,
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let log = std::fs::File::create(self.dir.join("redis.log"))
            .unwrap_or_else(|e| panic!("cannot create the redis log: {e}"));
        let ports = match &self.tls {
            None => vec!["--port".to_owned(), self.port.to_string()],
            Some((pki, tls)) => {
                let cert = if tls.expired_cert {
                    &pki.expired_server
                } else {
                    &pki.server
                };
                pki.server_args(self.port, cert, tls.require_client_cert)
            }
        };
        let child = Command::new(binary())
            .args(&ports)
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `{}` ({e}): install Redis (`apt-get install redis-server`) \
                     or set KEYGATE_REDIS_SERVER to its path",
                    binary()
                )
            });
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                panic!("redis-server exited at start ({status}): {log}");
            }
            if self.ping() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING within {START_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn admin_client(&self) -> redis::RedisResult<redis::Client> {
        match &self.tls {
            None => redis::Client::open(self.admin_url()),
            Some((pki, tls)) => admin_client(pki, self.port, self.password(), !tls.expired_cert),
        }
    }

    fn password(&self) -> Option<&str> {
        let i = self.extra_args.iter().position(|a| a == "--requirepass")?;
        self.extra_args.get(i + 1).map(String::as_str)
    }

    fn ping(&self) -> bool {
        let Ok(client) = self.admin_client() else {
            return false;
        };
        client
            .get_connection_with_timeout(Duration::from_millis(200))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    fn admin_url(&self) -> String {
        match self.extra_args.iter().position(|a| a == "--requirepass") {
            Some(i) => format!(
                "redis://:{}@127.0.0.1:{}",
                self.extra_args.get(i + 1).map_or("", String::as_str),
                self.port
            ),
            None => self.url(),
        }
    }

    /// `redis://127.0.0.1:<port>`, or `rediss://127.0.0.1:<port>` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (as a crash would) and waits for it to exit. Data is lost.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Freezes the process (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused process (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .map(Child::id)
            .expect("server is running");
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// A blocking connection for inspecting the server from a test.
    pub fn admin(&self) -> redis::Connection {
        self.admin_client()
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .expect("admin connection to the private redis-server")
    }

    /// Runs one command on an admin connection.
    pub fn query<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> T {
        cmd.query(&mut self.admin()).expect("admin command")
    }

    /// A field of `INFO stats` (e.g. `total_reads_processed`).
    pub fn info_stat(&self, field: &str) -> u64 {
        let info: String = self.query(redis::cmd("INFO").arg("stats"));
        info.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in INFO stats"))
    }

    /// Calls per command from `INFO commandstats`, e.g. `[("getex", 1)]`.
    pub fn command_calls(&self) -> Vec<(String, u64)> {
        let info: String = self.query(redis::cmd("INFO").arg("commandstats"));
        info.lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("cmdstat_")?;
                let (name, stats) = rest.split_once(':')?;
                let calls = stats.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
                Some((name.to_owned(), calls.parse().ok()?))
            })
            .collect()
    }

    /// Resets `INFO commandstats` and `INFO stats` counters.
    pub fn reset_stats(&self) {
        let _: () = self.query(&mut redis::cmd("CONFIG").arg("RESETSTAT").to_owned());
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until `condition` holds, checking every 10 ms, for at most `timeout`; returns
/// whether it held. For conditions that become true asynchronously (never a fixed sleep).
pub async fn eventually(timeout: Duration, mut condition: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
