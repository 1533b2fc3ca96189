//! Reading the token from a request, shared by every adapter.

use crate::token::{MAX_TOKEN_LEN, MalformedToken, Token, TokenFormats};

/// Where a client may put its token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// A header (name in lowercase) holding the raw token, as the Java seed sends
    /// `authorization: <token>`, or `Bearer <token>`.
    Header(String),
    /// A query parameter, as the Node seed sends `?tokenid=<token>`.
    Query(String),
    /// A cookie.
    Cookie(String),
}

/// The parts of an HTTP request the gate looks at: the token reader, and the origin check
/// of cookie-authenticated requests. Each adapter implements it for its framework's
/// request type.
pub trait RequestParts {
    /// The first value of a header (`name` is lowercase), as raw bytes.
    fn header(&self, name: &str) -> Option<&[u8]>;
    /// The raw query string, without the `?`.
    fn query(&self) -> Option<&str>;
    /// The method, as sent (`"GET"`, `"POST"`, ...): unsafe methods authenticated by a
    /// cookie get their origin checked.
    fn method(&self) -> &str;
    /// The authority of the request's URI, when it has one (HTTP/2's `:authority`, an
    /// absolute-form HTTP/1.1 target): the request's own host when there is no `Host`
    /// header. `None` when the framework does not expose it; then a request without `Host`
    /// has no host of its own, and the default origin check refuses it.
    fn authority(&self) -> Option<&str> {
        None
    }
    /// The `index`-th value of a header (`name` is lowercase), for headers sent several
    /// times: HTTP/2 clients split `cookie` over several fields, and a proxy may append an
    /// `X-Forwarded-For` line of its own. The default knows only the first: an
    /// implementation for a real request must return every value, in order (the rate
    /// limit reads the client's address from the last lines).
    fn header_at(&self, name: &str, index: usize) -> Option<&[u8]> {
        if index == 0 { self.header(name) } else { None }
    }
}

/// Reads the token from the configured sources, in order; the first source present wins.
///
/// The default reads the `authorization` header (raw or `Bearer`), then the `tokenid` query
/// parameter.
///
/// ```
/// use keygate::{TokenReader, TokenSource};
/// use keygate::web::RequestParts;
///
/// struct Req(&'static str);
/// impl RequestParts for Req {
///     fn header(&self, _: &str) -> Option<&[u8]> { None }
///     fn query(&self) -> Option<&str> { Some(self.0) }
///     fn method(&self) -> &str { "GET" }
/// }
///
/// let reader = TokenReader::default().with_source(TokenSource::Cookie("token".into()));
/// let token = reader.read(&Req("tokenid=dd9b7511874889f4192fbda3d8b0881c")).unwrap();
/// assert_eq!(token.unwrap().expose(), "dd9b7511874889f4192fbda3d8b0881c");
/// assert!(reader.read(&Req("tokenid=*")).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenReader {
    sources: Vec<TokenSource>,
}

impl Default for TokenReader {
    fn default() -> Self {
        Self::new([
            TokenSource::Header("authorization".into()),
            TokenSource::Query("tokenid".into()),
        ])
    }
}

impl TokenReader {
    /// A reader over these sources, tried in order.
    pub fn new(sources: impl IntoIterator<Item = TokenSource>) -> Self {
        let sources = sources
            .into_iter()
            .map(|source| match source {
                TokenSource::Header(name) => TokenSource::Header(name.to_ascii_lowercase()),
                other => other,
            })
            .collect();
        Self { sources }
    }

    /// Adds a source, tried after the others (for example a cookie).
    pub fn with_source(mut self, source: TokenSource) -> Self {
        self.sources.extend(Self::new([source]).sources);
        self
    }

    /// Adds the cookie `name` as the last source unless the reader already reads it.
    pub(crate) fn with_cookie_source(self, name: &str) -> Self {
        let present = self
            .sources
            .iter()
            .any(|source| matches!(source, TokenSource::Cookie(n) if n == name));
        if present {
            self
        } else {
            self.with_source(TokenSource::Cookie(name.to_owned()))
        }
    }

