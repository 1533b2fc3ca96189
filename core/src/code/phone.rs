//! Phone numbers: which ones are accepted, and only those reach a key name.

use std::fmt;

/// Decides which phone numbers are valid. Implemented for closures
/// `Fn(&str) -> bool`, so an app can pass its own rule.
pub trait PhoneRule: Send + Sync + 'static {
    /// Whether `phone` is a number this app sends codes to.
    fn is_valid(&self, phone: &str) -> bool;
}

impl<F: Fn(&str) -> bool + Send + Sync + 'static> PhoneRule for F {
    fn is_valid(&self, phone: &str) -> bool {
        self(phone)
    }
}

/// The seed's rule: a mainland-China mobile number, 11 digits starting `1[3-9]`
/// (no `+86` prefix, no spaces).
#[derive(Debug, Clone, Copy, Default)]
pub struct MainlandMobile;

impl PhoneRule for MainlandMobile {
    fn is_valid(&self, phone: &str) -> bool {
        let b = phone.as_bytes();
        b.len() == 11
            && b.iter().all(u8::is_ascii_digit)
            && b[0] == b'1'
            && (b'3'..=b'9').contains(&b[1])
    }
}

/// A phone number that passed the app's rule and is safe in a key name.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    /// Accepts `phone` if the rule does and it is 1..=32 characters of `[0-9A-Za-z+-]`
    /// (whatever a custom rule allows, nothing that could act as a glob, separator or
    /// hash tag gets into a key).
    pub fn parse(phone: &str, rule: &dyn PhoneRule) -> Option<Self> {
        let safe = (1..=32).contains(&phone.len())
            && phone
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-');
        (safe && rule.is_valid(phone)).then(|| Self(phone.to_owned()))
    }

    /// The number.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mainland_rule() {
        for good in ["13800138000", "19912345678", "15000000000"] {
            assert!(Phone::parse(good, &MainlandMobile).is_some(), "{good}");
        }
        for bad in [
            "",
            "1380013800",
            "138001380000",
            "12800138000",
            "10800138000",
            "23800138000",
            "1380013800a",
            "+8613800138000",
            "86-13800138000",
            "138 0013 8000",
            "１３８００１３８０００",
        ] {
            assert!(Phone::parse(bad, &MainlandMobile).is_none(), "{bad}");
        }
    }

    #[test]
    fn custom_rules_cannot_smuggle_key_syntax() {
        let anything = |_: &str| true;
        assert!(Phone::parse("+4915112345678", &anything).is_some());
        for bad in ["*", "a:b", "{x}", "1 2", "x".repeat(33).as_str()] {
            assert!(Phone::parse(bad, &anything).is_none(), "{bad}");
        }
    }
}
