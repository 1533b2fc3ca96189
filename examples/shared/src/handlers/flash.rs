//! The flagship's routes: loading a flash sale (an operator route), ordering, reading an
//! order, and the payment callbacks under a distributed lock.

use std::time::Duration;

use keygate::flash_sale::{OrderOutcome, SaleWindow};
use keygate::lock::LockError;
use keygate::{CurrentSession, UserId};
use serde::{Deserialize, Serialize};

use super::form_field;
use crate::db::{DbError, PAID};
use crate::user::UserDto;
use crate::{App, Caller, Reply};

/// How long a payment callback waits for the order's lock before answering 503.
pub const PAY_LOCK_WAIT: Duration = Duration::from_secs(10);

/// The largest voucher id `POST /voucher/seckill` accepts: 2^53, so that JavaScript
/// clients read every id exactly.
pub const MAX_VOUCHER_ID: u64 = 1 << 53;

/// The largest stock `POST /voucher/seckill` accepts.
pub const MAX_VOUCHER_STOCK: u64 = 1_000_000_000;

/// The header that carries the operator token.
pub const ADMIN_TOKEN_HEADER: &str = "x-admin-token";

/// The header that carries a payment provider's callback signature.
pub const PAY_SIGNATURE_HEADER: &str = "x-pay-signature";

/// `POST /voucher/seckill`'s body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LoadVoucher {
    voucher_id: u64,
    stock: u64,
}

/// Proof that a request carried the operator token: what [`App::operator`] gives and
/// the operator routes take.
#[derive(Debug)]
pub struct Operator(());

/// Who may confirm a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The buyer's browser: the order owner's session.
    Web,
    /// The payment provider: a signature keyed with `PAY_CALLBACK_SECRET`.
    Wechat,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Web => "web",
            Source::Wechat => "wechat",
        }
    }
}

/// `GET /voucher-order/{id}`'s data.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrderView {
    id: i64,
    voucher_id: i64,
    user_id: i64,
    status: String,
}

/// What the payment callback found under the lock.
enum Paid {
    Processed,
    Duplicate,
    UnknownOrder,
}

/// What a lock failure answers: the core's mapping (503 with `Retry-After` while the
/// order is busy; the payment provider retries and then sees the order's state).
fn lock_failure(error: &LockError) -> Reply {
    static LOCK_FAILED: keygate::telemetry::LogThrottle = keygate::telemetry::LogThrottle::new();
    if let Some(suppressed) = LOCK_FAILED.allow() {
        tracing::warn!(%error, suppressed, "payment callback could not hold the order lock");
    }
    Reply::with_retry(
        error.status(),
        error.body(),
        error.retry_after().map(keygate::ttl::retry_after_secs),
    )
}

fn db_failure(error: &DbError) -> Reply {
    Reply::internal(error)
}

/// The content type of the Prometheus text exposition format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

impl App {
    /// Admits a request to `POST /voucher/seckill` or `GET /metrics` from `caller`: first it counts against the client's
    /// budget of the operator routes ([`OPERATOR_REQUESTS_PER_MINUTE`](crate::OPERATOR_REQUESTS_PER_MINUTE)
    /// per rolling minute, every request whatever its token; 429 with `Retry-After`
    /// beyond), then its token (the header [`ADMIN_TOKEN_HEADER`]) is checked against
    /// `ADMIN_TOKEN`, in constant time: 403 while no `ADMIN_TOKEN` is configured, 401 when
    /// the header is missing or wrong. Call it before reading the body.
    pub async fn operator(
        &self,
        caller: &Caller<'_>,
        admin_token: Option<&[u8]>,
    ) -> Result<Operator, Reply> {
        self.admit_operator_request(caller).await?;
        let Some(key) = &self.admin else {
            return Err(Reply::error(
                403,
                "operator routes are disabled: ADMIN_TOKEN is not configured",
            ));
        };
        match admin_token {
            Some(presented) if key.accepts(presented) => Ok(Operator(())),
            _ => Err(Reply::error(401, "missing or wrong x-admin-token")),
        }
    }

    /// `GET /metrics`, for an [`Operator`]: every metric keygate and the app recorded, in
    /// the Prometheus text format.
    pub fn metrics(&self, _operator: &Operator) -> Reply {
        match &self.metrics {
            Some(handle) => Reply::text(handle.render(), PROMETHEUS_TEXT),
            None => Reply::error(503, "metrics are not being recorded"),
        }
    }

    /// `POST /voucher/seckill` with `{"voucherId": n, "stock": n}`, for an
    /// [`Operator`]: loads (or resets) a voucher's flash sale, open now and without end.
    /// `voucherId` must be 1 to [`MAX_VOUCHER_ID`], `stock` 0 to [`MAX_VOUCHER_STOCK`]: 400
    /// otherwise, and nothing changes.
    pub async fn load_voucher(&self, _operator: &Operator, body: &[u8]) -> Reply {
        let load: LoadVoucher = match serde_json::from_slice(body) {
            Ok(load) => load,
            Err(e) => {
                return Reply::bad_request(format!(
                    "expected a JSON body {{\"voucherId\": n, \"stock\": n}}: {e}"
                ));
            }
        };
        if !(1..=MAX_VOUCHER_ID).contains(&load.voucher_id) {
            return Reply::bad_request(format!("voucherId must be 1 to {MAX_VOUCHER_ID}"));
        }
        if load.stock > MAX_VOUCHER_STOCK {
            return Reply::bad_request(format!("stock must be 0 to {MAX_VOUCHER_STOCK}"));
        }
        match self
            .sale
            .load(load.voucher_id, load.stock, SaleWindow::default())
            .await
        {
            Ok(()) => {
                tracing::info!(
                    voucher_id = load.voucher_id,
                    stock = load.stock,
                    "flash sale loaded"
                );
                Reply::done()
            }
            Err(e) => Reply::core(&e),
        }
    }

