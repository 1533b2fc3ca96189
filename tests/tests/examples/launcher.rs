//! Builds the example binaries (once per test run) and runs them as child processes with
//! a private Redis, a temporary SQLite file and a free port, capturing their output.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use keygate_tests::{RedisServer, eventually};

use crate::http::Client;

/// The example packages; each has one binary of the same name.
pub const EXAMPLES: [&str; 4] = ["axum-login", "actix-login", "rocket-login", "poem-login"];

/// The `ADMIN_TOKEN` the suite starts examples with (at least 32 characters, or an
/// example refuses to start).
pub const ADMIN_TOKEN: &str = "suite-operator-token-7f3a9c-5e81d04b";

/// The `PAY_CALLBACK_SECRET` the suite starts examples with.
pub const PAY_CALLBACK_SECRET: &str = "suite-pay-callback-secret-41d2";

/// How long an example may take to say it is ready (or to fail at start).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The directory holding the binaries: `target/<profile>/`, next to this test's `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its executable");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps/")
        .to_path_buf()
}

/// Builds the four examples with the cargo that runs this test, into the same target
/// directory and profile, once per test run (`cargo test` does not build another
/// package's binaries).
fn built_binaries() -> &'static Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = profile_dir();
        let target_dir = dir.parent().map(Path::to_path_buf).unwrap_or_default();
        let profile = match dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_owned(),
            Some(other) => other.to_owned(),
        };
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("keygate-tests sits in the workspace");
        let mut command = Command::new(&cargo);
        command
            .current_dir(workspace)
            .env("CARGO_TARGET_DIR", &target_dir)
            .args(["build", "--quiet", "--profile", &profile]);
        for example in EXAMPLES {
            command.args(["-p", example, "--bin", example]);
        }
        let output = command
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {cargo}: {e}"))?;
        if output.status.success() {
            Ok(dir)
        } else {
            Err(format!(
                "building the examples failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    })
}

/// The path of an example's binary, built if needed.
pub fn binary(example: &str) -> PathBuf {
    let dir = match built_binaries() {
        Ok(dir) => dir,
        Err(e) => panic!("{e}"),
    };
    let path = dir.join(example);
    assert!(
        path.exists(),
        "{} is missing; run `cargo build -p axum-login -p actix-login -p rocket-login -p poem-login`",
        path.display()
    );
    path
}

/// A fresh directory for one example run (its working directory and SQLite file).
fn scratch_dir(example: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "examples-{}-{}-{example}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// Lines a child wrote, collected by a reader thread.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn collect(self, stream: impl Read + Send + 'static) {
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                match line {
                    Ok(line) => self.0.lock().expect("not poisoned").push(line),
                    Err(_) => break,
                }
            }
        });
    }

    pub fn all(&self) -> Vec<String> {
        self.0.lock().expect("not poisoned").clone()
    }

    pub fn find(&self, needle: &str) -> Option<String> {
        self.all().into_iter().find(|l| l.contains(needle))
    }
}

/// A running (or exited) example process; killed when dropped.
pub struct Process {
    pub name: &'static str,
    child: Child,
    pub stdout: Lines,
    pub stderr: Lines,
    dir: PathBuf,
}

