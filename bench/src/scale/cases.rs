//! The session configurations measured: each seed's layout, and the options that add keys
//! or change their size.

use std::time::Duration;

use keygate::session::LoginLimits;
use keygate::{SessionConfig, TokenFormat};

use crate::user::NODE_CUSTOM;

/// A seed layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seed {
    /// The Node seed: `myapp_<token>` holding the user as JSON.
    NodeJson,
    /// The Java seed: `login:token:<token>` holding the `UserDTO` as a hash.
    JavaHash,
}

impl Seed {
    pub fn label(self) -> &'static str {
        match self {
            Self::NodeJson => "Node seed, JSON",
            Self::JavaHash => "Java seed, hash",
        }
    }
}

/// An option that changes what a session keeps in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extra {
    /// The seed's configuration as it is (the per-user index is always on).
    Plain,
    /// `with_absolute_lifetime(24 h)`: a companion key per session holding the deadline.
    Lifetime,
    /// `with_login_limits(..)`: a companion key per session holding its own expiry.
    LoginLimits,
    /// `with_token_format(Base64Url22)`: 22-character tokens in keys and index members.
    ShortTokens,
}

impl Extra {
    pub fn label(self) -> &'static str {
        match self {
            Self::Plain => "as the seed (index on)",
            Self::Lifetime => "+ absolute lifetime",
            Self::LoginLimits => "+ login limits (per-login expiry)",
            Self::ShortTokens => "+ 22-character tokens",
        }
    }
}

/// The configuration of `seed` with `extra`.
pub fn config(seed: Seed, extra: Extra) -> SessionConfig {
    let config = match seed {
        Seed::NodeJson => SessionConfig::node_seed(NODE_CUSTOM),
        Seed::JavaHash => SessionConfig::java_seed(),
    };
    match extra {
        Extra::Plain => config,
        Extra::Lifetime => config.with_absolute_lifetime(Duration::from_secs(24 * 3600)),
        Extra::LoginLimits => config.with_login_limits(LoginLimits::new(
            Duration::from_secs(7 * 24 * 3600),
            Duration::from_secs(30 * 24 * 3600),
        )),
        Extra::ShortTokens => config.with_token_format(TokenFormat::Base64Url22),
    }
}
