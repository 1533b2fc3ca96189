//! The code flow: validate the phone, issue within limits, hand to the sender, verify once.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::Sha256;

use super::{
    CheckOutcome, CodeConfig, CodeKeys, CodeSender, CodeStore, IssueLimits, IssueOutcome,
    MainlandMobile, Phone, PhoneRule, SendError, VerificationCode,
};
use crate::error::Error;
use crate::telemetry::{self, names};
use crate::token::to_hex;
use crate::ttl::millis;

/// The window of the daily cap: a fixed window that starts with the phone's first send and
/// lasts 24 hours (the count key's TTL); the next send after it starts a new window.
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Longest candidate code sent to the backend; longer input can never match.
const MAX_CANDIDATE_LEN: usize = 32;

/// Why a code could not be issued or verified.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodeError {
    /// The phone number is not valid (400).
    #[error("invalid phone number")]
    InvalidPhone,
    /// A code was sent to this phone too recently (429).
    #[error("a code was sent recently; retry in {} s", crate::ttl::retry_after_secs(*retry_after))]
    Cooldown {
        /// When a resend is allowed.
        retry_after: Duration,
    },
    /// Too many codes were sent to this phone in 24 hours (429).
    #[error("too many codes today; retry in {} s", crate::ttl::retry_after_secs(*retry_after))]
    DailyLimit {
        /// When the window frees a send.
        retry_after: Duration,
    },
    /// The code is wrong (401).
    #[error("wrong code")]
    WrongCode {
        /// Tries left before the code is burned.
        tries_left: u32,
    },
    /// No valid code: expired, already used, or never sent (401).
    #[error("no valid code: expired, used or never sent")]
    NoCode,
    /// Too many wrong tries: the code is burned; request a new one (429).
    #[error("too many wrong codes; request a new code")]
    TooManyTries,
    /// The sender failed; the code was withdrawn (503).
    #[error(transparent)]
    Send(#[from] SendError),
    /// Backend or other core error (503 for backend trouble).
    #[error(transparent)]
    Core(#[from] Error),
}

impl CodeError {
    /// How long to wait before retrying, where waiting helps (for `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CodeError::Cooldown { retry_after } | CodeError::DailyLimit { retry_after } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }
}

/// Issues and verifies verification codes. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), keygate::code::CodeError> {
/// use keygate::MemoryStore;
/// use keygate::code::{CodeConfig, Codes, LogCodeSender};
///
/// let codes = Codes::new(MemoryStore::new(), LogCodeSender::new(), CodeConfig::new())?;
/// let phone = codes.phone("13800138000")?;
/// codes.send(&phone).await?;                       // stored at login:code:13800138000
/// assert!(codes.verify(&phone, "not-it").await.is_err());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Codes {
    store: Arc<dyn CodeStore>,
    sender: Arc<dyn CodeSender>,
    rule: Arc<dyn PhoneRule>,
    config: Arc<CodeConfig>,
}

