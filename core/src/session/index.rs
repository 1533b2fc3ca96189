//! Entries of the per-user session index and the public session ids derived from them.
//!
//! An index member is `<key id>` or `<key id> <device label>`: the key id (what follows the
//! session prefix: the token, or its SHA-256 in hashed-key mode) never contains a space, so
//! the first space separates it from the label. Members written before labels existed are
//! plain key ids and still parse.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::token::to_hex;

/// Separates the key id from the device label in an index member.
const SEPARATOR: char = ' ';

/// Domain separation: a session id is a hash of the key id made for this purpose only, so
/// it matches no other hash of the token that keygate or the application may compute.
const ID_CONTEXT: &[u8] = b"keygate session id v1\0";

/// A session's public id: names one session of a user (to list it and end it, e.g. "log
/// out that device") without being its token. It is 128 bits of a SHA-256 over the session's
/// key id, so it is stable for the session's life, and neither the token nor the key can be
/// computed from it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// The id of the session stored under `key_id`.
    pub(crate) fn for_key_id(key_id: &str) -> Self {
        let digest = Sha256::new()
            .chain_update(ID_CONTEXT)
            .chain_update(key_id.as_bytes())
            .finalize();
        Self(to_hex(&digest[..16]))
    }

    /// Parses an id received from a client: 32 lowercase hex digits. Anything else names no
    /// session.
    pub fn parse(text: &str) -> Option<Self> {
        let ok = text.len() == 32
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| Self(text.to_owned()))
    }

    /// The id's text (32 lowercase hex digits).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.0)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// One member of a user's session index, with its score.
#[derive(Clone)]
pub(crate) struct IndexEntry {
    /// The member as stored (what `ZREM` needs).
    pub member: String,
    /// Creation time, unix microseconds.
    pub created_us: i64,
}

impl IndexEntry {
    /// The member for a new session.
    pub fn member_for(key_id: &str, device: Option<&str>) -> String {
        match device {
            Some(device) => format!("{key_id}{SEPARATOR}{device}"),
            None => key_id.to_owned(),
        }
    }

    /// The session's key id.
    pub fn key_id(&self) -> &str {
        self.member
            .split_once(SEPARATOR)
            .map_or(self.member.as_str(), |(id, _)| id)
    }

    /// The device label given at login, if any.
    pub fn device(&self) -> Option<&str> {
        self.member.split_once(SEPARATOR).map(|(_, device)| device)
    }

    /// The session's public id.
    pub fn session_id(&self) -> SessionId {
        SessionId::for_key_id(self.key_id())
    }
}

impl fmt::Debug for IndexEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The member starts with the key id, which may be the token.
        f.write_str("IndexEntry(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_carry_key_id_and_device() {
        let member = IndexEntry::member_for("abc123", Some("Mozilla/5.0 (X11; Linux)"));
        let entry = IndexEntry {
            member,
            created_us: 1,
        };
        assert_eq!(entry.key_id(), "abc123");
        assert_eq!(entry.device(), Some("Mozilla/5.0 (X11; Linux)"));
        let legacy = IndexEntry {
            member: "abc123".into(),
            created_us: 1,
        };
        assert_eq!(legacy.key_id(), "abc123");
        assert_eq!(legacy.device(), None);
        assert_eq!(legacy.session_id(), entry.session_id());
    }

    #[test]
    fn ids_are_stable_hex_and_not_the_token() {
        let token = "dd9b7511874889f4192fbda3d8b0881c";
        let id = SessionId::for_key_id(token);
        assert_eq!(id, SessionId::for_key_id(token));
        assert_eq!(id.as_str().len(), 32);
        assert_ne!(id.as_str(), token);
        assert!(!id.as_str().contains(&token[..8]));
        assert_eq!(SessionId::parse(id.as_str()), Some(id.clone()));
        assert_ne!(
            SessionId::for_key_id("dd9b7511874889f4192fbda3d8b0881d"),
            id
        );
        for bad in ["", "XYZ", &"A".repeat(32), &"a".repeat(33)] {
            assert_eq!(SessionId::parse(bad), None, "{bad:?}");
        }
    }
}
