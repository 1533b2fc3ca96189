//! What each capability's outcome answers over HTTP: the status and the envelope, for the
//! handlers that serve codes, locks, logins and flash-sale orders.

#[cfg(any(feature = "codes", feature = "locks"))]
use super::envelope::Envelope;
#[cfg(feature = "codes")]
use crate::code::CodeError;
#[cfg(feature = "flash-sale")]
use crate::flash_sale::OrderOutcome;
#[cfg(feature = "locks")]
use crate::lock::LockError;
#[cfg(feature = "codes")]
use crate::login::LoginError;

#[cfg(feature = "codes")]
impl CodeError {
    /// The HTTP status for this outcome.
    pub fn status(&self) -> u16 {
        match self {
            CodeError::InvalidPhone => 400,
            CodeError::WrongCode { .. } | CodeError::NoCode => 401,
            CodeError::Cooldown { .. } | CodeError::DailyLimit { .. } | CodeError::TooManyTries => {
                429
            }
            CodeError::Send(_) => 503,
            CodeError::Core(e) => e.status(),
        }
    }

    /// The JSON envelope.
    pub fn body(&self) -> String {
        match self {
            CodeError::Core(e) => e.body(),
            CodeError::Send(_) => {
                Envelope::error("the code could not be sent, try again").to_json()
            }
            other => Envelope::error(other.to_string()).to_json(),
        }
    }
}

#[cfg(feature = "locks")]
impl LockError {
    /// The HTTP status when a request could not be served under the lock: 503 (try again;
    /// with [`retry_after`](Self::retry_after)), or the backend error's own status.
    pub fn status(&self) -> u16 {
        match self {
            LockError::Backend(e) => e.status(),
            _ => 503,
        }
    }

    /// The JSON envelope, with a message safe to show to clients.
    pub fn body(&self) -> String {
        match self {
            LockError::Backend(e) => e.body(),
            _ => Envelope::error("busy, try again").to_json(),
        }
    }
}

#[cfg(feature = "codes")]
impl LoginError {
    /// The HTTP status for this outcome.
    pub fn status(&self) -> u16 {
        match self {
            LoginError::Code(e) => e.status(),
            LoginError::Directory(_) => 500,
            LoginError::Session(e) => e.status(),
        }
    }

    /// The JSON envelope.
    pub fn body(&self) -> String {
        match self {
            LoginError::Code(e) => e.body(),
            LoginError::Directory(_) => Envelope::error("internal error").to_json(),
            LoginError::Session(e) => e.body(),
        }
    }
}

#[cfg(feature = "flash-sale")]
impl OrderOutcome {
    /// The HTTP status for this outcome: 200 ordered, 404 unknown voucher, 409 for the
    /// rest (sold out, already ordered, outside the sale window).
    pub fn status(&self) -> u16 {
        match self {
            OrderOutcome::Ordered { .. } => 200,
            OrderOutcome::UnknownVoucher => 404,
            OrderOutcome::SoldOut
            | OrderOutcome::AlreadyOrdered
            | OrderOutcome::NotStarted
            | OrderOutcome::Ended => 409,
        }
    }
}
