//! The rate limiter as a middleware applies it: which subject a request counts against
//! (the client IP by default, or a key function), and what is answered instead of the
//! handler when the limiter refuses (429 with `Retry-After` and the `RateLimit-*` headers).
//!
//! The client IP is the connection's peer address or, when the peer is inside a trusted
//! proxy range, the rightmost address of `X-Forwarded-For` (every header line, in order)
//! outside those ranges ([`client_ip`]). IPv4-mapped IPv6 addresses count as IPv4, and
//! addresses are grouped by prefix (IPv4 /32, IPv6 /64 by default:
//! [`RateLimitPolicy::with_prefix_lengths`]). A request without a peer address and
//! without a key function is answered 500 ([`Subject::NoPeerAddress`]), logged once per
//! process at ERROR. A refusal is held by the limiter until its retry-after
//! ([`RateLimiter::with_refusal_cache`]): the same 429 without a Redis call.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ipnet::IpNet;

use super::client_addr::{
    PrefixLengths, canonical, canonical_net, client_ip, forwarded_for, ip_subject,
};
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
    /// The connection's peer address, when the framework knows it (an IPv4-mapped IPv6
    /// address as the IPv4 address it maps).
    pub peer: Option<IpAddr>,
    /// The client's IP: the peer, or from `X-Forwarded-For` when the peer is a trusted
    /// proxy ([`client_ip`]); the whole address, not grouped by prefix.
    pub client_ip: Option<IpAddr>,
    /// The request's headers and query.
    pub request: &'a dyn RequestParts,
}

type KeyFn = dyn Fn(&KeyInput<'_>) -> Option<String> + Send + Sync;

/// A limiter as the adapters' middleware applies it: which subject a request counts
/// against (by default its client IP: `ip:<address>` for IPv4, `ip:<network>/64` for
/// IPv6, see [`with_prefix_lengths`](Self::with_prefix_lengths)), and which proxies are
/// trusted to say who the client is. Cheap to clone.
#[derive(Clone)]
pub struct RateLimitPolicy {
    shared: Arc<Shared>,
}

#[derive(Clone)]
struct Shared {
    limiter: RateLimiter,
    trusted: Arc<[IpNet]>,
    prefixes: PrefixLengths,
    key: Option<Arc<KeyFn>>,
    peer_hint: &'static str,
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
    /// proxy is trusted). A request whose peer address the framework does not know is
    /// answered 500 ([`Subject::NoPeerAddress`]), unless a key function
    /// ([`with_key`](Self::with_key)) keys it.
    pub fn new(limiter: RateLimiter) -> Self {
        Self {
            shared: Arc::new(Shared {
                limiter,
                trusted: Arc::from(Vec::new()),
                prefixes: PrefixLengths::DEFAULT,
                key: None,
                peer_hint: "",
            }),
        }
    }

    /// What the adapter's framework needs to report peer addresses, logged with a request
    /// that has none ([`Subject::NoPeerAddress`]). Set by the adapters.
    #[doc(hidden)]
    pub fn with_peer_hint(mut self, hint: &'static str) -> Self {
        Arc::make_mut(&mut self.shared).peer_hint = hint;
        self
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
        Arc::make_mut(&mut self.shared).trusted = proxies
            .into_iter()
            .map(|net| canonical_net(net.into()))
            .collect();
        self
    }

    /// Groups client addresses by prefix: clients whose addresses share the leading `v4`
    /// (IPv4) or `v6` (IPv6) bits share a budget, with the subject `ip:<network>/<length>`
    /// (`ip:2001:db8:1:2::/64`); a whole address stays `ip:<address>`. The default is 32
    /// and 64: each IPv4 address alone, and IPv6 per /64, since one host is commonly given
    /// a /64 and picks addresses from it at will. Fails with [`Error::Config`] for `v4`
    /// above 32 or `v6` above 128 (nothing is clamped: a typo must not quietly count each
    /// address alone). A key function ([`with_key`](Self::with_key)) sees the whole
    /// address.
    pub fn with_prefix_lengths(mut self, v4: u8, v6: u8) -> crate::error::Result<Self> {
        Arc::make_mut(&mut self.shared).prefixes = PrefixLengths::new(v4, v6)?;
        Ok(self)
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

    /// The subject a request counts against: the key function's answer (`None` is
    /// [`Subject::Exempt`]), or else the client IP's group; without a peer address and
    /// without a key function, [`Subject::NoPeerAddress`].
    pub fn subject(&self, peer: Option<IpAddr>, request: &dyn RequestParts) -> Subject {
        let peer = peer.map(canonical);
        let client = peer.map(|peer| {
            if self.shared.trusted.is_empty() {
                return peer;
            }
            let forwarded = forwarded_for(request);
            client_ip(peer, forwarded.as_deref(), &self.shared.trusted)
        });
        match (&self.shared.key, client) {
            (Some(key), _) => key(&KeyInput {
                peer,
                client_ip: client,
                request,
            })
            .into(),
            (None, Some(ip)) => Subject::Counted(ip_subject(ip, self.shared.prefixes)),
            (None, None) => Subject::NoPeerAddress,
        }
    }

    /// Decides for a request's subject: `Ok` to run the handler (with the decision, `None`
    /// for an uncounted request), or the [`RateLimitRejection`] to answer instead (429, or
    /// 503/500 when the store failed and the limiter fails closed, or 500 without a peer
    /// address).
    pub async fn admit(
        &self,
        subject: impl Into<Subject>,
    ) -> std::result::Result<Option<RateLimitDecision>, RateLimitRejection> {
        let subject = match subject.into() {
            Subject::Counted(subject) => subject,
            Subject::Exempt => return Ok(None),
            Subject::NoPeerAddress => {
                report_no_peer_address(self.shared.peer_hint);
                return Err(RateLimitRejection::no_peer_address());
            }
        };
        match self.shared.limiter.check(&subject).await {
            Ok(decision) if decision.allowed => Ok(Some(decision)),
            Ok(decision) => Err(RateLimitRejection::too_many(&decision)),
            Err(error) => Err(RateLimitRejection::error(&error)),
        }
    }
}

/// Which budget a request counts against ([`RateLimitPolicy::subject`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subject {
    /// Counted against this subject (`ip:192.0.2.7`, a key function's answer).
    Counted(String),
    /// Not counted: the key function exempted the request.
    Exempt,
    /// The framework reported no peer address and the policy has no key function: the
    /// request cannot be told apart from any other, so it is answered 500 rather than
    /// share one budget with every such request (a deployment error, logged once).
    NoPeerAddress,
}

impl Subject {
    /// The subject a counted request counts against.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Counted(subject) => Some(subject),
            _ => None,
        }
    }
}