    /// The sources, in order.
    pub fn sources(&self) -> &[TokenSource] {
        &self.sources
    }

    /// The token of the first source present: `Ok(None)` when no source carries one,
    /// `Err` when the first one present is not a well-formed token of the standard forms
    /// ([`TokenFormats::standard`]).
    pub fn read(&self, request: &impl RequestParts) -> Result<Option<Token>, MalformedToken> {
        self.read_as(request, TokenFormats::standard())
    }

    /// Like [`read`](Self::read), accepting the token forms `formats`.
    pub fn read_as(
        &self,
        request: &impl RequestParts,
        formats: TokenFormats,
    ) -> Result<Option<Token>, MalformedToken> {
        self.read_with_source(request, formats)
            .map(|found| found.map(|(token, _)| token))
    }

    /// Like [`read_as`](Self::read_as), also saying which source the token came from (a
    /// cookie-authenticated request gets its origin checked).
    pub fn read_with_source(
        &self,
        request: &impl RequestParts,
        formats: TokenFormats,
    ) -> Result<Option<(Token, &TokenSource)>, MalformedToken> {
        for source in &self.sources {
            let raw = match source {
                TokenSource::Header(name) => request.header(name).map(header_token),
                TokenSource::Query(name) => request.query().and_then(|q| query_param(q, name)),
                TokenSource::Cookie(name) => (0..)
                    .map_while(|index| request.header_at("cookie", index))
                    .find_map(|field| cookie(field, name.as_bytes())),
            };
            match raw {
                Some(raw) if !raw.is_empty() => {
                    return parse(raw, formats).map(|token| Some((token, source)));
                }
                _ => continue,
            }
        }
        Ok(None)
    }
}

fn parse(raw: &[u8], formats: TokenFormats) -> Result<Token, MalformedToken> {
    // Oversized input is refused before any alphabet work.
    if raw.len() > MAX_TOKEN_LEN {
        return Err(MalformedToken);
    }
    Token::parse_bytes_as(raw, formats)
}

/// `<token>` or `Bearer <token>` (scheme case-insensitive).
fn header_token(value: &[u8]) -> &[u8] {
    const BEARER: &[u8] = b"bearer ";
    let value = value.trim_ascii();
    match value.get(..BEARER.len()) {
        Some(scheme) if scheme.eq_ignore_ascii_case(BEARER) => {
            value[BEARER.len()..].trim_ascii_start()
        }
        _ => value,
    }
}

fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q [u8]> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value.as_bytes())
    })
}

fn cookie<'h>(header: &'h [u8], name: &[u8]) -> Option<&'h [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        (&pair[..eq] == name).then(|| pair[eq + 1..].trim_ascii())
    })
}

