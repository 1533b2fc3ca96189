//! The example's SQLite database: the users table and the processed flash-sale orders.
//!
//! One connection behind a mutex; every call runs on Tokio's blocking pool
//! (`spawn_blocking`), so a slow disk never stalls the async workers.

use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, params};

use crate::StartError;
use crate::config::Database;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id        INTEGER PRIMARY KEY,
    phone     TEXT UNIQUE NOT NULL,
    nick_name TEXT NOT NULL,
    icon      TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS voucher_orders (
    id         INTEGER PRIMARY KEY,
    voucher_id INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    status     TEXT NOT NULL
);
";

/// The status of an order the consumer stored and no payment confirmed yet.
pub const UNPAID: &str = "unpaid";
/// The status of an order whose payment callback was processed.
pub const PAID: &str = "paid";

/// A database call failed. The message is for the log, not for clients.
#[derive(Debug, thiserror::Error)]
#[error("database: {0}")]
pub struct DbError(pub String);

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        Self(e.to_string())
    }
}

/// A row of `users`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// The id.
    pub id: i64,
    /// The phone number.
    pub phone: String,
    /// The nickname.
    pub nick_name: String,
    /// The avatar.
    pub icon: String,
}

/// A row of `voucher_orders`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    /// The order id (from the flash sale).
    pub id: i64,
    /// The voucher.
    pub voucher_id: i64,
    /// The buyer.
    pub user_id: i64,
    /// `unpaid` or `paid`.
    pub status: String,
}

/// The database handle. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").finish_non_exhaustive()
    }
}

impl Db {
    /// Opens (creating if needed) the database and its tables.
    pub async fn open(database: &Database) -> Result<Self, StartError> {
        let database = database.clone();
        let opened = tokio::task::spawn_blocking(move || open_blocking(&database))
            .await
            .map_err(|e| StartError::new(format!("cannot open the database: {e}")))??;
        Ok(Self {
            conn: Arc::new(Mutex::new(opened)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn call<R, F>(&self, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn).map_err(DbError::from)
        })
        .await
        .map_err(|e| DbError(format!("database task failed: {e}")))?
    }

    /// The user with this phone, created with `nick_name` if there is none.
    pub async fn find_or_create_user(
        &self,
        phone: String,
        nick_name: String,
    ) -> Result<UserRow, DbError> {
        self.call(move |conn| {
            conn.execute(
                "INSERT OR IGNORE INTO users (phone, nick_name, icon) VALUES (?1, ?2, '')",
                params![phone, nick_name],
            )?;
            conn.query_row(
                "SELECT id, phone, nick_name, icon FROM users WHERE phone = ?1",
                params![phone],
                |row| {
                    Ok(UserRow {
                        id: row.get(0)?,
                        phone: row.get(1)?,
                        nick_name: row.get(2)?,
                        icon: row.get(3)?,
                    })
                },
            )
        })
        .await
    }

    /// Stores a processed order once: a second delivery of the same order id changes
    /// nothing. Returns whether this call stored it.
    pub async fn insert_order(
        &self,
        id: i64,
        voucher_id: i64,
        user_id: i64,
    ) -> Result<bool, DbError> {
        self.call(move |conn| {
            let inserted = conn.execute(
                "INSERT OR IGNORE INTO voucher_orders (id, voucher_id, user_id, status) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![id, voucher_id, user_id, UNPAID],
            )?;
            Ok(inserted == 1)
        })
        .await
    }

    /// The order with this id, if it was stored.
    pub async fn order(&self, id: i64) -> Result<Option<OrderRow>, DbError> {
        self.call(move |conn| {
            conn.query_row(
                "SELECT id, voucher_id, user_id, status FROM voucher_orders WHERE id = ?1",
                params![id],
                |row| {
                    Ok(OrderRow {
                        id: row.get(0)?,
                        voucher_id: row.get(1)?,
                        user_id: row.get(2)?,
                        status: row.get(3)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    /// Sets an order's status.
    pub async fn set_order_status(&self, id: i64, status: &'static str) -> Result<(), DbError> {
        self.call(move |conn| {
            conn.execute(
                "UPDATE voucher_orders SET status = ?1 WHERE id = ?2",
                params![status, id],
            )
            .map(|_| ())
        })
        .await
    }
}

fn open_blocking(database: &Database) -> Result<Connection, StartError> {
    let (conn, what) = match database {
        Database::Memory => (
            Connection::open_in_memory(),
            "an in-memory database".to_owned(),
        ),
        Database::File(path) => (Connection::open(path), path.display().to_string()),
    };
    let conn = conn.map_err(|e| {
        StartError::new(format!(
            "cannot open the SQLite database {what} (DATABASE_URL): {e}"
        ))
    })?;
    let setup = || -> rusqlite::Result<()> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        if matches!(database, Database::File(_)) {
            // Readers do not block the writer (and the other way round).
            conn.pragma_update(None, "journal_mode", "WAL")?;
        }
        conn.execute_batch(SCHEMA)
    };
    setup().map_err(|e| {
        StartError::new(format!(
            "cannot set up the SQLite database {what} (DATABASE_URL): {e}"
        ))
    })?;
    Ok(conn)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[tokio::test]
    async fn users_are_found_or_created_once() {
        let db = Db::open(&Database::Memory).await.unwrap();
        let a = db
            .find_or_create_user("13800138000".into(), "user_a".into())
            .await
            .unwrap();
        let again = db
            .find_or_create_user("13800138000".into(), "user_b".into())
            .await
            .unwrap();
        assert_eq!(a, again);
        assert_eq!(a.nick_name, "user_a");
        let other = db
            .find_or_create_user("13900139000".into(), "user_c".into())
            .await
            .unwrap();
        assert_ne!(other.id, a.id);
    }

    #[tokio::test]
    async fn orders_are_stored_once() {
        let db = Db::open(&Database::Memory).await.unwrap();
        assert!(db.insert_order(7, 1, 2).await.unwrap());
        assert!(!db.insert_order(7, 1, 2).await.unwrap());
        let order = db.order(7).await.unwrap().unwrap();
        assert_eq!(order.status, UNPAID);
        db.set_order_status(7, PAID).await.unwrap();
        assert_eq!(db.order(7).await.unwrap().unwrap().status, PAID);
        assert!(db.order(8).await.unwrap().is_none());
    }
}
