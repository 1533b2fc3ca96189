//! Driving `GET /me` over loopback: `wrk` when it is installed, else a small HTTP/1.1
//! keep-alive generator of our own (one thread, one request in flight per connection, as
//! wrk does). Both are bounded in connections and time and talk only to 127.0.0.1.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::Result;
use crate::args::LoadGen;
use crate::stats;

/// Longest the generator waits for one response before counting a timeout.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// What one load run measured.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    /// Responses with status 200 within the run.
    pub ok: u64,
    /// Other statuses, connect/read/write errors and timeouts.
    pub errors: u64,
    /// The run's length.
    pub elapsed: Duration,
    /// Latency percentiles in microseconds.
    pub p50_us: f64,
    pub p99_us: f64,
}

impl LoadResult {
    /// Successful requests per second.
    pub fn rps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }
}

/// The load generator in use.
#[derive(Debug, Clone)]
pub enum Generator {
    Wrk(PathBuf),
    Builtin,
}

impl Generator {
    /// `wrk` from `PATH` if asked for or (auto) when present, else the built-in one.
    pub fn choose(kind: LoadGen) -> Result<Self> {
        let wrk = find_in_path("wrk");
        match (kind, wrk) {
            (LoadGen::Builtin, _) | (LoadGen::Auto, None) => Ok(Self::Builtin),
            (LoadGen::Wrk | LoadGen::Auto, Some(path)) => Ok(Self::Wrk(path)),
            (LoadGen::Wrk, None) => {
                Err("--loadgen wrk: wrk is not installed (apt-get install wrk)".into())
            }
        }
    }

    pub fn describe(&self, connections: usize) -> String {
        match self {
            Self::Wrk(_) => format!("wrk 1 thread, {connections} keep-alive connections"),
            Self::Builtin => format!(
                "built-in generator (1 thread, {connections} keep-alive connections, one request in flight each)"
            ),
        }
    }

