//! Session tokens: generation from the OS CSPRNG, validation of incoming text, redaction.

use std::fmt;

use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

use crate::error::Error;

/// Bytes of entropy in a generated token (128 bits).
pub(crate) const TOKEN_BYTES: usize = 16;

/// Longest token text accepted from a client.
pub const MAX_TOKEN_LEN: usize = 256;

/// Shortest token text a [`TokenFormat::Custom`] may accept (64 bits of hex); shorter
/// strings are guesses.
pub const MIN_TOKEN_LEN: usize = 16;

/// An opaque login token.
///
/// Generated tokens are 32 lowercase hex characters (128 bits from the OS CSPRNG), the form
/// both seed services use. Tokens read from clients are accepted only in the forms that
/// tokens are really issued in ([`TokenFormats::standard`]: 32 hex characters, a UUID with
/// dashes, 22 URL-safe base64 characters), so a client cannot name (and touch) another key
/// under the session prefix, and anything that could act as a glob, a key separator or a
/// hash tag never reaches Redis. Other forms only by explicit configuration
/// ([`TokenFormat::Custom`]).
///
/// `Debug` and `Display` never show the token; use [`Token::expose`] where the raw value is
/// really needed (returning it to the client, building the Redis key).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

impl Token {
    /// Generates a fresh token from the operating system's CSPRNG, in the seeds' form
    /// (32 lowercase hex characters).
    pub fn generate() -> Result<Self, Error> {
        Self::generate_as(TokenFormat::Hex32)
    }

    /// Generates a fresh 128-bit token written in `format`: [`TokenFormat::Hex32`] or
    /// [`TokenFormat::Base64Url22`]; other forms cannot carry 128 random bits
    /// ([`Error::Config`]).
    pub fn generate_as(format: TokenFormat) -> Result<Self, Error> {
        check_issuable(format)?;
        let mut bytes = [0u8; TOKEN_BYTES];
        OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| Error::Random(e.to_string()))?;
        Ok(Self::from_random_bytes(&bytes, format))
    }

    /// A token of these random bytes, written in `format` (checked by [`check_issuable`]
    /// when the configuration was built; anything else is written as hex).
    pub(crate) fn from_random_bytes(bytes: &[u8; TOKEN_BYTES], format: TokenFormat) -> Self {
        Self(match format {
            TokenFormat::Base64Url22 => to_base64url(bytes),
            _ => to_hex(bytes),
        })
    }

    /// Validates token text received from a client against the standard forms
    /// ([`TokenFormats::standard`]). Checks only the shape; whether a session exists is the
    /// session manager's question.
    pub fn parse(text: &str) -> Result<Self, MalformedToken> {
        Self::parse_as(text, TokenFormats::standard())
    }

    /// Validates token text against the given accepted forms.
    pub fn parse_as(text: &str, formats: TokenFormats) -> Result<Self, MalformedToken> {
        if formats.accepts(text) {
            Ok(Self(text.to_owned()))
        } else {
            Err(MalformedToken)
        }
    }

    /// [`parse_as`](Self::parse_as) on the raw bytes of a request. Every accepted form is
    /// ASCII, so the shape is checked first; the UTF-8 check then runs on the token's own
    /// (aligned) copy, a few word compares instead of a byte-by-byte walk of the header.
    pub(crate) fn parse_bytes_as(
        raw: &[u8],
        formats: TokenFormats,
    ) -> Result<Self, MalformedToken> {
        if !formats.accepts_bytes(raw) {
            return Err(MalformedToken);
        }
        String::from_utf8(raw.to_vec())
            .map(Self)
            .map_err(|_| MalformedToken)
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

/// A form of token text: what keygate issues ([`Hex32`](Self::Hex32), the default, or
/// [`Base64Url22`](Self::Base64Url22)) and what it accepts from clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenFormat {
    /// 32 hex characters (either case): what keygate and both seed services issue.
    Hex32,
    /// A UUID with dashes, `8-4-4-4-12` hex characters (either case).
    Uuid,
    /// 22 URL-safe base64 characters without padding: keygate's compact tokens, 10 bytes
    /// shorter in every key, for deployments that do not share sessions with services
    /// expecting hex tokens.
    Base64Url22,
    /// `min_len..=max_len` characters of `[A-Za-z0-9_-]`, for tokens another service mints
    /// in a form of its own. Opt-in: with a session prefix that also holds other keys, a
    /// client could name those keys as tokens.
    Custom {
        /// Shortest accepted length, at least [`MIN_TOKEN_LEN`].
        min_len: usize,
        /// Longest accepted length, at most [`MAX_TOKEN_LEN`].
        max_len: usize,
    },
}

