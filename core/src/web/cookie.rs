//! The session cookie a gate sets at login and clears at logout: its attributes and the
//! exact `Set-Cookie` values, decided once here for every adapter.

use std::fmt::Write as _;
use std::time::Duration;

use crate::error::Error;
use crate::token::Token;

/// The cookie that carries the token of a browser's session, enabled per gate with
/// [`Keygate::with_cookie`](crate::Keygate::with_cookie).
///
/// It is always `HttpOnly` (page scripts cannot read the token), `SameSite=Lax` (browsers
/// do not send it with cross-site subrequests and form posts) and `Path=/`; `Secure` is on
/// unless turned off for plain-HTTP development. Its `Max-Age` is the session's absolute
/// lifetime when the session has one; otherwise it is a session cookie, which the browser
/// drops when it closes (the idle TTL is enforced by the server, not by the cookie).
///
/// The attributes always come in this order:
///
/// ```text
/// <name>=<token>; Path=/; HttpOnly; SameSite=Lax[; Secure][; Max-Age=<seconds>]
/// <name>=; Path=/; HttpOnly; SameSite=Lax[; Secure]; Max-Age=0
/// ```
///
/// ```
/// use std::time::Duration;
/// use keygate::{SessionCookie, Token};
///
/// let token = Token::parse("dd9b7511874889f4192fbda3d8b0881c")?;
/// let cookie = SessionCookie::new();
/// assert_eq!(
///     cookie.set_value(&token, Some(Duration::from_secs(86_400))),
///     "token=dd9b7511874889f4192fbda3d8b0881c; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=86400"
/// );
/// let dev = SessionCookie::named("sid")?.with_secure(false);
/// assert_eq!(dev.clear_value(), "sid=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # In every adapter (browsers)
///
/// Opt in per gate with [`Keygate::with_cookie`](crate::Keygate::with_cookie): login
/// through the adapter's `Sessions` extractor then also sets the cookie `token=<token>;
/// Path=/; HttpOnly; SameSite=Lax; Secure` (with `Max-Age` when sessions have an absolute
/// lifetime), `logout()` and `logout_everywhere()` clear it, and the adapter's loading
/// component appends that `Set-Cookie` header to the handler's response (axum's
/// `KeygateLayer`, the actix-web and poem `KeygateMiddleware`, Rocket's `KeygateFairing` in
/// its `on_response`). Header and query tokens keep working.
///
/// An unsafe request (`POST`, `PUT`, `PATCH`, `DELETE`, ...) authenticated by the cookie
/// must carry an `Origin` (or `Referer`) on an allowed origin, by default the request's own
/// host ([`Keygate::with_allowed_origins`](crate::Keygate::with_allowed_origins) names
/// others, for an app behind a proxy that rewrites `Host`); otherwise the adapter's `Auth`
/// and `MaybeAuth` reject it with 403 before any Redis command (see [`AllowedOrigins`](crate::web::AllowedOrigins)).
///
/// ```
/// use keygate::{Keygate, MemoryStore, SessionConfig, SessionCookie, SessionManager};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct User { id: u64 }
/// let manager = SessionManager::<User>::new(MemoryStore::new(), SessionConfig::java_seed())?;
/// let gate = Keygate::new(manager)
///     .with_cookie(SessionCookie::new()) // `.with_secure(false)` for plain-HTTP development only
///     .with_allowed_origins(["https://app.example"])?; // only behind a proxy rewriting `Host`
/// // Give `gate` to the adapter's loading component.
/// # Ok::<(), keygate::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCookie {
    name: String,
    secure: bool,
}

/// The cookie's name unless configured otherwise (the contract's `token`).
pub const DEFAULT_COOKIE_NAME: &str = "token";

impl Default for SessionCookie {
    fn default() -> Self {
        Self {
            name: DEFAULT_COOKIE_NAME.to_owned(),
            secure: true,
        }
    }
}

impl SessionCookie {
    /// The cookie `token`, with `Secure`.
    pub fn new() -> Self {
        Self::default()
    }

    /// A cookie of another name, with `Secure`. The name must be an RFC 6265 cookie name
    /// (visible ASCII without separators such as `=`, `;`, `,`, spaces or quotes);
    /// otherwise [`Error::Config`].
    pub fn named(name: impl Into<String>) -> crate::error::Result<Self> {
        let name = name.into();
        if !is_cookie_name(&name) {
            return Err(Error::Config(format!(
                "{name:?} is not a valid cookie name"
            )));
        }
        Ok(Self {
            name,
            ..Self::default()
        })
    }

    /// Whether the cookie carries `Secure` (the browser sends it over HTTPS only). Turn it
    /// off only for an app reached over plain HTTP, such as a local demo.
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// Whether the name's prefix (`__Host-`, `__Secure-`) makes browsers refuse the cookie
    /// without `Secure`: such a cookie always carries it.
    fn prefix_requires_secure(&self) -> bool {
        self.name.starts_with("__Host-") || self.name.starts_with("__Secure-")
    }

