//! Private Redis Cluster and Sentinel setups from `redis-server` processes on free loopback
//! ports: [`RedisCluster`] (3 masters, 3 replicas) and [`RedisSentinel`] (1 master,
//! 1 replica, 3 sentinels), with crash-like kills of a master and waits for the failover.
//!
//! Every process runs under a small watchdog shell that kills it as soon as its stdin
//! closes: when the handle is dropped, and also when the test process exits in any way, so
//! a cluster shared through a `static` ([`RedisCluster::shared`]) never outlives the tests.
//! The binaries are `redis-server` and `redis-cli` from `PATH`, or `$KEYGATE_REDIS_SERVER`
//! and `$KEYGATE_REDIS_CLI`.

mod node;
mod sentinel;

pub(crate) use node::TempDir;
pub use sentinel::RedisSentinel;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::tls::Pki;
use node::{
    Node, SETTLE_TIMEOUT, cli_binary, info_field, lock, redis_cli_present, replicas_caught_up,
    replication,
};

/// A private Redis Cluster: 3 masters with one replica each, `cluster-node-timeout` 2 s.
pub struct RedisCluster {
    nodes: Mutex<Vec<Node>>,
    tls: Option<Arc<Pki>>,
    _dir: TempDir,
}

/// A master and its slot ranges, from `CLUSTER NODES`.
#[derive(Debug, Clone)]
struct MasterView {
    port: u16,
    slots: Vec<(u16, u16)>,
}

impl RedisCluster {
    /// Starts the six nodes, creates the cluster with `redis-cli --cluster create` and waits
    /// until every node reports `cluster_state:ok` and every replica is in sync.
    pub fn start() -> Self {
        Self::start_inner(None)
    }

    /// Like [`start`](Self::start), but every node serves TLS only (`--port 0`,
    /// `--tls-cluster yes`, `--tls-replication yes`) with a certificate of the shared test
    /// CA ([`Pki::shared`]); clients need not present certificates. [`urls`](Self::urls)
    /// are then `rediss://`.
    pub fn start_tls() -> Self {
        Self::start_inner(Some(Pki::shared()))
    }

