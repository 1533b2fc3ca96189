//! Session layouts named on the command line: `java`, `node:<custom>`, `json:<prefix>`,
//! `hash:<prefix>`, each the `SessionConfig` the application uses.

use std::fmt;
use std::str::FromStr;

use keygate::SessionConfig;

/// A session layout: key prefix and codec.
#[derive(Debug, Clone)]
pub struct Layout {
    name: String,
    prefix: String,
    codec: keygate::Layout,
}

impl Layout {
    /// The core's configuration for this layout (default index prefix and idle TTL).
    pub fn config(&self) -> SessionConfig {
        SessionConfig::new(self.prefix.as_str(), self.codec)
    }

    /// The session key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis type session keys of this layout hold (`SCAN ... TYPE`).
    pub fn redis_type(&self) -> &'static str {
        match self.codec {
            keygate::Layout::Hash => "hash",
            _ => "string",
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl Default for Layout {
    fn default() -> Self {
        let java = SessionConfig::java_seed();
        Self {
            name: "java".to_owned(),
            prefix: java.prefix().to_owned(),
            codec: java.layout(),
        }
    }
}

impl FromStr for Layout {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let config = match text.split_once(':') {
            None if text == "java" => SessionConfig::java_seed(),
            Some(("node", custom)) if !custom.is_empty() => SessionConfig::node_seed(custom),
            Some(("json", prefix)) if !prefix.is_empty() => SessionConfig::json(prefix),
            Some(("hash", prefix)) if !prefix.is_empty() => SessionConfig::hash(prefix),
            _ => {
                return Err(
                    "expected java, node:<custom>, json:<prefix> or hash:<prefix>".to_owned(),
                );
            }
        };
        // The prefix itself is checked by `SessionManager::new`, as for the application.
        Ok(Self {
            name: text.to_owned(),
            prefix: config.prefix().to_owned(),
            codec: config.layout(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Layout;

    #[test]
    fn layouts_name_prefix_and_codec() {
        let java: Layout = "java".parse().unwrap();
        assert_eq!((java.prefix(), java.redis_type()), ("login:token:", "hash"));
        let node: Layout = "node:myapp".parse().unwrap();
        assert_eq!((node.prefix(), node.redis_type()), ("myapp_", "string"));
        let json: Layout = "json:s:".parse().unwrap();
        assert_eq!(json.config().layout(), keygate::Layout::Json);
        let hash: Layout = "hash:h:".parse().unwrap();
        assert_eq!((hash.prefix(), hash.redis_type()), ("h:", "hash"));
        for bad in ["", "node", "node:", "json:", "yaml:x", "java:x"] {
            assert!(bad.parse::<Layout>().is_err(), "{bad:?}");
        }
    }
}
