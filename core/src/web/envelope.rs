//! The JSON envelope every keygate answer and the example apps use.

use serde::{Deserialize, Serialize};

/// The response body every keygate rejection (and the example apps) use:
/// `{"success": true, "data": ...}` or `{"success": false, "errorMsg": "..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Envelope<T> {
    /// Whether the call succeeded.
    pub success: bool,
    /// The result, on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
    /// What went wrong, on failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_msg: Option<String>,
}

impl<T: Serialize> Envelope<T> {
    /// A success carrying `data`.
    pub fn ok(data: T) -> Self {
        Self {
            success: true,
            data: Some(data),
            error_msg: None,
        }
    }
}

impl Envelope<()> {
    /// A success without data.
    pub fn done() -> Self {
        Self {
            success: true,
            data: None,
            error_msg: None,
        }
    }

    /// A failure with a message.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            success: false,
            data: None,
            error_msg: Some(message.into()),
        }
    }
}

impl<T: Serialize> Envelope<T> {
    /// The JSON text.
    pub fn to_json(&self) -> String {
        // Serializing plain structs and strings to JSON cannot fail; the fallback keeps
        // this infallible for data types whose `Serialize` can.
        serde_json::to_string(self)
            .unwrap_or_else(|_| r#"{"success":false,"errorMsg":"unserializable response"}"#.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_match_the_contract() {
        assert_eq!(
            Envelope::ok("t").to_json(),
            r#"{"success":true,"data":"t"}"#
        );
        assert_eq!(Envelope::done().to_json(), r#"{"success":true}"#);
        assert_eq!(
            Envelope::error("no").to_json(),
            r#"{"success":false,"errorMsg":"no"}"#
        );
    }
}
