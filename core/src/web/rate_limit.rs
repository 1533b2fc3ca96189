//! The rate limiter as a middleware applies it: which subject a request counts against
//! (the client IP by default, or a key function), and what is answered instead of the
//! handler when the limiter refuses (429 with `Retry-After` and the `RateLimit-*` headers).

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::envelope::Envelope;
use super::report::report_error;
use super::transport::RequestParts;
use crate::error::Error;
use crate::rate_limit::{RateLimitDecision, RateLimiter};
use crate::ttl::retry_after_secs;

/// What a middleware's key function sees of a request.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct KeyInput<'a> {
    /// The connection's peer address, when the framework knows it.
    pub peer: Option<IpAddr>,
    /// The client's IP: the peer, or from `X-Forwarded-For` when the peer is a trusted
    /// proxy ([`client_ip`]).
    pub client_ip: Option<IpAddr>,
    /// The request's headers and query.
    pub request: &'a dyn RequestParts,
}

type KeyFn = dyn Fn(&KeyInput<'_>) -> Option<String> + Send + Sync;

/// A limiter as the adapters' middleware applies it: which subject a request counts
/// against (by default its client IP, `ip:<address>`), and which proxies are trusted to
/// say who the client is. Cheap to clone.
#[derive(Clone)]
pub struct RateLimitPolicy {
    shared: Arc<Shared>,
}

#[derive(Clone)]
struct Shared {
    limiter: RateLimiter,
    trusted: Arc<[IpNet]>,
    key: Option<Arc<KeyFn>>,
}

impl std::fmt::Debug for RateLimitPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitPolicy")
            .field("limiter", &self.shared.limiter)
            .field("trusted_proxies", &self.shared.trusted)
            .finish_non_exhaustive()
    }
}

impl RateLimitPolicy {
    /// Every request counts against its client IP: the connection's peer address (no
    /// proxy is trusted). A request whose peer address the framework does not know counts
    /// against one shared subject, `ip:unknown`.
    pub fn new(limiter: RateLimiter) -> Self {
        Self {
            shared: Arc::new(Shared {
                limiter,
                trusted: Arc::from(Vec::new()),
                key: None,
            }),
        }
    }

    /// Trusts the proxies in these CIDR ranges ([`IpNet`]; a plain [`IpAddr`] is a range of
    /// one) to tell the client's address in `X-Forwarded-For` (all its header lines, in
    /// order, as one list): when the peer is inside one of them, the client IP is the
    /// rightmost address of the header that is not ([`client_ip`]). Never list a range
    /// clients can connect from directly. Replaces the ranges given before.
    pub fn with_trusted_proxies(
        mut self,
        proxies: impl IntoIterator<Item = impl Into<IpNet>>,
    ) -> Self {
        Arc::make_mut(&mut self.shared).trusted =
            proxies.into_iter().map(|net| net.into().trunc()).collect();
        self
    }

    /// Keys requests by `key` instead of the client IP; `None` lets a request through
    /// without counting it (an exempt route or client).
    pub fn with_key(
        mut self,
        key: impl Fn(&KeyInput<'_>) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        Arc::make_mut(&mut self.shared).key = Some(Arc::new(key));
        self
    }

    /// The limiter.
    pub fn limiter(&self) -> &RateLimiter {
        &self.shared.limiter
    }

    /// The subject a request counts against (`None`: not counted).
    pub fn subject(&self, peer: Option<IpAddr>, request: &dyn RequestParts) -> Option<String> {
        let client = peer.map(|peer| {
            if self.shared.trusted.is_empty() {
                return peer;
            }
            let forwarded = forwarded_for(request);
            client_ip(peer, forwarded.as_deref(), &self.shared.trusted)
        });
        match &self.shared.key {
            Some(key) => key(&KeyInput {
                peer,
                client_ip: client,
                request,
            }),
            None => Some(match client {
                Some(ip) => ip_subject(ip),
                None => "ip:unknown".to_owned(),
            }),
        }
    }

    /// Decides for a request's subject: `Ok` to run the handler (with the decision, `None`
    /// for an uncounted request), or the [`RateLimitRejection`] to answer instead (429, or
    /// 503/500 when the store failed and the limiter fails closed).
    pub async fn admit(
        &self,
        subject: Option<String>,
    ) -> std::result::Result<Option<RateLimitDecision>, RateLimitRejection> {
        let Some(subject) = subject else {
            return Ok(None);
        };
        match self.shared.limiter.check(&subject).await {
            Ok(decision) if decision.allowed => Ok(Some(decision)),
            Ok(decision) => Err(RateLimitRejection::too_many(&decision)),
            Err(error) => Err(RateLimitRejection::error(&error)),
        }
    }
}

/// Every line of `X-Forwarded-For`, in order, joined by commas: one list, as a proxy that
/// appends a line of its own (HAProxy's `option forwardfor`) means it. A line that is not
/// UTF-8 becomes a hop that does not parse (the walk stops there).
fn forwarded_for(request: &dyn RequestParts) -> Option<Cow<'_, str>> {
    const NAME: &str = "x-forwarded-for";
    let first = request.header_at(NAME, 0)?;
    let Some(second) = request.header_at(NAME, 1) else {
        return Some(String::from_utf8_lossy(first));
    };
    let mut joined = String::from_utf8_lossy(first).into_owned();
    for line in [second].into_iter().chain((2..).map_while(|i| request.header_at(NAME, i))) {
        joined.push(',');
        joined.push_str(&String::from_utf8_lossy(line));
    }
    Some(Cow::Owned(joined))
}

