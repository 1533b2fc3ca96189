//! The application state, built once at start and shared by every request.

use std::sync::Arc;

use keygate::code::{CodeConfig, Codes, LogCodeSender};
use keygate::flash_sale::{ConsumerHandle, ConsumerOptions, FlashSale, OrderConsumer};
use keygate::lock::Locks;
use keygate::login::PhoneLogin;
use keygate::rate_limit::{FailureMode, RateLimiter, Window};
use keygate::web::RateLimitPolicy;
use keygate::{Keygate, SessionCookie, SessionManager};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::StartError;
use crate::backend::Backend;
use crate::config::Config;
use crate::db::Db;
use crate::orders::SqliteOrders;
use crate::secrets::{AdminKey, CallbackKey};
use crate::user::{SqliteUsers, UserDto};
use crate::{Caller, Reply};

/// The name of the login limiter: its keys are `keygate:rate:{login-ip:ip:<address>}`.
pub const LOGIN_LIMITER: &str = "login-ip";

/// The name of the operator routes' limiter: its keys are
/// `keygate:rate:{operator-ip:ip:<address>}`.
pub const OPERATOR_LIMITER: &str = "operator-ip";

/// Requests to the operator routes (`GET /metrics`, `POST /voucher/seckill`) one client IP
/// may make per rolling minute, whatever their token.
pub const OPERATOR_REQUESTS_PER_MINUTE: u32 = 60;

/// Whether the session near cache (`SESSION_NEAR_CACHE=1`) is in use, as the ready line
/// tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NearCacheState {
    /// Not asked for: every load goes to the backend.
    Off,
    /// Asked for and in use: hot sessions are served from memory while Redis client
    /// tracking vouches for them.
    On,
    /// Asked for on the embedded backend, where it has no effect (keygate's near cache
    /// sits in front of Redis only; the embedded store is process memory already).
    NoEffect,
}

impl NearCacheState {
    fn of(config: &Config, backend: &Backend) -> Self {
        match (config.session_near_cache, backend) {
            (false, _) => Self::Off,
            (true, Backend::Memory(_)) => Self::NoEffect,
            (true, _) => Self::On,
        }
    }
}

impl std::fmt::Display for NearCacheState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Off => "off",
            Self::On => "on",
            Self::NoEffect => "off, SESSION_NEAR_CACHE has no effect on the embedded backend",
        })
    }
}

/// Everything the routes need: the login flow, the session gate, flash sales, locks and
/// the database. Build it once with [`App::build`] and share it behind an `Arc`.
///
/// The handlers (`send_code`, `login`, `me`, ...) are framework-neutral: they take what
/// the request carried (query string, body bytes, the session the adapter loaded) and
/// return a [`Reply`](crate::Reply).
pub struct App {
    pub(crate) login: PhoneLogin<SqliteUsers>,
    pub(crate) gate: Keygate<UserDto>,
    pub(crate) sale: FlashSale,
    pub(crate) locks: Locks,
    pub(crate) db: Db,
    /// `ADMIN_TOKEN`; `None`: operator routes answer 403.
    pub(crate) admin: Option<AdminKey>,
    /// `PAY_CALLBACK_SECRET`; `None`: provider callbacks answer 403.
    pub(crate) pay_key: Option<CallbackKey>,
    /// The per-IP budget shared by `POST /user/code` and `POST /user/login`.
    login_policy: RateLimitPolicy,
    /// The per-IP budget of the operator routes, counted before the token is checked.
    operator_policy: RateLimitPolicy,
    backend: Backend,
    near_cache: NearCacheState,
    /// What `GET /metrics` renders; `None` when the process could not install the recorder.
    pub(crate) metrics: Option<PrometheusHandle>,
    /// `true` once the server shuts down: open event streams close.
    pub(crate) shutdown: Arc<tokio::sync::watch::Sender<bool>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("backend", &self.backend.name())
            .field("near_cache", &self.near_cache)
            .field("admin_token_set", &self.admin.is_some())
            .field("pay_callback_secret_set", &self.pay_key.is_some())
            .finish_non_exhaustive()
    }
}

