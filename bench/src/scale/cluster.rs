//! The same population on the tests' 3+3 Redis Cluster: how keys and memory spread over
//! the masters, what a request costs Redis there, and the operator's count across masters.

use std::path::Path;
use std::time::Duration;

use keygate::{RedisOptions, RedisStore, SessionConfig, SessionManager};
use keygate_tests::RedisCluster;

use super::http::{self, HttpPoint, RedisSide};
use super::operator::{self, CountPoint};
use super::populate;
use crate::Result;
use crate::redis_admin::Admin;
use crate::servers::{Framework, ServeSpec, ServerProcess, Variant};
use crate::user::{NODE_CUSTOM, NodeUser};

/// One master's share.
#[derive(Debug, Clone)]
pub struct MasterPoint {
    pub port: u16,
    pub keys: u64,
    pub session_keys: u64,
    pub index_keys: u64,
    pub used_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct ClusterReport {
    pub sessions: usize,
    pub logins_per_sec: f64,
    pub masters: Vec<MasterPoint>,
    pub http: HttpPoint,
    pub count: Option<CountPoint>,
}

pub struct Settings<'a> {
    pub sessions: usize,
    pub connections: usize,
    pub rounds: usize,
    pub duration: Duration,
    pub log_dir: &'a Path,
}

pub fn run(settings: &Settings<'_>) -> Result<ClusterReport> {
    eprintln!("scale: the 3+3 Cluster ...");
    let cluster = std::panic::catch_unwind(RedisCluster::start)
        .map_err(|_| "could not start the private Redis Cluster (see the message above)")?;
    let urls = cluster.urls();
    let ports = cluster.masters();
    let mut admins = ports
        .iter()
        .map(|p| Admin::connect(&format!("redis://127.0.0.1:{p}")))
        .collect::<Result<Vec<_>>>()?;
    let pids = admins
        .iter_mut()
        .map(Admin::pid)
        .collect::<Result<Vec<_>>>()?;
    let base: Vec<u64> = admins
        .iter_mut()
        .map(Admin::used_memory)
        .collect::<Result<_>>()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (tokens, logins_per_sec) = rt.block_on(async {
        let store = RedisStore::connect_with(RedisOptions::cluster(urls.clone())).await?;
        let sessions =
            SessionManager::<NodeUser>::new(store, SessionConfig::node_seed(NODE_CUSTOM))?;
        populate::login_range(
            &sessions,
            "u",
            &NodeUser::seed(),
            0,
            settings.sessions,
            true,
        )
        .await
    })?;
    eprintln!(
        "scale:   Cluster: {} sessions at {logins_per_sec:.0} logins/s",
        settings.sessions
    );
    let mut masters = Vec::new();
    for ((admin, port), base) in admins.iter_mut().zip(&ports).zip(&base) {
        let point = MasterPoint {
            port: *port,
            keys: admin.dbsize()?,
            session_keys: admin.count_matching(&format!("{NODE_CUSTOM}_*"))?,
            index_keys: admin.count_matching("keygate:user-sessions:*")?,
            used_bytes: admin.used_memory()?.saturating_sub(*base),
        };
        eprintln!(
            "scale:   master {}: {} keys ({} sessions, {} indexes), {:.1} MiB",
            point.port,
            point.keys,
            point.session_keys,
            point.index_keys,
            point.used_bytes as f64 / (1 << 20) as f64
        );
        masters.push(point);
    }
    let spec = ServeSpec {
        framework: Framework::Axum,
        variant: Variant::Keygate,
        port: keygate_tests::free_port(),
        redis_url: urls.join(","),
    };
    let server = ServerProcess::start(&spec, settings.log_dir)?;
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(5);
    let cycle = http::headers(&http::uniform(&tokens, &mut rng));
    drop(tokens);
    let mut side = RedisSide {
        admins: &mut admins,
        pids,
        command: "getex",
    };
    let http = http::measure(
        http::KEYGATE,
        "Cluster, uniform",
        settings.sessions,
        &server,
        &mut side,
        &cycle,
        settings.connections,
        settings.rounds,
        settings.duration,
    )?;
    let count = match operator::count_under_load(
        "Cluster",
        &mut *side.admins,
        ("REDIS_CLUSTER_URLS", &urls.join(",")),
        &format!("node:{NODE_CUSTOM}"),
        server.port,
        &cycle,
        settings.connections,
    ) {
        Ok(point) => Some(point),
        Err(error) => {
            eprintln!("scale:   sessions count on the Cluster: {error}");
            None
        }
    };
    drop(server);
    drop(cluster);
    Ok(ClusterReport {
        sessions: settings.sessions,
        logins_per_sec,
        masters,
        http,
        count,
    })
}
