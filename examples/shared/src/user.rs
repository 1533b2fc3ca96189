//! The session's user type and the users table as keygate's user directory.

use async_trait::async_trait;
use keygate::UserId;
use keygate::code::Phone;
use keygate::login::{DirectoryError, UserDirectory, random_nickname};
use serde::{Deserialize, Serialize};

use crate::db::Db;

/// What the session holds: the Java seed's `UserDTO`. Stored as the hash
/// `login:token:<token>` with the string fields `id`, `nickName` and `icon`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserDto {
    /// The user id (the `users` row).
    pub id: u64,
    /// The nickname.
    pub nick_name: String,
    /// The avatar URL; empty when none (a Java service may leave the field out).
    #[serde(default)]
    pub icon: String,
}

/// The `users` table as keygate's [`UserDirectory`]: the user with a phone, created with
/// a random `user_…` nickname on first login.
#[derive(Debug, Clone)]
pub struct SqliteUsers {
    db: Db,
}

impl SqliteUsers {
    /// The directory over this database.
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

#[async_trait]
impl UserDirectory for SqliteUsers {
    type User = UserDto;

    async fn find_or_create_by_phone(&self, phone: &Phone) -> Result<UserDto, DirectoryError> {
        let nickname = random_nickname().map_err(|e| DirectoryError(e.to_string()))?;
        let row = self
            .db
            .find_or_create_user(phone.as_str().to_owned(), nickname)
            .await
            .map_err(|e| DirectoryError(e.to_string()))?;
        Ok(UserDto {
            id: u64::try_from(row.id)
                .map_err(|_| DirectoryError(format!("negative user id {}", row.id)))?,
            nick_name: row.nick_name,
            icon: row.icon,
        })
    }
}

impl keygate::SessionUser for UserDto {
    fn user_id(&self) -> UserId {
        UserId::from(self.id)
    }
}
