//! An ACL user with only what keygate needs, over TLS: per capability, the rule set
//! documented in SECURITY.md ("Redis ACL users") lets the capability's whole flow run, and
//! removing any one rule of it makes the flow fail: the sets are sufficient and minimal.

use keygate::SessionUser as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use keygate::code::{CodeConfig, CodeError, Codes, Phone};
use keygate::flash_sale::{
    ConsumerOptions, FlashSale, HandlerError, Order, OrderConsumer, OrderHandler, OrderOutcome,
    SaleWindow,
};
use keygate::lock::{LockOptions, Locks};
use keygate::{RedisOptions, RedisStore, SessionConfig, SessionManager, UserId};
use keygate_tests::fixtures::{CapturingSender, JavaUser, with_test_certificates};
use keygate_tests::{RedisServer, TlsServer};

/// Sessions (both layouts, per-user index, absolute lifetime, cap per user) under the
/// default prefixes `login:token:` / `keygate:session:` and `keygate:`.
pub const SESSIONS: &str = "~login:token:* ~keygate:session:* ~keygate:user-sessions:* \
     ~keygate:deadline:* +getex +get +hgetall +hset +hdel +set +del +exists +type +pexpire \
     +pttl +zadd +zrange +zrem +evalsha +eval";
/// Verification codes under the default prefix `login:code:`, and their counters.
pub const CODES: &str =
    "~login:code:* ~keygate:code-* +get +set +incr +del +pexpire +pttl +evalsha +eval";
/// Locks: keys and the release channel under `keygate:lock:`.
pub const LOCKS: &str = "~keygate:lock:* &keygate:lock:* +get +set +del +pexpire +pttl +time \
     +publish +subscribe +evalsha +eval";
/// Flash sales: the sale's keys and streams under `keygate:seckill:`.
pub const SECKILL: &str = "~keygate:seckill:* +hset +hget +hmget +hincrby +hdel +sadd \
     +sismember +get +set +del +exists +time +xadd +xgroup|create +xreadgroup +xack +xpending \
     +xautoclaim +xinfo|groups +xtrim +evalsha +eval";

type Flow = fn(
    RedisStore,
    Arc<RedisServer>,
) -> futures_util::future::BoxFuture<'static, Result<(), String>>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

async fn sessions_flow(store: RedisStore, _server: Arc<RedisServer>) -> Result<(), String> {
    let user = JavaUser::new(7);
    let uid = user.user_id();
    let hash = SessionManager::<JavaUser>::new(
        store.clone(),
        SessionConfig::java_seed()
            .with_absolute_lifetime(Duration::from_secs(60))
            .with_max_sessions_per_user(2),
    )
    .map_err(err)?;
    let json =
        SessionManager::<JavaUser>::new(store.clone(), SessionConfig::default()).map_err(err)?;
    // A hash-layout update that drops a field.
    type Fields = std::collections::BTreeMap<String, String>;
    let fields = SessionManager::<Fields>::new(store, SessionConfig::java_seed()).map_err(err)?;
    let both: Fields = [("a".into(), "1".into()), ("b".into(), "2".into())].into();
    let token = fields.login(&uid, &both).await.map_err(err)?;
    let loaded = fields
        .load(&token)
        .await
        .map_err(err)?
        .ok_or("no session")?;
    let only_a: Fields = [("a".into(), "1".into())].into();
    fields.update(&loaded, &only_a).await.map_err(err)?;
    if fields
        .load(&token)
        .await
        .map_err(err)?
        .map(|s| s.data().clone())
        != Some(only_a)
    {
        return Err("the field was not dropped".into());
    }
    for m in [&hash, &json] {
        let first = m.login(&uid, &user).await.map_err(err)?;
        let second = m.login(&uid, &user).await.map_err(err)?;
        let session = m.load(&first).await.map_err(err)?.ok_or("no session")?;
        if session.id != 7 {
            return Err("wrong session".into());
        }
        let mut renamed = JavaUser::new(7);
        renamed.nick_name = "renamed".into();
        m.update(&session, &renamed).await.map_err(err)?;
        if !m.replace(&second, &JavaUser::new(7)).await.map_err(err)? {
            return Err("replace found no session".into());
        }
        if m.sessions(&uid, Some(&first))
            .await
            .map_err(err)?
            .is_empty()
        {
            return Err("no sessions listed".into());
        }
        m.logout(&first).await.map_err(err)?;
        m.logout_everywhere(&uid).await.map_err(err)?;
    }
    Ok(())
}

