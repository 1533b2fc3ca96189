//! The session of the current request, as a handler holds it: its data, and what ends or
//! renews it (logout, logout everywhere, ending one device, rotation), keeping the session
//! cookie in step.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Keygate;
use crate::error::Result;
use crate::session::{
    Ended, Session, SessionId, SessionInfo, SessionManager, SessionUser, UpdateOutcome,
};
use crate::token::Token;

/// The session of the current request, with what a handler needs to end it. Cheap to
/// clone. Adapters wrap it in their `Auth<T>` extractor or guard.
pub struct CurrentSession<T> {
    pub(super) session: Arc<Session<T>>,
    pub(super) gate: Keygate<T>,
}

impl<T> Clone for CurrentSession<T> {
    fn clone(&self) -> Self {
        Self {
            session: Arc::clone(&self.session),
            gate: self.gate.clone(),
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for CurrentSession<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.session.fmt(f)
    }
}

impl<T> std::ops::Deref for CurrentSession<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.session.data()
    }
}

impl<T> CurrentSession<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// The loaded session (data and token).
    pub fn session(&self) -> &Session<T> {
        &self.session
    }

    /// The user's data.
    pub fn data(&self) -> &T {
        self.session.data()
    }

    /// The session manager, for what goes beyond this session's user (operator tools). Its
    /// methods take any user id: prefer the methods here in handlers.
    pub fn manager(&self) -> &SessionManager<T> {
        self.gate.manager()
    }

    /// Ends this session at once (logout). With a session cookie on the gate, the response
    /// clears it. With the event log on and a manager that knows its users
    /// ([`SessionManager::with_session_users`]), the session's index entry goes too and a
    /// `logout` event is recorded.
    pub async fn logout(&self) -> Result<bool> {
        let ended = self.gate.manager().logout_loaded(&self.session).await?;
        self.gate.clear_cookie();
        Ok(ended)
    }

    /// Ends every session of this session's user, this one included; returns how many were
    /// live. The user is the one the session data names ([`SessionUser`]), so a handler can
    /// only end its own user's sessions. With a session cookie on the gate, the response
    /// clears it.
    pub async fn logout_everywhere(&self) -> Result<u64>
    where
        T: SessionUser,
    {
        let ended = self
            .gate
            .manager()
            .logout_everywhere(&self.data().user_id())
            .await?;
        self.gate.clear_cookie();
        Ok(ended)
    }

    /// The live sessions of this session's user, oldest first, this one marked `current`.
    pub async fn sessions(&self) -> Result<Vec<SessionInfo>>
    where
        T: SessionUser,
    {
        self.gate
            .manager()
            .sessions(&self.data().user_id(), Some(self.session.token()))
            .await
    }

    /// Ends one session of this session's user, named by its public id (for "log out that
    /// device"); `false` when the user has no live session with that id, which includes
    /// every session of another user. Ending this very session clears the cookie, as
    /// [`logout`](Self::logout) does.
    pub async fn end_session(&self, id: &SessionId) -> Result<bool>
    where
        T: SessionUser,
    {
        let manager = self.gate.manager();
        let ended = manager.end_session(&self.data().user_id(), id).await?;
        if ended && manager.session_id(self.session.token()) == *id {
            self.gate.clear_cookie();
        }
        Ok(ended)
    }

    /// Gives this session a new token and ends the old one atomically (see
    /// [`SessionManager::rotate`]); with a session cookie, the response carries the new
    /// token. Renew the token this way when the session's privileges change. `None` when
    /// the session ended meanwhile. This handle keeps naming the old token, which no longer
    /// works: act on the new one through the manager.
    pub async fn rotate(&self) -> Result<Option<Token>>
    where
        T: SessionUser,
    {
        let Some(rotated) = self.gate.manager().rotate(&self.session).await? else {
            return Ok(None);
        };
        self.gate
            .set_cookie_for(&rotated.token, rotated.lifetime_left);
        Ok(Some(rotated.token))
    }

    /// A future that completes when this session ends, anywhere, with the
    /// [`EndReason`](crate::session::EndReason) (see [`SessionManager::ended`]): `'static`
    /// and `Send`, so a WebSocket or Server-Sent-Events handler keeps it beyond the request
    /// and closes its stream with the session. Watching does not keep the session alive.
    ///
    /// ```no_run
    /// # async fn events(auth: keygate::CurrentSession<String>,
    /// #     mut updates: tokio::sync::broadcast::Receiver<String>) {
    /// let ended = auth.ended();
    /// tokio::pin!(ended);
    /// loop {
    ///     tokio::select! {
    ///         reason = &mut ended => {
    ///             println!("event: ended\ndata: {reason}\n");
    ///             return;
    ///         }
    ///         Ok(update) = updates.recv() => println!("data: {update}\n"),
    ///     }
    /// }
    /// # }
    /// ```
    pub fn ended(&self) -> Ended {
        self.gate.manager().ended(self.session.token())
    }

    /// Writes new data over this session (see [`SessionManager::update`]).
    pub async fn update(&self, data: &T) -> Result<UpdateOutcome> {
        self.gate.manager().update(&self.session, data).await
    }
}
