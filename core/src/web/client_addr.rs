//! The client's address as the rate limit counts it: read from the peer or, behind trusted
//! proxies, from `X-Forwarded-For`; IPv4-mapped IPv6 addresses taken as IPv4; grouped by
//! prefix length into the subject `ip:<address>` or `ip:<network>/<length>`.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net};

use super::transport::RequestParts;
use crate::error::{Error, Result};

/// How many leading bits of a client's address its subject keeps: clients whose addresses
/// share them share a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PrefixLengths {
    v4: u8,
    v6: u8,
}

impl PrefixLengths {
    /// Each IPv4 address alone; IPv6 per /64, the block one host (or one home) is given
    /// to pick addresses from.
    pub(crate) const DEFAULT: Self = Self { v4: 32, v6: 64 };

    /// `v4` at most 32, `v6` at most 128; anything else is [`Error::Config`].
    pub(crate) fn new(v4: u8, v6: u8) -> Result<Self> {
        if v4 > 32 || v6 > 128 {
            return Err(Error::Config(format!(
                "rate limit: prefix lengths must be at most 32 (IPv4) and 128 (IPv6), not \
                 {v4} and {v6}"
            )));
        }
        Ok(Self { v4, v6 })
    }
}

/// `ip` with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack socket
/// reports for an IPv4 client) made the IPv4 address it maps.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// `net` truncated to its network, an IPv4-mapped IPv6 range of at least /96 made the IPv4
/// range it maps (so that it matches canonical addresses).
pub(crate) fn canonical_net(net: IpNet) -> IpNet {
    match net.trunc() {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => v6
            .network()
            .to_ipv4_mapped()
            .and_then(|v4| Ipv4Net::new(v4, v6.prefix_len() - 96).ok())
            .map_or(IpNet::V6(v6), IpNet::V4),
        other => other,
    }
}

/// Every line of `X-Forwarded-For`, in order, joined by commas: one list, as a proxy that
/// appends a line of its own (HAProxy's `option forwardfor`) means it. A line that is not
/// UTF-8 becomes a hop that does not parse (the walk stops there).
pub(crate) fn forwarded_for(request: &dyn RequestParts) -> Option<Cow<'_, str>> {
    const NAME: &str = "x-forwarded-for";
    let first = request.header_at(NAME, 0)?;
    let Some(second) = request.header_at(NAME, 1) else {
        return Some(String::from_utf8_lossy(first));
    };
    let mut joined = String::from_utf8_lossy(first).into_owned();
    for line in [second]
        .into_iter()
        .chain((2..).map_while(|i| request.header_at(NAME, i)))
    {
        joined.push(',');
        joined.push_str(&String::from_utf8_lossy(line));
    }
    Some(Cow::Owned(joined))
}

/// The client's IP for rate limiting: the connection's `peer`, unless `peer` is inside one
/// of the `trusted` proxy ranges; then the rightmost address of `X-Forwarded-For`
/// (`forwarded_for`, the header's lines joined by commas) that is not inside one. A
/// malformed hop stops the walk at the last trusted address seen, so a client cannot pick
/// its key by sending garbage. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`), of the peer,
/// of the hops and of the ranges, count as the IPv4 addresses they map; the answer is
/// such an IPv4 address too.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| {
        trusted
            .iter()
            .any(|net| net.contains(ip) || canonical_net(*net).contains(ip))
    };
    let peer = canonical(peer);
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    if let Some(header) = forwarded_for {
        for hop in header.rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = canonical(ip);
            if !is_trusted(&client) {
                break;
            }
        }
    }
    client
}

/// The subject of a client address (canonical, see [`canonical`]): `ip:<address>` when the
/// prefix keeps the whole address (IPv4 /32, IPv6 /128), else `ip:<network>/<length>`
/// (`ip:2001:db8:1:2::/64`, `ip:192.0.2.0/24`), the network as `Display` writes it (RFC 5952
/// for IPv6). IPv4 is written without the formatting machinery, which costs more than the
/// rest of the subject on every request.
pub(crate) fn ip_subject(ip: IpAddr, prefixes: PrefixLengths) -> String {
    let mut subject = String::with_capacity(46);
    subject.push_str("ip:");
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4) & mask_u32(prefixes.v4);
            for (i, octet) in bits.to_be_bytes().into_iter().enumerate() {
                if i > 0 {
                    subject.push('.');
                }
                push_decimal(&mut subject, octet);
            }
            if prefixes.v4 < 32 {
                subject.push('/');
                push_decimal(&mut subject, prefixes.v4);
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write;
            let network = Ipv6Addr::from(u128::from(v6) & mask_u128(prefixes.v6));
            let _ = write!(subject, "{network}");
            if prefixes.v6 < 128 {
                subject.push('/');
                push_decimal(&mut subject, prefixes.v6);
            }
        }
    }
    subject
}

/// A byte in decimal, without leading zeros.
fn push_decimal(out: &mut String, n: u8) {
    if n >= 100 {
        out.push(char::from(b'0' + n / 100));
    }
    if n >= 10 {
        out.push(char::from(b'0' + n / 10 % 10));
    }
    out.push(char::from(b'0' + n % 10));
}

