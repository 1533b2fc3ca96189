//! Redis key names, built only from validated parts.

use std::fmt;

use super::config::SessionConfig;
use crate::error::Error;
use crate::session::store::SessionKeyRef;
use crate::token::Token;

/// A user's id as it appears in the per-user index key.
///
/// Ids are 1..=128 printable ASCII characters other than space and `*?[]{}\`, so that a
/// user id can never act as a glob pattern, a hash tag or a separator in a key name.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UserId(String);

impl UserId {
    /// Validates a user id.
    pub fn new(id: impl Into<String>) -> Result<Self, Error> {
        let id = id.into();
        let ok = (1..=128).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"*?[]{}\\".contains(&b));
        if ok {
            Ok(Self(id))
        } else {
            Err(Error::InvalidUserId)
        }
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({:?})", self.0)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! user_id_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for UserId {
            fn from(n: $t) -> Self {
                Self(n.to_string())
            }
        }
    )*};
}
user_id_from_int!(u32, u64, i32, i64, usize);

impl TryFrom<&str> for UserId {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self, Error> {
        Self::new(s)
    }
}

impl TryFrom<String> for UserId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        Self::new(s)
    }
}

/// The keys of one session.
#[derive(Clone)]
pub(crate) struct SessionKeys {
    /// `<prefix><id>`, where the id is the token, or its SHA-256 in hashed-key mode.
    pub session: String,
    /// Where the id starts in `session`: one allocation per load, not two.
    prefix_len: usize,
    /// The companion key (absolute deadline, own idle TTL), in the session key's hash slot;
    /// every session has one when the configuration names it (see
    /// [`SessionKeyRef::deadline`]).
    pub deadline: Option<String>,
    /// Whether sessions may have their own idle TTL (see [`SessionKeyRef::own_idle`]).
    pub own_idle: bool,
}

impl SessionKeys {
    pub fn for_token(config: &SessionConfig, token: &Token) -> Self {
        if config.hashed_keys() {
            Self::for_id(config, &token.sha256_hex())
        } else {
            Self::for_id(config, token.expose())
        }
    }

    /// Keys for an index member (a key id read back from the index).
    pub fn for_id(config: &SessionConfig, id: &str) -> Self {
        // On the request path: one exact-size allocation, not `format!` (measured in the
        // benchmarks: about 1,300 instructions per request less).
        let mut session = String::with_capacity(config.prefix().len() + id.len());
        session.push_str(config.prefix());
        session.push_str(id);
        // `<deadline prefix>{<session key>}` hashes exactly like the session key (neither
        // the prefix nor the id may contain braces), so a script may touch both on a cluster.
        let deadline = config
            .has_companion_key()
            .then(|| format!("{}{{{}}}", config.deadline_prefix(), session));
        Self {
            session,
            prefix_len: config.prefix().len(),
            deadline,
            own_idle: config.login_limits().is_some(),
        }
    }

    /// The keys as the store sees them.
    /// What follows the prefix: the token, or its SHA-256 in hashed-key mode. Also the
    /// member of the per-user index.
    pub fn id(&self) -> &str {
        &self.session[self.prefix_len..]
    }

    pub fn key_ref(&self) -> SessionKeyRef<'_> {
        SessionKeyRef {
            session: &self.session,
            deadline: self.deadline.as_deref(),
            own_idle: self.own_idle,
        }
    }
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKeys(<redacted>)")
    }
}

/// The per-user index key.
pub(crate) fn index_key(config: &SessionConfig, user: &UserId) -> String {
    format!("{}{}", config.index_prefix(), user.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Layout;
    use std::time::Duration;

    #[test]
    fn user_ids_reject_key_syntax() {
        for bad in ["", "a b", "a*", "a?", "[a]", "{a}", "a\\b", "é", "a\nb"] {
            assert!(UserId::new(bad).is_err(), "{bad:?}");
        }
        assert!(UserId::new("x".repeat(129)).is_err());
        for good in ["598", "alice@example.com", "a:b", "user_1-2.3"] {
            assert_eq!(UserId::new(good).unwrap().as_str(), good);
        }
        assert_eq!(UserId::from(598u64).as_str(), "598");
    }

    #[test]
    fn deadline_key_shares_the_session_keys_hash_tag() {
        let config = SessionConfig::new("myapp_", Layout::Json)
            .with_absolute_lifetime(Duration::from_secs(60));
        let token = Token::parse("dd9b7511874889f4192fbda3d8b0881c").unwrap();
        let keys = SessionKeys::for_token(&config, &token);
        assert_eq!(keys.session, "myapp_dd9b7511874889f4192fbda3d8b0881c");
        assert_eq!(
            keys.deadline.as_deref(),
            Some("keygate:deadline:{myapp_dd9b7511874889f4192fbda3d8b0881c}")
        );
    }

    #[test]
    fn hashed_mode_never_puts_the_token_in_the_key() {
        let config = SessionConfig::java_seed().with_hashed_keys(true);
        let token = Token::parse("dd9b7511874889f4192fbda3d8b0881c").unwrap();
        let keys = SessionKeys::for_token(&config, &token);
        assert!(!keys.session.contains(token.expose()));
        assert_eq!(keys.session, format!("login:token:{}", token.sha256_hex()));
    }
}