async fn codes_flow(store: RedisStore, _server: Arc<RedisServer>) -> Result<(), String> {
    let sender = CapturingSender::default();
    let codes = Codes::new(store, sender.clone(), CodeConfig::new()).map_err(err)?;
    let phone = Phone::parse("13800138000", &keygate::code::MainlandMobile).ok_or("phone")?;
    codes.send(&phone).await.map_err(err)?;
    let code = sender.last(phone.as_str()).ok_or("no code sent")?;
    let wrong = if code == "000000" { "000001" } else { "000000" };
    match codes.verify(&phone, wrong).await {
        Err(CodeError::WrongCode { .. }) => {}
        other => return Err(format!("a wrong code: {other:?}")),
    }
    codes.verify(&phone, &code).await.map_err(err)
}

async fn locks_flow(store: RedisStore, server: Arc<RedisServer>) -> Result<(), String> {
    // Held past its lease: the watchdog renews it.
    let short = Locks::new(store.clone())
        .with_options(LockOptions::new().with_lease(Duration::from_millis(300)));
    let renewed = short.try_acquire("acl-renewed").await.map_err(err)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    if renewed.is_lost() {
        return Err("the lock was not renewed".into());
    }
    renewed.release().await.map_err(err)?;
    // Lease and polling 10 s: only the release message can hand the lock over in time.
    let locks = Locks::new(store).with_options(
        LockOptions::new()
            .with_lease(Duration::from_secs(10))
            .with_poll_interval(Duration::from_secs(10)),
    );
    let holder = locks.try_acquire("acl").await.map_err(err)?;
    let waiter = {
        let locks = locks.clone();
        tokio::spawn(async move { locks.acquire("acl", Duration::from_secs(3)).await })
    };
    // The waiter subscribes to the release channel (without the permission to, it would
    // retry the subscription in a loop and still get the lock, hammering Redis).
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let (_, subscribers): (String, u64) = server.query(
            redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg("keygate:lock:{acl}:released"),
        );
        if subscribers == 1 {
            break;
        }
        if Instant::now() > deadline {
            holder.release().await.map_err(err)?;
            return Err("the waiter did not subscribe to the release channel".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    holder.release().await.map_err(err)?;
    let guard = waiter.await.map_err(err)?.map_err(err)?;
    guard.release().await.map_err(err)
}

/// Fails every order of user 666, and every other order once.
#[derive(Clone, Default)]
struct Flaky {
    calls: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
    poison: Arc<AtomicUsize>,
    failed_once: Arc<std::sync::Mutex<std::collections::HashSet<u64>>>,
}

#[async_trait]
impl OrderHandler for Flaky {
    async fn handle(&self, order: &Order) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if order.user_id == "666" {
            self.poison.fetch_add(1, Ordering::SeqCst);
            return Err(HandlerError("poison".into()));
        }
        if self.failed_once.lock().unwrap().insert(order.order_id) {
            return Err(HandlerError("try again".into()));
        }
        self.done.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

async fn seckill_flow(store: RedisStore, server: Arc<RedisServer>) -> Result<(), String> {
    let sale = FlashSale::new(store);
    sale.load(9, 2, SaleWindow::default()).await.map_err(err)?;
    for user in [1u64, 666] {
        match sale.order(9, &UserId::from(user)).await.map_err(err)? {
            OrderOutcome::Ordered { .. } => {}
            other => return Err(format!("order refused: {other:?}")),
        }
    }
    if sale.order(9, &UserId::from(2u64)).await.map_err(err)? != OrderOutcome::SoldOut {
        return Err("sold more than the stock".into());
    }
    if sale.stock(9).await.map_err(err)? != Some(0) {
        return Err("wrong stock".into());
    }
    let handler = Flaky::default();
    let consumer = OrderConsumer::new(
        &sale,
        handler.clone(),
        ConsumerOptions::new()
            .with_block(Duration::from_millis(100))
            .with_claim(Duration::from_millis(200), Duration::from_millis(100))
            .with_max_deliveries(2),
    )
    .spawn();
    // The good order succeeds on its second delivery; the poison one is dead-lettered
    // after two.
    // (A plain loop: `eventually`'s closure would make this future not `Send`.)
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut done = false;
    let stream = "keygate:seckill:{keygate:seckill:0}:orders";
    while !done && Instant::now() < deadline {
        // Both orders handled (the poison one dead-lettered) and acknowledged.
        done = handler.done.load(Ordering::SeqCst) == 1
            && handler.poison.load(Ordering::SeqCst) >= 2
            && server.query::<i64>(redis::cmd("XLEN").arg(format!("{stream}:dead"))) == 1
            && server
                .query::<(i64, redis::Value, redis::Value, redis::Value)>(
                    redis::cmd("XPENDING").arg(stream).arg("keygate-orders"),
                )
                .0
                == 0;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    consumer.shutdown().await;
    if done {
        Ok(())
    } else {
        Err("orders were not processed".into())
    }
}

fn flows() -> [(&'static str, &'static str, Flow); 4] {
    [
        ("sessions", SESSIONS, |s, r| Box::pin(sessions_flow(s, r))),
        ("codes", CODES, |s, r| Box::pin(codes_flow(s, r))),
        ("locks", LOCKS, |s, r| Box::pin(locks_flow(s, r))),
        ("seckill", SECKILL, |s, r| Box::pin(seckill_flow(s, r))),
    ]
}

/// Re-creates `user` with exactly `rules` and connects as
/// it over TLS.
async fn connect_as(server: &RedisServer, user: &str, rules: &str) -> Result<RedisStore, String> {
    let mut cmd = redis::cmd("ACL");
    cmd.arg("SETUSER")
        .arg(user)
        .arg("reset")
        .arg("on")
        .arg(">acl-pw");
    for rule in rules.split_whitespace() {
        cmd.arg(rule);
    }
    let () = server.query(&mut cmd);
    // Scripts not cached yet: the first call of each goes through `EVAL`.
    let () = server.query(redis::cmd("SCRIPT").arg("FLUSH"));
    let url = server
        .url()
        .replace("rediss://", &format!("rediss://{user}:acl-pw@"));
    RedisStore::connect_with(
        with_test_certificates(RedisOptions::new(url)).with_command_timeout(Duration::from_secs(2)),
    )
    .await
    .map_err(err)
}

fn tls_server() -> Arc<RedisServer> {
    Arc::new(RedisServer::start_tls(TlsServer::default(), &[]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_capability_works_with_exactly_its_rules() {
    let server = tls_server();
    for (name, rules, flow) in flows() {
        let store = connect_as(&server, name, rules).await.unwrap();
        flow(store, server.clone())
            .await
            .unwrap_or_else(|e| panic!("{name} with `{rules}`: {e}"));
        // Without any one of its rules, the flow fails.
        let tokens: Vec<&str> = rules.split_whitespace().collect();
        for (i, missing) in tokens.iter().enumerate() {
            let fewer: Vec<&str> = tokens
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, t)| *t)
                .collect();
            let user = format!("{name}-without");
            let store = connect_as(&server, &user, &fewer.join(" ")).await.unwrap();
            assert!(
                flow(store, server.clone()).await.is_err(),
                "{name} still works without `{missing}`: the rule is not needed"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rules_keep_other_keys_out_of_reach() {
    let server = tls_server();
    let all = [SESSIONS, CODES, LOCKS, SECKILL].join(" ");
    let store = connect_as(&server, "keygate", &all).await.unwrap();
    for (name, _, flow) in flows() {
        flow(store.clone(), server.clone())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // Connected as that user, another application's key is refused.
    let url = server
        .url()
        .replace("rediss://", "rediss://keygate:acl-pw@");
    let pki = keygate_tests::tls::Pki::shared();
    let client = redis::Client::build_with_tls(url, pki.client_certificates()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let denied: redis::RedisResult<Option<String>> = redis::cmd("GET")
        .arg("billing:secret")
        .query_async(&mut conn)
        .await;
    let error = denied.unwrap_err();
    assert_eq!(error.code(), Some("NOPERM"), "{error}");
    let denied: redis::RedisResult<()> = redis::cmd("FLUSHALL").query_async(&mut conn).await;
    assert_eq!(denied.unwrap_err().code(), Some("NOPERM"));
}

/// Prints the commands each flow sends (from `INFO commandstats`, as the default user):
/// how the rule sets above were found. `cargo test -p keygate-tests --test tls
/// commands_per_capability -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a tool for updating the rule sets, not a check"]
async fn commands_per_capability() {
    for (name, _, flow) in flows() {
        let server = tls_server();
        let store =
            RedisStore::connect_with(with_test_certificates(RedisOptions::new(server.url())))
                .await
                .unwrap();
        server.reset_stats();
        flow(store, server.clone()).await.unwrap();
        let calls: Vec<String> = server
            .command_calls()
            .into_iter()
            .filter(|(c, _)| !c.starts_with("info") && !c.starts_with("config"))
            .map(|(c, n)| format!("{c}={n}"))
            .collect();
        eprintln!("{name}: {}", calls.join(" "));
    }
}
