//! Verification codes sent by SMS: issuing with abuse limits, and single-use verification.
//!
//! The default layout is the Java seed's: the 6-digit code as a plain string at
//! `login:code:<phone>` with a 120 s TTL, readable by other services. keygate's counters
//! live in companion keys `keygate:code-<what>:{login:code:<phone>}` that share the code
//! key's cluster slot, so each operation is one single-slot script.

mod config;
#[cfg(feature = "memory")]
mod memory;
mod phone;
mod redis;
mod sender;
mod service;

pub use config::CodeConfig;
pub use phone::{MainlandMobile, Phone, PhoneRule};
pub use sender::{CodeSender, LogCodeSender, SendError};
pub use service::{CodeError, Codes};

use std::fmt;

use async_trait::async_trait;

use crate::error::Result;

/// A verification code. `Debug` and `Display` redact it.
#[derive(Clone, PartialEq, Eq)]
pub struct VerificationCode(String);

impl VerificationCode {
    pub(crate) fn new(code: String) -> Self {
        Self(code)
    }

    /// The code's digits, for the SMS text. Never log them.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for VerificationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerificationCode(<redacted>)")
    }
}

impl fmt::Display for VerificationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The keys of one phone's code, all in the code key's hash slot.
#[derive(Debug, Clone)]
pub struct CodeKeys {
    /// `<prefix><phone>`: the code (or its keyed hash).
    pub code: String,
    /// Present while a resend is not allowed yet.
    pub cooldown: String,
    /// Sends in the current 24-hour window.
    pub daily: String,
    /// Wrong tries against the current code.
    pub tries: String,
}

impl CodeKeys {
    pub(crate) fn new(prefix: &str, phone: &Phone) -> Self {
        let code = format!("{prefix}{}", phone.as_str());
        let companion = |what: &str| format!("keygate:code-{what}:{{{code}}}");
        Self {
            cooldown: companion("cooldown"),
            daily: companion("daily"),
            tries: companion("tries"),
            code,
        }
    }
}

/// Limits applied atomically when a code is issued (milliseconds).
#[derive(Debug, Clone, Copy)]
pub struct IssueLimits {
    /// The code's TTL.
    pub ttl_ms: u64,
    /// No resend before this much time passed.
    pub cooldown_ms: u64,
    /// At most this many sends per window.
    pub daily_cap: u32,
    /// The window of the daily cap.
    pub window_ms: u64,
}

/// What issuing a code found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IssueOutcome {
    /// The code is stored.
    Issued,
    /// A code was sent too recently; retry after this many ms.
    Cooldown(u64),
    /// The daily cap is reached; retry after this many ms.
    DailyCap(u64),
}

/// What checking a code found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckOutcome {
    /// The code was right and is now consumed.
    Valid,
    /// Wrong; this many tries are left.
    Wrong(u32),
    /// Wrong too often: the code is burned until a new one is issued.
    Burned,
    /// No code: never sent, expired or already used.
    Missing,
}

/// Storage of verification codes. Every method is one atomic step.
#[async_trait]
pub trait CodeStore: Send + Sync + 'static {
    /// Stores `value` as the phone's code unless the cooldown or the daily cap forbids it;
    /// resets the wrong-try count.
    async fn issue(
        &self,
        keys: &CodeKeys,
        value: &str,
        limits: IssueLimits,
    ) -> Result<IssueOutcome>;

    /// Removes the code if it is still `value` (sending failed), and the cooldown with it.
    async fn revoke(&self, keys: &CodeKeys, value: &str) -> Result<()>;

    /// Compares `candidate` with the stored code: consumes it when equal, counts a wrong
    /// try otherwise, and burns the code at `max_tries` wrong tries.
    async fn check(&self, keys: &CodeKeys, candidate: &str, max_tries: u32)
    -> Result<CheckOutcome>;
}
