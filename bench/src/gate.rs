//! `keygate-bench gate`: the performance gate. Counts the instructions per `GET /me` of
//! keygate's route and of the hand-written reference route on each framework under
//! callgrind (instruction counts do not swing with the machine's load the way requests per
//! second do), and fails when keygate's exceed the reference's by more than the budget
//! committed in `bench/gate.budget`.
//!
//! Each server runs in its own process under `valgrind --tool=callgrind` with one worker
//! thread, on a private redis-server holding [`SESSIONS`] sessions of each layout. One pass
//! over every session warms the server up; then each measurement window zeroes the
//! counters, sends [`REQUESTS`] requests on one keep-alive connection, round-robin over the
//! sessions, and dumps the counters. A server's figure is the median of its windows.
//! With `KEYGATE_GATE_KEEP` set the dumps are kept, for `callgrind_annotate`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Result;
use crate::servers::reference::JAVA_PREFIX;
use crate::servers::{Framework, Variant};
use crate::user::{IDLE_SECS, NODE_CUSTOM, NodeUser};

/// Sessions of each layout, used round-robin.
pub const SESSIONS: usize = 1_000;
/// Requests per measurement window.
pub const REQUESTS: usize = 1_000;
/// Measurement windows per server.
pub const WINDOWS: usize = 3;

/// The folder whose files are the frozen reference handlers.
const REFERENCE_DIR: &str = "bench/src/servers/reference";

/// One comparison the gate makes.
#[derive(Debug, Clone)]
struct Pair {
    framework: Framework,
    keygate: Variant,
    reference: Variant,
    /// The highest keygate ÷ reference instruction ratio that passes.
    budget: f64,
}

/// `bench/gate.budget`: the pairs and their budgets, and the commit since which the
/// reference handlers are frozen.
#[derive(Debug)]
struct Budget {
    baseline: Option<String>,
    pairs: Vec<Pair>,
}

fn parse_budget(text: &str) -> Result<Budget> {
    let mut budget = Budget {
        baseline: None,
        pairs: Vec::new(),
    };
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => {}
            ["frozen-since", commit] => budget.baseline = Some((*commit).to_owned()),
            [framework, keygate, reference, ratio] => budget.pairs.push(Pair {
                framework: Framework::parse(framework)?,
                keygate: Variant::parse(keygate)?,
                reference: Variant::parse(reference)?,
                budget: ratio
                    .parse()
                    .map_err(|_| format!("gate.budget line {}: bad ratio {ratio:?}", number + 1))?,
            }),
            _ => {
                return Err(
                    format!("gate.budget line {}: cannot read {line:?}", number + 1).into(),
                );
            }
        }
    }
    if budget.pairs.is_empty() {
        return Err("gate.budget names no pair".into());
    }
    Ok(budget)
}

