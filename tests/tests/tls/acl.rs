//! An ACL user with only what keygate needs. The rules are read from SECURITY.md's table
//! ("Redis ACL users"), so the documentation and this test cannot drift: per capability,
//! a user with exactly its rules (plus those of the capabilities it builds on) runs the
//! capability's whole flow, and without any one of them the flow fails (the rules are
//! sufficient and each is needed). On one server over mutual TLS, and on a Redis Cluster,
//! where the Cluster's own rules are needed besides.

use keygate::SessionUser as _;
use std::collections::BTreeMap;
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
use keygate::rate_limit::{Quota, RateLimiter, Window};
use keygate::session::{EndReason, Ended, EventFollower, EventLog, NearCache, SessionEventKind};
use keygate::{
    LoginLimits, LoginOptions, RedisOptions, RedisStore, SessionConfig, SessionManager, UserId,
};
use keygate_tests::fixtures::{CapturingSender, JavaUser, with_test_certificates};
use keygate_tests::{RedisCluster, RedisServer, TlsServer};

/// SECURITY.md, whose ACL table this test reads.
const SECURITY: &str = include_str!("../../../SECURITY.md");

/// The rules of SECURITY.md's ACL table, by capability (the first column).
fn documented_rules() -> BTreeMap<String, String> {
    let section = SECURITY
        .split("\n## ")
        .find(|s| s.starts_with("Redis ACL users"))
        .expect("SECURITY.md has a section \"Redis ACL users\"");
    let mut rules = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| ")) {
        // Cells split on `|` not escaped as `\|` (inside the rules, `+xinfo\|groups`).
        let cells: Vec<String> = line
            .replace("\\|", "\u{1}")
            .split('|')
            .map(|c| c.trim().replace('\u{1}', "|"))
            .collect();
        let (Some(name), Some(last)) = (cells.get(1), cells.get(cells.len().saturating_sub(2)))
        else {
            continue;
        };
        if let Some(text) = last.strip_prefix('`').and_then(|t| t.strip_suffix('`')) {
            rules.insert(name.clone(), text.to_owned());
        }
    }
    rules
}

fn rules_of(name: &str) -> String {
    documented_rules()
        .remove(name)
        .unwrap_or_else(|| panic!("SECURITY.md's ACL table has no row {name:?}"))
}

type Flow = fn(RedisStore, Admin) -> futures_util::future::BoxFuture<'static, Result<(), String>>;

