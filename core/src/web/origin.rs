//! Cross-site request forgery protection for cookie-authenticated requests: verifying the
//! request's origin with standard headers, as OWASP's CSRF Prevention Cheat Sheet
//! describes ("Verifying Origin With Standard Headers").
//!
//! A browser attaches the session cookie to a form another site posts to this app; it never
//! lets that site set `Origin` (or, lacking it, `Referer`) to this app's origin. So an
//! unsafe request (any method but `GET`, `HEAD`, `OPTIONS`, `TRACE`) authenticated by the
//! cookie must name an allowed origin in `Origin`, or, without `Origin`, in `Referer`; with
//! neither, or with `Origin: null`, it is refused. Requests authenticated by a header or the
//! query are exempt: a browser never adds those to a cross-site request by itself.

use super::transport::RequestParts;
use crate::error::Error;

/// Which origins may send unsafe cookie-authenticated requests, set with
/// [`Keygate::with_allowed_origins`](crate::Keygate::with_allowed_origins).
///
/// The default accepts the request's own host: the `Host` header (or, in HTTP/2, the URI's
/// authority), with the port the origin's scheme implies when `Host` names none. A list
/// accepts exactly its origins (scheme, host and port), for apps behind a proxy that
/// rewrites `Host` or served on several names.
///
/// ```
/// use keygate::web::AllowedOrigins;
///
/// let origins = AllowedOrigins::list(["https://app.example", "http://localhost:8080"])?;
/// assert!(AllowedOrigins::list(["https://app.example/path"]).is_err());
/// # Ok::<(), keygate::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins {
    list: Option<Vec<Origin>>,
}

impl AllowedOrigins {
    /// The request's own host (the default).
    pub fn same_host() -> Self {
        Self::default()
    }

    /// Exactly these origins (`scheme://host[:port]`, `http` or `https`, no path); a
    /// malformed one is an [`Error::Config`].
    pub fn list(origins: impl IntoIterator<Item = impl AsRef<str>>) -> crate::error::Result<Self> {
        let list = origins
            .into_iter()
            .map(|text| {
                let text = text.as_ref();
                Origin::parse(text)
                    .ok_or_else(|| Error::Config(format!("{text:?} is not an origin")))
            })
            .collect::<crate::error::Result<Vec<_>>>()?;
        Ok(Self { list: Some(list) })
    }

    /// Whether `request` comes from an allowed origin, by its `Origin` header or, lacking
    /// one, its `Referer`. Neither, `Origin: null` or anything unreadable: no. With `https`
    /// (the app is served over HTTPS: its session cookie is `Secure`), the request's own
    /// host counts only with the `https` scheme.
    pub fn allow(&self, request: &impl RequestParts, https: bool) -> bool {
        self.verdict(request, https) == Verdict::Allowed
    }

    /// Whether `request` names an origin (in `Origin`, or lacking one in `Referer`) that is
    /// not allowed; a request naming none (a client that is not a browser) does not.
    pub fn names_foreign(&self, request: &impl RequestParts, https: bool) -> bool {
        self.verdict(request, https) == Verdict::Foreign
    }

    fn verdict(&self, request: &impl RequestParts, https: bool) -> Verdict {
        let named = match request.header("origin") {
            Some(origin) => std::str::from_utf8(origin).ok().map(Origin::parse),
            None => request
                .header("referer")
                .map(|referer| std::str::from_utf8(referer).ok().and_then(Origin::of_url)),
        };
        let origin = match named {
            None => return Verdict::Unnamed,
            Some(None) => return Verdict::Foreign,
            Some(Some(origin)) => origin,
        };
        let allowed = match &self.list {
            Some(list) => list.contains(&origin),
            None => {
                (origin.https || !https)
                    && own_authority(request)
                        .and_then(HostPort::parse)
                        .is_some_and(|own| origin.is_on(&own))
            }
        };
        if allowed {
            Verdict::Allowed
        } else {
            Verdict::Foreign
        }
    }
}

/// What a request's `Origin` (or `Referer`) says of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// An allowed origin.
    Allowed,
    /// Another origin, `null`, or something unreadable.
    Foreign,
    /// Neither header.
    Unnamed,
}

/// Whether a request with this method may change state, so that a cookie-authenticated one
/// needs its origin verified: everything but `GET`, `HEAD`, `OPTIONS` and `TRACE` (RFC 9110
/// safe methods; a method's name is case-sensitive).
pub fn is_unsafe_method(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE")
}

