//! The framework-neutral HTTP side every adapter shares: reading a request's token
//! ([`TokenReader`]), the CSRF origin check of cookie-authenticated unsafe requests
//! ([`AllowedOrigins`]), the session cookie ([`SessionCookie`]), the gate that loads a
//! request's session ([`Keygate`]) and the session a handler holds ([`CurrentSession`]),
//! the JSON [`Envelope`], why a request is turned away ([`Rejection`]) and what each
//! capability's outcome answers, and the rate limiter as a middleware applies it
//! ([`RateLimitPolicy`]).
//!
//! The capabilities below know nothing of HTTP; the adapters translate this module into
//! their frameworks' types.

#[cfg(any(feature = "codes", feature = "locks", feature = "flash-sale"))]
mod answer;
#[cfg(feature = "rate-limit")]
mod client_addr;
mod cookie;
mod envelope;
pub(crate) mod gate;
mod origin;
#[cfg(feature = "rate-limit")]
pub(crate) mod rate_limit;
mod rejection;
pub(crate) mod report;
mod transport;

#[cfg(feature = "rate-limit")]
pub use self::client_addr::client_ip;
pub use self::cookie::{DEFAULT_COOKIE_NAME, SessionCookie};
pub use self::envelope::Envelope;
pub use self::gate::{CurrentSession, Keygate};
pub use self::origin::{AllowedOrigins, is_unsafe_method};
#[cfg(feature = "rate-limit")]
pub use self::rate_limit::{
    KeyInput, NO_CLIENT_ADDRESS, RateLimitPolicy, RateLimitRejection, Subject, TOO_MANY_REQUESTS,
};
pub use self::rejection::Rejection;
pub use self::transport::{RequestParts, TokenReader, TokenSource};
pub use crate::ttl::retry_after_secs;
/// A CIDR range (or a single address) of trusted proxies, from the `ipnet` crate:
/// `"10.0.0.0/8".parse::<IpNet>()`, or `IpNet::from(ip)`.
#[cfg(feature = "rate-limit")]
pub use ipnet::IpNet;