/// Runs the gate with the budget file at `path`; an error when a pair is over budget or
/// the reference handlers changed together with other files.
pub fn run(path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the budget {}: {e}", path.display()))?;
    let budget = parse_budget(&text)?;
    check_tools()?;
    let frozen = check_reference_frozen(budget.baseline.as_deref());
    let redis = crate::redis_admin::start()?;
    let url = redis.url();
    let sessions = plant(&url)?;
    let work = tempdir()?;
    println!(
        "gate: instructions per GET /me (callgrind, median of {WINDOWS} windows of {REQUESTS} \
         requests, {SESSIONS} sessions round-robin)"
    );
    println!(
        "| framework | keygate | instructions | reference | instructions | ratio | budget | |"
    );
    println!("| --- | --- | ---: | --- | ---: | ---: | ---: | --- |");
    let mut failed = Vec::new();
    for pair in &budget.pairs {
        let tokens = if pair.keygate.is_hash() {
            &sessions.hash
        } else {
            &sessions.json
        };
        let keygate = measure(pair.framework, pair.keygate, &url, tokens, &work)?;
        let reference = measure(pair.framework, pair.reference, &url, tokens, &work)?;
        let ratio = keygate.median / reference.median;
        let verdict = if ratio <= pair.budget { "pass" } else { "OVER" };
        println!(
            "| {} | {} | {:.0} {:?} | {} | {:.0} {:?} | {:.3} | {:.3} | {} |",
            pair.framework.id(),
            pair.keygate.id(),
            keygate.median,
            keygate.rounded(),
            pair.reference.id(),
            reference.median,
            reference.rounded(),
            ratio,
            pair.budget,
            verdict
        );
        if ratio > pair.budget {
            failed.push(format!(
                "{} {}: {:.0} instructions per request, {:.3}× the reference's {:.0} (budget {:.3}×)",
                pair.framework.id(),
                pair.keygate.id(),
                keygate.median,
                ratio,
                reference.median,
                pair.budget
            ));
        }
    }
    if std::env::var_os("KEYGATE_GATE_KEEP").is_some() {
        println!("gate: the callgrind dumps are in {}", work.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    frozen?;
    if failed.is_empty() {
        println!("gate: every pair within its budget");
        Ok(())
    } else {
        Err(format!("over budget:\n  {}", failed.join("\n  ")).into())
    }
}

fn check_tools() -> Result<()> {
    for tool in ["valgrind", "callgrind_control"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            return Err(format!(
                "`{tool}` is not installed: install valgrind (`apt-get install valgrind`)"
            )
            .into());
        }
    }
    Ok(())
}

/// The reference handlers are frozen: every commit since the baseline that changes
/// [`REFERENCE_DIR`] changes nothing else, so that such a change stands alone and says
/// why. Without git history (a tarball, a shallow clone) the check is skipped, saying so.
fn check_reference_frozen(baseline: Option<&str>) -> Result<()> {
    let Some(baseline) = baseline else {
        return Ok(());
    };
    let log = Command::new("git")
        .args([
            "log",
            "--format=%H",
            &format!("{baseline}..HEAD"),
            "--",
            REFERENCE_DIR,
        ])
        .output();
    let commits = match log {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        _ => {
            println!("gate: no git history with {baseline}; the frozen-reference check is skipped");
            return Ok(());
        }
    };
    for commit in commits.split_whitespace() {
        let out = Command::new("git")
            .args(["show", "--name-only", "--format=", commit])
            .output()?;
        let files = String::from_utf8_lossy(&out.stdout).into_owned();
        let others: Vec<&str> = files
            .lines()
            .filter(|f| !f.is_empty() && !f.starts_with(REFERENCE_DIR))
            .collect();
        if !others.is_empty() {
            return Err(format!(
                "commit {commit} changes the frozen reference handlers ({REFERENCE_DIR}) together \
                 with {others:?}: a change to them is a commit of its own that says why"
            )
            .into());
        }
    }
    Ok(())
}

/// The tokens of the planted sessions.
struct Sessions {
    json: Vec<String>,
    hash: Vec<String>,
}

/// Writes [`SESSIONS`] sessions of each layout: the Node seed's JSON under `myapp_`, the
/// Java seed's hash under `login:token:`, each with the 30-minute idle TTL.
fn plant(url: &str) -> Result<Sessions> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_connection()?;
    let user = NodeUser::seed();
    let json = serde_json::to_string(&user)?;
    let mut sessions = Sessions {
        json: Vec::with_capacity(SESSIONS),
        hash: Vec::with_capacity(SESSIONS),
    };
    let mut pipe = redis::pipe();
    for _ in 0..SESSIONS {
        let token = keygate::Token::generate()?.expose().to_owned();
        pipe.cmd("SET")
            .arg(format!("{NODE_CUSTOM}_{token}"))
            .arg(&json)
            .arg("PX")
            .arg(IDLE_SECS * 1000)
            .ignore();
        sessions.json.push(token);
        let token = keygate::Token::generate()?.expose().to_owned();
        let key = format!("{JAVA_PREFIX}{token}");
        pipe.cmd("HSET")
            .arg(&key)
            .arg("user_id")
            .arg(user.user_id)
            .arg("mobile_phone")
            .arg(&user.mobile_phone)
            .arg("openid")
            .arg(&user.openid)
            .ignore();
        pipe.cmd("PEXPIRE").arg(&key).arg(IDLE_SECS * 1000).ignore();
        sessions.hash.push(token);
    }
    pipe.exec(&mut conn)?;
    Ok(sessions)
}

/// The instructions per request of one server's windows.
struct Measured {
    windows: Vec<f64>,
    median: f64,
}

impl Measured {
    fn rounded(&self) -> Vec<u64> {
        self.windows.iter().map(|w| w.round() as u64).collect()
    }
}

/// A server under callgrind; killed when dropped.
struct Profiled {
    child: Child,
}

