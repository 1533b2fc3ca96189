//! A private Sentinel setup.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::sync::Arc;

use super::node::{Node, SETTLE_TIMEOUT, TempDir, lock, replication};
use crate::tls::Pki;

/// A private Sentinel setup: one master, one replica and three sentinels watching the
/// master as `mymaster` (quorum 2, `down-after-milliseconds` 1000, `failover-timeout` 5000).
pub struct RedisSentinel {
    servers: Mutex<Vec<Node>>,
    sentinels: Vec<Node>,
    _dir: TempDir,
}

impl RedisSentinel {
    /// The name the sentinels know the master by.
    pub const MASTER_NAME: &'static str = "mymaster";

    /// Starts master, replica and sentinels and waits until the replica is in sync and
    /// every sentinel knows the replica and the two other sentinels.
    pub fn start() -> Self {
        Self::start_inner(None)
    }

    /// Like [`start`](Self::start), but everything serves TLS only, with certificates of
    /// the shared test CA ([`Pki::shared`]): master and replica (`--tls-replication yes`)
    /// and the sentinels (`tls-port`, `tls-replication yes` to reach the servers), without
    /// requiring client certificates. [`sentinel_urls`](Self::sentinel_urls) are then
    /// `rediss://`.
    pub fn start_tls() -> Self {
        Self::start_inner(Some(Pki::shared()))
    }

