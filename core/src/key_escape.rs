//! Names from outside (a lock's resource, a rate limit's subject) made safe inside a key.

/// Percent-encodes everything but `[A-Za-z0-9:_.@/-]`, so a name can never close the hash
/// tag, act as a glob, or collide with another name.
#[cfg_attr(not(any(feature = "locks", feature = "rate-limit")), allow(dead_code))]
pub(crate) fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    escape_into(&mut out, name);
    out
}

fn is_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b":_.@/-".contains(&b)
}

/// [`escape`], appending to `out`.
pub(crate) fn escape_into(out: &mut String, name: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    // Most names (an IPv4 or IPv6 subject, a resource id) need no escaping: one copy.
    if name.bytes().all(is_safe) {
        out.push_str(name);
        return;
    }
    for b in name.bytes() {
        if is_safe(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn safe_names_are_kept_and_others_percent_encoded() {
        assert_eq!(escape("10.0.0.1"), "10.0.0.1");
        assert_eq!(escape("2001:db8::/64"), "2001:db8::/64");
        assert_eq!(escape("order-42_a@b"), "order-42_a@b");
        assert_eq!(escape("a}b*c d"), "a%7Db%2Ac%20d");
        assert_eq!(escape("é"), "%C3%A9");
    }
}