/// The capabilities, each with the rows it builds on and its flow.
fn capabilities() -> Vec<(&'static str, &'static [&'static str], Flow)> {
    vec![
        ("sessions", &[], |s, a| Box::pin(sessions_flow(s, a))),
        ("codes", &[], |s, a| Box::pin(codes_flow(s, a))),
        ("locks", &[], |s, a| Box::pin(locks_flow(s, a))),
        ("flash sales", &[], |s, a| Box::pin(seckill_flow(s, a))),
        ("rate limiter", &[], |s, a| Box::pin(rate_limit_flow(s, a))),
        ("near cache", &["sessions"], |s, a| {
            Box::pin(near_cache_flow(s, a))
        }),
        ("live sessions (`ended()`)", &["sessions"], |s, a| {
            Box::pin(live_sessions_flow(s, a))
        }),
        ("event log", &["sessions"], |s, a| {
            Box::pin(event_log_flow(s, a))
        }),
        (
            "CLI",
            &["sessions", "locks", "flash sales", "event log"],
            |s, a| Box::pin(cli_flow(s, a)),
        ),
    ]
}

/// What the flows inspect as the default user: one server or a cluster.
#[derive(Clone)]
pub enum Admin {
    Server(Arc<RedisServer>),
    Cluster(Arc<RedisCluster>),
}

impl Admin {
    fn query_key<T: redis::FromRedisValue>(&self, key: &str, cmd: &mut redis::Cmd) -> T {
        match self {
            Admin::Server(server) => server.query(cmd),
            Admin::Cluster(cluster) => cluster.query_key(key, cmd),
        }
    }

    /// Subscribers of `channel`, on every node.
    fn subscribers(&self, channel: &str) -> u64 {
        let mut cmd = redis::cmd("PUBSUB");
        cmd.arg("NUMSUB").arg(channel);
        match self {
            Admin::Server(server) => server.query::<(String, u64)>(&mut cmd).1,
            Admin::Cluster(cluster) => cluster
                .query_every_node::<(String, u64)>(&cmd)
                .into_iter()
                .map(|r| r.map_or(0, |(_, n)| n))
                .sum(),
        }
    }

    /// Empties the database (the flows start from nothing).
    fn flush(&self) {
        match self {
            Admin::Server(server) => {
                let () = server.query(&mut redis::cmd("FLUSHALL"));
            }
            Admin::Cluster(cluster) => cluster.flush(),
        }
    }

    /// Re-creates `user` with exactly `rules` (on every node of a cluster) and empties the
    /// script cache, so that the first call of each script goes through `EVAL`.
    fn set_user(&self, user: &str, rules: &str) {
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SETUSER")
            .arg(user)
            .arg("reset")
            .arg("on")
            .arg(">acl-pw");
        for rule in rules.split_whitespace() {
            cmd.arg(rule);
        }
        let mut flush = redis::cmd("SCRIPT");
        flush.arg("FLUSH");
        match self {
            Admin::Server(server) => {
                let () = server.query(&mut cmd);
                let () = server.query(&mut flush);
            }
            Admin::Cluster(cluster) => {
                for cmd in [&cmd, &flush] {
                    for result in cluster.query_every_node::<()>(cmd) {
                        result.expect("every node takes the command");
                    }
                }
            }
        }
    }

    async fn connect_as(&self, user: &str, rules: &str) -> Result<RedisStore, String> {
        self.flush();
        self.set_user(user, rules);
        let options = match self {
            Admin::Server(server) => with_test_certificates(RedisOptions::new(
                server
                    .url()
                    .replace("rediss://", &format!("rediss://{user}:acl-pw@")),
            )),
            Admin::Cluster(cluster) => RedisOptions::cluster(
                cluster
                    .urls()
                    .into_iter()
                    .map(|u| u.replace("redis://", &format!("redis://{user}:acl-pw@"))),
            ),
        };
        RedisStore::connect_with(options.with_command_timeout(Duration::from_secs(2)))
            .await
            .map_err(err)
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

async fn sessions_flow(store: RedisStore, _admin: Admin) -> Result<(), String> {
    let remember_store = store.clone();
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
        // Rotation renames the session (and its companion) key.
        let third = m.login(&uid, &user).await.map_err(err)?;
        let session = m.load(&third).await.map_err(err)?.ok_or("no session")?;
        let rotated = m
            .rotate(&session)
            .await
            .map_err(err)?
            .ok_or("not rotated")?;
        if m.load(&rotated.token).await.map_err(err)?.is_none() {
            return Err("the rotated token has no session".into());
        }
        m.logout(&first).await.map_err(err)?;
        m.logout_everywhere(&uid).await.map_err(err)?;
    }
    // Per-login expiry (remember-me): each session keeps its own idle TTL in its companion.
    let remember = SessionManager::<JavaUser>::new(
        remember_store,
        SessionConfig::default().with_login_limits(LoginLimits::new(
            Duration::from_secs(3600),
            Duration::from_secs(7200),
        )),
    )
    .map_err(err)?;
    let options = LoginOptions::new().with_idle_ttl(Duration::from_secs(3600));
    let token = remember
        .login_with(&uid, &user, &options)
        .await
        .map_err(err)?;
    remember
        .load(&token)
        .await
        .map_err(err)?
        .ok_or("no remembered session")?;
    let plain = remember.login(&uid, &user).await.map_err(err)?;
    remember
        .load(&plain)
        .await
        .map_err(err)?
        .ok_or("no session")?;
    Ok(())
}

async fn codes_flow(store: RedisStore, _admin: Admin) -> Result<(), String> {
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

async fn locks_flow(store: RedisStore, admin: Admin) -> Result<(), String> {
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
        if admin.subscribers("keygate:lock:{acl}:released") == 1 {
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
        if self
            .failed_once
            .lock()
            .expect("not poisoned")
            .insert(order.order_id)
        {
            return Err(HandlerError("try again".into()));
        }
        self.done.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

async fn seckill_flow(store: RedisStore, admin: Admin) -> Result<(), String> {
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
            .with_max_deliveries(2)
            .with_trim_every(Some(Duration::from_millis(100))),
    )
    .spawn();
    // The good order succeeds on its second delivery; the poison one is dead-lettered
    // after two.
    // (A plain loop: `eventually`'s closure would make this future not `Send`.)
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut done = false;
    let stream = "keygate:seckill:{keygate:seckill:0}:orders";
    let errors = "keygate:seckill:{keygate:seckill:0}:errors";
    while !done && Instant::now() < deadline {
        // Both orders handled (the poison one dead-lettered) and acknowledged.
        done = handler.done.load(Ordering::SeqCst) == 1
            && handler.poison.load(Ordering::SeqCst) >= 2
            && admin.query_key::<i64>(stream, redis::cmd("XLEN").arg(format!("{stream}:dead")))
                == 1
            && admin
                .query_key::<(i64, redis::Value, redis::Value, redis::Value)>(
                    stream,
                    redis::cmd("XPENDING").arg(stream).arg("keygate-orders"),
                )
                .0
                == 0
            // Trimmed: of the two handled orders, only the last delivered one is kept.
            && admin.query_key::<i64>(stream, redis::cmd("XLEN").arg(stream)) == 1
            // Handled orders leave no error record behind.
            && admin.query_key::<i64>(stream, redis::cmd("HLEN").arg(errors)) == 0;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    consumer.shutdown().await;
    if done {
        Ok(())
    } else {
        Err("orders were not processed".into())
    }
}

async fn rate_limit_flow(store: RedisStore, _admin: Admin) -> Result<(), String> {
    let quota = RateLimiter::new(store.clone(), "acl-quota", Quota::per_minute(2)).map_err(err)?;
    let window = RateLimiter::new(store, "acl-window", Window::per_minute(2)).map_err(err)?;
    for limiter in [quota, window] {
        let first = limiter.check("ip:192.0.2.7").await.map_err(err)?;
        let second = limiter.check("ip:192.0.2.7").await.map_err(err)?;
        let third = limiter.check("ip:192.0.2.7").await.map_err(err)?;
        if !(first.allowed && second.allowed && !third.allowed) {
            return Err(format!("wrong decisions: {first:?} {second:?} {third:?}"));
        }
    }
    Ok(())
}

/// The near cache serves a session from memory, and its tracking connection passes the
/// periodic check (`CLIENT TRACKINGINFO`, `ROLE`) without dropping the cache.
async fn near_cache_flow(store: RedisStore, _admin: Admin) -> Result<(), String> {
    let config = SessionConfig::default().with_near_cache(
        NearCache::new(100, Duration::from_secs(60)).with_tracking_check(Duration::from_millis(50)),
    );
    let sessions = SessionManager::<JavaUser>::new(store, config).map_err(err)?;
    let user = JavaUser::new(8);
    let token = sessions.login(&user.user_id(), &user).await.map_err(err)?;
    let stats = || sessions.near_cache_stats().unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(3);
    while stats().hits == 0 {
        if Instant::now() > deadline {
            return Err(format!("no load was served from memory: {:?}", stats()));
        }
        sessions
            .load(&token)
            .await
            .map_err(err)?
            .ok_or("no session")?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Several tracking checks later, the cache was never dropped and still serves.
    let flushes = stats().flushes;
    let hits = stats().hits;
    let until = Instant::now() + Duration::from_millis(400);
    while Instant::now() < until {
        sessions
            .load(&token)
            .await
            .map_err(err)?
            .ok_or("no session")?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = stats();
    if after.flushes != flushes || after.hits <= hits {
        return Err(format!("the tracking check dropped the cache: {after:?}"));
    }
    Ok(())
}

/// `ended()` with the near cache off: the watchers' own tracking connection comes up and
/// passes its periodic check (`CLIENT TRACKINGINFO`, `ROLE`) without ever falling back to
/// re-checking the watched session, and Redis's announcement of a logout made by another
/// instance ends the watch with the reason its end mark holds.
async fn live_sessions_flow(store: RedisStore, _admin: Admin) -> Result<(), String> {
    let config = SessionConfig::default().with_watch_recheck(Duration::from_millis(50));
    let sessions = SessionManager::<JavaUser>::new(store.clone(), config.clone()).map_err(err)?;
    let elsewhere = SessionManager::<JavaUser>::new(store, config).map_err(err)?;
    let user = JavaUser::new(10);
    let token = sessions.login(&user.user_id(), &user).await.map_err(err)?;
    let mut ended = sessions.ended(&token);
    // Tracking up, and the session checked on the tracking connection (which arms it).
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let now = sessions.watch_stats();
        if now.tracking && now.watched == 1 && now.pending == 0 && now.checks > 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("the watch never relied on tracking: {now:?}"));
        }
        still_live(&mut ended, 10).await?;
    }
    // Several tracking checks later, tracking was never lost: a loss re-checks every
    // watched session.
    let before = sessions.watch_stats();
    let until = Instant::now() + Duration::from_millis(400);
    while Instant::now() < until {
        still_live(&mut ended, 10).await?;
        if !sessions.watch_stats().tracking {
            return Err("the tracking check failed".into());
        }
    }
    let after = sessions.watch_stats();
    if after.checks != before.checks {
        return Err(format!(
            "the tracking check failed: {after:?} (before: {before:?})"
        ));
    }
    elsewhere.logout(&token).await.map_err(err)?;
    match tokio::time::timeout(Duration::from_secs(2), ended).await {
        Ok(EndReason::LoggedOut) => Ok(()),
        other => Err(format!("the logout was seen as {other:?}")),
    }
}

/// Waits `ms` while driving `ended` (its first poll starts the watch), which must not
/// complete meanwhile.
async fn still_live(ended: &mut Ended, ms: u64) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_millis(ms), ended).await {
        Ok(reason) => Err(format!("the watch ended early: {reason}")),
        Err(_) => Ok(()),
    }
}

/// The next followed event, within a few seconds.
async fn next_event(follower: &mut EventFollower) -> Result<SessionEventKind, String> {
    tokio::time::timeout(Duration::from_secs(3), follower.next())
        .await
        .map_err(|_| "no event followed".to_owned())?
        .map(|event| event.kind)
        .map_err(err)
}

/// The event log: logins, a rotation, a logout, an eviction by the cap and a "log out
/// everywhere" are recorded (by the index scripts, in the user's stream and in the stream
/// of all users), read back, and followed (a blocking `XREAD` on a connection of its own).
async fn event_log_flow(store: RedisStore, _admin: Admin) -> Result<(), String> {
    use SessionEventKind::{Evicted, Login, Logout, LogoutAll, Rotated};
    let sessions = SessionManager::<JavaUser>::new(
        store,
        SessionConfig::java_seed()
            .with_max_sessions_per_user(2)
            .with_event_log(EventLog::new()),
    )
    .map_err(err)?;
    let user = JavaUser::new(11);
    let uid = user.user_id();
    let mut mine = sessions.follow_events(Some(&uid)).await.map_err(err)?;
    let mut everyone = sessions.follow_events(None).await.map_err(err)?;
    let first = sessions.login(&uid, &user).await.map_err(err)?;
    for follower in [&mut mine, &mut everyone] {
        let kind = next_event(follower).await?;
        if kind != Login {
            return Err(format!("followed {kind} instead of the login"));
        }
    }
    let session = sessions
        .load(&first)
        .await
        .map_err(err)?
        .ok_or("no session")?;
    let rotated = sessions
        .rotate(&session)
        .await
        .map_err(err)?
        .ok_or("not rotated")?;
    let session = sessions
        .load(&rotated.token)
        .await
        .map_err(err)?
        .ok_or("no rotated session")?;
    sessions.logout_session(&session).await.map_err(err)?;
    // The third login ends the oldest of the two before it.
    for _ in 0..3 {
        sessions.login(&uid, &user).await.map_err(err)?;
    }
    sessions.logout_everywhere(&uid).await.map_err(err)?;
    let mut expected = vec![
        Login, Rotated, Logout, Login, Login, Login, Evicted, LogoutAll, LogoutAll,
    ];
    expected.sort_by_key(|k| k.as_str());
    let user_events = sessions.events(&uid, 20).await.map_err(err)?;
    let all_events = sessions.recent_events(20).await.map_err(err)?;
    for (stream, events) in [("the user's", user_events), ("all users'", all_events)] {
        let mut kinds: Vec<SessionEventKind> = events.iter().map(|e| e.kind).collect();
        kinds.sort_by_key(|k| k.as_str());
        if kinds != expected {
            return Err(format!("{stream} stream holds {kinds:?}"));
        }
    }
    Ok(())
}

/// What `keygate-cli` does, through the library calls it makes: list and end sessions,
/// tail and follow the event log, count keys, a sale's status, list, replay and drop dead
/// letters, a lock's status.
async fn cli_flow(store: RedisStore, admin: Admin) -> Result<(), String> {
    // A sale with a dead letter, a consumer group and consumers.
    seckill_flow(store.clone(), admin).await?;
    let sale = FlashSale::new(store.clone());
    let status = sale.status(9).await.map_err(err)?.ok_or("no sale")?;
    if status.groups.is_empty() {
        return Err("no consumer group".into());
    }
    let letters = sale.dead_letters(sale.shard_of(9), 10).await.map_err(err)?;
    let letter = letters.first().ok_or("no dead letter")?;
    if sale
        .replay_dead_letter(9, &letter.id)
        .await
        .map_err(err)?
        .is_none()
    {
        return Err("the dead letter was not replayed".into());
    }
    if sale.drop_dead_letter(9, &letter.id).await.map_err(err)? {
        return Err("a replayed dead letter was dropped".into());
    }
    // `sessions end`, where the event log is in use: it finds an event in the stream of
    // all users, and records the end there.
    let sessions = SessionManager::<JavaUser>::new(
        store.clone(),
        SessionConfig::java_seed().with_event_log(EventLog::new()),
    )
    .map_err(err)?;
    let user = JavaUser::new(9);
    let uid = user.user_id();
    sessions.login(&uid, &user).await.map_err(err)?;
    if sessions.recent_events(1).await.map_err(err)?.is_empty() {
        return Err("no event recorded".into());
    }
    let listed = sessions.peek_sessions(&uid).await.map_err(err)?;
    let one = listed.first().ok_or("no session listed")?;
    if sessions
        .operator_end(&uid, Some(&one.id))
        .await
        .map_err(err)?
        != 1
    {
        return Err("the session was not ended".into());
    }
    // `events tail --user 9 --follow`: the last events, then the next from the last one's
    // position.
    let tail = sessions.events(&uid, 20).await.map_err(err)?;
    let last = tail.last().ok_or("no events")?;
    if last.kind != SessionEventKind::OperatorEnded {
        return Err(format!("the last event is {}", last.kind));
    }
    let mut follower = sessions
        .follow_events_after(Some(&uid), &last.position)
        .await
        .map_err(err)?;
    sessions.login(&uid, &user).await.map_err(err)?;
    let kind = next_event(&mut follower).await?;
    if kind != SessionEventKind::Login {
        return Err(format!("followed {kind} instead of the login"));
    }
    if store
        .count_keys("login:token:", Some("hash"), |_| {})
        .await
        .map_err(err)?
        == 0
    {
        return Err("no session counted".into());
    }
    Locks::new(store).status("acl-cli").await.map_err(err)?;
    Ok(())
}

/// The user's rules: the capability's own and those of the rows it builds on.
fn rules_for(name: &str, builds_on: &[&str], extra: &str) -> String {
    let mut rules: Vec<String> = builds_on.iter().map(|b| rules_of(b)).collect();
    rules.push(extra.to_owned());
    rules.push(rules_of(name));
    rules.join(" ")
}

/// Runs every capability's flow as a user with its rules, then, for each of its own rules,
/// as a user without that one, which must fail.
async fn each_capability_needs_exactly_its_rules(admin: Admin, extra: &str) {
    for (name, builds_on, flow) in capabilities() {
        let rules = rules_for(name, builds_on, extra);
        let store = admin.connect_as(&acl_user(name), &rules).await.unwrap();
        flow(store, admin.clone())
            .await
            .unwrap_or_else(|e| panic!("{name} with `{rules}`: {e}"));
        let own = rules_of(name);
        let own: Vec<&str> = own.split_whitespace().collect();
        for (i, missing) in own.iter().enumerate() {
            let fewer: Vec<&str> = own
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, t)| *t)
                .collect();
            let rules = rules_for(name, builds_on, extra).replace(&own.join(" "), &fewer.join(" "));
            let store = match admin
                .connect_as(&format!("{}-without", acl_user(name)), &rules)
                .await
            {
                Ok(store) => store,
                Err(_) => continue, // cannot even connect: the rule is needed
            };
            assert!(
                flow(store, admin.clone()).await.is_err(),
                "{name} still works without `{missing}`: the rule is not needed"
            );
        }
    }
}

