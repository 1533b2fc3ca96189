//! The fairing: puts the gate into managed state and installs the envelope catchers.

use keygate::Keygate;
use keygate::serde::Serialize;
use keygate::serde::de::DeserializeOwned;
use rocket::fairing::{self, Fairing, Info, Kind};
use rocket::{Build, Request, Response, Rocket};

/// Installs keygate on a rocket: manages the [`Keygate<T>`] that the guards
/// [`Auth`](crate::Auth), [`MaybeAuth`](crate::MaybeAuth) and
/// [`Sessions`](crate::Sessions) use, and registers the [`catchers`](crate::catchers) that
/// answer their failures (401, 403, 503, 500) with the JSON envelope.
///
/// Rocket fairings cannot answer requests, so the session is loaded by the first keygate
/// guard of a request (once, cached for the request), not by the fairing. With a session
/// cookie on the gate ([`Keygate::with_cookie`]), the fairing's `on_response` adds the
/// `Set-Cookie` header that the handler's login or logout asked for.
///
/// At ignite, catchers are registered at `/` only for the codes that have no catcher there
/// yet, so a catcher of your own for one of them wins (see [`rejection`](crate::rejection)
/// to answer keygate's message from it). Managing a second `Keygate<T>` for the same `T`
/// fails ignite.
///
/// ```
/// use keygate_rocket::{Keygate, KeygateFairing, MemoryStore, SessionConfig, SessionManager};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct User { id: u64 }
/// # impl keygate_rocket::SessionUser for User { fn user_id(&self) -> keygate_rocket::UserId { keygate_rocket::UserId::from(self.id) } }
///
/// let manager = SessionManager::<User>::new(MemoryStore::new(), SessionConfig::java_seed())?;
/// let rocket = rocket::build().attach(KeygateFairing::new(Keygate::new(manager)));
/// # Ok::<(), keygate_rocket::keygate::Error>(())
/// ```
pub struct KeygateFairing<T> {
    gate: Keygate<T>,
    catchers: bool,
}

impl<T> KeygateFairing<T> {
    /// A fairing installing `gate`, with the envelope catchers.
    pub fn new(gate: Keygate<T>) -> Self {
        Self {
            gate,
            catchers: true,
        }
    }

    /// Does not register the catchers (register [`catchers`](crate::catchers) yourself,
    /// under another base, or write your own with [`rejection`](crate::rejection)).
    pub fn without_catchers(mut self) -> Self {
        self.catchers = false;
        self
    }
}

impl<T> std::fmt::Debug for KeygateFairing<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeygateFairing")
            .field("gate", &self.gate)
            .field("catchers", &self.catchers)
            .finish()
    }
}

#[rocket::async_trait]
impl<T> Fairing for KeygateFairing<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    fn info(&self) -> Info {
        Info {
            name: "keygate",
            kind: Kind::Ignite | Kind::Response,
        }
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        if self.gate.cookie().is_none() {
            return;
        }
        if let Some(value) = crate::guard::take_set_cookie::<T>(request) {
            response.adjoin_raw_header("Set-Cookie", value);
        }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> fairing::Result {
        if rocket.state::<Keygate<T>>().is_some() {
            tracing::error!(
                user_type = std::any::type_name::<T>(),
                "keygate-rocket: a Keygate for this user type is already managed; \
                 attach one KeygateFairing per user type"
            );
            return Err(rocket);
        }
        let rocket = rocket.manage(self.gate.clone());
        if !self.catchers {
            return Ok(rocket);
        }
        let missing: Vec<_> = crate::catchers()
            .into_iter()
            .filter(|ours| {
                !rocket
                    .catchers()
                    .any(|theirs| theirs.base == "/" && theirs.code == ours.code)
            })
            .collect();
        Ok(rocket.register("/", missing))
    }
}