    /// Loads `GET /me` on `port` for `duration`, each connection's requests taking the
    /// header sets of `cycle` in turn (connection `i` starting at its own offset): many sessions used
    /// round-robin.
    pub fn run_cycle(
        &self,
        port: u16,
        cycle: &[Vec<(String, String)>],
        connections: usize,
        duration: Duration,
    ) -> Result<LoadResult> {
        match self {
            Self::Wrk(path) => run_wrk(path, port, cycle, connections, duration),
            Self::Builtin => run_builtin(port, cycle, connections, duration),
        }
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn request_bytes(method: &str, path: &str, port: u16, headers: &[(String, String)]) -> Vec<u8> {
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if method == "POST" {
        request.push_str("content-length: 0\r\n");
    }
    request.push_str("\r\n");
    request.into_bytes()
}

// ---------------------------------------------------------------------------------------
// wrk

fn run_wrk(
    wrk: &PathBuf,
    port: u16,
    cycle: &[Vec<(String, String)>],
    connections: usize,
    duration: Duration,
) -> Result<LoadResult> {
    // wrk takes whole seconds.
    let secs = duration.as_secs_f64().round().max(1.0);
    let mut cmd = Command::new(wrk);
    cmd.args(["-t1", &format!("-c{connections}"), &format!("-d{secs}s")])
        .args(["--latency", "--timeout", "2s"]);
    let script = match cycle {
        [] => None,
        [one] => {
            for (name, value) in one {
                cmd.arg("-H").arg(format!("{name}: {value}"));
            }
            None
        }
        many => {
            let path = std::env::temp_dir().join(format!(
                "keygate-bench-cycle-{}-{port}.lua",
                std::process::id()
            ));
            std::fs::write(&path, wrk_cycle_script(many))?;
            cmd.arg("-s").arg(&path);
            Some(path)
        }
    };
    cmd.arg(format!("http://127.0.0.1:{port}/me"));
    let output = cmd.output();
    if let Some(path) = script {
        let _ = std::fs::remove_file(path);
    }
    let output = output?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!(
            "wrk failed ({}): {}{}",
            output.status,
            text,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    parse_wrk(&text).ok_or_else(|| format!("cannot read wrk's output:\n{text}").into())
}

/// A wrk script sending the header sets of `cycle` in turn (header values here are tokens:
/// hex, base64url or cookies, nothing that needs escaping in a Lua long string).
fn wrk_cycle_script(cycle: &[Vec<(String, String)>]) -> String {
    let mut lua = String::from("local sets = {\n");
    for set in cycle {
        lua.push('{');
        for (name, value) in set {
            lua.push_str(&format!("[ [[{name}]] ] = [[{value}]], "));
        }
        lua.push_str("},\n");
    }
    lua.push_str(
        "}\nlocal i = 0\nrequest = function()\n  i = i % #sets + 1\n  return wrk.format(nil, nil, sets[i])\nend\n",
    );
    lua
}

/// `300.00us`, `1.20ms`, `2.00s` in microseconds.
fn wrk_time_us(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let factor = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        _ => return None,
    };
    Some(value * factor)
}

fn parse_wrk(text: &str) -> Option<LoadResult> {
    let mut result = LoadResult::default();
    let mut total = None;
    let mut elapsed = None;
    let mut errors = 0u64;
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", t] => result.p50_us = wrk_time_us(t)?,
            ["99%", t] => result.p99_us = wrk_time_us(t)?,
            [n, "requests", "in", t, ..] => {
                total = n.parse::<u64>().ok();
                elapsed = wrk_time_us(t.trim_end_matches(','))
                    .map(|us| Duration::from_secs_f64(us / 1e6));
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => errors += n.parse::<u64>().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                // connect 0, read 0, write 0, timeout 0
                errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    let total = total?;
    result.elapsed = elapsed?;
    result.errors = errors;
    result.ok = total.saturating_sub(errors.min(total));
    Some(result)
}

// ---------------------------------------------------------------------------------------
// The built-in generator

fn run_builtin(
    port: u16,
    cycle: &[Vec<(String, String)>],
    connections: usize,
    duration: Duration,
) -> Result<LoadResult> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut timed = run_timed(port, cycle, connections, duration, stop)?;
    Ok(timed.summary(duration))
}

/// What the built-in generator saw, each request with the time it was sent.
#[derive(Debug, Clone, Default)]
pub struct TimedLoad {
    /// Responses with status 200.
    pub ok: u64,
    /// Other statuses, connect/read/write errors and timeouts.
    pub errors: u64,
    /// `(sent, latency)` of every answered request: milliseconds since the start of the
    /// run, microseconds.
    pub samples: Vec<(u32, u32)>,
}

impl TimedLoad {
    /// The run as a [`LoadResult`] over `elapsed`.
    pub fn summary(&mut self, elapsed: Duration) -> LoadResult {
        let mut latencies: Vec<u32> = self.samples.iter().map(|(_, us)| *us).collect();
        LoadResult {
            ok: self.ok,
            errors: self.errors,
            elapsed,
            p50_us: stats::percentile_u32(&mut latencies, 0.50),
            p99_us: stats::percentile_u32(&mut latencies, 0.99),
        }
    }

    /// The `q` quantile of the latencies of requests sent within `from_ms..to_ms`, and
    /// how many there were.
    pub fn quantile_within(&self, from_ms: u32, to_ms: u32, q: f64) -> (f64, usize) {
        let mut latencies: Vec<u32> = self
            .samples
            .iter()
            .filter(|(at, _)| (from_ms..to_ms).contains(at))
            .map(|(_, us)| *us)
            .collect();
        let n = latencies.len();
        (stats::percentile_u32(&mut latencies, q), n)
    }
}

/// Loads `GET /me` with the built-in generator as [`Generator::run_cycle`] does, keeping
/// when each request was sent: for latencies while something else happens meanwhile. Runs
/// for `duration` at most, or until `stop` is set.
pub fn run_timed(
    port: u16,
    cycle: &[Vec<(String, String)>],
    connections: usize,
    duration: Duration,
    stop: Arc<AtomicBool>,
) -> Result<TimedLoad> {
    let requests: Arc<[Vec<u8>]> = cycle
        .iter()
        .map(|headers| request_bytes("GET", "/me", port, headers))
        .collect();
    // Its own thread and single-threaded runtime, so that nothing else of this process
    // competes with it and it takes at most one core.
    let handle = std::thread::spawn(move || -> Result<TimedLoad> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let start = Instant::now();
            let deadline = start + duration;
            let spread = requests.len() / connections.max(1);
            let tasks: Vec<_> = (0..connections)
                .map(|i| {
                    tokio::spawn(drive(
                        port,
                        Arc::clone(&requests),
                        i * spread,
                        (start, deadline),
                        Arc::clone(&stop),
                    ))
                })
                .collect();
            let mut timed = TimedLoad::default();
            for task in tasks {
                let conn = task.await?;
                timed.ok += conn.ok;
                timed.errors += conn.errors;
                timed.samples.extend(conn.samples);
            }
            Ok(timed)
        })
    });
    handle
        .join()
        .map_err(|_| "the load generator thread panicked")?
}

