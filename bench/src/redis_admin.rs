//! Private Redis servers and what the report reads from them (command counts, memory).

use std::time::Duration;

use keygate_tests::RedisServer;

use crate::Result;

/// The `redis-server` binary the harness runs.
fn binary() -> String {
    std::env::var("KEYGATE_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

/// Fails with a clear message when `redis-server` cannot be run.
pub fn check_redis_server() -> Result<()> {
    let out = std::process::Command::new(binary())
        .arg("--version")
        .output()
        .map_err(|e| {
            format!(
                "cannot run `{}` ({e}): install Redis (`apt-get install redis-server`) or set \
                 KEYGATE_REDIS_SERVER to its path",
                binary()
            )
        })?;
    if !out.status.success() {
        return Err(format!("`{} --version` failed", binary()).into());
    }
    Ok(())
}

/// `redis-server --version`, for the report.
pub fn version() -> String {
    std::process::Command::new(binary())
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .and_then(|v| {
            v.split_whitespace()
                .find_map(|w| w.strip_prefix("v="))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Starts a private server on a free loopback port (the test harness' `RedisServer`),
/// turning the harness' panics into an error.
pub fn start() -> Result<RedisServer> {
    std::panic::catch_unwind(RedisServer::start)
        .map_err(|_| "could not start a private redis-server (see the message above)".into())
}

/// Commands our own inspection sends; not counted as the server's work. (`ZCARD` is not
/// among them although the report reads the session index with it: that happens outside
/// the measured rounds, and the sliding-window limiter's script counts with it.)
fn is_admin_command(name: &str) -> bool {
    [
        "config", "info", "keys", "memory", "pttl", "ping", "client", "hello", "select", "command",
        "flushall", "type",
    ]
    .iter()
    .any(|admin| name == *admin || name.starts_with(&format!("{admin}|")))
}

/// An admin connection to a private server.
pub struct Admin {
    conn: redis::Connection,
}

impl Admin {
    pub fn connect(url: &str) -> Result<Self> {
        let conn = redis::Client::open(url)?.get_connection_with_timeout(Duration::from_secs(2))?;
        Ok(Self { conn })
    }

    /// `CONFIG RESETSTAT`.
    pub fn reset_stats(&mut self) -> Result<()> {
        redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query::<()>(&mut self.conn)?;
        Ok(())
    }

    /// Calls per command since the last reset (`INFO commandstats`), admin commands left
    /// out, most frequent first.
    pub fn command_calls(&mut self) -> Result<Vec<(String, u64)>> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.conn)?;
        let mut calls: Vec<(String, u64)> = info
            .lines()
            .filter_map(|line| {
                let rest = line.strip_prefix("cmdstat_")?;
                let (name, stats) = rest.split_once(':')?;
                let calls = stats.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
                Some((name.to_owned(), calls.parse().ok()?))
            })
            .filter(|(name, _)| !is_admin_command(name))
            .collect();
        calls.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(calls)
    }

    /// Every key (the private servers hold a handful).
    pub fn keys(&mut self) -> Result<Vec<String>> {
        Ok(redis::cmd("KEYS").arg("*").query(&mut self.conn)?)
    }

    /// `MEMORY USAGE key SAMPLES 0`: bytes the key and its value take.
    pub fn memory_usage(&mut self, key: &str) -> Result<Option<u64>> {
        Ok(redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .arg("SAMPLES")
            .arg(0)
            .query(&mut self.conn)?)
    }

    /// `PTTL key` in ms (negative: no key or no TTL).
    pub fn pttl(&mut self, key: &str) -> Result<i64> {
        Ok(redis::cmd("PTTL").arg(key).query(&mut self.conn)?)
    }

    /// The server's process id (`INFO server`).
    /// Stores `count` sessions of the Node layout (`<custom>_<token>` for each of
    /// `customs`, the seed's user as JSON, the idle TTL) in pipelines, as another
    /// instance's logins would have; returns their tokens.
    pub fn plant_node_sessions(&mut self, count: usize, customs: &[&str]) -> Result<Vec<String>> {
        let user = serde_json::to_string(&crate::user::NodeUser::seed())?;
        let tokens = (0..count)
            .map(|_| keygate::Token::generate().map(|t| t.expose().to_owned()))
            .collect::<std::result::Result<Vec<String>, _>>()?;
        for chunk in tokens.chunks(1_000) {
            let mut pipe = redis::pipe();
            for token in chunk {
                for custom in customs {
                    pipe.cmd("SET")
                        .arg(format!("{custom}_{token}"))
                        .arg(&user)
                        .arg("EX")
                        .arg(crate::user::IDLE_SECS)
                        .ignore();
                }
            }
            pipe.query::<()>(&mut self.conn)?;
        }
        Ok(tokens)
    }

    pub fn pid(&mut self) -> Result<u32> {
        let info: String = redis::cmd("INFO").arg("server").query(&mut self.conn)?;
        info.lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| "no process_id in INFO server".into())
    }

    /// `ZCARD key`.
    pub fn zcard(&mut self, key: &str) -> Result<u64> {
        Ok(redis::cmd("ZCARD").arg(key).query(&mut self.conn)?)
    }

    /// `TYPE key`.
    pub fn key_type(&mut self, key: &str) -> Result<String> {
        Ok(redis::cmd("TYPE").arg(key).query(&mut self.conn)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_commands_are_recognised() {
        assert!(is_admin_command("config|resetstat"));
        assert!(is_admin_command("info"));
        assert!(!is_admin_command("getex"));
        assert!(!is_admin_command("evalsha"));
        assert!(!is_admin_command("zcard"));
    }
}