    /// Whether the nodes serve TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    fn start_inner(tls: Option<Arc<Pki>>) -> Self {
        redis_cli_present();
        let dir = TempDir::new("cluster");
        let mut taken = HashSet::new();
        let nodes: Vec<Node> = (0..6)
            .map(|_| {
                Node::start_fresh(&mut taken, tls.as_ref(), |port, bus| {
                    let mut args = match &tls {
                        None => vec!["--port".to_owned(), port.to_string()],
                        Some(pki) => {
                            let mut args = pki.server_args(port, &pki.server, false);
                            args.extend(
                                ["--tls-cluster", "yes", "--tls-replication", "yes"]
                                    .map(str::to_owned),
                            );
                            args
                        }
                    };
                    args.extend([
                        "--bind".to_owned(),
                        "127.0.0.1".to_owned(),
                        "--cluster-port".to_owned(),
                        bus.to_string(),
                        "--cluster-enabled".to_owned(),
                        "yes".to_owned(),
                        "--cluster-config-file".to_owned(),
                        format!("nodes-{port}.conf"),
                        "--cluster-node-timeout".to_owned(),
                        "2000".to_owned(),
                        "--save".to_owned(),
                        String::new(),
                        "--appendonly".to_owned(),
                        "no".to_owned(),
                    ]);
                    (dir.path.join(format!("node-{port}")), args)
                })
            })
            .collect();
        let mut cli = Command::new(cli_binary());
        if let Some(pki) = &tls {
            cli.arg("--tls")
                .arg("--cacert")
                .arg(&pki.ca_path)
                .arg("--cert")
                .arg(&pki.client.cert_path)
                .arg("--key")
                .arg(&pki.client.key_path);
        }
        let output = cli
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", cli_binary()));
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = Self {
            nodes: Mutex::new(nodes),
            tls,
            _dir: dir,
        };
        cluster.wait_settled(6);
        cluster
    }

    /// A cluster shared by every test of the process, started on first use. It lives until
    /// the process exits (statics are never dropped); the watchdogs stop it then. Tests
    /// that share it use distinct keys or take turns and [`flush`](Self::flush).
    pub fn shared() -> Arc<RedisCluster> {
        static SHARED: OnceLock<Arc<RedisCluster>> = OnceLock::new();
        Arc::clone(SHARED.get_or_init(|| Arc::new(RedisCluster::start())))
    }

    /// Like [`shared`](Self::shared), a TLS cluster ([`start_tls`](Self::start_tls)).
    pub fn shared_tls() -> Arc<RedisCluster> {
        static SHARED: OnceLock<Arc<RedisCluster>> = OnceLock::new();
        Arc::clone(SHARED.get_or_init(|| Arc::new(RedisCluster::start_tls())))
    }

    fn is_settled(&self, expected_nodes: usize) -> bool {
        let nodes = lock(&self.nodes);
        let running: Vec<&Node> = nodes.iter().filter(|n| n.is_running()).collect();
        let ok = running.iter().all(|n| {
            n.try_query::<String>(redis::cmd("CLUSTER").arg("INFO"))
                .is_ok_and(|info| {
                    info_field(&info, "cluster_state") == Some("ok")
                        && info_field(&info, "cluster_slots_ok") == Some("16384")
                        && info_field(&info, "cluster_known_nodes")
                            .and_then(|n| n.parse::<usize>().ok())
                            .is_some_and(|n| n >= expected_nodes)
                })
        });
        ok && running.iter().all(|n| match replication(n) {
            Some(info) => match info.get("role").map(String::as_str) {
                Some("slave") => info.get("master_link_status").map(String::as_str) == Some("up"),
                Some("master") => true,
                _ => false,
            },
            None => false,
        })
    }

    fn wait_settled(&self, expected_nodes: usize) {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while !self.is_settled(expected_nodes) {
            assert!(
                Instant::now() < deadline,
                "the cluster did not settle within {SETTLE_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `redis://127.0.0.1:<port>` of every running node, as seed URLs.
    pub fn urls(&self) -> Vec<String> {
        lock(&self.nodes)
            .iter()
            .filter(|n| n.is_running())
            .map(Node::url)
            .collect()
    }

    /// Runs a command on some running node.
    pub fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        let nodes = lock(&self.nodes);
        let node = nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a running node");
        node.query(cmd)
    }

    /// Runs a command on the master that owns `key`'s slot (for inspecting keys).
    pub fn query_key<T: redis::FromRedisValue>(&self, key: &str, cmd: &redis::Cmd) -> T {
        let port = self.master_of(key);
        let nodes = lock(&self.nodes);
        let node = nodes
            .iter()
            .find(|n| n.port == port)
            .expect("the owner is ours");
        node.query(cmd)
    }

    /// Runs a command on every running master (over TLS on a TLS cluster), e.g. to count
    /// keys across the cluster.
    pub fn query_masters<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Vec<T> {
        let masters = self.masters();
        let nodes = lock(&self.nodes);
        nodes
            .iter()
            .filter(|n| masters.contains(&n.port))
            .map(|n| n.query(cmd))
            .collect()
    }

    /// Runs a command on every running node, masters and replicas, each with its own
    /// outcome (e.g. `CONFIG SET`, or `CLUSTER DELSLOTS` to take a slot out of every node's
    /// view of the slot map).
    pub fn query_every_node<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Vec<redis::RedisResult<T>> {
        let nodes = lock(&self.nodes);
        nodes
            .iter()
            .filter(|n| n.is_running())
            .map(|n| n.try_query(cmd))
            .collect()
    }

    /// `CLUSTER KEYSLOT key`.
    pub fn keyslot(&self, key: &str) -> u16 {
        self.query(redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
    }

    /// The masters as some running node sees them (failed ones left out).
    fn masters_view(&self) -> Vec<MasterView> {
        let text: String = self.query(redis::cmd("CLUSTER").arg("NODES"));
        text.lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let flags = fields.get(2)?;
                if !flags.split(',').any(|f| f == "master")
                    || flags.split(',').any(|f| f == "fail" || f == "fail?")
                {
                    return None;
                }
                let port = fields
                    .get(1)?
                    .split('@')
                    .next()?
                    .rsplit(':')
                    .next()?
                    .parse()
                    .ok()?;
                let slots = fields
                    .iter()
                    .skip(8)
                    .filter(|s| !s.starts_with('['))
                    .filter_map(|s| match s.split_once('-') {
                        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                        None => s.parse().ok().map(|n| (n, n)),
                    })
                    .collect();
                Some(MasterView { port, slots })
            })
            .collect()
    }

    /// The port of the master that serves `slot`.
    pub fn master_of_slot(&self, slot: u16) -> u16 {
        self.masters_view()
            .into_iter()
            .find(|m| m.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
            .map(|m| m.port)
            .unwrap_or_else(|| panic!("no master serves slot {slot}"))
    }

    /// The port of the master that serves `key`.
    pub fn master_of(&self, key: &str) -> u16 {
        self.master_of_slot(self.keyslot(key))
    }

    /// The ports of the running masters.
    pub fn masters(&self) -> Vec<u16> {
        let nodes = lock(&self.nodes);
        nodes
            .iter()
            .filter(|n| n.is_running())
            .filter(|n| {
                replication(n)
                    .is_some_and(|info| info.get("role").map(String::as_str) == Some("master"))
            })
            .map(|n| n.port)
            .collect()
    }

    /// `FLUSHALL` on every master (the replicas follow): a clean slate between tests that
    /// take turns on a shared cluster.
    pub fn flush(&self) {
        let masters = self.masters();
        let nodes = lock(&self.nodes);
        for node in nodes.iter().filter(|n| masters.contains(&n.port)) {
            let _: () = node.query(&redis::cmd("FLUSHALL"));
        }
    }

    /// Whether every replica has received everything its master has.
    pub fn replicas_caught_up(&self) -> bool {
        let masters = self.masters();
        let nodes = lock(&self.nodes);
        nodes
            .iter()
            .filter(|n| masters.contains(&n.port))
            .all(replicas_caught_up)
    }

    /// Kills the master on `port` with `SIGKILL` (a crash, not `CLUSTER FAILOVER`).
    /// Returns a slot it served, to wait on with [`failover_done`](Self::failover_done).
    pub fn kill_master(&self, port: u16) -> u16 {
        let view = self.masters_view();
        let master = view
            .iter()
            .find(|m| m.port == port)
            .unwrap_or_else(|| panic!("port {port} is not a master"));
        let slot = master.slots.first().map(|(a, _)| *a).expect("it has slots");
        let mut nodes = lock(&self.nodes);
        let node = nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("the master is ours");
        node.kill();
        slot
    }

    /// Whether a replica took over `slot` from the killed master on `killed`: a running
    /// master serves it, and every running node reports `cluster_state:ok`. Returns the
    /// new master's port.
    pub fn failover_done(&self, killed: u16, slot: u16) -> Option<u16> {
        let owner = self
            .masters_view()
            .into_iter()
            .find(|m| m.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot)))?;
        if owner.port == killed || !self.masters().contains(&owner.port) {
            return None;
        }
        let nodes = lock(&self.nodes);
        let ok = nodes.iter().filter(|n| n.is_running()).all(|n| {
            n.try_query::<String>(redis::cmd("CLUSTER").arg("INFO"))
                .is_ok_and(|info| info_field(&info, "cluster_state") == Some("ok"))
        });
        ok.then_some(owner.port)
    }

    /// Starts a killed node again (it rejoins as a replica of whoever took over its slots)
    /// and waits until the cluster has settled with all six nodes.
    pub fn restart(&self, port: u16) {
        {
            let mut nodes = lock(&self.nodes);
            let node = nodes
                .iter_mut()
                .find(|n| n.port == port)
                .expect("the node is ours");
            node.restart();
        }
        self.wait_settled(6);
    }
}