#[derive(Default)]
struct ConnStats {
    ok: u64,
    errors: u64,
    /// `(sent, latency)`: ms since the run's start, µs.
    samples: Vec<(u32, u32)>,
}

/// One keep-alive connection sending `requests` in turn (from `start`) until `deadline`;
/// reconnects after errors.
async fn drive(
    port: u16,
    requests: Arc<[Vec<u8>]>,
    first: usize,
    (start, deadline): (Instant, Instant),
    stop: Arc<AtomicBool>,
) -> ConnStats {
    let mut next = first;
    let mut stats = ConnStats {
        samples: Vec::with_capacity(1 << 16),
        ..ConnStats::default()
    };
    let mut buf = Vec::with_capacity(4096);
    'connect: while Instant::now() < deadline {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
            stats.errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        buf.clear();
        loop {
            let sent = Instant::now();
            if sent >= deadline || stop.load(Ordering::Relaxed) {
                break 'connect;
            }
            let Some(request) = requests.get(next % requests.len().max(1)) else {
                break 'connect;
            };
            next += 1;
            if stream.write_all(request).await.is_err() {
                stats.errors += 1;
                continue 'connect;
            }
            let limit = (deadline + RESPONSE_TIMEOUT).saturating_duration_since(sent);
            let read = tokio::time::timeout(limit, read_response(&mut stream, &mut buf, false));
            let response = match read.await {
                Ok(Ok(response)) => response,
                Ok(Err(_)) | Err(_) => {
                    stats.errors += 1;
                    continue 'connect;
                }
            };
            let done = Instant::now();
            if done > deadline {
                break 'connect;
            }
            let us = u32::try_from(done.duration_since(sent).as_micros()).unwrap_or(u32::MAX);
            let at = u32::try_from(sent.duration_since(start).as_millis()).unwrap_or(u32::MAX);
            stats.samples.push((at, us));
            if response.status == 200 {
                stats.ok += 1;
            } else {
                stats.errors += 1;
            }
            if response.close {
                continue 'connect;
            }
        }
    }
    stats
}

