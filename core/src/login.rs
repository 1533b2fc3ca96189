//! Phone + SMS-code login, as in the Java seed: validate the phone, verify the code, find
//! or create the user, create a session, return a new token.

use async_trait::async_trait;
use rand::TryRngCore;
use rand::rngs::OsRng;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::code::{CodeError, Codes, Phone};
use crate::error::Error;
use crate::session::{SessionManager, SessionUser};
use crate::token::Token;

/// Where the app keeps its users.
#[async_trait]
pub trait UserDirectory: Send + Sync + 'static {
    /// What is stored in the session (the seed's `UserDTO`); it names its user
    /// ([`SessionUser`]) for the per-user session index.
    type User: SessionUser + Serialize + DeserializeOwned + Send + Sync + 'static;

    /// The user with this phone, created if absent (the seed names new users
    /// [`random_nickname`]).
    async fn find_or_create_by_phone(&self, phone: &Phone) -> Result<Self::User, DirectoryError>;
}

/// The user directory failed (database down, constraint violated).
#[derive(Debug, thiserror::Error)]
#[error("user directory failed: {0}")]
pub struct DirectoryError(pub String);

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// Phone or code rejected (see [`CodeError::status`]).
    #[error(transparent)]
    Code(#[from] CodeError),
    /// The user directory failed (500).
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// Creating the session failed (503 when the backend is down).
    #[error(transparent)]
    Session(#[from] Error),
}

/// The login flow over a code service, a user directory and a session manager.
pub struct PhoneLogin<D: UserDirectory> {
    codes: Codes,
    directory: D,
    sessions: SessionManager<D::User>,
}

impl<D: UserDirectory> std::fmt::Debug for PhoneLogin<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhoneLogin").finish_non_exhaustive()
    }
}

impl<D: UserDirectory> PhoneLogin<D> {
    /// Composes the flow.
    pub fn new(codes: Codes, directory: D, sessions: SessionManager<D::User>) -> Self {
        Self {
            codes,
            directory,
            sessions,
        }
    }

    /// The code service (to send codes).
    pub fn codes(&self) -> &Codes {
        &self.codes
    }

    /// The session manager.
    pub fn sessions(&self) -> &SessionManager<D::User> {
        &self.sessions
    }

    /// Sends a code to `phone` (validated first).
    pub async fn send_code(&self, phone: &str) -> Result<(), CodeError> {
        let phone = self.codes.phone(phone)?;
        self.codes.send(&phone).await
    }

    /// Validates the phone, consumes the code, and finds or creates the user: a login
    /// without the session, for a handler that creates it through its framework adapter
    /// (which sets the session cookie and records the device).
    pub async fn authenticate(&self, phone: &str, code: &str) -> Result<D::User, LoginError> {
        let phone = self.codes.phone(phone)?;
        self.codes.verify(&phone, code).await?;
        Ok(self.directory.find_or_create_by_phone(&phone).await?)
    }

    /// [`authenticate`](Self::authenticate), then creates a session. Every login gets a
    /// new token (no session fixation).
    pub async fn login(&self, phone: &str, code: &str) -> Result<(Token, D::User), LoginError> {
        let user = self.authenticate(phone, code).await?;
        let token = self.sessions.login(&user.user_id(), &user).await?;
        Ok((token, user))
    }
}

/// The seed's nickname for new users: `user_` and 10 random lowercase letters or digits.
pub fn random_nickname() -> Result<String, Error> {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 10];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| Error::Random(e.to_string()))?;
    // 256 % 36 != 0 leaves a slight bias; harmless for a display name.
    let suffix: String = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    Ok(format!("user_{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicknames_follow_the_seed() {
        let name = random_nickname().unwrap();
        assert_eq!(name.len(), 15);
        assert!(name.starts_with("user_"));
        assert!(
            name[5..]
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        assert_ne!(name, random_nickname().unwrap());
    }
}