/// `ip:<address>`, as `format!("ip:{ip}")` writes it; IPv4 without the formatting
/// machinery, which costs more than the rest of the subject on every request.
fn ip_subject(ip: IpAddr) -> String {
    let mut subject = String::with_capacity(42);
    subject.push_str("ip:");
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    subject.push('.');
                }
                if octet >= 100 {
                    subject.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    subject.push(char::from(b'0' + octet / 10 % 10));
                }
                subject.push(char::from(b'0' + octet % 10));
            }
        }
        IpAddr::V6(_) => {
            use std::fmt::Write;
            let _ = write!(subject, "{ip}");
        }
    }
    subject
}

/// The client's IP for rate limiting: the connection's `peer`, unless `peer` is inside one
/// of the `trusted` proxy ranges; then the rightmost address of `X-Forwarded-For`
/// (`forwarded_for`, the header's lines joined by commas) that is not inside one. A
/// malformed hop stops the walk at the last trusted address seen, so a client cannot pick
/// its key by sending garbage.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    if let Some(header) = forwarded_for {
        for hop in header.rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = ip;
            if !is_trusted(&ip) {
                break;
            }
        }
    }
    client
}

impl RateLimitDecision {
    /// The IETF draft `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`
    /// headers (reset in whole seconds, rounded up), and for a refused request
    /// `Retry-After` (whole seconds, rounded up, at least 1).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("RateLimit-Limit", self.limit.to_string()),
            ("RateLimit-Remaining", self.remaining.to_string()),
            (
                "RateLimit-Reset",
                u64::try_from(self.reset.as_millis().div_ceil(1000))
                    .unwrap_or(u64::MAX)
                    .to_string(),
            ),
        ];
        if !self.allowed {
            headers.push((
                "Retry-After",
                retry_after_secs(self.retry_after).to_string(),
            ));
        }
        headers
    }
}

/// The `RateLimit-*` headers an adapter adds to an allowed answer of a rate-limited route
/// ([`RateLimitDecision::headers`]): none
/// for a request the policy's key function exempted (`None`), nor for one let through
/// because the store failed and the limiter fails open (`degraded`: nothing was decided,
/// so there is no budget to tell). A refusal carries its own headers
/// ([`RateLimitRejection`]).
pub fn rate_limit_headers(decision: Option<&RateLimitDecision>) -> Vec<(&'static str, String)> {
    match decision {
        Some(decision) if !decision.degraded => decision.headers(),
        _ => Vec::new(),
    }
}

/// The message of a refused request's envelope.
pub const TOO_MANY_REQUESTS: &str = "too many requests";

/// What an adapter answers instead of running the handler: the status, the headers and
/// the JSON envelope body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimitRejection {
    /// 429 (over the limit) or 503 (the store failed and the limiter fails closed) or 500
    /// (anything else).
    pub status: u16,
    /// Headers to set.
    pub headers: Vec<(&'static str, String)>,
    /// `{"success":false,"errorMsg":"..."}`.
    pub body: String,
}

impl RateLimitRejection {
    /// 429 for a refused decision.
    pub fn too_many(decision: &RateLimitDecision) -> Self {
        Self {
            status: 429,
            headers: decision.headers(),
            body: Envelope::error(TOO_MANY_REQUESTS).to_json(),
        }
    }