/// Refuses a form keygate cannot issue tokens in: only [`TokenFormat::Hex32`] and
/// [`TokenFormat::Base64Url22`] carry 128 random bits.
pub(crate) fn check_issuable(format: TokenFormat) -> Result<(), Error> {
    match format {
        TokenFormat::Hex32 | TokenFormat::Base64Url22 => Ok(()),
        other => Err(Error::Config(format!(
            "tokens are issued as Hex32 or Base64Url22, not {other:?}"
        ))),
    }
}

/// The set of token forms accepted from clients (a small `Copy` value, checked on every
/// request before any Redis call).
///
/// ```
/// use keygate::{Token, TokenFormat, TokenFormats};
///
/// assert!(Token::parse("dd9b7511874889f4192fbda3d8b0881c").is_ok());
/// assert!(Token::parse("user_profile_598").is_err());
/// let custom = TokenFormats::standard().with(TokenFormat::Custom { min_len: 16, max_len: 64 });
/// assert!(Token::parse_as("user_profile_598", custom).is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenFormats {
    hex32: bool,
    uuid: bool,
    base64url22: bool,
    custom: Option<(usize, usize)>,
}

impl Default for TokenFormats {
    fn default() -> Self {
        Self::standard()
    }
}

impl TokenFormats {
    /// The forms tokens are issued in: [`TokenFormat::Hex32`], [`TokenFormat::Uuid`] and
    /// [`TokenFormat::Base64Url22`].
    pub const fn standard() -> Self {
        Self {
            hex32: true,
            uuid: true,
            base64url22: true,
            custom: None,
        }
    }

    /// No form at all; add the wanted ones with [`with`](Self::with).
    pub const fn none() -> Self {
        Self {
            hex32: false,
            uuid: false,
            base64url22: false,
            custom: None,
        }
    }

    /// Also accepts `format` (a second `Custom` replaces the first).
    pub fn with(mut self, format: TokenFormat) -> Self {
        match format {
            TokenFormat::Hex32 => self.hex32 = true,
            TokenFormat::Uuid => self.uuid = true,
            TokenFormat::Base64Url22 => self.base64url22 = true,
            TokenFormat::Custom { min_len, max_len } => self.custom = Some((min_len, max_len)),
        }
        self
    }

    /// Whether `text` has one of the accepted forms.
    pub fn accepts(&self, text: &str) -> bool {
        self.accepts_bytes(text.as_bytes())
    }

    /// [`accepts`](Self::accepts) on bytes: only ASCII is ever accepted.
    pub(crate) fn accepts_bytes(&self, bytes: &[u8]) -> bool {
        (self.hex32 && bytes.len() == 32 && bytes.iter().all(|b| is_hex(*b)))
            || (self.uuid && is_uuid(bytes))
            || (self.base64url22 && bytes.len() == 22 && bytes.iter().all(|b| is_url_safe(*b)))
            || self.custom.is_some_and(|(min, max)| {
                (min..=max).contains(&bytes.len()) && bytes.iter().all(|b| is_url_safe(*b))
            })
    }

    /// Checks a custom range against [`MIN_TOKEN_LEN`]..=[`MAX_TOKEN_LEN`].
    pub(crate) fn validate(&self) -> Result<(), Error> {
        match self.custom {
            Some((min, max)) if min < MIN_TOKEN_LEN || max > MAX_TOKEN_LEN || min > max => {
                Err(Error::Config(format!(
                    "custom token lengths {min}..={max} must lie within \
                     {MIN_TOKEN_LEN}..={MAX_TOKEN_LEN}"
                )))
            }
            _ => Ok(()),
        }
    }
}

