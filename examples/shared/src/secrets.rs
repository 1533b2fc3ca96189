//! The operator token (`ADMIN_TOKEN`) and the payment-callback key (`PAY_CALLBACK_SECRET`):
//! read at start-up, never printed, checked in constant time.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::StartError;

/// A secret read from the environment. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for keying a check; never for printing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Checks the header `x-admin-token` of the operator routes against `ADMIN_TOKEN`.
///
/// Both sides are hashed (SHA-256) before the constant-time comparison, so neither the
/// content nor the length of the configured token shows in the time a refusal takes.
pub(crate) struct AdminKey {
    digest: [u8; 32],
}

impl AdminKey {
    pub(crate) fn new(token: &Secret) -> Self {
        Self {
            digest: Sha256::digest(token.expose().as_bytes()).into(),
        }
    }

    /// Whether `presented` is the configured token.
    pub(crate) fn accepts(&self, presented: &[u8]) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented).into();
        presented.ct_eq(&self.digest).into()
    }
}

/// Checks the payment provider's callbacks: the header `x-pay-signature` must be the
/// lowercase hex HMAC-SHA256, keyed with `PAY_CALLBACK_SECRET`, of `<orderId>:<source>`.
pub(crate) struct CallbackKey {
    keyed: Hmac<Sha256>,
}

impl CallbackKey {
    pub(crate) fn new(secret: &Secret) -> Result<Self, StartError> {
        let keyed = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
            .map_err(|_| StartError::new("PAY_CALLBACK_SECRET cannot key HMAC-SHA256"))?;
        Ok(Self { keyed })
    }

    /// The signature of a callback for `order_id` from `source`.
    fn sign(&self, order_id: i64, source: &str) -> String {
        let mut mac = self.keyed.clone();
        mac.update(format!("{order_id}:{source}").as_bytes());
        lower_hex(&mac.finalize().into_bytes())
    }

    /// Whether `presented` is the signature of a callback for `order_id` from `source`,
    /// compared in constant time.
    pub(crate) fn verifies(&self, order_id: i64, source: &str, presented: &[u8]) -> bool {
        self.sign(order_id, source)
            .as_bytes()
            .ct_eq(presented)
            .into()
    }
}

fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0x0f)]])
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_never_printed() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn the_admin_token_must_match_exactly() {
        let key = AdminKey::new(&Secret::new("s3cret-operator-token"));
        assert!(key.accepts(b"s3cret-operator-token"));
        for wrong in [
            &b""[..],
            b"s3cret-operator-toke",
            b"s3cret-operator-token ",
            b"S3cret-operator-token",
        ] {
            assert!(!key.accepts(wrong), "{wrong:?}");
        }
    }

    #[test]
    fn callback_signatures_are_hmac_sha256_in_lowercase_hex() -> Result<(), StartError> {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
        let rfc = CallbackKey::new(&Secret::new("Jefe"))?;
        let mut mac = rfc.keyed.clone();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            lower_hex(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );

        let key = CallbackKey::new(&Secret::new("pay-secret"))?;
        let good = key.sign(42, "wechat");
        assert_eq!(good.len(), 64);
        assert!(key.verifies(42, "wechat", good.as_bytes()));
        assert!(!key.verifies(43, "wechat", good.as_bytes()));
        assert!(!key.verifies(42, "web", good.as_bytes()));
        assert!(!key.verifies(42, "wechat", good.to_uppercase().as_bytes()));
        assert!(!key.verifies(42, "wechat", &good.as_bytes()[..63]));
        assert!(!key.verifies(42, "wechat", b""));
        Ok(())
    }
}