/// A response read off a connection.
#[derive(Debug, Default)]
pub struct Response {
    pub status: u16,
    /// Whether the server closes the connection after it.
    pub close: bool,
    /// Headers (lowercase names) and body, when asked for.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

enum BodyLength {
    Fixed(usize),
    Chunked,
    UntilClose,
}

/// Reads one response; `buf` keeps bytes read beyond it (none, without pipelining).
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>, keep: bool) -> Result<Response> {
    let mut response = Response::default();
    let (head_len, length) = loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head_len) = parsed.parse(buf)? {
            response.status = parsed.code.unwrap_or(0);
            let mut length = BodyLength::UntilClose;
            for h in parsed.headers.iter() {
                let value = std::str::from_utf8(h.value).unwrap_or("");
                if h.name.eq_ignore_ascii_case("content-length") {
                    length = BodyLength::Fixed(value.trim().parse()?);
                } else if h.name.eq_ignore_ascii_case("transfer-encoding")
                    && value.to_ascii_lowercase().contains("chunked")
                {
                    length = BodyLength::Chunked;
                } else if h.name.eq_ignore_ascii_case("connection")
                    && value.eq_ignore_ascii_case("close")
                {
                    response.close = true;
                }
                if keep {
                    response
                        .headers
                        .push((h.name.to_ascii_lowercase(), value.to_owned()));
                }
            }
            if matches!(response.status, 204 | 304) {
                length = BodyLength::Fixed(0);
            }
            break (head_len, length);
        }
        fill(stream, buf).await?;
    };
    let body_end = match length {
        BodyLength::Fixed(n) => {
            while buf.len() < head_len + n {
                fill(stream, buf).await?;
            }
            if keep {
                response.body = buf[head_len..head_len + n].to_vec();
            }
            head_len + n
        }
        BodyLength::Chunked => loop {
            if let Some((end, body)) = dechunk(&buf[head_len..], keep)? {
                response.body = body;
                break head_len + end;
            }
            fill(stream, buf).await?;
        },
        BodyLength::UntilClose => {
            response.close = true;
            while stream.read_buf(buf).await? > 0 {}
            if keep {
                response.body = buf[head_len..].to_vec();
            }
            buf.len()
        }
    };
    buf.drain(..body_end);
    Ok(response)
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<()> {
    buf.reserve(4096);
    if stream.read_buf(buf).await? == 0 {
        return Err("connection closed mid-response".into());
    }
    Ok(())
}

/// A complete chunked body at the start of `data`: its encoded length and (if `keep`) the
/// decoded bytes. `None` while incomplete.
fn dechunk(data: &[u8], keep: bool) -> Result<Option<(usize, Vec<u8>)>> {
    let mut at = 0;
    let mut body = Vec::new();
    loop {
        let (size_len, size) = match httparse::parse_chunk_size(&data[at..]) {
            Ok(httparse::Status::Complete(parsed)) => parsed,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err("bad chunk size".into()),
        };
        let size = usize::try_from(size)?;
        at += size_len;
        if size == 0 {
            // Trailers are not expected: the final CRLF.
            if data.len() < at + 2 {
                return Ok(None);
            }
            return Ok(Some((at + 2, body)));
        }
        if data.len() < at + size + 2 {
            return Ok(None);
        }
        if keep {
            body.extend_from_slice(&data[at..at + size]);
        }
        at += size + 2;
    }
}

/// One request on a fresh connection (login, sanity checks), headers and body kept.
pub async fn request_once(
    method: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> Result<Response> {
    let work = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(&request_bytes(method, path, port, headers))
            .await?;
        let mut buf = Vec::new();
        read_response(&mut stream, &mut buf, true).await
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .map_err(|_| format!("{method} {path}: no answer within 10 s"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_output() {
        let text = "Running 3s test @ http://127.0.0.1:1/me
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   345.67us  100.00us   5.00ms   90.00%
    Req/Sec    90.00k     2.00k   95.00k    80.00%
  Latency Distribution
     50%  300.00us
     75%  400.00us
     90%  500.00us
     99%    1.20ms
  270000 requests in 3.00s, 40.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 12
Requests/sec:  90000.00
Transfer/sec:     13.33MB
";
        let r = parse_wrk(text).unwrap();
        assert_eq!(r.errors, 15);
        assert_eq!(r.ok, 270_000 - 15);
        assert_eq!(r.p50_us, 300.0);
        assert_eq!(r.p99_us, 1200.0);
        assert_eq!(r.elapsed, Duration::from_secs(3));
    }

    #[test]
    fn dechunks() {
        let data = b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\nNEXT";
        let (end, body) = dechunk(data, true).unwrap().unwrap();
        assert_eq!(body, b"Wikipedia");
        assert_eq!(&data[end..], b"NEXT");
        assert!(dechunk(b"4\r\nWi", true).unwrap().is_none());
    }
}
