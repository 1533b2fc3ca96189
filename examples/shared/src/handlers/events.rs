//! `GET /user/events`: the user's session events as Server-Sent Events, closed with
//! `event: ended` when the session that opened the stream ends.
//!
//! The stream is not a request: after the one load that authenticated it, it never touches
//! its session, so an open stream does not keep the session alive. It waits on the event
//! log's follower (a connection of its own) and on the session's `ended()` watch, and
//! closes when the server shuts down, so a graceful shutdown does not wait for it.

use std::pin::Pin;
use std::time::Duration;

use futures_util::Stream;
use keygate::session::{EndReason, Ended, EventFollower, SessionEvent, SessionEventKind};
use keygate::{CurrentSession, SessionId, SessionUser};
use serde::Serialize;
use tokio::sync::watch;

use crate::user::UserDto;
use crate::{App, Reply};

/// The content type of the stream.
pub const EVENT_STREAM: &str = "text/event-stream";

/// A comment line sent this often keeps proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How long a stream whose session ended waits for that end's own event from the log
/// (written by the same call, right after): the contract sends it before `event: ended`.
const OWN_END_EVENT_WAIT: Duration = Duration::from_millis(300);

/// After a failed read of the log, wait this long before the next.
const RETRY_AFTER_ERROR: Duration = Duration::from_millis(500);

/// The body of `GET /user/events`: one chunk of SSE text at a time, ending after
/// `event: ended` (or at shutdown).
pub type EventStream = Pin<Box<dyn Stream<Item = String> + Send>>;

/// An event's `data:` as the contract gives it: never a token.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventData<'a> {
    session_id: &'a SessionId,
    device: &'a str,
    /// Unix seconds.
    at: i64,
}

/// The SSE event name of a kind: the contract's six (an eviction by the per-user cap and
/// an operator's end are endings of one session).
fn event_name(kind: SessionEventKind) -> &'static str {
    match kind {
        SessionEventKind::Login => "login",
        SessionEventKind::Logout => "logout",
        SessionEventKind::LogoutAll => "logout-all",
        SessionEventKind::Rotated => "rotated",
        SessionEventKind::Expired => "expired",
        _ => "session-ended",
    }
}

/// One SSE event: `event:` and one `data:` line of JSON.
fn frame(name: &str, data: &str) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

fn event_frame(event: &SessionEvent) -> String {
    let data = EventData {
        session_id: &event.session,
        device: event.device.as_deref().unwrap_or_default(),
        at: event.at_ms.div_euclid(1000),
    };
    frame(
        event_name(event.kind),
        &serde_json::to_string(&data).unwrap_or_default(),
    )
}

fn ended_frame(reason: &str) -> String {
    let data = serde_json::json!({ "reason": reason });
    frame("ended", &data.to_string())
}

/// What the stream's loop holds.
struct State {
    follower: EventFollower,
    /// Completes with the reason when this session ends anywhere (its logout, another
    /// device, log out everywhere, rotation, the cap, an operator, expiry, deletion by
    /// another program); the stream then sends `event: ended` and closes.
    ended: Ended,
    /// This stream's session.
    own: SessionId,
    /// Set once `ended` completed: the reason, and until when the end's own event may
    /// still come from the log.
    ending: Option<(EndReason, tokio::time::Instant)>,
    /// Flips to `true` when the server shuts down.
    shutdown: watch::Receiver<bool>,
    keep_alive: tokio::time::Interval,
    closed: bool,
}

