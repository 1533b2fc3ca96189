//! Handing a code to the SMS gateway.

use async_trait::async_trait;

use super::{Phone, VerificationCode};

/// Sending failed; the code has been withdrawn.
#[derive(Debug, thiserror::Error)]
#[error("sending the code failed: {0}")]
pub struct SendError(pub String);

/// Delivers codes to phones; the app implements it for its SMS gateway.
#[async_trait]
pub trait CodeSender: Send + Sync + 'static {
    /// Sends `code` to `phone`.
    async fn send(&self, phone: &Phone, code: &VerificationCode) -> Result<(), SendError>;
}

/// For development: writes the code to the log instead of sending it, and says so loudly
/// when created. The one place where keygate logs a code.
#[derive(Debug)]
pub struct LogCodeSender(());

impl LogCodeSender {
    /// Creates the sender and warns that codes go to the log.
    pub fn new() -> Self {
        tracing::warn!(
            "DEVELOPMENT CODE SENDER: verification codes are written to the log, not sent. \
             Never use this in production."
        );
        Self(())
    }
}

impl Default for LogCodeSender {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl CodeSender for LogCodeSender {
    async fn send(&self, phone: &Phone, code: &VerificationCode) -> Result<(), SendError> {
        tracing::info!(
            phone = phone.as_str(),
            code = code.expose(),
            "development code sender"
        );
        Ok(())
    }
}
