//! Who sent a request, as the per-IP budgets see it: the connection's peer and the
//! `X-Forwarded-For` lines a trusted proxy may have added.

use std::net::IpAddr;

use keygate::web::RequestParts;

/// The connection's peer and the request's `X-Forwarded-For` header lines, in order. Each
/// example builds one from its framework's request for the operator routes; the login
/// routes' middleware reads the same from the request itself.
#[derive(Debug, Clone, Default)]
pub struct Caller<'a> {
    /// The connection's peer address, when the framework knows it.
    pub peer: Option<IpAddr>,
    /// Every `X-Forwarded-For` line, in the order received.
    pub forwarded_for: Vec<&'a [u8]>,
}

impl<'a> Caller<'a> {
    /// A caller at `peer` with these `X-Forwarded-For` lines.
    pub fn new(peer: Option<IpAddr>, forwarded_for: impl IntoIterator<Item = &'a [u8]>) -> Self {
        Self {
            peer,
            forwarded_for: forwarded_for.into_iter().collect(),
        }
    }
}

impl RequestParts for Caller<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.header_at(name, 0)
    }

    fn header_at(&self, name: &str, index: usize) -> Option<&[u8]> {
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            self.forwarded_for.get(index).copied()
        } else {
            None
        }
    }

    fn query(&self) -> Option<&str> {
        None
    }

    fn method(&self) -> &str {
        "GET"
    }
}
