//! The per-request side of a gate: what one request's handler may do to the session
//! cookie (set it at login, clear it at logout, never for a foreign origin's request), and
//! the `User-Agent` a login records as the device.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::Keygate;
use crate::session::{DEVICE_LABEL_MAX_CHARS, LoginOptions};
use crate::token::Token;
use crate::web::cookie::{CookieChange, SessionCookie};
use crate::web::transport::RequestParts;

/// What one request's handler may do to the session cookie, and what its login records.
pub(super) struct RequestContext {
    /// Held only to swap the value, never across an await.
    pending: Mutex<Option<CookieChange>>,
    /// The request's `User-Agent`, cut to a device label's length.
    pub(super) user_agent: Option<String>,
    /// Whether the request names another origin: then its response never sets or clears
    /// the cookie (a cross-site login must not plant a session in the victim's browser, a
    /// cross-site logout by query token must not drop the victim's cookie).
    foreign: bool,
}

impl RequestContext {
    fn pending(&self) -> MutexGuard<'_, Option<CookieChange>> {
        // A panic elsewhere while holding the lock left a plain value behind; use it.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<T> Keygate<T> {
    /// The gate to use for one request: with a session cookie configured, it carries the
    /// request's pending cookie change and its `User-Agent` (the device label of a login);
    /// without one it is a plain clone, and costs no allocation.
    pub fn for_request(&self, request: &impl RequestParts) -> Self {
        if self.settings.cookie.is_none() {
            return self.clone();
        }
        let user_agent = request.header("user-agent").map(|ua| {
            String::from_utf8_lossy(ua)
                .chars()
                .take(DEVICE_LABEL_MAX_CHARS)
                .collect()
        });
        Self {
            request: Some(Arc::new(RequestContext {
                pending: Mutex::new(None),
                user_agent,
                foreign: self
                    .settings
                    .origins
                    .names_foreign(request, self.serves_https()),
            })),
            ..self.clone()
        }
    }

    /// Makes this request's response set the session cookie to `token` (with `Max-Age`
    /// when `max_age` is given): for whatever issues a new token to the request's client.
    /// Does nothing without a session cookie, or on a gate that is not a request's
    /// ([`for_request`](Self::for_request)).
    pub fn set_cookie_for(&self, token: &Token, max_age: Option<Duration>) {
        self.change_cookie(CookieChange::Set {
            token: token.clone(),
            max_age,
        });
    }

    /// Makes this request's response clear the session cookie. Does nothing without a
    /// session cookie, or on a gate that is not a request's.
    pub fn clear_cookie(&self) {
        self.change_cookie(CookieChange::Clear);
    }

    /// `options` with the request's `User-Agent` as the device, unless they name one.
    pub(super) fn with_request_device(&self, options: LoginOptions) -> LoginOptions {
        let user_agent = self.request.as_ref().and_then(|r| r.user_agent.as_deref());
        match user_agent {
            Some(ua) if options.device().is_none() => options.with_device(ua),
            _ => options,
        }
    }

    fn change_cookie(&self, change: CookieChange) {
        if let Some(request) = self.request.as_ref().filter(|r| !r.foreign) {
            *request.pending() = Some(change);
        }
    }

    /// Whether the app is served over HTTPS, as far as the gate knows: its session cookie
    /// is `Secure`.
    pub(super) fn serves_https(&self) -> bool {
        self.settings
            .cookie
            .as_ref()
            .is_some_and(SessionCookie::is_secure)
    }

    /// The `Set-Cookie` value the response of this request must carry, if its handler
    /// logged in or out: what an adapter appends after the handler. Taken once.
    pub fn take_set_cookie(&self) -> Option<String> {
        let change = self.request.as_ref()?.pending().take()?;
        Some(change.render(self.settings.cookie.as_ref()?))
    }
}
