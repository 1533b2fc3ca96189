//! What every adapter does per request, once: read the token, load-and-touch the session.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::http::Rejection;
use crate::transport::{RequestParts, TokenReader};
use crate::{Session, SessionInfo, SessionManager, SessionUser};

/// The session manager together with the token reader: what an adapter's layer,
/// middleware, fairing or endpoint wrapper is configured with. Cheap to clone.
///
/// ```
/// use keygate::{Keygate, MemoryStore, SessionConfig, SessionManager, TokenReader, TokenSource};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct User { id: u64 }
/// let manager = SessionManager::<User>::new(MemoryStore::new(), SessionConfig::java_seed())?;
/// let gate = Keygate::new(manager)
///     .with_reader(TokenReader::default().with_source(TokenSource::Cookie("token".into())));
/// # Ok::<(), keygate::Error>(())
/// ```
pub struct Keygate<T> {
    manager: SessionManager<T>,
    reader: Arc<TokenReader>,
}

impl<T> Clone for Keygate<T> {
    fn clone(&self) -> Self {
        Self {
            manager: self.manager.clone(),
            reader: Arc::clone(&self.reader),
        }
    }
}

impl<T> std::fmt::Debug for Keygate<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keygate")
            .field("manager", &self.manager)
            .field("reader", &self.reader)
            .finish()
    }
}

/// What loading the session of a request gave: the session, or why there is none.
pub type Resolved<T> = Result<CurrentSession<T>, Rejection>;

/// The session of the current request, with what a handler needs to end it. Cheap to
/// clone. Adapters wrap it in their `Auth<T>` extractor or guard.
pub struct CurrentSession<T> {
    session: Arc<Session<T>>,
    gate: Keygate<T>,
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

    /// Ends this session at once (logout).
    pub async fn logout(&self) -> crate::Result<bool> {
        self.gate.manager().logout(self.session.token()).await
    }

    /// Ends every session of this session's user, this one included; returns how many were
    /// live. The user is the one the session data names ([`SessionUser`]), so a handler can
    /// only end its own user's sessions.
    pub async fn logout_everywhere(&self) -> crate::Result<u64>
    where
        T: SessionUser,
    {
        self.gate
            .manager()
            .logout_everywhere(&self.data().user_id())
            .await
    }

    /// The live sessions of this session's user, oldest first, this one marked `current`.
    pub async fn sessions(&self) -> crate::Result<Vec<SessionInfo>>
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
    /// every session of another user.
    pub async fn end_session(&self, id: &crate::SessionId) -> crate::Result<bool>
    where
        T: SessionUser,
    {
        self.gate
            .manager()
            .end_session(&self.data().user_id(), id)
            .await
    }

    /// Writes new data over this session (see [`SessionManager::update`]).
    pub async fn update(&self, data: &T) -> crate::Result<crate::UpdateOutcome> {
        self.gate.manager().update(&self.session, data).await
    }
}

impl<T> Keygate<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// A gate with the default token reader (`authorization` header raw or `Bearer`, then
    /// the `tokenid` query parameter).
    pub fn new(manager: SessionManager<T>) -> Self {
        Self {
            manager,
            reader: Arc::new(TokenReader::default()),
        }
    }

    /// Replaces the token reader.
    pub fn with_reader(mut self, reader: TokenReader) -> Self {
        self.reader = Arc::new(reader);
        self
    }

    /// The session manager (for login, logout, listing).
    pub fn manager(&self) -> &SessionManager<T> {
        &self.manager
    }

    /// The token reader.
    pub fn reader(&self) -> &TokenReader {
        &self.reader
    }

    /// Logs the user that `data` names in: creates a session holding `data` (registered in
    /// that user's index) and returns the token to hand to the client.
    pub async fn login(&self, data: &T) -> crate::Result<crate::Token>
    where
        T: SessionUser,
    {
        self.manager.login(&data.user_id(), data).await
    }

    /// Reads the token and loads-and-touches its session: one Redis round trip for a
    /// well-formed token, none for a missing or malformed one.
    pub async fn resolve(&self, request: &impl RequestParts) -> Resolved<T> {
        let formats = self.manager.config().token_formats();
        let token = match self.reader.read_as(request, formats) {
            Ok(Some(token)) => token,
            Ok(None) => return Err(Rejection::MissingToken),
            Err(_) => return Err(Rejection::MalformedToken),
        };
        match self.manager.load(&token).await {
            Ok(Some(session)) => Ok(CurrentSession {
                session: Arc::new(session),
                gate: self.clone(),
            }),
            Ok(None) => Err(Rejection::NoSession),
            Err(error) => {
                crate::adapter::report_error(&error);
                Err(Rejection::BackendUnavailable)
            }
        }
    }
}

/// How an optional-session extractor reads a [`Resolved`]: no session is `None`, but
/// backend trouble stays an error (503), so a route never silently treats a logged-in user
/// as anonymous because Redis is down.
pub fn optional<T>(resolved: &Resolved<T>) -> Result<Option<CurrentSession<T>>, Rejection> {
    match resolved {
        Ok(session) => Ok(Some(session.clone())),
        Err(Rejection::BackendUnavailable) => Err(Rejection::BackendUnavailable),
        Err(_) => Ok(None),
    }
}
