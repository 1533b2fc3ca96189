//! The layouts session data is stored in, and turning the data into them and back.

mod fields;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// How session data is stored under its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Layout {
    /// A JSON string of the user's data (the Node seed's layout). Load-and-touch is one
    /// `GETEX`.
    Json,
    /// A Redis hash of string fields, one per top-level field of the data (the Java seed's
    /// layout). Load-and-touch is one script call (one round trip) that checks the key's
    /// type before `PEXPIRE` and `HGETALL`, so a key of another type is never touched.
    Hash,
}

/// Session data in its stored form.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoredValue {
    /// A JSON string (the [`Layout::Json`] layout).
    Json(String),
    /// The fields of a Redis hash (the [`Layout::Hash`] layout), in no particular order.
    Hash(Vec<(String, String)>),
}

/// Why stored data could not be decoded into the session type.
#[derive(Debug, thiserror::Error)]
#[error("corrupt session data: {0}")]
pub struct CorruptData(pub(crate) String);

pub(crate) fn encode<T: Serialize>(codec: Layout, data: &T) -> Result<StoredValue, Error> {
    match codec {
        Layout::Json => serde_json::to_string(data)
            .map(StoredValue::Json)
            .map_err(|e| Error::Encode(e.to_string())),
        Layout::Hash => fields::to_fields(data).map(StoredValue::Hash),
    }
}

pub(crate) fn decode<T: DeserializeOwned>(value: &StoredValue) -> Result<T, CorruptData> {
    match value {
        StoredValue::Json(text) => {
            serde_json::from_str(text).map_err(|e| CorruptData(e.to_string()))
        }
        StoredValue::Hash(fields) => fields::from_fields(fields),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct NodeUser {
        user_id: u64,
        mobile_phone: String,
        openid: String,
    }

    #[test]
    fn json_is_exactly_the_users_json() {
        let user = NodeUser {
            user_id: 598,
            mobile_phone: String::new(),
            openid: "oGrf0v4ov5ETTCNtW_A-Zq61kgsI".into(),
        };
        let stored = encode(Layout::Json, &user).unwrap();
        assert_eq!(
            stored,
            StoredValue::Json(
                r#"{"user_id":598,"mobile_phone":"","openid":"oGrf0v4ov5ETTCNtW_A-Zq61kgsI"}"#
                    .into()
            )
        );
        assert_eq!(decode::<NodeUser>(&stored).unwrap(), user);
    }

    #[test]
    fn corrupt_json_is_reported() {
        assert!(decode::<NodeUser>(&StoredValue::Json("{not json".into())).is_err());
        assert!(decode::<NodeUser>(&StoredValue::Json(r#"{"user_id":"x"}"#.into())).is_err());
    }
}
