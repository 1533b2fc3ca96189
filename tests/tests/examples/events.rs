//! docs/http-api.md § Routes of every example: `GET /user/events` streams the user's
//! session events as Server-Sent Events, closes with `event: ended` when its session ends
//! anywhere, and does not keep its session alive.

use std::time::Duration;

use keygate_tests::fixtures::pttl;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::launcher::Example;
use crate::login::login_from;

/// An open `GET /user/events`: the raw bytes read so far.
struct EventStream {
    socket: TcpStream,
    seen: String,
}

impl EventStream {
    async fn open(example: &Example, token: &str) -> Self {
        let mut socket = TcpStream::connect(example.http.addr()).await.unwrap();
        let request = format!(
            "GET /user/events HTTP/1.1\r\nhost: localhost\r\nauthorization: {token}\r\n\
             accept: text/event-stream\r\nconnection: close\r\n\r\n"
        );
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut stream = Self {
            socket,
            seen: String::new(),
        };
        stream.until("\r\n\r\n").await;
        let head = stream.seen.to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("content-type: text/event-stream"), "{head}");
        stream
    }

    /// Reads until `needle` has arrived (within 5 s); panics on end of stream before it.
    async fn until(&mut self, needle: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 4096];
        while !self.seen.contains(needle) {
            let read = tokio::time::timeout_at(deadline, self.socket.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("{needle:?} within 5 s; got {:?}", self.seen))
                .unwrap();
            assert!(read > 0, "{needle:?} before the end; got {:?}", self.seen);
            self.seen.push_str(&String::from_utf8_lossy(&buf[..read]));
        }
    }

    /// Reads until the server closes the connection (within `within`).
    async fn closed(&mut self, within: Duration) {
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let read = tokio::time::timeout_at(deadline, self.socket.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("closed within {within:?}; got {:?}", self.seen))
                .unwrap_or(0);
            if read == 0 {
                return;
            }
            self.seen.push_str(&String::from_utf8_lossy(&buf[..read]));
        }
    }
}

/// The stream shows another device's login as it happens, never a token, without keeping
/// its own session alive; "log out everywhere" from another device shows as `logout-all`
/// events and closes the stream with `event: ended` within a second.
pub async fn the_event_stream_follows_the_session(example: &'static str) {
    let app = Example::start(example).await;
    let (http, redis) = (&app.http, &app.redis);
    let phone = "13800000123";
    let a = login_from(http, redis, phone, "Browser A").await;
    let b = login_from(http, redis, phone, "Browser B").await;
    // No token: the envelope's 401.
    http.get("/user/events").send().await.envelope(401);

    let mut stream = EventStream::open(&app, &a).await;
    let key = format!("login:token:{a}");
    let before = pttl(redis, &key);
    let c = login_from(http, redis, phone, "Browser C").await;
    stream.until("event: login\n").await;
    stream.until("\"device\":\"Browser C\"").await;
    assert!(
        pttl(redis, &key) <= before,
        "the open stream does not refresh its session's TTL"
    );

    let own = http
        .get("/user/sessions")
        .token(&a)
        .send()
        .await
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .unwrap();
    let ended = http.post("/user/logout-all").token(&b).send().await.data();
    assert_eq!(ended, 3);
    let at = tokio::time::Instant::now();
    stream
        .until("event: ended\ndata: {\"reason\":\"logged-out-everywhere\"}\n\n")
        .await;
    stream.closed(Duration::from_secs(1)).await;
    assert!(at.elapsed() < Duration::from_secs(2));
    // The other sessions' ends may come before its own, which closes the stream.
    let own_end = format!("event: logout-all\ndata: {{\"sessionId\":\"{own}\"");
    let own_at = stream.seen.find(&own_end).expect("its own session's end");
    assert!(own_at < stream.seen.find("event: ended").unwrap());
    for token in [&a, &b, &c] {
        assert!(
            !stream.seen.contains(token.as_str()),
            "no token in the stream"
        );
    }
}

/// A session deleted by another program (no log event, no end mark) still closes its
/// stream: `event: ended` with the reason `deleted`, within a second.
pub async fn the_event_stream_ends_when_another_program_deletes_the_session(example: &'static str) {
    let app = Example::start(example).await;
    let token = login_from(&app.http, &app.redis, "13800000125", "Browser").await;
    let mut stream = EventStream::open(&app, &token).await;
    // The stream's watch is armed once Redis tracks the session key and its end mark
    // for the watcher (before that, a deletion is seen at arming, and why is unknown).
    let tracked = keygate_tests::eventually(Duration::from_secs(5), async || {
        let info: String = app.redis.query(redis::cmd("INFO").arg("stats"));
        info.lines()
            .find_map(|line| line.strip_prefix("tracking_total_keys:"))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .is_some_and(|n| n >= 2)
    })
    .await;
    assert!(tracked, "the stream's session is watched");
    let _: () = app
        .redis
        .query(redis::cmd("DEL").arg(format!("login:token:{token}")));
    let at = tokio::time::Instant::now();
    stream
        .until("event: ended\ndata: {\"reason\":\"deleted\"}\n\n")
        .await;
    stream.closed(Duration::from_secs(1)).await;
    assert!(at.elapsed() < Duration::from_secs(2), "{:?}", at.elapsed());
}

/// The server's graceful shutdown does not wait for open event streams: on `SIGINT` the
/// stream closes and the process exits at once.
pub async fn shutdown_does_not_wait_for_open_streams(example: &'static str) {
    let mut app = Example::start(example).await;
    let token = login_from(&app.http, &app.redis, "13800000124", "Browser").await;
    let mut stream = EventStream::open(&app, &token).await;
    let pid = app.process.pid().to_string();
    let signalled = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(signalled.success());
    let at = tokio::time::Instant::now();
    stream.closed(Duration::from_secs(2)).await;
    let closed_after = at.elapsed();
    assert!(
        closed_after < Duration::from_secs(1),
        "closed {closed_after:?} after the signal"
    );
    // A shutdown that waited for the stream would never end (axum, poem) or take the
    // framework's grace period (30 s for actix-web).
    let status = app.process.exit_status().await;
    assert!(status.success(), "{status:?}");
    assert!(!stream.seen.contains("event: ended"), "closed, not ended");
}
