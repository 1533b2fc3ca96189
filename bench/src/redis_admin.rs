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
        "flushall", "type", "object", "dbsize",
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

    /// Calls of every command since the last reset, summed, leaving out only the
    /// `CONFIG` and `INFO` calls that reset and read them (unlike
    /// [`command_calls`](Self::command_calls), `PTTL`, `DEL`, `SCAN` count).
    pub fn all_command_calls(&mut self) -> Result<u64> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.conn)?;
        Ok(info
            .lines()
            .filter_map(|line| {
                let rest = line.strip_prefix("cmdstat_")?;
                let (name, stats) = rest.split_once(':')?;
                if name == "info" || name.starts_with("config") {
                    return None;
                }
                stats
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("calls="))?
                    .parse::<u64>()
                    .ok()
            })
            .sum())
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

    /// A field of `INFO <section>` as a number.
    pub fn info_number(&mut self, section: &str, field: &str) -> Result<f64> {
        let info: String = redis::cmd("INFO").arg(section).query(&mut self.conn)?;
        info_field(&info, field)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no {field} in INFO {section}").into())
    }

    /// `used_memory` of `INFO memory`: bytes the allocator holds for data and overhead.
    pub fn used_memory(&mut self) -> Result<u64> {
        Ok(self.info_number("memory", "used_memory")? as u64)
    }

    /// `DBSIZE`.
    pub fn dbsize(&mut self) -> Result<u64> {
        Ok(redis::cmd("DBSIZE").query(&mut self.conn)?)
    }

    /// `(calls, usec)` of one command since the last reset (`INFO commandstats`), zeros when
    /// it did not run.
    pub fn command_usec(&mut self, command: &str) -> Result<(u64, u64)> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.conn)?;
        Ok(parse_command_usec(&info, command))
    }

    /// Counts the keys matching `pattern` (`SCAN` in batches of 10,000).
    pub fn count_matching(&mut self, pattern: &str) -> Result<u64> {
        let mut count = 0u64;
        self.scan_batches(pattern, |_, keys| {
            count += keys.len() as u64;
            Ok(())
        })?;
        Ok(count)
    }

    /// Deletes the keys matching `pattern` (`SCAN` and `DEL` in batches); returns how many.
    pub fn delete_matching(&mut self, pattern: &str) -> Result<u64> {
        let mut deleted = 0u64;
        self.scan_batches(pattern, |conn, keys| {
            deleted += redis::cmd("DEL").arg(&keys).query::<u64>(conn)?;
            Ok(())
        })?;
        Ok(deleted)
    }

    /// Hands each non-empty batch of keys matching `pattern` (`SCAN`, 10,000 at a time) to
    /// `each`, with the connection.
    fn scan_batches(
        &mut self,
        pattern: &str,
        mut each: impl FnMut(&mut redis::Connection, Vec<String>) -> Result<()>,
    ) -> Result<()> {
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(10_000)
                .query(&mut self.conn)?;
            if !keys.is_empty() {
                each(&mut self.conn, keys)?;
            }
            cursor = next;
            if cursor == 0 {
                return Ok(());
            }
        }
    }

    /// `OBJECT ENCODING key`.
    pub fn object_encoding(&mut self, key: &str) -> Result<String> {
        Ok(redis::cmd("OBJECT")
            .arg("ENCODING")
            .arg(key)
            .query(&mut self.conn)?)
    }

    /// `FLUSHALL` (private servers only: everything here is).
    pub fn flush(&mut self) -> Result<()> {
        redis::cmd("FLUSHALL").query::<()>(&mut self.conn)?;
        Ok(())
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

/// A field of an `INFO` reply.
pub fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
}

/// `(calls, usec)` of `command` in an `INFO commandstats` reply.
pub fn parse_command_usec(info: &str, command: &str) -> (u64, u64) {
    let Some(stats) = info_field(info, &format!("cmdstat_{command}")) else {
        return (0, 0);
    };
    let get = |name: &str| {
        stats
            .split(',')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (get("calls"), get("usec"))
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

    #[test]
    fn reads_command_usec() {
        let info = "# Commandstats\r\ncmdstat_getex:calls=10,usec=25,usec_per_call=2.50,rejected_calls=0\r\n";
        assert_eq!(parse_command_usec(info, "getex"), (10, 25));
        assert_eq!(parse_command_usec(info, "get"), (0, 0));
    }
}
