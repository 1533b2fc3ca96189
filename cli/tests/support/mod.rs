//! Running the built `keygate-cli` against private Redis servers.

#![allow(dead_code, reason = "each test binary uses part of it")]

pub mod sale;

use std::process::{Command, Stdio};

/// What one run of the binary gave.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The stdout as JSON, after checking that the run succeeded.
    pub fn json(&self) -> serde_json::Value {
        assert_eq!(self.code, 0, "{self:?}");
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    /// Asserts a refusal or failure: status 1 and one line on stderr containing `needle`.
    pub fn assert_error(&self, needle: &str) {
        assert_eq!(self.code, 1, "{self:?}");
        assert_eq!(self.stderr.trim_end().lines().count(), 1, "{self:?}");
        assert!(self.stderr.contains(needle), "{needle:?} in {self:?}");
        assert!(self.stdout.is_empty(), "{self:?}");
    }
}

/// Runs `keygate-cli args...` with only `vars` of the Redis variables set and no terminal
/// (stdin is empty, stdout and stderr are pipes).
pub fn cli(vars: &[(&str, String)], args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keygate-cli"));
    for var in [
        "REDIS_URL",
        "REDIS_CLUSTER_URLS",
        "REDIS_SENTINEL_MASTER",
        "REDIS_SENTINEL_URLS",
        "REDIS_CA_CERT",
        "REDIS_CLIENT_CERT",
        "REDIS_CLIENT_KEY",
    ] {
        command.env_remove(var);
    }
    for (name, value) in vars {
        command.env(name, value);
    }
    let output = command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("keygate-cli runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