impl Process {
    /// Starts `example` with `env` on top of a clean environment: no inherited Redis or
    /// database settings, `RUST_LOG=info`, working directory a fresh scratch directory.
    pub fn spawn(example: &'static str, env: &[(&str, String)]) -> Self {
        let dir = scratch_dir(example);
        let mut command = Command::new(binary(example));
        command
            .current_dir(&dir)
            .env_remove("REDIS_URL")
            .env_remove("REDIS_CLUSTER_URLS")
            .env_remove("DATABASE_URL")
            .env_remove("BIND_ADDR")
            .env_remove("ADMIN_TOKEN")
            .env_remove("PAY_CALLBACK_SECRET")
            .env_remove("RATE_LIMIT_PER_IP")
            .env_remove("SESSION_NEAR_CACHE")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {example}: {e}"));
        let stdout = Lines::default();
        let stderr = Lines::default();
        stdout
            .clone()
            .collect(child.stdout.take().expect("piped stdout"));
        stderr
            .clone()
            .collect(child.stderr.take().expect("piped stderr"));
        Self {
            name: example,
            child,
            stdout,
            stderr,
            dir,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The scratch directory (working directory of the process).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Waits for the process to exit by itself; panics if it is still running after the
    /// start timeout.
    pub async fn exit_status(&mut self) -> ExitStatus {
        let mut status = None;
        let exited = eventually(START_TIMEOUT, async || {
            status = self.child.try_wait().expect("try_wait");
            status.is_some()
        })
        .await;
        assert!(exited, "{} is still running", self.name);
        // Let the reader threads see the end of the pipes.
        let stderr = self.stderr.clone();
        let _ = eventually(Duration::from_secs(2), async || !stderr.all().is_empty()).await;
        status.expect("exited")
    }

    /// Waits for the ready line and returns the address it names.
    pub async fn ready(&mut self) -> SocketAddr {
        let mut line = None;
        let mut exited = None;
        let seen = eventually(START_TIMEOUT, async || {
            line = self.stdout.find(" ready on http://");
            if line.is_none() {
                exited = self.child.try_wait().ok().flatten();
            }
            line.is_some() || exited.is_some()
        })
        .await;
        let Some(line) = line else {
            panic!(
                "{} did not become ready (seen: {seen}, exit: {exited:?}); stderr: {:?}; stdout: {:?}",
                self.name,
                self.stderr.all(),
                self.stdout.all()
            );
        };
        line.split(" ready on http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in the ready line {line:?}"))
    }

    /// The code the development sender logged last for `phone`, waiting for it to appear.
    pub async fn logged_code(&self, phone: &str) -> String {
        let needle = format!("phone=\"{phone}\"");
        let mut code = None;
        let found = eventually(Duration::from_secs(10), async || {
            code = self
                .stdout
                .all()
                .iter()
                .rev()
                .find(|l| l.contains("development code sender") && l.contains(&needle))
                .and_then(|l| l.split("code=\"").nth(1))
                .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect());
            code.is_some()
        })
        .await;
        assert!(found, "no code logged for {phone}: {:?}", self.stdout.all());
        code.expect("found")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An example serving on a private Redis: the process, its Redis and an HTTP client.
pub struct Example {
    pub process: Process,
    pub redis: RedisServer,
    pub http: Client,
}

impl Example {
    /// Starts `example` with a private Redis, a SQLite file in its scratch directory, a
    /// port chosen by the OS (reported in the ready line), and the suite's [`ADMIN_TOKEN`]
    /// and [`PAY_CALLBACK_SECRET`].
    pub async fn start(example: &'static str) -> Self {
        Self::start_without(example, &[]).await
    }

    /// Like [`start`](Self::start), leaving the variables named in `unset` unset.
    pub async fn start_without(example: &'static str, unset: &[&str]) -> Self {
        Self::start_with(example, unset, &[]).await
    }

    /// Like [`start_without`](Self::start_without), with `extra` variables set on top
    /// (they replace the suite's values of the same name).
    pub async fn start_with(
        example: &'static str,
        unset: &[&str],
        extra: &[(&'static str, String)],
    ) -> Self {
        let redis = RedisServer::start();
        let mut env: Vec<(&str, String)> = [
            ("REDIS_URL", redis.url()),
            ("BIND_ADDR", "127.0.0.1:0".to_owned()),
            ("DATABASE_URL", "sqlite://example.sqlite3".to_owned()),
            ("ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
            ("PAY_CALLBACK_SECRET", PAY_CALLBACK_SECRET.to_owned()),
            // The scenarios log in many times from one address: the highest limit
            // (`keygate::rate_limit::MAX_WINDOW_LIMIT`); the rate-limit scenario sets its own.
            ("RATE_LIMIT_PER_IP", "10000".to_owned()),
        ]
        .into_iter()
        .filter(|(name, _)| !unset.contains(name))
        .filter(|(name, _)| !extra.iter().any(|(other, _)| other == name))
        .collect();
        env.extend(extra.iter().cloned());
        let mut process = Process::spawn(example, &env);
        let addr = process.ready().await;
        Self {
            process,
            redis,
            http: Client::new(addr),
        }
    }
}