/// A request made of its parts, for the core's unit tests (one type for every module
/// that reads requests).
#[cfg(test)]
#[derive(Default)]
pub(crate) struct TestRequest {
    /// The method; empty means `GET`.
    pub method: &'static str,
    pub headers: Vec<(&'static str, Vec<u8>)>,
    pub query: Option<String>,
    pub authority: Option<&'static str>,
}

#[cfg(test)]
impl TestRequest {
    /// A request with this method and no parts yet.
    pub fn new(method: &'static str) -> Self {
        Self {
            method,
            ..Self::default()
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl AsRef<[u8]>) -> Self {
        self.headers.push((name, value.as_ref().to_vec()));
        self
    }
}

#[cfg(test)]
impl RequestParts for TestRequest {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.header_at(name, 0)
    }
    fn header_at(&self, name: &str, index: usize) -> Option<&[u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .nth(index)
            .map(|(_, v)| v.as_slice())
    }
    fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }
    fn method(&self) -> &str {
        if self.method.is_empty() {
            "GET"
        } else {
            self.method
        }
    }
    fn authority(&self) -> Option<&str> {
        self.authority
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "dd9b7511874889f4192fbda3d8b0881c";

    type Req = TestRequest;

    fn header(name: &'static str, value: &str) -> Req {
        Req::new("GET").header(name, value)
    }

    fn read(req: &Req) -> Result<Option<String>, MalformedToken> {
        TokenReader::default()
            .with_source(TokenSource::Cookie("kg".into()))
            .read(req)
            .map(|t| t.map(|t| t.expose().to_owned()))
    }

    #[test]
    fn every_transport_yields_the_token() {
        for req in [
            header("authorization", TOKEN),
            header("authorization", &format!("Bearer {TOKEN}")),
            header("authorization", &format!("bearer   {TOKEN} ")),
            Req {
                query: Some(format!("a=1&tokenid={TOKEN}&b")),
                ..Req::default()
            },
            header("cookie", &format!("other=x; kg={TOKEN}")),
        ] {
            assert_eq!(read(&req), Ok(Some(TOKEN.to_owned())));
        }
    }

    #[test]
    fn absent_token_is_none_and_bad_one_is_malformed() {
        assert_eq!(read(&Req::default()), Ok(None));
        assert_eq!(read(&header("authorization", "")), Ok(None));
        let huge = "a".repeat(10 * 1024);
        for bad in [
            "*",
            "Bearer *",
            "Bearer",
            &huge,
            "dd9b7511874889f4192fbda3d8b0881c\u{7}",
        ] {
            assert_eq!(
                read(&header("authorization", bad)),
                Err(MalformedToken),
                "{bad:?}"
            );
        }
        let non_utf8 = Req::new("GET").header("authorization", [0xff; 32]);
        assert_eq!(read(&non_utf8), Err(MalformedToken));
        let encoded = Req {
            query: Some("tokenid=dd9b7511874889f4%2A92fbda3d8b0881c".into()),
            ..Req::default()
        };
        assert_eq!(read(&encoded), Err(MalformedToken));
    }

    #[test]
    fn the_first_source_present_wins() {
        let req = Req {
            query: Some(format!("tokenid={TOKEN}")),
            ..header("authorization", "*")
        };
        assert_eq!(read(&req), Err(MalformedToken));
        let query_first = TokenReader::new([
            TokenSource::Query("tokenid".into()),
            TokenSource::Header("Authorization".into()),
        ]);
        assert_eq!(
            query_first
                .read(&req)
                .map(|t| t.map(|t| t.expose().to_owned())),
            Ok(Some(TOKEN.to_owned()))
        );
    }

    #[test]
    fn the_source_of_the_token_is_reported() {
        let reader = TokenReader::default().with_cookie_source("kg");
        assert_eq!(
            reader,
            TokenReader::default()
                .with_cookie_source("kg")
                .with_cookie_source("kg")
        );
        let cookie_only = header("cookie", &format!("kg={TOKEN}"));
        let found = reader
            .read_with_source(&cookie_only, TokenFormats::standard())
            .unwrap()
            .map(|(_, source)| source.clone());
        assert_eq!(found, Some(TokenSource::Cookie("kg".into())));
        let both = header("cookie", &format!("kg={TOKEN}")).header("authorization", TOKEN);
        let found = reader
            .read_with_source(&both, TokenFormats::standard())
            .unwrap()
            .map(|(_, source)| source.clone());
        assert_eq!(found, Some(TokenSource::Header("authorization".into())));
    }

    #[test]
    fn a_cookie_split_over_several_fields_is_found() {
        let split = header("cookie", "theme=dark").header("cookie", format!("kg={TOKEN}; x=1"));
        assert_eq!(read(&split), Ok(Some(TOKEN.to_owned())));
        let absent = header("cookie", "theme=dark").header("cookie", "x=1");
        assert_eq!(read(&absent), Ok(None));
    }
}
