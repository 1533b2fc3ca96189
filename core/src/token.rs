//! Session tokens: generation from the OS CSPRNG, validation of incoming text, redaction.

use std::fmt;

use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

use crate::Error;

/// Bytes of entropy in a generated token (128 bits).
const TOKEN_BYTES: usize = 16;

/// Longest token text accepted from a client.
pub const MAX_TOKEN_LEN: usize = 256;

/// Shortest token text accepted from a client (64 bits of hex); shorter strings are guesses.
pub const MIN_TOKEN_LEN: usize = 16;

/// An opaque login token.
///
/// Generated tokens are 32 lowercase hex characters (128 bits from the OS CSPRNG), the form
/// both seed services use. Tokens read from clients are accepted when they are
/// [`MIN_TOKEN_LEN`]..=[`MAX_TOKEN_LEN`] characters of `[A-Za-z0-9_-]`, so tokens minted by
/// another service sharing the Redis (UUIDs with dashes, URL-safe base64) keep working, while
/// anything that could act as a glob, a key separator or a hash tag never reaches Redis.
///
/// `Debug` and `Display` never show the token; use [`Token::expose`] where the raw value is
/// really needed (returning it to the client, building the Redis key).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

impl Token {
    /// Generates a fresh token from the operating system's CSPRNG, in the seeds' form
    /// (32 lowercase hex characters).
    pub fn generate() -> Result<Self, Error> {
        Self::generate_as(TokenEncoding::Hex)
    }

    /// Generates a fresh 128-bit token written in `encoding`.
    pub fn generate_as(encoding: TokenEncoding) -> Result<Self, Error> {
        let mut bytes = [0u8; TOKEN_BYTES];
        OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| Error::Random(e.to_string()))?;
        Ok(Self(match encoding {
            TokenEncoding::Hex => to_hex(&bytes),
            TokenEncoding::Base64Url => to_base64url(&bytes),
        }))
    }

    /// Validates token text received from a client. Checks only the shape; whether a session
    /// exists is the session manager's question.
    pub fn parse(text: &str) -> Result<Self, MalformedToken> {
        if !(MIN_TOKEN_LEN..=MAX_TOKEN_LEN).contains(&text.len()) {
            return Err(MalformedToken);
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(MalformedToken);
        }
        Ok(Self(text.to_owned()))
    }

    /// The token's text. Everything that prints or logs must go through redaction instead.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Lowercase hex SHA-256 of the token: what the key holds in hashed-key mode.
    pub fn sha256_hex(&self) -> String {
        to_hex(&Sha256::digest(self.0.as_bytes()))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How generated tokens are written. Both carry the same 128 random bits and both are
/// accepted by [`Token::parse`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenEncoding {
    /// 32 lowercase hex characters: the seeds' form, for layouts shared with their services.
    #[default]
    Hex,
    /// 22 URL-safe base64 characters without padding: 10 bytes shorter in every key, for
    /// deployments that do not share sessions with services expecting hex tokens.
    Base64Url,
}

/// The text received was not a well-formed token (wrong length or alphabet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed token")]
pub struct MalformedToken;

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// URL-safe base64 without padding (RFC 4648 §5).
fn to_base64url(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        // A chunk of k bytes yields k + 1 characters.
        for i in 0..=chunk.len() {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(DIGITS[index as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_rfc_4648_vectors() {
        // RFC 4648 §10 test vectors, padding removed.
        for (input, expected) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(to_base64url(input.as_bytes()), expected);
        }
        assert_eq!(to_base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn compact_tokens_are_22_url_safe_characters_and_parse() {
        let t = Token::generate_as(TokenEncoding::Base64Url).unwrap();
        assert_eq!(t.expose().len(), 22);
        assert_eq!(Token::parse(t.expose()).unwrap(), t);
        assert_ne!(t, Token::generate_as(TokenEncoding::Base64Url).unwrap());
    }

    #[test]
    fn generated_tokens_are_32_lowercase_hex_and_distinct() {
        let a = Token::generate().unwrap();
        let b = Token::generate().unwrap();
        assert_eq!(a.expose().len(), 32);
        assert!(
            a.expose()
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        assert_ne!(a, b);
        assert_eq!(Token::parse(a.expose()).unwrap(), a);
    }

    #[test]
    fn parse_rejects_everything_but_the_token_alphabet() {
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        let ten_kib = "b".repeat(10 * 1024);
        for bad in [
            "",
            "*",
            "dd9b7511874889f4192fbda3d8b0881*",
            "dd9b7511874889f4 192fbda3d8b0881",
            "dd9b7511874889f4\n192fbda3d8b0881",
            "dd9b7511874889f4\u{0}92fbda3d8b0881",
            "dd9b7511874889f4192fbda3d8b088é",
            "dd9b7511874889f4:192fbda3d8b0881",
            "{dd9b7511874889f4192fbda3d8b0881}",
            "short",
            long.as_str(),
            ten_kib.as_str(),
        ] {
            assert_eq!(Token::parse(bad), Err(MalformedToken), "{bad:?}");
        }
        for good in [
            "dd9b7511874889f4192fbda3d8b0881c",
            "DD9B7511-8748-89F4-192F-BDA3D8B0881C",
            "a".repeat(MAX_TOKEN_LEN).as_str(),
        ] {
            assert!(Token::parse(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn debug_and_display_redact() {
        let t = Token::parse("dd9b7511874889f4192fbda3d8b0881c").unwrap();
        assert!(!format!("{t:?} {t}").contains("dd9b"));
    }

    #[test]
    fn sha256_is_the_standard_digest() {
        let t = Token::parse("dd9b7511874889f4192fbda3d8b0881c").unwrap();
        // Reference value from coreutils: `printf %s <token> | sha256sum`.
        assert_eq!(
            t.sha256_hex(),
            "033e053ba208aa4b5c557bda8227e2f2d3c367510cd9e9a1404a492632a2f19c"
        );
    }
}
