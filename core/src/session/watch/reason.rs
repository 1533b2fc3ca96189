//! Why a session ended, as a watcher learns it.

use std::fmt;

/// Why a watched session ended ([`SessionManager::ended`](crate::SessionManager::ended)).
///
/// Each reason has a stable wire name ([`as_str`](Self::as_str), and the form serde writes
/// and reads), for event streams and logs:
///
/// | reason | wire name | what ended it |
/// | --- | --- | --- |
/// | [`LoggedOut`](Self::LoggedOut) | `logged-out` | its own logout ([`SessionManager::logout`](crate::SessionManager::logout)) |
/// | [`EndedFromAnotherDevice`](Self::EndedFromAnotherDevice) | `ended-from-another-device` | [`SessionManager::end_session`](crate::SessionManager::end_session) by its public id ("log out that device") |
/// | [`LoggedOutEverywhere`](Self::LoggedOutEverywhere) | `logged-out-everywhere` | [`SessionManager::logout_everywhere`](crate::SessionManager::logout_everywhere) |
/// | [`Rotated`](Self::Rotated) | `rotated` | [`SessionManager::rotate`](crate::SessionManager::rotate): the session lives on under a new token |
/// | [`SessionLimit`](Self::SessionLimit) | `session-limit` | a newer login of its user beyond [`SessionConfig::with_max_sessions_per_user`](crate::SessionConfig::with_max_sessions_per_user) |
/// | [`EndedByOperator`](Self::EndedByOperator) | `ended-by-operator` | an operator tool ([`SessionManager::operator_end`](crate::SessionManager::operator_end), `keygate-cli sessions end`) |
/// | [`Expired`](Self::Expired) | `expired` | its idle TTL or absolute lifetime ran out |
/// | [`Deleted`](Self::Deleted) | `deleted` | its key vanished before its expiry without keygate ending it, while Redis was announcing changes: another program deleted it (`DEL`, a Node or Spring service), or memory eviction |
/// | [`Unknown`](Self::Unknown) | `unknown` | it is gone and nothing tells how: found by a re-check while the watcher could not rely on Redis's announcements (a lost tracking connection, Redis restarted empty, Redis older than 7.0), or keygate's end mark had expired |
///
/// The reasons keygate itself causes are known to watchers in every process: keygate writes
/// them next to the session in the same atomic step that ends it (see
/// [`SessionConfig::with_end_mark_prefix`](crate::SessionConfig::with_end_mark_prefix)).
///
/// ```
/// use keygate::session::EndReason;
///
/// assert_eq!(EndReason::LoggedOutEverywhere.as_str(), "logged-out-everywhere");
/// assert_eq!(EndReason::parse("rotated"), Some(EndReason::Rotated));
/// assert_eq!(serde_json::to_string(&EndReason::Expired).unwrap(), "\"expired\"");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum EndReason {
    /// The session's own logout.
    LoggedOut,
    /// Ended by its public id, from another session of its user ("log out that device").
    EndedFromAnotherDevice,
    /// Every session of its user was ended.
    LoggedOutEverywhere,
    /// Its token was rotated: the session lives on under a new token.
    Rotated,
    /// A newer login of its user went beyond the per-user session cap.
    SessionLimit,
    /// Ended by an operator tool.
    EndedByOperator,
    /// Its idle TTL or absolute lifetime ran out.
    Expired,
    /// Its key was deleted by something else than keygate.
    Deleted,
    /// It is gone, and nothing tells how.
    Unknown,
}

impl EndReason {
    /// Every reason, in the order of the table above.
    pub const ALL: [EndReason; 9] = [
        Self::LoggedOut,
        Self::EndedFromAnotherDevice,
        Self::LoggedOutEverywhere,
        Self::Rotated,
        Self::SessionLimit,
        Self::EndedByOperator,
        Self::Expired,
        Self::Deleted,
        Self::Unknown,
    ];

    /// The stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoggedOut => "logged-out",
            Self::EndedFromAnotherDevice => "ended-from-another-device",
            Self::LoggedOutEverywhere => "logged-out-everywhere",
            Self::Rotated => "rotated",
            Self::SessionLimit => "session-limit",
            Self::EndedByOperator => "ended-by-operator",
            Self::Expired => "expired",
            Self::Deleted => "deleted",
            Self::Unknown => "unknown",
        }
    }

    /// The reason of a wire name; `None` for any other text.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.as_str() == text)
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_are_serde_names_and_parse_back() {
        for reason in EndReason::ALL {
            let json = serde_json::to_string(&reason).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", reason.as_str()));
            assert_eq!(EndReason::parse(reason.as_str()), Some(reason));
            assert_eq!(reason.to_string(), reason.as_str());
        }
        assert_eq!(EndReason::parse("logged_out"), None);
    }
}
