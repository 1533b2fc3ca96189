//! Per-login choices: the device a session is on, and (remember-me) its own idle TTL and
//! absolute lifetime within the limits the configuration sets.

use std::fmt;
use std::time::Duration;

/// Longest device label kept, in characters (the `User-Agent` of the login, cut).
pub const DEVICE_LABEL_MAX_CHARS: usize = 200;

/// How one session is created. The default is the configuration's idle TTL and lifetime and
/// no device label.
///
/// ```
/// use std::time::Duration;
/// use keygate::session::LoginOptions;
///
/// // "Remember me": 7 idle days, at most 30 days in all (needs
/// // `SessionConfig::with_login_limits`).
/// let remember = LoginOptions::new()
///     .with_idle_ttl(Duration::from_secs(7 * 86_400))
///     .with_lifetime(Duration::from_secs(30 * 86_400))
///     .with_device("Mozilla/5.0 (X11; Linux x86_64)");
/// assert_eq!(remember.device(), Some("Mozilla/5.0 (X11; Linux x86_64)"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct LoginOptions {
    idle_ttl: Option<Duration>,
    lifetime: Option<Duration>,
    device: Option<String>,
}

impl LoginOptions {
    /// The configuration's defaults, no device label.
    pub fn new() -> Self {
        Self::default()
    }

    /// This session's idle TTL instead of the configuration's; at most the configured
    /// [`LoginLimits::max_idle_ttl`](crate::session::LoginLimits).
    pub fn with_idle_ttl(mut self, ttl: Duration) -> Self {
        self.idle_ttl = Some(ttl);
        self
    }

    /// This session's absolute lifetime; at most the configured
    /// [`LoginLimits::max_lifetime`](crate::session::LoginLimits).
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = Some(lifetime);
        self
    }

    /// A label for the device, shown in the session list: typically the login request's
    /// `User-Agent`. Cut to [`DEVICE_LABEL_MAX_CHARS`] characters; control characters
    /// become spaces, surrounding whitespace is trimmed.
    pub fn with_device(mut self, label: impl AsRef<str>) -> Self {
        let label = device_label(label.as_ref());
        self.device = (!label.is_empty()).then_some(label);
        self
    }

    /// The chosen idle TTL, if any.
    pub fn idle_ttl(&self) -> Option<Duration> {
        self.idle_ttl
    }

    /// The chosen lifetime, if any.
    pub fn lifetime(&self) -> Option<Duration> {
        self.lifetime
    }

    /// The device label, if any.
    pub fn device(&self) -> Option<&str> {
        self.device.as_deref()
    }
}

impl fmt::Debug for LoginOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginOptions")
            .field("idle_ttl", &self.idle_ttl)
            .field("lifetime", &self.lifetime)
            .field("device", &self.device)
            .finish()
    }
}

/// A label safe to keep and show: at most [`DEVICE_LABEL_MAX_CHARS`] characters, no
/// control characters, trimmed.
fn device_label(raw: &str) -> String {
    raw.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(DEVICE_LABEL_MAX_CHARS)
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_labels_are_cut_and_cleaned() {
        let long = "é".repeat(300);
        let options = LoginOptions::new().with_device(&long);
        assert_eq!(options.device().map(|d| d.chars().count()), Some(200));
        let options = LoginOptions::new().with_device(" curl/8\r\n\tx ");
        assert_eq!(options.device(), Some("curl/8   x"));
        assert_eq!(LoginOptions::new().with_device(" \n ").device(), None);
    }
}
