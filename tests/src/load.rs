//! A bounded HTTP/1.1 load generator for loopback servers: keep-alive connections sending
//! one request after another, every response recorded with its time and latency.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One request's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When it was sent, from the start of the load.
    pub at: Duration,
    /// How long it took.
    pub latency: Duration,
    /// The HTTP status, or 0 when the connection failed.
    pub status: u16,
}

/// Sends `GET path` with `authorization: <token>` from `workers` connections until `stop`
/// is set or `limit` passes; at most `max_requests` in all.
pub async fn run(
    addr: SocketAddr,
    path: &str,
    token: &str,
    workers: usize,
    limit: Duration,
    max_requests: usize,
    stop: Arc<AtomicBool>,
) -> Vec<Sample> {
    let started = Instant::now();
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: {token}\r\nconnection: keep-alive\r\n\r\n"
    );
    let budget = Arc::new(std::sync::atomic::AtomicUsize::new(max_requests));
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (request, stop, budget) = (request.clone(), stop.clone(), budget.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut conn: Option<BufReader<TcpStream>> = None;
                while !stop.load(Ordering::Relaxed) && started.elapsed() < limit {
                    if budget
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_err()
                    {
                        break;
                    }
                    let at = started.elapsed();
                    let sent = Instant::now();
                    let status = match exchange(&mut conn, addr, &request).await {
                        Ok(status) => status,
                        Err(_) => {
                            conn = None;
                            0
                        }
                    };
                    samples.push(Sample {
                        at,
                        latency: sent.elapsed(),
                        status,
                    });
                    if status == 0 {
                        // The server is unreachable: do not spin.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                samples
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap_or_default());
    }
    all.sort_by_key(|s| s.at);
    all
}

/// One request on the kept-alive connection (opened if needed); the status code.
async fn exchange(
    conn: &mut Option<BufReader<TcpStream>>,
    addr: SocketAddr,
    request: &str,
) -> std::io::Result<u16> {
    if conn.is_none() {
        *conn = Some(BufReader::new(TcpStream::connect(addr).await?));
    }
    let Some(stream) = conn.as_mut() else {
        return Err(std::io::ErrorKind::NotConnected.into());
    };
    stream.get_mut().write_all(request.as_bytes()).await?;
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let mut length = 0usize;
    let mut close = false;
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let lower = header.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower == "connection: close" {
            close = true;
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await?;
    if close {
        *conn = None;
    }
    Ok(status)
}

/// Counts per status, sorted.
pub fn status_counts(samples: &[Sample]) -> Vec<(u16, usize)> {
    let mut counts = std::collections::BTreeMap::new();
    for s in samples {
        *counts.entry(s.status).or_insert(0) += 1;
    }
    counts.into_iter().collect()
}