impl State {
    /// The next chunk of the body, or `None` when the stream is over.
    async fn next(&mut self) -> Option<String> {
        if self.closed {
            return None;
        }
        if let Some((reason, until)) = self.ending {
            return Some(self.finish(reason, until).await);
        }
        loop {
            let shutdown = &mut self.shutdown;
            let shut_down = async move {
                // The guard `wait_for` returns is not `Send`: drop it here.
                let _ = shutdown.wait_for(|down| *down).await.is_ok();
            };
            tokio::select! {
                biased;
                reason = &mut self.ended => {
                    let until = tokio::time::Instant::now() + OWN_END_EVENT_WAIT;
                    self.ending = Some((reason, until));
                    return Some(self.finish(reason, until).await);
                }
                () = shut_down => return None,
                event = self.follower.next() => match event {
                    Ok(event) => return Some(event_frame(&event)),
                    Err(error) => {
                        tracing::warn!(%error, "session events unavailable; retrying");
                        tokio::time::sleep(RETRY_AFTER_ERROR).await;
                    }
                },
                _ = self.keep_alive.tick() => return Some(": keep-alive\n\n".to_owned()),
            }
        }
    }
}

impl State {
    /// After the session ended: its own ending event if the log brings it in time (then
    /// `event: ended` on the next call), else `event: ended` now.
    async fn finish(&mut self, reason: EndReason, until: tokio::time::Instant) -> String {
        tokio::select! {
            event = self.follower.next() => {
                if let Ok(event) = event {
                    if event.session == self.own && event.kind.ends_session() {
                        // The next call sends `event: ended` at once.
                        self.ending = Some((reason, tokio::time::Instant::now()));
                    }
                    return event_frame(&event);
                }
            }
            () = tokio::time::sleep_until(until) => {}
        }
        self.closed = true;
        ended_frame(reason.as_str())
    }
}

impl App {
    /// `GET /user/events`: the user's session events as they happen, as Server-Sent
    /// Events, until this session ends anywhere (`event: ended`) or the server shuts down.
    /// `Err` with 503 when the log cannot be followed now.
    pub async fn session_events(
        &self,
        session: &CurrentSession<UserDto>,
    ) -> Result<EventStream, Reply> {
        let manager = session.manager();
        // Watched before the log is followed: an end between the two is not missed.
        let ended = session.ended();
        let own = manager.session_id(session.session().token());
        let follower = match manager.follow_events(Some(&session.data().user_id())).await {
            Ok(follower) => follower,
            Err(e) => return Err(Reply::core(&e)),
        };
        let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
        keep_alive.reset();
        let state = State {
            follower,
            ended,
            own,
            ending: None,
            shutdown: self.shutdown.subscribe(),
            keep_alive,
            closed: false,
        };
        Ok(Box::pin(futures_util::stream::unfold(
            state,
            |mut state| async move { state.next().await.map(|chunk| (chunk, state)) },
        )))
    }

    /// The headers a stream's response carries besides its content type
    /// ([`EVENT_STREAM`]): no caching, no buffering by a proxy.
    pub const EVENT_STREAM_HEADERS: [(&'static str, &'static str); 2] =
        [("cache-control", "no-cache"), ("x-accel-buffering", "no")];

    /// Ends every open event stream (the server is shutting down), so that a graceful
    /// shutdown does not wait for them.
    pub fn close_event_streams(&self) {
        self.shutdown.send_replace(true);
    }
}

/// The stream as a framework's body wants it: chunks of any type made from text, each
/// `Ok` (the stream itself never fails: it ends).
pub fn body_chunks<B, E>(stream: EventStream) -> impl Stream<Item = Result<B, E>> + Send + 'static
where
    B: From<String> + Send + 'static,
    E: Send + 'static,
{
    use futures_util::StreamExt;
    stream.map(|chunk| Ok(B::from(chunk)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_one_event_each() {
        assert_eq!(
            ended_frame("logged-out-everywhere"),
            "event: ended\ndata: {\"reason\":\"logged-out-everywhere\"}\n\n"
        );
        assert_eq!(event_name(SessionEventKind::Evicted), "session-ended");
        assert_eq!(event_name(SessionEventKind::OperatorEnded), "session-ended");
        assert_eq!(event_name(SessionEventKind::LogoutAll), "logout-all");
    }
}
