//! Property tests over everything a client or a corrupted Redis can feed keygate: token
//! text, request headers and query strings, stored session data. Bounded case counts, so
//! they run in CI.
#![allow(clippy::unwrap_used, missing_docs)]

use keygate::backend::{NewExpiry, SessionKeyRef, SessionStore, StoredValue};
use keygate::web::RequestParts;

const EXPIRY: NewExpiry = NewExpiry {
    idle_ms: 60_000,
    lifetime_ms: None,
    own_idle: false,
};
use keygate::{
    Layout, MemoryStore, SessionConfig, SessionManager, Token, TokenReader, TokenSource, UserId,
};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

fn token_alphabet(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

struct Req {
    authorization: Option<Vec<u8>>,
    cookie: Option<Vec<u8>>,
    query: Option<String>,
}

impl RequestParts for Req {
    fn header(&self, name: &str) -> Option<&[u8]> {
        match name {
            "authorization" => self.authorization.as_deref(),
            "cookie" => self.cookie.as_deref(),
            _ => None,
        }
    }
    fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }
    fn method(&self) -> &str {
        "GET"
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    id: u64,
    nick_name: String,
    tags: Vec<String>,
    vip: Option<bool>,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn token_parse_accepts_exactly_the_documented_shapes(text in any::<String>()) {
        let accepted = Token::parse(&text).is_ok();
        let hex32 = text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit());
        let uuid = text.len() == 36
            && text.bytes().enumerate().all(|(i, b)| {
                if [8, 13, 18, 23].contains(&i) { b == b'-' } else { b.is_ascii_hexdigit() }
            });
        let compact = text.len() == 22 && text.bytes().all(token_alphabet);
        prop_assert_eq!(accepted, hex32 || uuid || compact);
    }

    #[test]
    fn issued_token_forms_round_trip(
        text in "[0-9a-fA-F]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[A-Za-z0-9_-]{22}"
    ) {
        let token = Token::parse(&text).unwrap();
        prop_assert_eq!(token.expose(), text.as_str());
    }

    #[test]
    fn custom_forms_accept_exactly_their_range(text in "[A-Za-z0-9_-]{1,300}") {
        let custom = keygate::TokenFormats::none()
            .with(keygate::TokenFormat::Custom { min_len: 16, max_len: 256 });
        let accepted = Token::parse_as(&text, custom).is_ok();
        prop_assert_eq!(accepted, (16..=256).contains(&text.len()));
    }

    #[test]
    fn the_reader_never_yields_key_syntax(
        authorization in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..600)),
        cookie in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        query in proptest::option::of(any::<String>()),
    ) {
        let reader = TokenReader::default().with_source(TokenSource::Cookie("kg".into()));
        let req = Req { authorization, cookie, query };
        if let Ok(Some(token)) = reader.read(&req) {
            prop_assert!(token.expose().bytes().all(token_alphabet));
            prop_assert!((16..=256).contains(&token.expose().len()));
        }
    }

    #[test]
    fn user_ids_never_carry_glob_or_tag_characters(text in any::<String>()) {
        if let Ok(id) = UserId::new(text) {
            let safe = id.as_str().bytes().all(|b| b.is_ascii_graphic() && !b"*?[]{}\\".contains(&b));
            prop_assert!(safe, "unsafe user id accepted");
        }
    }

    #[test]
    fn any_stored_json_loads_or_is_no_session(text in any::<String>()) {
        runtime().block_on(async {
            let store = MemoryStore::new();
            let token = Token::generate().unwrap();
            let key = format!("s:{}", token.expose());
            let planted = store
                .insert(SessionKeyRef { session: &key, deadline: None, own_idle: false }, &StoredValue::Json(text), EXPIRY)
                .await
                .unwrap();
            assert!(planted);
            let m = SessionManager::<User>::new(store, SessionConfig::new("s:", Layout::Json)).unwrap();
            // Decoding garbage is `Ok(None)`, never a panic or an error.
            let _ = m.load(&token).await.unwrap();
        });
    }

    #[test]
    fn any_stored_hash_loads_or_is_no_session(
        fields in proptest::collection::vec(
            (prop_oneof!["id", "nickName", "tags", "vip", ".*"], ".*"),
            1..8,
        )
    ) {
        runtime().block_on(async {
            let store = MemoryStore::new();
            let token = Token::generate().unwrap();
            let key = format!("login:token:{}", token.expose());
            store
                .insert(SessionKeyRef { session: &key, deadline: None, own_idle: false }, &StoredValue::Hash(fields), EXPIRY)
                .await
                .unwrap();
            let m = SessionManager::<User>::new(store, SessionConfig::java_seed()).unwrap();
            let _ = m.load(&token).await.unwrap();
        });
    }
}
