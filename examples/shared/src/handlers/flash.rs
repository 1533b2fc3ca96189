//! The flagship's routes: loading a flash sale, ordering, reading an order, and the
//! payment callback under a distributed lock.

use std::time::Duration;

use keygate::lock::LockError;
use keygate::seckill::{OrderOutcome, SaleWindow};
use keygate::{CurrentSession, UserId};
use serde::{Deserialize, Serialize};

use super::form_field;
use crate::db::{DbError, PAID};
use crate::user::UserDto;
use crate::{App, Reply};

/// How long a payment callback waits for the order's lock before answering 503.
pub const PAY_LOCK_WAIT: Duration = Duration::from_secs(10);

/// `POST /voucher/seckill`'s body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LoadVoucher {
    voucher_id: u64,
    stock: u64,
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
    tracing::warn!(%error, "payment callback could not hold the order lock");
    Reply::with_retry(
        error.status(),
        error.body(),
        error.retry_after().map(|d| d.as_secs().max(1)),
    )
}

fn db_failure(error: &DbError) -> Reply {
    Reply::internal(error)
}

impl App {
    /// `POST /voucher/seckill` with `{"voucherId": n, "stock": n}`: loads (or resets) a
    /// voucher's flash sale, open now and without end.
    pub async fn load_voucher(&self, body: &[u8]) -> Reply {
        let load: LoadVoucher = match serde_json::from_slice(body) {
            Ok(load) => load,
            Err(e) => {
                return Reply::bad_request(format!(
                    "expected a JSON body {{\"voucherId\": n, \"stock\": n}}: {e}"
                ));
            }
        };
        match self
            .sale
            .load(load.voucher_id, load.stock, SaleWindow::default())
            .await
        {
            Ok(()) => Reply::done(),
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

    /// `POST /order/{orderId}/pay-callback?source=web|wechat`: marks the order paid. Runs
    /// under the lock `order:<id>`, so of any number of concurrent callbacks (from any
    /// number of instances) exactly one answers `"processed"` and the others
    /// `"duplicate"`.
    pub async fn pay_callback(&self, order_id: &str, query: Option<&str>) -> Reply {
        let source = query.and_then(|q| form_field(q.as_bytes(), "source"));
        if !matches!(source.as_deref(), Some("web" | "wechat")) {
            return Reply::bad_request("source must be web or wechat");
        }
        let Ok(order_id) = order_id.parse::<i64>() else {
            return Reply::not_found("order");
        };
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
                tracing::info!(order_id, source = source.as_deref(), "payment processed");
                Reply::ok("processed")
            }
            Ok(Ok(Paid::Duplicate)) => Reply::ok("duplicate"),
            Ok(Ok(Paid::UnknownOrder)) => Reply::not_found("order"),
            Ok(Err(e)) => db_failure(&e),
            Err(e) => lock_failure(&e),
        }
    }
}
