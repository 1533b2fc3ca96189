//! The framework-neutral handlers of every route of the HTTP contract
//! (`docs/http-api.md`), as methods of [`App`](crate::App). Each takes what its request
//! carried and returns a [`Reply`](crate::Reply).

mod events;
mod flash;
mod login;

pub use events::{EVENT_STREAM, EventStream, body_chunks};
pub use flash::{
    ADMIN_TOKEN_HEADER, MAX_VOUCHER_ID, MAX_VOUCHER_STOCK, Operator, PAY_LOCK_WAIT,
    PAY_SIGNATURE_HEADER,
};

/// The first value of `name` in a query string or form body (`a=1&b=2`), percent-decoded.
pub(crate) fn form_field(encoded: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(encoded)
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::form_field;

    #[test]
    fn form_fields_are_decoded() {
        assert_eq!(
            form_field(b"a=1&phone=138%2000&phone=x", "phone").as_deref(),
            Some("138 00")
        );
        assert_eq!(form_field(b"", "phone"), None);
    }
}