/// The authority the request was sent to: `Host`, or the URI's (HTTP/2's `:authority`).
fn own_authority(request: &impl RequestParts) -> Option<&str> {
    match request.header("host") {
        Some(host) => std::str::from_utf8(host).ok(),
        None => request.authority(),
    }
}

/// A web origin, normalised: scheme and host in lowercase, the port explicit.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    https: bool,
    host: String,
    port: u16,
}

impl Origin {
    /// `scheme://host[:port]`, exactly (an `Origin` header's form).
    fn parse(text: &str) -> Option<Self> {
        let (scheme, authority) = text.split_once("://")?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let HostPort { host, port } = HostPort::parse(authority)?;
        Some(Self {
            https,
            host,
            port: port.unwrap_or(if https { 443 } else { 80 }),
        })
    }

    /// The origin of a URL (a `Referer`): its scheme and authority.
    fn of_url(url: &str) -> Option<Self> {
        let (scheme, rest) = url.split_once("://")?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        Self::parse(&url[..scheme.len() + 3 + end])
    }

    /// Whether this origin is on `own` (the request's `Host`): same host, and the same port,
    /// where a `Host` without a port means the scheme's default.
    fn is_on(&self, own: &HostPort) -> bool {
        let default = if self.https { 443 } else { 80 };
        self.host == own.host && self.port == own.port.unwrap_or(default)
    }
}

/// `host[:port]` (a `Host` header, an origin's authority), the host in lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPort {
    host: String,
    port: Option<u16>,
}

