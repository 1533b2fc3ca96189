//! The watcher in another process (`session_watcher`, a binary of this crate) and the
//! sessions the tests end under its eyes.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keygate::{EndReason, Token};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How long a test waits for one line of the watcher.
const LINE_TIMEOUT: Duration = Duration::from_secs(30);

/// A `session_watcher` process, killed when dropped.
pub struct Watcher {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    /// `ended` lines read while waiting for another answer.
    ended: HashMap<String, (EndReason, u128)>,
    next_id: u64,
}

/// Where the watcher connects.
pub enum Target {
    Single(String),
    Cluster(Vec<String>),
    Sentinel(String, Vec<String>),
}

impl Watcher {
    /// Starts a watcher on `target` with extra arguments (`--near-cache`, `--lifetime-ms N`,
    /// `--recheck-ms N`, `--layout json:<prefix>`), and waits until it is connected.
    pub async fn start(target: &Target, extra: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_session_watcher"));
        match target {
            Target::Single(url) => command.args(["--single", url]),
            Target::Cluster(urls) => command.args(["--cluster", &urls.join(",")]),
            Target::Sentinel(master, urls) => command.args(["--sentinel", master, &urls.join(",")]),
        };
        let mut child = command
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("session_watcher starts");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut watcher = Self {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            ended: HashMap::new(),
            next_id: 0,
        };
        let line = watcher.line().await;
        assert_eq!(line, "started");
        watcher
    }

    async fn send(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write to the watcher");
        self.stdin.flush().await.expect("flush to the watcher");
    }

    async fn line(&mut self) -> String {
        tokio::time::timeout(LINE_TIMEOUT, self.lines.next_line())
            .await
            .expect("the watcher answers in time")
            .expect("read from the watcher")
            .expect("the watcher is running")
    }

    /// The next line that is not an `ended` report (those are kept for
    /// [`ended`](Self::ended)).
    async fn answer(&mut self) -> String {
        loop {
            let line = self.line().await;
            if !self.keep_ended(&line) {
                return line;
            }
        }
    }

    fn keep_ended(&mut self, line: &str) -> bool {
        let words: Vec<&str> = line.split_whitespace().collect();
        let ["ended", id, reason, at] = words.as_slice() else {
            return false;
        };
        let reason = EndReason::parse(reason).expect("a known reason");
        let at = at.parse().expect("a timestamp");
        self.ended.insert((*id).to_owned(), (reason, at));
        true
    }

    /// Starts watching the session of `token`; returns the watch's id.
    pub async fn watch(&mut self, token: &Token) -> String {
        self.next_id += 1;
        let id = self.next_id.to_string();
        self.send(&format!("watch {id} {}", token.expose())).await;
        id
    }

    /// Waits until every watch is checked with tracking up; returns how many are watched.
    pub async fn armed(&mut self) -> usize {
        self.send("armed").await;
        let line = self.answer().await;
        let Some(count) = line.strip_prefix("armed ") else {
            panic!("the watcher did not arm: {line}");
        };
        count.parse().expect("a count")
    }

    /// `(watched, tracking, pending, checks)`.
    pub async fn stats(&mut self) -> (usize, bool, usize, u64) {
        self.send("stats").await;
        let line = self.answer().await;
        let words: Vec<&str> = line.split_whitespace().collect();
        let ["stats", watched, tracking, pending, checks] = words.as_slice() else {
            panic!("unexpected stats line {line}");
        };
        (
            watched.parse().expect("n"),
            *tracking == "true",
            pending.parse().expect("n"),
            checks.parse().expect("n"),
        )
    }

    /// The watcher's resident memory, kB.
    pub async fn rss_kb(&mut self) -> u64 {
        self.send("rss").await;
        let line = self.answer().await;
        line.strip_prefix("rss ")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("unexpected rss line {line}"))
    }

    /// The end of watch `id` with its time (unix µs), waiting up to `timeout`; `None` if it
    /// did not end by then.
    pub async fn ended(&mut self, id: &str, timeout: Duration) -> Option<(EndReason, u128)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(found) = self.ended.remove(id) {
                return Some(found);
            }
            let line = tokio::time::timeout_at(deadline, self.lines.next_line()).await;
            let Ok(line) = line else {
                return None;
            };
            let line = line.expect("read from the watcher").expect("running");
            if !self.keep_ended(&line) {
                panic!("unexpected line from the watcher: {line}");
            }
        }
    }

    /// Ends reported so far and not taken, without waiting.
    pub fn ended_so_far(&self) -> usize {
        self.ended.len()
    }

    /// Reads `ended` reports that are already there, waiting at most `wait`.
    pub async fn drain(&mut self, wait: Duration) {
        while let Ok(Ok(Some(line))) = tokio::time::timeout(wait, self.lines.next_line()).await {
            if !self.keep_ended(&line) {
                panic!("unexpected line from the watcher: {line}");
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Now, unix µs (the watcher's clock: same machine).
pub fn unix_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}