    /// `POST /voucher-order/seckill/{voucherId}`: one atomic order attempt; the order id.
    pub async fn order_voucher(
        &self,
        session: &CurrentSession<UserDto>,
        voucher_id: &str,
    ) -> Reply {
        let Ok(voucher_id) = voucher_id.parse::<u64>() else {
            return Reply::not_found("voucher");
        };
        match self.sale.order(voucher_id, &UserId::from(session.id)).await {
            Ok(OrderOutcome::Ordered { order_id }) => Reply::ok(order_id),
            Ok(refused) => Reply::error(refused.status(), refused.message()),
            Err(e) => Reply::core(&e),
        }
    }

    /// `GET /voucher-order/{orderId}`: the caller's order once the consumer stored it;
    /// 404 before that, and for orders of other users.
    pub async fn order(&self, session: &CurrentSession<UserDto>, order_id: &str) -> Reply {
        let Ok(order_id) = order_id.parse::<i64>() else {
            return Reply::not_found("order");
        };
        match self.db.order(order_id).await {
            Ok(Some(row)) if u64::try_from(row.user_id).ok() == Some(session.id) => {
                Reply::ok(OrderView {
                    id: row.id,
                    voucher_id: row.voucher_id,
                    user_id: row.user_id,
                    status: row.status,
                })
            }
            Ok(_) => Reply::not_found("order"),
            Err(e) => db_failure(&e),
        }
    }

    /// `POST /order/{orderId}/pay-callback?source=web|wechat`: marks the order paid.
    ///
    /// Who may call: `source=web` needs the session of the order's owner (`session`;
    /// none: 401, another user's order: 404); `source=wechat` needs `signature` (the
    /// header [`PAY_SIGNATURE_HEADER`]) to be the lowercase hex HMAC-SHA256 of
    /// `<orderId>:wechat` keyed with `PAY_CALLBACK_SECRET` (none configured: 403;
    /// missing or wrong: 401). The order is looked up before its lock is taken, so an
    /// unknown order is a 404 that leaves nothing in Redis; a refused callback changes
    /// nothing.
    ///
    /// Runs under the lock `order:<id>`, so of any number of concurrent callbacks (from
    /// any number of instances) exactly one answers `"processed"` and the others
    /// `"duplicate"`.
    pub async fn pay_callback(
        &self,
        order_id: &str,
        query: Option<&str>,
        session: Option<&CurrentSession<UserDto>>,
        signature: Option<&[u8]>,
    ) -> Reply {
        let source = match query
            .and_then(|q| form_field(q.as_bytes(), "source"))
            .as_deref()
        {
            Some("web") => Source::Web,
            Some("wechat") => Source::Wechat,
            _ => return Reply::bad_request("source must be web or wechat"),
        };
        let Ok(order_id) = order_id.parse::<i64>() else {
            return Reply::not_found("order");
        };
        // Who is calling, before anything is read or locked.
        let buyer = match source {
            Source::Web => match session {
                Some(session) => Some(session.id),
                None => return Reply::error(401, "log in to confirm a payment"),
            },
            Source::Wechat => {
                let Some(key) = &self.pay_key else {
                    return Reply::error(
                        403,
                        "provider callbacks are disabled: PAY_CALLBACK_SECRET is not configured",
                    );
                };
                match signature {
                    Some(presented) if key.verifies(order_id, source.name(), presented) => None,
                    _ => return Reply::error(401, "missing or wrong x-pay-signature"),
                }
            }
        };
        // Then whether the order exists (and is the caller's): no lock for made-up ids.
        match self.db.order(order_id).await {
            Ok(Some(order))
                if buyer.is_none_or(|buyer| u64::try_from(order.user_id).ok() == Some(buyer)) => {}
            Ok(_) => return Reply::not_found("order"),
            Err(e) => return db_failure(&e),
        }
        let db = self.db.clone();
        let outcome = self
            .locks
            .with_lock(
                &format!("order:{order_id}"),
                PAY_LOCK_WAIT,
                |_fence| async move {
                    // Check, then act: only safe because the lock admits one callback at a time.
                    let Some(order) = db.order(order_id).await? else {
                        return Ok(Paid::UnknownOrder);
                    };
                    if order.status == PAID {
                        return Ok(Paid::Duplicate);
                    }
                    db.set_order_status(order_id, PAID).await?;
                    Ok::<_, DbError>(Paid::Processed)
                },
            )
            .await;
        match outcome {
            Ok(Ok(Paid::Processed)) => {
                tracing::info!(order_id, source = source.name(), "payment processed");
                Reply::ok("processed")
            }
            Ok(Ok(Paid::Duplicate)) => Reply::ok("duplicate"),
            Ok(Ok(Paid::UnknownOrder)) => Reply::not_found("order"),
            Ok(Err(e)) => db_failure(&e),
            Err(e) => lock_failure(&e),
        }
    }
}
