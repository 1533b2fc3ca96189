//! The middleware: reads the token and loads-and-touches the session once per request.

use std::future::{Ready, ready};
use std::rc::Rc;

use actix_web::HttpMessage;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{HeaderValue, SET_COOKIE};
use futures_util::future::LocalBoxFuture;
use keygate::Keygate;
use keygate::serde::Serialize;
use keygate::serde::de::DeserializeOwned;
use keygate::{adapter::Resolved, web::RequestParts};

/// Loads the session of every request it wraps and leaves it in the request's extensions
/// for the extractors ([`Auth`](crate::Auth), [`MaybeAuth`](crate::MaybeAuth),
/// [`Sessions`](crate::Sessions)).
///
/// Per request it reads the token with the gate's [`TokenReader`](keygate::TokenReader)
/// and, for a well-formed token, loads the session and resets its idle TTL in one Redis
/// round trip; a missing or malformed token costs no Redis call. It never answers by itself:
/// routes that do not ask for a session work with or without a token, and the rejection
/// (401, 403 for a cookie-authenticated unsafe request from another origin, 503) comes from
/// the extractor of the route that needs a session.
///
/// With a session cookie on the gate ([`Keygate::with_cookie`]), it appends the
/// `Set-Cookie` header that the handler's login or logout asked for to the response.
///
/// Wrap an [`App`](actix_web::App) or a [`Scope`](actix_web::Scope). When the same request
/// passes through several of these middlewares for the same `T` (an app-wide one and a
/// scope's), only the outermost one loads the session.
///
/// ```
/// use actix_web::{App, web};
/// use keygate_actix::{Auth, Keygate, KeygateMiddleware, MemoryStore, SessionConfig, SessionManager};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct User { id: u64 }
/// # impl keygate_actix::SessionUser for User { fn user_id(&self) -> keygate_actix::UserId { keygate_actix::UserId::from(self.id) } }
///
/// let manager = SessionManager::<User>::new(MemoryStore::new(), SessionConfig::java_seed())?;
/// let gate = Keygate::new(manager);
/// let app = App::new()
///     .wrap(KeygateMiddleware::new(gate.clone()))
///     .route("/me", web::get().to(|user: Auth<User>| async move { user.id.to_string() }));
/// # Ok::<(), keygate::Error>(())
/// ```
pub struct KeygateMiddleware<T> {
    gate: Keygate<T>,
}

impl<T> KeygateMiddleware<T> {
    /// A middleware loading sessions through `gate`.
    pub fn new(gate: Keygate<T>) -> Self {
        Self { gate }
    }

    /// The gate this middleware loads sessions with.
    pub fn gate(&self) -> &Keygate<T> {
        &self.gate
    }
}

impl<T> From<Keygate<T>> for KeygateMiddleware<T> {
    fn from(gate: Keygate<T>) -> Self {
        Self::new(gate)
    }
}

impl<T> Clone for KeygateMiddleware<T> {
    fn clone(&self) -> Self {
        Self {
            gate: self.gate.clone(),
        }
    }
}

impl<T> std::fmt::Debug for KeygateMiddleware<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeygateMiddleware")
            .field("gate", &self.gate)
            .finish()
    }
}

impl<S, B, T> Transform<S, ServiceRequest> for KeygateMiddleware<T>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = KeygateService<S, T>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(KeygateService {
            service: Rc::new(service),
            gate: self.gate.clone(),
        }))
    }
}

/// The service [`KeygateMiddleware`] wraps around each worker's inner service.
#[doc(hidden)]
pub struct KeygateService<S, T> {
    service: Rc<S>,
    gate: Keygate<T>,
}

impl<S, B, T> Service<ServiceRequest> for KeygateService<S, T>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        if req.extensions().contains::<Loaded<T>>() {
            // An outer keygate middleware already loaded this request's session.
            return Box::pin(async move { service.call(req).await });
        }
        let gate = self.gate.for_request(&Parts(&req));
        Box::pin(async move {
            let resolved = gate.resolve(&Parts(&req)).await;
            req.extensions_mut().insert(Loaded {
                resolved,
                gate: gate.clone(),
            });
            let mut response = service.call(req).await?;
            if let Some(value) = gate.take_set_cookie() {
                match HeaderValue::try_from(value) {
                    Ok(value) => {
                        response.headers_mut().append(SET_COOKIE, value);
                    }
                    Err(_) => tracing::error!("keygate-actix: unrepresentable Set-Cookie value"),
                }
            }
            Ok(response)
        })
    }
}

/// What the middleware loaded for this request, and its gate (for
/// [`Sessions`](crate::Sessions)), kept in the request's extensions as one entry.
pub(crate) struct Loaded<T> {
    pub(crate) resolved: Resolved<T>,
    pub(crate) gate: Keygate<T>,
}

/// What the gate (and the rate limiter's key function) sees of an actix request.
pub(crate) struct Parts<'a>(pub(crate) &'a ServiceRequest);

impl RequestParts for Parts<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        let headers = self.0.headers();
        match keygate::known_header!(name, actix_web::http::header) {
            Some(known) => headers.get(known),
            None => headers.get(name),
        }
        .map(HeaderValue::as_bytes)
    }

    fn header_at(&self, name: &str, index: usize) -> Option<&[u8]> {
        let headers = self.0.headers();
        match keygate::known_header!(name, actix_web::http::header) {
            Some(known) => headers.get_all(known),
            None => headers.get_all(name),
        }
        .nth(index)
        .map(HeaderValue::as_bytes)
    }

    fn query(&self) -> Option<&str> {
        Some(self.0.query_string()).filter(|query| !query.is_empty())
    }

    fn method(&self) -> &str {
        self.0.method().as_str()
    }

    fn authority(&self) -> Option<&str> {
        self.0.uri().authority().map(|authority| authority.as_str())
    }
}