/// `Some` is counted, `None` exempt.
impl From<Option<String>> for Subject {
    fn from(subject: Option<String>) -> Self {
        subject.map_or(Self::Exempt, Self::Counted)
    }
}

impl From<String> for Subject {
    fn from(subject: String) -> Self {
        Self::Counted(subject)
    }
}

/// The message of the 500 answered to a request without a peer address
/// ([`Subject::NoPeerAddress`]).
pub const NO_CLIENT_ADDRESS: &str = "rate limit: the client's address is unknown";

/// Logs the first request without a peer address at ERROR, once per process: it is a
/// deployment error, the same for every request until it is fixed.
fn report_no_peer_address(hint: &str) {
    static LOGGED: AtomicBool = AtomicBool::new(false);
    if !LOGGED.swap(true, Ordering::Relaxed) {
        tracing::error!(
            "rate limit: a request has no peer address and the policy has no key function; \
             answering 500 (logged once per process). Serve the app so that the framework \
             reports each connection's peer address, or key requests by a key function \
             (RateLimitPolicy::with_key). {hint}"
        );
    }
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
    /// (no peer address, or anything else).
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

    /// 500 for a request without a peer address ([`Subject::NoPeerAddress`]).
    pub fn no_peer_address() -> Self {
        Self {
            status: 500,
            headers: Vec::new(),
            body: Envelope::error(NO_CLIENT_ADDRESS).to_json(),
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
            policy.subject(Some(proxy), &request).as_str(),
            Some("ip:198.51.100.7")
        );
        let garbage = TestRequest::new("GET")
            .header("x-forwarded-for", "198.51.100.7")
            .header("x-forwarded-for", [0xff, 0xfe]);
        assert_eq!(
            policy.subject(Some(proxy), &garbage).as_str(),
            Some("ip:10.0.0.1"),
            "a line that is not text stops the walk"
        );
    }

    #[cfg(feature = "memory")]
    fn policy(trusted: &[&str]) -> RateLimitPolicy {
        let limiter = RateLimiter::new(
            crate::MemoryStore::new(),
            "t",
            crate::rate_limit::Quota::per_minute(1),
        );
        let Ok(limiter) = limiter else {
            panic!("a valid limiter");
        };
        RateLimitPolicy::new(limiter).with_trusted_proxies(trusted.iter().map(|t| net(t)))
    }

    #[cfg(feature = "memory")]
    fn addr(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or_else(|_| panic!("an address: {text}"))
    }

    /// IPv6 clients count per /64 by default (one host gets a /64 to pick addresses
    /// from); IPv4 per address, as before.
    #[test]
    #[cfg(feature = "memory")]
    fn ipv6_clients_count_per_64_by_default() {
        let policy = policy(&[]);
        let request = crate::web::transport::TestRequest::new("GET");
        for peer in ["2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"] {
            assert_eq!(
                policy.subject(Some(addr(peer)), &request).as_str(),
                Some("ip:2001:db8:1:2::/64"),
                "{peer}"
            );
        }
        assert_eq!(
            policy.subject(Some(addr("192.0.2.7")), &request).as_str(),
            Some("ip:192.0.2.7")
        );
    }

    /// The prefix lengths are the policy's: validated, and applied to the subject.
    #[test]
    #[cfg(feature = "memory")]
    fn prefix_lengths_are_configured_on_the_policy() {
        let request = crate::web::transport::TestRequest::new("GET");
        let Ok(wide) = policy(&[]).with_prefix_lengths(24, 48) else {
            panic!("valid prefix lengths");
        };
        assert_eq!(
            wide.subject(Some(addr("192.0.2.7")), &request).as_str(),
            Some("ip:192.0.2.0/24")
        );
        assert_eq!(
            wide.subject(Some(addr("2001:db8:1:2::1")), &request)
                .as_str(),
            Some("ip:2001:db8:1::/48")
        );
        let Ok(whole) = policy(&[]).with_prefix_lengths(32, 128) else {
            panic!("valid prefix lengths");
        };
        assert_eq!(
            whole
                .subject(Some(addr("2001:db8:1:2::1")), &request)
                .as_str(),
            Some("ip:2001:db8:1:2::1")
        );
        for (v4, v6) in [(33, 64), (32, 129)] {
            let error = policy(&[]).with_prefix_lengths(v4, v6).err();
            assert!(matches!(error, Some(Error::Config(_))), "{v4} {v6}");
        }
    }

    /// An IPv4 client seen through a dual-stack socket (`::ffff:a.b.c.d`) is that IPv4
    /// client: as the peer, as a hop of `X-Forwarded-For`, and as a trusted proxy.
    #[test]
    #[cfg(feature = "memory")]
    fn ipv4_mapped_addresses_are_ipv4() {
        let policy = policy(&["10.0.0.0/24", "::ffff:10.1.0.0/120"]);
        let plain = crate::web::transport::TestRequest::new("GET");
        assert_eq!(
            policy
                .subject(Some(addr("::ffff:192.0.2.1")), &plain)
                .as_str(),
            Some("ip:192.0.2.1")
        );
        let forwarded = crate::web::transport::TestRequest::new("GET")
            .header("x-forwarded-for", "::ffff:198.51.100.7, ::ffff:10.1.0.9");
        for proxy in ["::ffff:10.0.0.1", "10.0.0.1", "10.1.0.3", "::ffff:10.1.0.3"] {
            assert_eq!(
                policy.subject(Some(addr(proxy)), &forwarded).as_str(),
                Some("ip:198.51.100.7"),
                "through {proxy}"
            );
        }
    }

    #[cfg(feature = "memory")]
    fn net(text: &str) -> IpNet {
        text.parse()
            .unwrap_or_else(|_| panic!("a CIDR range: {text}"))
    }

    /// Plain addresses still name single proxies.
    #[test]
    #[cfg(feature = "memory")]
    fn plain_addresses_and_ranges_are_both_accepted() {
        let limiter = RateLimiter::new(
            crate::MemoryStore::new(),
            "t",
            crate::rate_limit::Quota::per_minute(1),
        );
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
            assert_eq!(
                single.subject(Some(peer), &request),
                Subject::Counted(expected)
            );
            assert_eq!(
                range.subject(Some(peer), &request).as_str(),
                Some("ip:198.51.100.7")
            );
        }
    }

    /// Without a peer address and a key function a request is refused with 500 (it used
    /// to share `ip:unknown` with every such request); a key function still keys it.
    #[tokio::test]
    #[cfg(feature = "memory")]
    async fn a_request_without_a_peer_address_is_500_unless_a_key_function_keys_it() {
        let request = crate::web::transport::TestRequest::new("GET");
        let policy = policy(&[]);
        assert_eq!(policy.subject(None, &request), Subject::NoPeerAddress);
        let refusal = policy.admit(policy.subject(None, &request)).await.err();
        let Some(refusal) = refusal else {
            panic!("refused");
        };
        assert_eq!(refusal.status, 500);
        assert_eq!(
            refusal.body,
            r#"{"success":false,"errorMsg":"rate limit: the client's address is unknown"}"#
        );
        assert!(refusal.headers.is_empty());
        let keyed = policy.clone().with_key(|_| Some("k".to_owned()));
        assert_eq!(keyed.subject(None, &request), Subject::Counted("k".into()));
        let exempt = policy.with_key(|_| None);
        assert_eq!(exempt.subject(None, &request), Subject::Exempt);
        assert!(matches!(exempt.admit(Subject::Exempt).await, Ok(None)));
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
