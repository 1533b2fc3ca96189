//! The login-token model in a few lines: create, load-and-touch, list, log out.
//!
//! `cargo run -p keygate --example quickstart` uses the embedded memory backend;
//! with `REDIS_URL=redis://127.0.0.1:6379/0` it uses Redis.

use std::sync::Arc;

use keygate::backend::SessionStore;
use keygate::{MemoryStore, RedisStore, SessionConfig, SessionManager, UserId};
use serde::{Deserialize, Serialize};

/// The Java seed's user, stored as a hash at `login:token:<token>`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    id: u64,
    nick_name: String,
    icon: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), keygate::Error> {
    let store: Arc<dyn SessionStore> = match std::env::var("REDIS_URL") {
        Ok(url) => {
            println!("backend: Redis");
            Arc::new(RedisStore::connect(&url).await?)
        }
        Err(_) => {
            println!("backend: embedded memory store (set REDIS_URL to use Redis)");
            Arc::new(MemoryStore::new())
        }
    };
    let sessions = SessionManager::<User>::from_shared_store(store, SessionConfig::java_seed())?;

    let user = User {
        id: 598,
        nick_name: "user_k3j9x0qz2a".into(),
        icon: String::new(),
    };
    let uid = UserId::from(user.id);
    let token = sessions.login(&uid, &user).await?;
    let second = sessions.login(&uid, &user).await?;
    println!("logged in twice; tokens are never printed: {token}");

    let session = sessions.load(&token).await?;
    println!("load-and-touch: {:?}", session.as_ref().map(|s| s.data()));

    let live = sessions.sessions(&uid, Some(&token)).await?;
    println!("{} live sessions: {live:?}", live.len());

    sessions.logout(&token).await?;
    println!(
        "after logout: {:?}",
        sessions.load(&token).await?.map(|s| s.into_data())
    );
    println!(
        "log out everywhere ended {} session(s)",
        sessions.logout_everywhere(&uid).await?
    );
    assert!(sessions.load(&second).await?.is_none());
    Ok(())
}