impl HostPort {
    fn parse(text: &str) -> Option<Self> {
        let (host, port) = match text.strip_prefix('[') {
            // An IPv6 literal: `[::1]` or `[::1]:8080`.
            Some(rest) => {
                let (inside, after) = rest.split_once(']')?;
                let port = match after {
                    "" => None,
                    _ => Some(after.strip_prefix(':')?),
                };
                (&text[..inside.len() + 2], port)
            }
            None => match text.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            },
        };
        let port = match port {
            None | Some("") => None,
            Some(digits) if digits.bytes().all(|b| b.is_ascii_digit()) => {
                Some(digits.parse().ok()?)
            }
            Some(_) => return None,
        };
        let valid = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~[]:%".contains(&b));
        valid.then(|| Self {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::web::transport::TestRequest;

    fn req(headers: &[(&'static str, &'static str)]) -> TestRequest {
        headers
            .iter()
            .fold(TestRequest::new("POST"), |r, (name, value)| {
                r.header(name, value)
            })
    }

    fn same_host(headers: &[(&'static str, &'static str)]) -> bool {
        AllowedOrigins::same_host().allow(&req(headers), false)
    }

    #[test]
    fn origin_must_name_the_requests_own_host() {
        let host = ("host", "app.example");
        assert!(same_host(&[host, ("origin", "https://app.example")]));
        assert!(same_host(&[host, ("origin", "http://app.example")]));
        assert!(same_host(&[host, ("origin", "HTTPS://App.Example")]));
        assert!(same_host(&[
            ("host", "APP.example"),
            ("origin", "https://app.example")
        ]));
        assert!(!same_host(&[host, ("origin", "https://evil.example")]));
        assert!(!same_host(&[
            host,
            ("origin", "https://app.example.evil.example")
        ]));
        assert!(!same_host(&[host, ("origin", "https://evil.app.example")]));
        assert!(!same_host(&[host, ("origin", "null")]));
        assert!(!same_host(&[host, ("origin", "")]));
        assert!(!same_host(&[host, ("origin", "https://app.example/")]));
        assert!(!same_host(&[host, ("origin", "ftp://app.example")]));
        assert!(!same_host(&[host, ("origin", "https://a@app.example")]));
        assert!(!same_host(&[
            host,
            ("origin", "https://app.example https://x.example")
        ]));
        // No Host, no authority: nothing to compare with.
        assert!(!same_host(&[("origin", "https://app.example")]));
    }

    #[test]
    fn ports_count() {
        let host = ("host", "app.example:8080");
        assert!(same_host(&[host, ("origin", "http://app.example:8080")]));
        assert!(!same_host(&[host, ("origin", "http://app.example")]));
        assert!(!same_host(&[host, ("origin", "http://app.example:8081")]));
        let bare = ("host", "app.example");
        assert!(same_host(&[bare, ("origin", "http://app.example:80")]));
        assert!(same_host(&[bare, ("origin", "https://app.example:443")]));
        assert!(!same_host(&[bare, ("origin", "http://app.example:443")]));
        assert!(!same_host(&[bare, ("origin", "http://app.example:8080")]));
        assert!(!same_host(&[bare, ("origin", "http://app.example:99999")]));
        let v6 = ("host", "[::1]:3000");
        assert!(same_host(&[v6, ("origin", "http://[::1]:3000")]));
        assert!(!same_host(&[v6, ("origin", "http://[::2]:3000")]));
    }

    #[test]
    fn referer_serves_when_origin_is_missing() {
        let host = ("host", "app.example");
        assert!(same_host(&[
            host,
            ("referer", "https://app.example/page?q=1#x")
        ]));
        assert!(same_host(&[host, ("referer", "https://app.example")]));
        assert!(same_host(&[host, ("referer", "https://app.example?q")]));
        assert!(!same_host(&[
            host,
            ("referer", "https://evil.example/https://app.example")
        ]));
        assert!(!same_host(&[
            host,
            ("referer", "https://app.example.evil.example/")
        ]));
        assert!(!same_host(&[
            host,
            ("referer", "https://app.example@evil.example/")
        ]));
        assert!(!same_host(&[host, ("referer", "/relative")]));
        // Origin, when present, decides: a matching Referer does not rescue a foreign Origin.
        assert!(!same_host(&[
            host,
            ("origin", "https://evil.example"),
            ("referer", "https://app.example/")
        ]));
        assert!(!same_host(&[
            host,
            ("origin", "null"),
            ("referer", "https://app.example/")
        ]));
        // Neither header: refused.
        assert!(!same_host(&[host]));
    }

    #[test]
    fn http2_authority_stands_in_for_host() {
        let request = TestRequest {
            authority: Some("app.example"),
            ..req(&[("origin", "https://app.example")])
        };
        assert!(AllowedOrigins::same_host().allow(&request, false));
        let foreign = TestRequest {
            authority: Some("app.example"),
            ..req(&[("origin", "https://evil.example")])
        };
        assert!(!AllowedOrigins::same_host().allow(&foreign, false));
    }

    #[test]
    fn a_list_replaces_the_host_check() {
        let list = AllowedOrigins::list(["https://App.Example", "http://localhost:8080"]).unwrap();
        let allow = |headers: &[(&'static str, &'static str)]| list.allow(&req(headers), false);
        assert!(allow(&[
            ("host", "internal:3000"),
            ("origin", "https://app.example")
        ]));
        assert!(allow(&[("origin", "https://app.example:443")]));
        assert!(allow(&[("referer", "http://localhost:8080/x")]));
        assert!(!allow(&[
            ("host", "app.example"),
            ("origin", "http://app.example")
        ]));
        assert!(!allow(&[("origin", "http://localhost")]));
        assert!(!allow(&[("origin", "http://localhost:8081")]));
        assert!(!allow(&[("origin", "null")]));
        assert!(!allow(&[("host", "app.example")]));
        for bad in [
            "app.example",
            "https://",
            "https://a/b",
            "null",
            "ws://a",
            "https://a:x",
        ] {
            assert!(AllowedOrigins::list([bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_unsafe_methods_are_checked() {
        for safe in ["GET", "HEAD", "OPTIONS", "TRACE"] {
            assert!(!is_unsafe_method(safe), "{safe}");
        }
        for unsafe_ in ["POST", "PUT", "PATCH", "DELETE", "get", "PROPFIND"] {
            assert!(is_unsafe_method(unsafe_), "{unsafe_}");
        }
    }

    #[test]
    fn https_apps_accept_only_https_origins_of_their_host() {
        let own = AllowedOrigins::same_host();
        let http = req(&[("host", "app.example"), ("origin", "http://app.example")]);
        let https = req(&[("host", "app.example"), ("origin", "https://app.example")]);
        assert!(own.allow(&http, false) && own.allow(&https, false));
        assert!(!own.allow(&http, true) && own.allow(&https, true));
    }

    #[test]
    fn only_a_named_other_origin_is_foreign() {
        let own = AllowedOrigins::same_host();
        let host = ("host", "app.example");
        assert!(!own.names_foreign(&req(&[host]), false), "nothing named");
        assert!(own.names_foreign(&req(&[host, ("origin", "null")]), false));
        assert!(own.names_foreign(&req(&[host, ("origin", "https://evil.example")]), false));
        assert!(own.names_foreign(&req(&[host, ("referer", "https://evil.example/a")]), false));
        assert!(!own.names_foreign(&req(&[host, ("origin", "http://app.example")]), false));
    }
}