    /// 503 or 500 for an error (logged by the adapters' one policy).
    pub fn error(error: &Error) -> Self {
        report_error(error);
        Self {
            status: error.status(),
            headers: Vec::new(),
            body: error.body(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn ip_subjects_read_as_the_address_displays() {
        for octet in [0u8, 1, 9, 10, 42, 99, 100, 199, 200, 255] {
            let ip = IpAddr::from([octet, 255 - octet, octet / 2, 7]);
            assert_eq!(ip_subject(ip), format!("ip:{ip}"));
        }
        for text in ["::1", "2001:db8::7", "::ffff:192.0.2.1", "fe80::1:2:3:4"] {
            let ip: IpAddr = text.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
            assert_eq!(ip_subject(ip), format!("ip:{ip}"));
        }
    }

    #[test]
    fn forwarded_for_is_read_only_from_trusted_peers() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let peer: IpAddr = "203.0.113.9".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let xff = Some("1.1.1.1, 198.51.100.7");
        let trusted = [IpNet::from(proxy)];
        assert_eq!(client_ip(peer, xff, &trusted), peer);
        assert_eq!(
            client_ip(proxy, xff, &trusted),
            IpAddr::from([198, 51, 100, 7])
        );
        assert_eq!(
            client_ip(proxy, Some("198.51.100.7, 10.0.0.1"), &trusted),
            IpAddr::from([198, 51, 100, 7])
        );
        assert_eq!(client_ip(proxy, Some("junk"), &trusted), proxy);
        assert_eq!(client_ip(proxy, None, &trusted), proxy);
    }

    /// A proxy that appends a header line of its own (HAProxy's `option forwardfor`): the
    /// lines are one list, so the client's own line cannot pick the subject.
    #[test]
    #[cfg(feature = "memory")]
    fn every_forwarded_for_line_is_read_in_order() {
        use crate::web::transport::TestRequest;

        let store = crate::MemoryStore::new();
        let limiter = RateLimiter::new(store, "t", crate::rate_limit::Quota::per_minute(1));
        let Ok(limiter) = limiter else {
            panic!("a valid limiter");
        };
        let proxy = IpAddr::from([10, 0, 0, 1]);
        let policy = RateLimitPolicy::new(limiter).with_trusted_proxies([proxy]);
        let request = TestRequest::new("GET")
            .header("x-forwarded-for", "6.6.6.6")
            .header("x-forwarded-for", "198.51.100.7, 10.0.0.1");
        assert_eq!(
            policy.subject(Some(proxy), &request).as_deref(),
            Some("ip:198.51.100.7")
        );
        let garbage = TestRequest::new("GET")
            .header("x-forwarded-for", "198.51.100.7")
            .header("x-forwarded-for", [0xff, 0xfe]);
        assert_eq!(
            policy.subject(Some(proxy), &garbage).as_deref(),
            Some("ip:10.0.0.1"),
            "a line that is not text stops the walk"
        );
    }

    fn net(text: &str) -> IpNet {
        text.parse().unwrap_or_else(|_| panic!("a CIDR range: {text}"))
    }

    /// Trusted proxies are CIDR ranges: the walk from the right skips every address inside
    /// any of them, and a peer inside one is a proxy.
    #[test]
    fn trusted_proxies_are_ranges() {
        let trusted = [net("10.0.0.0/8"), net("2001:db8:ffff::/48")];
        let xff = "198.51.100.7, 10.1.2.3, 2001:db8:ffff:1::9, 10.200.0.1";
        assert_eq!(
            client_ip(IpAddr::from([10, 9, 9, 9]), Some(xff), &trusted),
            IpAddr::from([198, 51, 100, 7])
        );
        let outside = IpAddr::from([11, 0, 0, 1]);
        assert_eq!(client_ip(outside, Some(xff), &trusted), outside);
    }

    /// Plain addresses still name single proxies.
    #[test]
    #[cfg(feature = "memory")]
    fn plain_addresses_and_ranges_are_both_accepted() {
        let limiter =
            RateLimiter::new(crate::MemoryStore::new(), "t", crate::rate_limit::Quota::per_minute(1));
        let Ok(limiter) = limiter else {
            panic!("a valid limiter");
        };
        let request = crate::web::transport::TestRequest::new("GET")
            .header("x-forwarded-for", "198.51.100.7");
        let single = RateLimitPolicy::new(limiter.clone())
            .with_trusted_proxies([IpAddr::from([10, 0, 0, 1])]);
        let range = RateLimitPolicy::new(limiter).with_trusted_proxies([net("10.0.0.0/24")]);
        for peer in [[10, 0, 0, 1], [10, 0, 0, 2]] {
            let peer = IpAddr::from(peer);
            let expected = if peer == IpAddr::from([10, 0, 0, 1]) {
                "ip:198.51.100.7".to_owned()
            } else {
                format!("ip:{peer}")
            };
            assert_eq!(single.subject(Some(peer), &request), Some(expected));
            assert_eq!(
                range.subject(Some(peer), &request).as_deref(),
                Some("ip:198.51.100.7")
            );
        }
    }

    #[test]
    fn rejections_carry_the_headers() {
        let decision = RateLimitDecision {
            allowed: false,
            limit: 3,
            remaining: 0,
            retry_after: Duration::from_millis(19_001),
            reset: Duration::from_millis(59_001),
            degraded: false,
        };
        let refusal = RateLimitRejection::too_many(&decision);
        assert_eq!(refusal.status, 429);
        assert_eq!(
            refusal.body,
            r#"{"success":false,"errorMsg":"too many requests"}"#
        );
        assert!(refusal.headers.contains(&("Retry-After", "20".into())));
        assert!(refusal.headers.contains(&("RateLimit-Reset", "60".into())));
        assert!(refusal.headers.contains(&("RateLimit-Limit", "3".into())));
    }
}