    /// The cookie's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the cookie carries `Secure`: as configured, and always for a name with the
    /// `__Host-` or `__Secure-` prefix (browsers drop such a cookie without it).
    pub fn is_secure(&self) -> bool {
        self.secure || self.prefix_requires_secure()
    }

    /// The `Set-Cookie` value that hands `token` to the browser: with `Max-Age` in whole
    /// seconds (rounded down, so the cookie never outlives the session) when `max_age` is
    /// given, as a session cookie otherwise.
    pub fn set_value(&self, token: &Token, max_age: Option<Duration>) -> String {
        self.render(token.expose(), max_age.map(|age| age.as_secs()))
    }

    /// The `Set-Cookie` value that removes the cookie from the browser.
    pub fn clear_value(&self) -> String {
        self.render("", Some(0))
    }

    fn render(&self, value: &str, max_age_secs: Option<u64>) -> String {
        let mut header = format!("{}={value}; Path=/; HttpOnly; SameSite=Lax", self.name);
        if self.is_secure() {
            header.push_str("; Secure");
        }
        if let Some(secs) = max_age_secs {
            // Writing to a String cannot fail.
            let _ = write!(header, "; Max-Age={secs}");
        }
        header
    }
}

/// An RFC 6265 `cookie-name`: an RFC 7230 token (visible ASCII except separators).
fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

/// What a request's handler did to the session cookie, applied to its response by the
/// adapter.
#[derive(Clone)]
pub(crate) enum CookieChange {
    /// Hand this token to the browser.
    Set {
        token: Token,
        max_age: Option<Duration>,
    },
    /// Remove the cookie.
    Clear,
}

impl CookieChange {
    /// The `Set-Cookie` value of this change for `cookie`.
    pub(crate) fn render(&self, cookie: &SessionCookie) -> String {
        match self {
            CookieChange::Set { token, max_age } => cookie.set_value(token, *max_age),
            CookieChange::Clear => cookie.clear_value(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "dd9b7511874889f4192fbda3d8b0881c";

    fn token() -> Token {
        Token::parse(TOKEN).unwrap()
    }

    #[test]
    fn set_values_byte_for_byte() {
        let secure = SessionCookie::new();
        assert_eq!(
            secure.set_value(&token(), None),
            format!("token={TOKEN}; Path=/; HttpOnly; SameSite=Lax; Secure")
        );
        assert_eq!(
            secure.set_value(&token(), Some(Duration::from_millis(3_600_999))),
            format!("token={TOKEN}; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=3600")
        );
        let plain = SessionCookie::named("kg_token").unwrap().with_secure(false);
        assert_eq!(
            plain.set_value(&token(), None),
            format!("kg_token={TOKEN}; Path=/; HttpOnly; SameSite=Lax")
        );
        assert_eq!(
            plain.set_value(&token(), Some(Duration::from_secs(60))),
            format!("kg_token={TOKEN}; Path=/; HttpOnly; SameSite=Lax; Max-Age=60")
        );
    }

    #[test]
    fn clear_values_byte_for_byte() {
        assert_eq!(
            SessionCookie::new().clear_value(),
            "token=; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=0"
        );
        assert_eq!(
            SessionCookie::new().with_secure(false).clear_value(),
            "token=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
        );
        let change = CookieChange::Clear;
        assert_eq!(
            change.render(&SessionCookie::new()),
            SessionCookie::new().clear_value()
        );
    }

    #[test]
    fn names_must_be_cookie_names() {
        for bad in ["", "a b", "a=b", "a;b", "tok\u{e9}n", "a\"b", "a,b", "(a)"] {
            assert!(SessionCookie::named(bad).is_err(), "{bad:?}");
        }
        for good in ["token", "kg_token", "__Host-sid", "a.b!#$%&'*+^`|~"] {
            assert_eq!(
                SessionCookie::named(good).map(|c| c.name().to_owned()).ok(),
                Some(good.to_owned())
            );
        }
        assert!(SessionCookie::new().is_secure());
        assert_eq!(SessionCookie::new().name(), "token");
    }

    #[test]
    fn host_and_secure_prefixed_names_are_always_secure() {
        let token = Token::parse("dd9b7511874889f4192fbda3d8b0881c").unwrap();
        for name in ["__Host-token", "__Secure-token"] {
            let cookie = SessionCookie::named(name).unwrap().with_secure(false);
            assert!(cookie.is_secure());
            assert!(
                cookie.set_value(&token, None).ends_with("; Secure"),
                "{name}"
            );
        }
        assert!(!SessionCookie::new().with_secure(false).is_secure());
    }
}
