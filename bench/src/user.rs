//! The Node seed's user: what every server stores at login and returns from `GET /me`.

use serde::{Deserialize, Serialize};

/// The Node seed's user, stored by keygate exactly as
/// `{"user_id":598,"mobile_phone":"","openid":"oGrf0v4ov5ETTCNtW_A-Zq61kgsI"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeUser {
    pub user_id: u64,
    pub mobile_phone: String,
    pub openid: String,
}

impl keygate::SessionUser for NodeUser {
    fn user_id(&self) -> keygate::UserId {
        keygate::UserId::from(self.user_id)
    }
}

/// The seed's `openid`, looked for in every `GET /me` answer of the sanity check.
pub const OPENID: &str = "oGrf0v4ov5ETTCNtW_A-Zq61kgsI";

/// The Node seed's custom prefix: keys `myapp_<token>`.
pub const NODE_CUSTOM: &str = "myapp";

/// 30 minutes, the idle TTL everywhere.
pub const IDLE_SECS: u64 = 30 * 60;

impl NodeUser {
    /// The seed's user 598.
    pub fn seed() -> Self {
        Self {
            user_id: 598,
            mobile_phone: String::new(),
            openid: OPENID.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_user_serializes_as_the_node_seed_stores_it() {
        assert_eq!(
            serde_json::to_string(&NodeUser::seed()).unwrap(),
            r#"{"user_id":598,"mobile_phone":"","openid":"oGrf0v4ov5ETTCNtW_A-Zq61kgsI"}"#
        );
    }
}
