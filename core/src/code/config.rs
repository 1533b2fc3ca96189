//! Settings of the code flow.

use std::time::Duration;

/// Code prefix, TTL and abuse limits. Defaults: `login:code:`, 120 s, a 60 s resend
/// cooldown, 10 sends per phone per 24-hour window (a fixed window from the first send), 5
/// wrong tries per code.
#[derive(Clone)]
pub struct CodeConfig {
    pub(crate) prefix: String,
    pub(crate) ttl: Duration,
    pub(crate) cooldown: Duration,
    pub(crate) daily_cap: u32,
    pub(crate) max_tries: u32,
    pub(crate) hash_key: Option<Vec<u8>>,
}

impl std::fmt::Debug for CodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeConfig")
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .field("cooldown", &self.cooldown)
            .field("daily_cap", &self.daily_cap)
            .field("max_tries", &self.max_tries)
            .field("hashed", &self.hash_key.is_some())
            .finish()
    }
}

impl Default for CodeConfig {
    fn default() -> Self {
        Self {
            prefix: "login:code:".into(),
            ttl: Duration::from_secs(120),
            cooldown: Duration::from_secs(60),
            daily_cap: 10,
            max_tries: 5,
            hash_key: None,
        }
    }
}

impl CodeConfig {
    /// The seed's settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Key prefix (default `login:code:`); no braces, whitespace or control characters.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long a code is valid (default 120 s).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Minimum time between two sends to one phone (default 60 s; zero disables).
    pub fn with_cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// Sends per phone per 24 hours (default 10).
    pub fn with_daily_cap(mut self, cap: u32) -> Self {
        self.daily_cap = cap;
        self
    }

    /// Wrong tries before the code is burned (default 5).
    pub fn with_max_tries(mut self, tries: u32) -> Self {
        self.max_tries = tries.max(1);
        self
    }

    /// Store only HMAC-SHA256(key, phone key + code) instead of the code, so read access to
    /// Redis does not reveal codes. Other services then cannot read the code.
    pub fn with_hashed_codes(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.hash_key = Some(key.into());
        self
    }
}