impl App {
    /// Opens the database, connects the backend (failing if Redis cannot be reached now)
    /// and builds the services: sessions in the Java seed's layout, codes with the seed's
    /// limits and the development sender (codes go to the log), the operator token and the
    /// payment-callback key.
    pub async fn build(
        config: &Config,
        metrics: Option<PrometheusHandle>,
    ) -> Result<Arc<Self>, StartError> {
        let db = Db::open(&config.database).await?;
        let backend = Backend::connect(&config.redis).await?;
        let invalid = |e: keygate::Error| StartError::new(format!("invalid configuration: {e}"));
        // Knowing its users, a logout removes the session's index entry and records it.
        let sessions =
            SessionManager::from_shared_store(backend.sessions(), config.session_config())
                .map_err(invalid)?
                .with_session_users();
        let near_cache = NearCacheState::of(config, &backend);
        let codes = Codes::from_shared(
            backend.codes(),
            Arc::new(LogCodeSender::new()),
            CodeConfig::new(),
        )
        .map_err(invalid)?;
        let login = PhoneLogin::new(codes, SqliteUsers::new(db.clone()), sessions.clone());
        let pay_key = match &config.pay_callback_secret {
            Some(secret) => Some(CallbackKey::new(secret)?),
            None => None,
        };
        // Fail closed: while Redis is unreachable nothing can be sent or checked anyway,
        // and an SMS budget must not open up during an outage.
        let login_policy = RateLimitPolicy::new(
            RateLimiter::from_shared(
                backend.rate_limit(),
                LOGIN_LIMITER,
                Window::per_minute(config.rate_limit_per_ip),
            )
            .map_err(invalid)?
            .with_failure_mode(FailureMode::Closed),
        )
        .with_trusted_proxies(config.trusted_proxies.iter().copied());
        // Fail open: the token still guards these routes, and `GET /metrics` is most
        // wanted while Redis is in trouble (the core warns, at most once a second).
        let operator_policy = RateLimitPolicy::new(
            RateLimiter::from_shared(
                backend.rate_limit(),
                OPERATOR_LIMITER,
                Window::per_minute(OPERATOR_REQUESTS_PER_MINUTE),
            )
            .map_err(invalid)?
            .with_failure_mode(FailureMode::Open),
        )
        .with_trusted_proxies(config.trusted_proxies.iter().copied());
        let shutdown = Arc::new(tokio::sync::watch::Sender::new(false));
        tokio::spawn(close_streams_on_signal(Arc::clone(&shutdown)));
        Ok(Arc::new(Self {
            shutdown,
            login,
            // The page authenticates by the cookie, which login sets; header and query tokens
            // keep working for API clients.
            gate: Keygate::new(sessions)
                .with_cookie(SessionCookie::new().with_secure(config.cookie_secure)),
            sale: FlashSale::from_shared(backend.flash_sale()),
            locks: Locks::from_shared(backend.locks()),
            db,
            admin: config.admin_token.as_ref().map(AdminKey::new),
            pay_key,
            login_policy,
            operator_policy,
            backend,
            near_cache,
            metrics,
        }))
    }

    /// The session gate, for the adapter's layer, middleware or fairing.
    pub fn gate(&self) -> Keygate<UserDto> {
        self.gate.clone()
    }

    /// The per-client-IP budget of `POST /user/code` and `POST /user/login` (one budget
    /// for both: at most `RATE_LIMIT_PER_IP` in any rolling minute, a sliding window; the
    /// client IP read through `TRUSTED_PROXIES`), for the adapter's rate-limit middleware
    /// on those two routes.
    pub fn login_policy(&self) -> RateLimitPolicy {
        self.login_policy.clone()
    }

    /// Counts a request to an operator route against its client's budget
    /// ([`OPERATOR_REQUESTS_PER_MINUTE`] per rolling minute per client IP, read as the
    /// login routes' is): `Err` with 429 and `Retry-After` beyond it. Every request counts,
    /// whatever its token.
    pub(crate) async fn admit_operator_request(&self, caller: &Caller<'_>) -> Result<(), Reply> {
        let subject = self.operator_policy.subject(caller.peer, caller);
        match self.operator_policy.admit(subject).await {
            Ok(_) => Ok(()),
            Err(rejection) => Err(Reply::from_rate_limit(rejection)),
        }
    }

    /// `memory`, `redis` or `redis-cluster`, for the ready line.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Whether sessions are served through the near cache, for the ready line.
    pub fn near_cache(&self) -> NearCacheState {
        self.near_cache
    }

    /// Starts the flash-sale order consumer on the current Tokio runtime: it stores each
    /// order in SQLite. Keep the handle for as long as orders should be processed.
    pub fn start_order_consumer(&self) -> ConsumerHandle {
        OrderConsumer::new(
            &self.sale,
            SqliteOrders::new(self.db.clone()),
            ConsumerOptions::new(),
        )
        .spawn()
    }
}

/// Closes the open event streams once the server's graceful shutdown starts, so that it
/// does not wait for them.
async fn close_streams_on_signal(shutdown: Arc<tokio::sync::watch::Sender<bool>>) {
    crate::startup::shutdown_signal().await;
    shutdown.send_replace(true);
}
