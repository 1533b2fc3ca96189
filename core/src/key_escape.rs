//! Names from outside (a lock's resource, a rate limit's subject) made safe inside a key.

/// Percent-encodes everything but `[A-Za-z0-9:_.@/-]`, so a name can never close the hash
/// tag, act as a glob, or collide with another name.
#[cfg_attr(not(any(feature = "locks", feature = "rate-limit")), allow(dead_code))]
pub(crate) fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    escape_into(&mut out, name);
    out
}

/// [`escape`], appending to `out`.
pub(crate) fn escape_into(out: &mut String, name: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b":_.@/-".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}