impl Drop for Profiled {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn measure(
    framework: Framework,
    variant: Variant,
    url: &str,
    tokens: &[String],
    work: &Path,
) -> Result<Measured> {
    let port = keygate_tests::free_port();
    let out = work.join(format!("{}-{}", framework.id(), variant.id()));
    std::fs::create_dir_all(&out)?;
    let log = std::fs::File::create(out.join("server.log"))?;
    let child = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}/cg.%p", out.display()))
        .arg(std::env::current_exe()?)
        .args([
            "serve",
            framework.id(),
            variant.id(),
            &port.to_string(),
            url,
        ])
        .env("KEYGATE_BENCH_WORKERS", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let pid = child.id();
    let mut server = Profiled { child };
    let mut client = Client::connect(port, &mut server, &out)?;
    let headers = variant.header_cycle();
    let mut sent = 0usize;
    let mut send = |client: &mut Client, n: usize| -> Result<()> {
        for _ in 0..n {
            let extra = headers.as_ref().map(|cycle| &cycle[sent % cycle.len()][..]);
            client.get_me(&tokens[sent % tokens.len()], extra.unwrap_or(&[]))?;
            sent += 1;
        }
        Ok(())
    };
    send(&mut client, tokens.len())?;
    let mut windows = Vec::with_capacity(WINDOWS);
    for _ in 0..WINDOWS {
        callgrind_control(&["-z", &pid.to_string()])?;
        send(&mut client, REQUESTS)?;
        let before = dumps(&out)?;
        callgrind_control(&["-d", &pid.to_string()])?;
        let total = wait_for_dump(&out, &before)?;
        windows.push(total as f64 / REQUESTS as f64);
    }
    drop(server);
    let mut sorted = windows.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    Ok(Measured { windows, median })
}

fn callgrind_control(args: &[&str]) -> Result<()> {
    let status = Command::new("callgrind_control")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("callgrind_control {args:?} failed").into())
    }
}

/// The dump files callgrind has written to `dir` so far.
fn dumps(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("cg."))
        {
            files.push(path);
        }
    }
    Ok(files)
}

/// Waits for the dump that is not among `before` and returns its instruction total.
fn wait_for_dump(dir: &Path, before: &[PathBuf]) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for path in dumps(dir)? {
            if before.contains(&path) {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let total = text.lines().find_map(|line| {
                line.strip_prefix("totals:")
                    .or_else(|| line.strip_prefix("summary:"))
                    .and_then(|n| n.trim().parse::<u64>().ok())
            });
            if let Some(total) = total {
                return Ok(total);
            }
        }
        if Instant::now() > deadline {
            return Err(format!("no callgrind dump appeared in {}", dir.display()).into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tempdir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("keygate-gate-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// One keep-alive HTTP/1.1 connection.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// Connects once the server listens (under valgrind a server takes seconds to start).
    fn connect(port: u16, server: &mut Profiled, out: &Path) -> Result<Self> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = server.child.try_wait()? {
                let log = std::fs::read_to_string(out.join("server.log")).unwrap_or_default();
                let tail: String = log
                    .chars()
                    .rev()
                    .take(2000)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                return Err(format!("server exited at start ({status}): {tail}").into());
            }
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) {
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(Duration::from_secs(60)))?;
                return Ok(Self {
                    stream,
                    buf: Vec::with_capacity(4096),
                });
            }
            if Instant::now() > deadline {
                return Err("the server did not listen within 120 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `GET /me` with the token in `authorization`; fails unless the answer is 200.
    fn get_me(&mut self, token: &str, extra: &[(String, String)]) -> Result<()> {
        let mut request =
            format!("GET /me HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: {token}\r\n");
        for (name, value) in extra {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        self.stream.write_all(request.as_bytes())?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err("the server closed the connection".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            let httparse::Status::Complete(head) = response.parse(&self.buf)? else {
                continue;
            };
            let status = response.code.unwrap_or(0);
            let length = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| {
                    std::str::from_utf8(h.value)
                        .ok()?
                        .trim()
                        .parse::<usize>()
                        .ok()
                })
                .ok_or("the answer has no content-length")?;
            if self.buf.len() < head + length {
                continue;
            }
            if status != 200 {
                return Err(format!("GET /me answered {status}").into());
            }
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_budget_parses() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/gate.budget")).unwrap();
        let budget = parse_budget(&text).unwrap();
        assert!(budget.baseline.is_some());
        assert!(budget.pairs.iter().all(|p| p.budget >= 1.0));
        assert!(
            Framework::ALL
                .iter()
                .all(|f| budget.pairs.iter().any(|p| p.framework == *f))
        );
    }

    #[test]
    fn a_bad_line_is_an_error() {
        assert!(parse_budget("axum keygate getex").is_err());
        assert!(parse_budget("axum keygate getex x").is_err());
        assert!(parse_budget("# only a comment").is_err());
    }
}