/// The leading `len` bits set (`len` at most 32).
fn mask_u32(len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0)
}

/// The leading `len` bits set (`len` at most 128).
fn mask_u128(len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(len.min(128)))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or_else(|_| panic!("an address: {text}"))
    }

    fn net(text: &str) -> IpNet {
        text.parse()
            .unwrap_or_else(|_| panic!("a CIDR range: {text}"))
    }

    fn full() -> PrefixLengths {
        PrefixLengths { v4: 32, v6: 128 }
    }

    #[test]
    fn whole_address_subjects_read_as_the_address_displays() {
        for octet in [0u8, 1, 9, 10, 42, 99, 100, 199, 200, 255] {
            let ip = IpAddr::from([octet, 255 - octet, octet / 2, 7]);
            assert_eq!(ip_subject(ip, full()), format!("ip:{ip}"));
            assert_eq!(ip_subject(ip, PrefixLengths::DEFAULT), format!("ip:{ip}"));
        }
        for text in ["::1", "2001:db8::7", "fe80::1:2:3:4"] {
            let ip = addr(text);
            assert_eq!(ip_subject(ip, full()), format!("ip:{ip}"));
        }
    }

    #[test]
    fn prefixes_group_addresses_into_readable_networks() {
        let v6 = addr("2001:db8:1:2:3:4:5:6");
        assert_eq!(
            ip_subject(v6, PrefixLengths::DEFAULT),
            "ip:2001:db8:1:2::/64"
        );
        let wide = PrefixLengths::new(24, 48).unwrap_or(PrefixLengths::DEFAULT);
        assert_eq!(ip_subject(v6, wide), "ip:2001:db8:1::/48");
        assert_eq!(ip_subject(addr("192.0.2.77"), wide), "ip:192.0.2.0/24");
        let odd = PrefixLengths::new(9, 0).unwrap_or(PrefixLengths::DEFAULT);
        assert_eq!(ip_subject(addr("192.255.2.77"), odd), "ip:192.128.0.0/9");
        assert_eq!(ip_subject(v6, odd), "ip:::/0");
        let zero = PrefixLengths::new(0, 128).unwrap_or(PrefixLengths::DEFAULT);
        assert_eq!(ip_subject(addr("192.0.2.77"), zero), "ip:0.0.0.0/0");
    }

    #[test]
    fn prefix_lengths_beyond_the_address_are_a_config_error() {
        for (v4, v6) in [(33, 64), (32, 129), (255, 255)] {
            assert!(
                matches!(PrefixLengths::new(v4, v6), Err(Error::Config(_))),
                "{v4} {v6}"
            );
        }
        assert!(PrefixLengths::new(32, 128).is_ok());
        assert!(PrefixLengths::new(0, 0).is_ok());
    }

    #[test]
    fn forwarded_for_is_read_only_from_trusted_peers() {
        let proxy = addr("10.0.0.1");
        let peer = addr("203.0.113.9");
        let xff = Some("1.1.1.1, 198.51.100.7");
        let trusted = [IpNet::from(proxy)];
        assert_eq!(client_ip(peer, xff, &trusted), peer);
        assert_eq!(client_ip(proxy, xff, &trusted), addr("198.51.100.7"));
        assert_eq!(
            client_ip(proxy, Some("198.51.100.7, 10.0.0.1"), &trusted),
            addr("198.51.100.7")
        );
        assert_eq!(client_ip(proxy, Some("junk"), &trusted), proxy);
        assert_eq!(client_ip(proxy, None, &trusted), proxy);
    }

    /// Trusted proxies are CIDR ranges: the walk from the right skips every address inside
    /// any of them, and a peer inside one is a proxy.
    #[test]
    fn trusted_proxies_are_ranges() {
        let trusted = [net("10.0.0.0/8"), net("2001:db8:ffff::/48")];
        let xff = "198.51.100.7, 10.1.2.3, 2001:db8:ffff:1::9, 10.200.0.1";
        assert_eq!(
            client_ip(addr("10.9.9.9"), Some(xff), &trusted),
            addr("198.51.100.7")
        );
        let outside = addr("11.0.0.1");
        assert_eq!(client_ip(outside, Some(xff), &trusted), outside);
    }

    /// Mapped addresses are IPv4 everywhere: the peer, the hops, and the ranges (given to
    /// `client_ip` directly, without the policy's canonicalisation).
    #[test]
    fn mapped_addresses_are_ipv4_in_the_walk() {
        let trusted = [net("::ffff:10.0.0.0/104")];
        assert_eq!(canonical_net(trusted[0]), net("10.0.0.0/8"));
        assert_eq!(canonical_net(net("10.1.2.3/8")), net("10.0.0.0/8"));
        assert_eq!(canonical_net(net("2001:db8::1/64")), net("2001:db8::/64"));
        let xff = Some("::ffff:198.51.100.7, ::ffff:10.9.0.1");
        for peer in ["10.0.0.1", "::ffff:10.0.0.1"] {
            assert_eq!(
                client_ip(addr(peer), xff, &trusted),
                addr("198.51.100.7"),
                "{peer}"
            );
        }
        assert_eq!(
            client_ip(addr("::ffff:192.0.2.1"), None, &[]),
            addr("192.0.2.1")
        );
    }
}