impl std::fmt::Debug for Codes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codes")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Codes {
    /// A code service with the mainland-mobile phone rule.
    pub fn new(
        store: impl CodeStore,
        sender: impl CodeSender,
        config: CodeConfig,
    ) -> Result<Self, Error> {
        Self::from_shared(Arc::new(store), Arc::new(sender), config)
    }

    /// Like [`new`](Self::new) for a store and sender already shared.
    pub fn from_shared(
        store: Arc<dyn CodeStore>,
        sender: Arc<dyn CodeSender>,
        config: CodeConfig,
    ) -> Result<Self, Error> {
        crate::ttl::check_ttl("code TTL", config.ttl)?;
        if !config.cooldown.is_zero() {
            crate::ttl::check_ttl("code cooldown", config.cooldown)?;
        }
        if config
            .prefix
            .chars()
            .any(|c| c == '{' || c == '}' || c.is_whitespace() || c.is_control())
        {
            return Err(Error::Config(format!(
                "code prefix {:?} may not contain braces, whitespace or control characters",
                config.prefix
            )));
        }
        Ok(Self {
            store,
            sender,
            rule: Arc::new(MainlandMobile),
            config: Arc::new(config),
        })
    }

    /// Replaces the phone rule (default [`MainlandMobile`]).
    pub fn with_phone_rule(mut self, rule: impl PhoneRule) -> Self {
        self.rule = Arc::new(rule);
        self
    }

    /// Validates a phone number.
    pub fn phone(&self, raw: &str) -> Result<Phone, CodeError> {
        Phone::parse(raw, self.rule.as_ref()).ok_or(CodeError::InvalidPhone)
    }

    /// Issues a fresh code for `phone` within the limits and hands it to the sender; if
    /// sending fails, the code is withdrawn and the error returned.
    pub async fn send(&self, phone: &Phone) -> Result<(), CodeError> {
        let outcome = timed_code("code_send", self.send_untimed(phone)).await;
        let label = match &outcome {
            Ok(()) => "sent",
            Err(CodeError::Cooldown { .. }) => "cooldown",
            Err(CodeError::DailyLimit { .. }) => "daily_limit",
            Err(_) => "send_failed",
        };
        telemetry::count(names::CODE_ISSUED, "outcome", label);
        outcome
    }

    async fn send_untimed(&self, phone: &Phone) -> Result<(), CodeError> {
        let keys = CodeKeys::new(&self.config.prefix, phone);
        let code = generate()?;
        let stored = self.stored_form(&keys, code.expose());
        let limits = IssueLimits {
            ttl_ms: millis(self.config.ttl),
            cooldown_ms: if self.config.cooldown.is_zero() {
                0
            } else {
                millis(self.config.cooldown)
            },
            daily_cap: self.config.daily_cap,
            window_ms: millis(DAY),
        };
        match self.store.issue(&keys, &stored, limits).await? {
            IssueOutcome::Issued => {}
            IssueOutcome::Cooldown(ms) => {
                return Err(CodeError::Cooldown {
                    retry_after: Duration::from_millis(ms),
                });
            }
            IssueOutcome::DailyCap(ms) => {
                return Err(CodeError::DailyLimit {
                    retry_after: Duration::from_millis(ms),
                });
            }
        }
        if let Err(error) = self.sender.send(phone, &code).await {
            self.store.revoke(&keys, &stored).await?;
            return Err(error.into());
        }
        Ok(())
    }

    /// Checks `candidate` against the phone's code: a right code succeeds once and is
    /// consumed; a wrong one counts a try; at the limit the code is burned.
    pub async fn verify(&self, phone: &Phone, candidate: &str) -> Result<(), CodeError> {
        let outcome = timed_code("code_verify", self.verify_untimed(phone, candidate)).await;
        let label = match &outcome {
            Ok(()) => "ok",
            Err(CodeError::WrongCode { .. }) => "wrong",
            Err(CodeError::TooManyTries) => "burned",
            Err(CodeError::NoCode) => "missing",
            Err(_) => "error",
        };
        telemetry::count(names::CODE_VERIFIED, "outcome", label);
        outcome
    }

    async fn verify_untimed(&self, phone: &Phone, candidate: &str) -> Result<(), CodeError> {
        let keys = CodeKeys::new(&self.config.prefix, phone);
        // Overlong input cannot match a code; it is still counted as a wrong try.
        let candidate = if candidate.len() > MAX_CANDIDATE_LEN {
            ""
        } else {
            candidate
        };
        let stored = self.stored_form(&keys, candidate);
        match self
            .store
            .check(&keys, &stored, self.config.max_tries)
            .await?
        {
            CheckOutcome::Valid => Ok(()),
            CheckOutcome::Wrong(tries_left) => Err(CodeError::WrongCode { tries_left }),
            CheckOutcome::Burned => Err(CodeError::TooManyTries),
            CheckOutcome::Missing => Err(CodeError::NoCode),
        }
    }

    /// The code as stored: itself, or its keyed hash.
    fn stored_form(&self, keys: &CodeKeys, code: &str) -> String {
        match &self.config.hash_key {
            None => code.to_owned(),
            Some(key) => {
                let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
                    // HMAC accepts keys of any length; this branch cannot be taken.
                    return String::new();
                };
                mac.update(keys.code.as_bytes());
                mac.update(b"\0");
                mac.update(code.as_bytes());
                to_hex(&mac.finalize().into_bytes())
            }
        }
    }
}

/// Times a code operation like any backend operation; only a backend failure counts as
/// its error (a wrong code is an answer, not a failure).
async fn timed_code(
    op: &'static str,
    work: impl std::future::Future<Output = Result<(), CodeError>>,
) -> Result<(), CodeError> {
    telemetry::OpMetrics::register(op)
        .timed_by(work, |outcome| matches!(outcome, Err(CodeError::Core(_))))
        .await
}

/// Six digits, uniform over 000000..=999999, from the OS CSPRNG.
fn generate() -> Result<VerificationCode, Error> {
    // Rejection sampling: values at or above the largest multiple of a million below 2^32
    // would favour low codes, so draw again (probability 0.02 %).
    const LIMIT: u32 = u32::MAX - u32::MAX % 1_000_000;
    loop {
        let mut bytes = [0u8; 4];
        OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| Error::Random(e.to_string()))?;
        let n = u32::from_le_bytes(bytes);
        if n < LIMIT {
            return Ok(VerificationCode::new(format!("{:06}", n % 1_000_000)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_vary() {
        let codes: Vec<String> = (0..200)
            .map(|_| generate().unwrap().expose().to_owned())
            .collect();
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()))
        );
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert!(
            distinct.len() > 190,
            "200 draws from a million values barely collide"
        );
    }

    #[test]
    fn code_debug_is_redacted() {
        let code = VerificationCode::new("123456".into());
        assert!(!format!("{code:?}{code}").contains("123456"));
    }
}