/// The ACL user of a capability: its name's words joined by `-` (`live-sessions-ended`).
fn acl_user(capability: &str) -> String {
    capability
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

fn tls_server() -> Admin {
    Admin::Server(Arc::new(RedisServer::start_tls(TlsServer::default(), &[])))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_capability_works_with_exactly_its_rules() {
    each_capability_needs_exactly_its_rules(tls_server(), "").await;
}

#[test]
fn the_table_covers_every_capability() {
    let documented = documented_rules();
    for (name, _, _) in capabilities() {
        assert!(documented.contains_key(name), "no ACL rules for {name}");
    }
    assert!(documented.contains_key("Cluster"));
    assert_eq!(
        documented.len(),
        capabilities().len() + 1,
        "{documented:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rules_keep_other_keys_out_of_reach() {
    let admin = tls_server();
    let Admin::Server(server) = &admin else {
        unreachable!()
    };
    let all: Vec<String> = documented_rules()
        .into_iter()
        .filter(|(name, _)| name != "Cluster")
        .map(|(_, rules)| rules)
        .collect();
    let store = admin.connect_as("keygate", &all.join(" ")).await.unwrap();
    for (name, _, flow) in capabilities() {
        admin.flush();
        flow(store.clone(), admin.clone())
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

/// On a Redis Cluster: every capability with its rules and the Cluster's, each of its
/// rules needed; and each of the Cluster's rules needed (`+asking` by a slot in migration).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_each_capability_needs_its_rules_and_the_clusters() {
    let cluster = tokio::task::spawn_blocking(RedisCluster::shared)
        .await
        .unwrap();
    let admin = Admin::Cluster(cluster.clone());
    let cluster_rules = rules_of("Cluster");
    each_capability_needs_exactly_its_rules(admin.clone(), &cluster_rules).await;
    let own: Vec<&str> = cluster_rules.split_whitespace().collect();
    let sessions = rules_of("sessions");
    let store = admin
        .connect_as("cluster", &format!("{sessions} {cluster_rules}"))
        .await
        .unwrap();
    asking_flow(store, &cluster).await.unwrap();
    for (i, missing) in own.iter().enumerate() {
        let fewer: Vec<&str> = own
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, t)| *t)
            .collect();
        let rules = format!("{sessions} {}", fewer.join(" "));
        let failed = match admin.connect_as("cluster-without", &rules).await {
            Err(_) => true,
            Ok(store) => {
                sessions_flow(store.clone(), admin.clone()).await.is_err()
                    || asking_flow(store, &cluster).await.is_err()
            }
        };
        assert!(failed, "the cluster still works without `{missing}`");
    }
}

/// A load of a session whose slot is being migrated, of a key the old owner no longer
/// has: the old owner answers `ASK`, and the client asks the new owner (`ASKING`).
async fn asking_flow(store: RedisStore, cluster: &RedisCluster) -> Result<(), String> {
    let sessions = SessionManager::<JavaUser>::new(store, SessionConfig::default()).map_err(err)?;
    let token = keygate::Token::generate().map_err(err)?;
    let key = format!("keygate:session:{}", token.expose());
    let slot = cluster.keyslot(&key);
    let source = cluster.master_of_slot(slot);
    let target = cluster
        .masters()
        .into_iter()
        .find(|m| *m != source)
        .ok_or("one master only")?;
    let node = |port: u16| {
        redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .and_then(|c| c.get_connection())
            .map_err(err)
    };
    let (mut source_conn, mut target_conn) = (node(source)?, node(target)?);
    let id = |conn: &mut redis::Connection| -> Result<String, String> {
        redis::cmd("CLUSTER").arg("MYID").query(conn).map_err(err)
    };
    let (source_id, target_id) = (id(&mut source_conn)?, id(&mut target_conn)?);
    let setslot = |conn: &mut redis::Connection, state: &[&str]| -> Result<(), String> {
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(state)
            .query(conn)
            .map_err(err)
    };
    setslot(&mut target_conn, &["IMPORTING", &source_id])?;
    setslot(&mut source_conn, &["MIGRATING", &target_id])?;
    let loaded = sessions.load(&token).await;
    setslot(&mut source_conn, &["STABLE"])?;
    setslot(&mut target_conn, &["STABLE"])?;
    match loaded {
        Ok(None) => Ok(()),
        other => Err(format!("a load during the migration: {other:?}")),
    }
}

/// Prints the commands each flow sends (from `INFO commandstats`, as the default user):
/// how the rule sets were found. `cargo test -p keygate-tests --test tls
/// commands_per_capability -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a tool for updating the rule sets, not a check"]
async fn commands_per_capability() {
    for (name, _, flow) in capabilities() {
        let admin = tls_server();
        let Admin::Server(server) = &admin else {
            unreachable!()
        };
        let store =
            RedisStore::connect_with(with_test_certificates(RedisOptions::new(server.url())))
                .await
                .unwrap();
        server.reset_stats();
        flow(store, admin.clone()).await.unwrap();
        let calls: Vec<String> = server
            .command_calls()
            .into_iter()
            .filter(|(c, _)| !c.starts_with("info") && !c.starts_with("config"))
            .map(|(c, n)| format!("{c}={n}"))
            .collect();
        eprintln!("{name}: {}", calls.join(" "));
    }
}