/// Which bytes are hex digits (bit 0) and URL-safe (bit 1): one load per byte on the
/// request path, where every token is checked.
const CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        if byte.is_ascii_hexdigit() {
            table[b] |= 1;
        }
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            table[b] |= 2;
        }
        b += 1;
    }
    table
};

fn is_hex(b: u8) -> bool {
    CLASSES[usize::from(b)] & 1 != 0
}

fn is_url_safe(b: u8) -> bool {
    CLASSES[usize::from(b)] & 2 != 0
}

/// `8-4-4-4-12` hex digits.
fn is_uuid(bytes: &[u8]) -> bool {
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => is_hex(*b),
        })
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
    fn raw_bytes_parse_as_their_text_does() {
        let formats = TokenFormats::standard().with(TokenFormat::Base64Url22);
        let hex = "dd9b7511874889f4192fbda3d8b0881c";
        let parsed = Token::parse_bytes_as(hex.as_bytes(), formats).map(|t| t.0);
        assert_eq!(parsed.as_deref(), Ok(hex));
        // Bytes that are not ASCII are never a token: not UTF-8 at all, UTF-8 letters of
        // the right count, or a form's separator replaced.
        for raw in [
            &[0xff; 32][..],
            "dd9b7511874889f4192fbda3d8b088é".as_bytes(),
            "ééééééééééé".as_bytes(),
            b"dd9b7511-8748-89f4-192f+bda3d8b0881c",
        ] {
            assert_eq!(
                Token::parse_bytes_as(raw, formats).map(|t| t.0),
                Err(MalformedToken),
                "{raw:?}"
            );
        }
    }

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
        let t = Token::generate_as(TokenFormat::Base64Url22).unwrap();
        assert_eq!(t.expose().len(), 22);
        assert_eq!(Token::parse(t.expose()).unwrap(), t);
        assert_ne!(t, Token::generate_as(TokenFormat::Base64Url22).unwrap());
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
            // Right alphabet, but no issued form: names of other keys under the prefix.
            "user_profile_598",
            "dd9b7511874889f4192fbda3d8b0881",
            "dd9b7511874889f4192fbda3d8b0881cc",
            "dd9b7511874889f4192fbda3d8b0881g",
            "dd9b7511_8748_89f4_192f_bda3d8b0881c",
            "a".repeat(MAX_TOKEN_LEN).as_str(),
        ] {
            assert_eq!(Token::parse(bad), Err(MalformedToken), "{bad:?}");
        }
        for good in [
            "dd9b7511874889f4192fbda3d8b0881c",
            "DD9B7511874889F4192FBDA3D8B0881C",
            "DD9B7511-8748-89F4-192F-BDA3D8B0881C",
            "3q2-7wAAAAAAAAAAAAAA_w",
        ] {
            assert!(Token::parse(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn custom_forms_are_opt_in_and_bounded() {
        let custom = TokenFormats::none().with(TokenFormat::Custom {
            min_len: 16,
            max_len: MAX_TOKEN_LEN,
        });
        assert!(Token::parse_as("user_profile_598", custom).is_ok());
        assert!(Token::parse_as(&"a".repeat(MAX_TOKEN_LEN), custom).is_ok());
        assert!(Token::parse_as("user_profile_59", custom).is_err());
        assert!(Token::parse_as("user:profile:5988", custom).is_err());
        let only_hex = TokenFormats::none().with(TokenFormat::Hex32);
        assert!(Token::parse_as("DD9B7511-8748-89F4-192F-BDA3D8B0881C", only_hex).is_err());
        for (min, max) in [(15, 64), (16, MAX_TOKEN_LEN + 1), (40, 20)] {
            let formats = TokenFormats::none().with(TokenFormat::Custom {
                min_len: min,
                max_len: max,
            });
            assert!(formats.validate().is_err(), "{min}..={max}");
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