    fn start_inner(tls: Option<Arc<Pki>>) -> Self {
        let dir = TempDir::new("sentinel");
        let base = |port: u16| {
            let mut args = match &tls {
                None => vec!["--port".to_owned(), port.to_string()],
                Some(pki) => {
                    let mut args = pki.server_args(port, &pki.server, false);
                    args.extend(["--tls-replication", "yes"].map(str::to_owned));
                    args
                }
            };
            args.extend([
                "--bind".to_owned(),
                "127.0.0.1".to_owned(),
                "--save".to_owned(),
                String::new(),
                "--appendonly".to_owned(),
                "no".to_owned(),
            ]);
            args
        };
        let mut taken = HashSet::new();
        let master = Node::start_fresh(&mut taken, tls.as_ref(), |port, _| {
            (dir.path.join(format!("server-{port}")), base(port))
        });
        let master_port = master.port;
        let replica = Node::start_fresh(&mut taken, tls.as_ref(), |port, _| {
            let mut args = base(port);
            args.extend([
                "--replicaof".to_owned(),
                "127.0.0.1".to_owned(),
                master_port.to_string(),
            ]);
            (dir.path.join(format!("server-{port}")), args)
        });
        let sentinels = (0..3)
            .map(|_| {
                Node::start_fresh(&mut taken, tls.as_ref(), |port, _| {
                    let node_dir = dir.path.join(format!("sentinel-{port}"));
                    std::fs::create_dir_all(&node_dir)
                        .unwrap_or_else(|e| panic!("cannot create {}: {e}", node_dir.display()));
                    let conf = node_dir.join("sentinel.conf");
                    write_sentinel_conf(&conf, port, master_port, tls.as_deref());
                    (
                        node_dir,
                        vec![conf.display().to_string(), "--sentinel".to_owned()],
                    )
                })
            })
            .collect();
        let setup = Self {
            servers: Mutex::new(vec![master, replica]),
            sentinels,
            _dir: dir,
        };
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while !setup.is_settled() {
            assert!(
                Instant::now() < deadline,
                "the sentinels did not settle within {SETTLE_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        setup
    }

    fn is_settled(&self) -> bool {
        let in_sync = lock(&self.servers).iter().all(|n| {
            replication(n).is_some_and(|info| match info.get("role").map(String::as_str) {
                Some("master") => info.get("connected_slaves").map(String::as_str) == Some("1"),
                Some("slave") => info.get("master_link_status").map(String::as_str) == Some("up"),
                _ => false,
            })
        });
        in_sync
            && self.sentinels.iter().all(|s| {
                s.try_query::<HashMap<String, String>>(
                    redis::cmd("SENTINEL").arg("MASTER").arg(Self::MASTER_NAME),
                )
                .is_ok_and(|m| {
                    m.get("num-slaves").map(String::as_str) == Some("1")
                        && m.get("num-other-sentinels").map(String::as_str) == Some("2")
                        && m.get("flags").map(String::as_str) == Some("master")
                })
            })
    }

    /// `redis://127.0.0.1:<port>` of the three sentinels.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels.iter().map(Node::url).collect()
    }

    /// The port every sentinel names as the master, if they agree.
    pub fn master_port(&self) -> Option<u16> {
        let mut ports = self.sentinels.iter().map(|s| {
            s.try_query::<(String, u16)>(
                redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(Self::MASTER_NAME),
            )
            .ok()
            .map(|(_, port)| port)
        });
        let first = ports.next().flatten()?;
        ports.all(|p| p == Some(first)).then_some(first)
    }

    /// Runs a command on the server on `port`.
    pub fn query<T: redis::FromRedisValue>(&self, port: u16, cmd: &redis::Cmd) -> T {
        let servers = lock(&self.servers);
        let node = servers
            .iter()
            .find(|n| n.port == port)
            .expect("the server is ours");
        node.query(cmd)
    }

    /// Whether the replica has received everything the master has (replication offsets).
    pub fn replica_caught_up(&self) -> bool {
        let servers = lock(&self.servers);
        let offsets: Vec<(String, Option<String>)> = servers
            .iter()
            .filter(|n| n.is_running())
            .filter_map(replication)
            .map(|info| {
                let role = info.get("role").cloned().unwrap_or_default();
                let offset = match role.as_str() {
                    "master" => info.get("master_repl_offset").cloned(),
                    _ => info.get("slave_repl_offset").cloned(),
                };
                (role, offset)
            })
            .collect();
        let master = offsets.iter().find(|(r, _)| r == "master");
        let replica = offsets.iter().find(|(r, _)| r == "slave");
        match (master, replica) {
            (Some((_, Some(m))), Some((_, Some(r)))) => m == r,
            _ => false,
        }
    }

    /// Kills the current master with `SIGKILL`; returns its port.
    pub fn kill_master(&self) -> u16 {
        let port = self.master_port().expect("the sentinels agree on a master");
        let mut servers = lock(&self.servers);
        let node = servers
            .iter_mut()
            .find(|n| n.port == port)
            .expect("the master is ours");
        node.kill();
        port
    }

    /// Whether the sentinels promoted another server than `old`, and it acts as master.
    /// Returns the new master's port.
    pub fn failover_done(&self, old: u16) -> Option<u16> {
        let port = self.master_port()?;
        if port == old {
            return None;
        }
        let servers = lock(&self.servers);
        let node = servers.iter().find(|n| n.port == port)?;
        replication(node)
            .is_some_and(|info| info.get("role").map(String::as_str) == Some("master"))
            .then_some(port)
    }
}

fn write_sentinel_conf(path: &Path, port: u16, master_port: u16, tls: Option<&Pki>) {
    let name = RedisSentinel::MASTER_NAME;
    let ports = match tls {
        None => format!("port {port}\n"),
        Some(pki) => format!(
            "port 0\ntls-port {port}\ntls-cert-file {}\ntls-key-file {}\n\
             tls-ca-cert-file {}\ntls-auth-clients no\ntls-replication yes\n",
            pki.server.cert_path.display(),
            pki.server.key_path.display(),
            pki.ca_path.display()
        ),
    };
    let conf = format!(
        "{ports}\
         bind 127.0.0.1\n\
         sentinel monitor {name} 127.0.0.1 {master_port} 2\n\
         sentinel down-after-milliseconds {name} 1000\n\
         sentinel failover-timeout {name} 5000\n\
         sentinel parallel-syncs {name} 1\n"
    );
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(conf.as_bytes()))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}
