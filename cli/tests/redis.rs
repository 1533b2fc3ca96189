//! Every subcommand of the built `keygate-cli` against a private Redis server, through
//! `REDIS_URL`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::Duration;

use keygate::flash_sale::FlashSale;
use keygate::lock::{LockOptions, Locks};
use keygate::{LoginOptions, RedisStore, SessionConfig, SessionManager, Token, UserId};
use keygate_tests::RedisServer;
use serde_json::{Value, json};

use support::sale::dead_lettered_orders;
use support::{Run, cli};

struct Server {
    server: RedisServer,
    store: RedisStore,
}

impl Server {
    async fn start() -> Self {
        let server = RedisServer::start();
        let store = RedisStore::connect(&server.url()).await.unwrap();
        Self { server, store }
    }

    fn run(&self, args: &[&str]) -> Run {
        cli(&[("REDIS_URL", self.server.url())], args)
    }

    fn sessions(&self, config: SessionConfig) -> SessionManager<Value> {
        SessionManager::new(self.store.clone(), config).unwrap()
    }
}

/// Two sessions of user 598 in the Java seed's layout, one with a device label.
async fn two_sessions(s: &Server) -> (SessionManager<Value>, Token, Token) {
    let sessions = s.sessions(SessionConfig::java_seed());
    let user = UserId::from(598u64);
    let data = json!({"id": 598, "nickName": "user_x"});
    let phone = sessions
        .login_with(
            &user,
            &data,
            &LoginOptions::new().with_device("Mozilla/5.0 (iPhone)"),
        )
        .await
        .unwrap();
    let laptop = sessions.login(&user, &data).await.unwrap();
    (sessions, phone, laptop)
}

#[tokio::test]
async fn sessions_list_shows_public_ids_times_and_devices_never_tokens() {
    let s = Server::start().await;
    let (sessions, phone, laptop) = two_sessions(&s).await;
    let expected = sessions
        .sessions(&UserId::from(598u64), None)
        .await
        .unwrap();

    let listed = s.run(&["sessions", "list", "598", "--json"]);
    let doc = listed.json();
    assert_eq!(doc["user"], "598");
    assert_eq!(doc["layout"], "java");
    let rows = doc["sessions"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for (row, info) in rows.iter().zip(&expected) {
        assert_eq!(row["id"], info.id.as_str());
        assert_eq!(row["createdAtMs"], info.created_at_ms);
        assert!(row["lastSeenAtMs"].as_i64().unwrap() >= info.created_at_ms);
        assert!(row["createdAt"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(rows[0]["device"], "Mozilla/5.0 (iPhone)");
    assert_eq!(rows[1]["device"], Value::Null);

    let table = s.run(&["sessions", "list", "598"]);
    assert_eq!(table.code, 0, "{table:?}");
    assert!(table.stdout.starts_with("ID"), "{table:?}");
    assert!(table.stdout.contains(expected[0].id.as_str()));
    assert!(table.stdout.contains("Mozilla/5.0 (iPhone)"));
    for run in [&listed, &table] {
        for token in [&phone, &laptop] {
            assert!(!run.stdout.contains(token.expose()), "a token was printed");
            assert!(!run.stderr.contains(token.expose()), "a token was printed");
        }
    }

    // Another layout sees none of them, and leaves the user's index alone; a user nobody
    // knows has none.
    let node = s.run(&[
        "sessions",
        "list",
        "598",
        "--layout",
        "node:myapp",
        "--json",
    ]);
    assert_eq!(node.json()["sessions"], json!([]));
    let after = sessions
        .sessions(&UserId::from(598u64), None)
        .await
        .unwrap();
    assert_eq!(after.len(), 2, "the wrong layout pruned nothing");
    assert_eq!(
        s.run(&["sessions", "list", "599", "--json"]).json()["sessions"],
        json!([])
    );
}

#[tokio::test]
async fn sessions_end_asks_refuses_without_a_terminal_and_ends_one_or_all() {
    let s = Server::start().await;
    let (sessions, phone, laptop) = two_sessions(&s).await;
    let user = UserId::from(598u64);
    let listed = sessions.sessions(&user, None).await.unwrap();
    let phone_id = listed[0].id.to_string();

    // No terminal, no --yes: refused, nothing ended.
    s.run(&["sessions", "end", "598", &phone_id])
        .assert_error("--yes");
    s.run(&["sessions", "end", "598", "--all"])
        .assert_error("--yes");
    assert!(sessions.load(&phone).await.unwrap().is_some());
    assert!(sessions.load(&laptop).await.unwrap().is_some());

    // The wrong layout: refused, and nothing of the right one touched.
    s.run(&[
        "sessions",
        "end",
        "598",
        "--all",
        "--layout",
        "json:keygate:session:",
        "--yes",
    ])
    .assert_error("no live session");
    assert_eq!(sessions.sessions(&user, None).await.unwrap().len(), 2);

    // An id the user does not have: refused.
    let other = "0".repeat(32);
    s.run(&["sessions", "end", "598", &other, "--yes"])
        .assert_error("no live session");

    let ended = s.run(&["sessions", "end", "598", &phone_id, "--yes", "--json"]);
    assert_eq!(ended.json(), json!({"user": "598", "ended": 1}));
    assert!(sessions.load(&phone).await.unwrap().is_none());
    assert!(sessions.load(&laptop).await.unwrap().is_some());

    let all = s.run(&["sessions", "end", "598", "--all", "-y"]);
    assert_eq!(all.code, 0, "{all:?}");
    assert_eq!(all.stdout.trim(), "ended 1 session(s) of user 598");
    assert!(sessions.load(&laptop).await.unwrap().is_none());

    // Nothing left of the user's: refused, not "ended 0".
    s.run(&["sessions", "end", "598", "--all", "--yes"])
        .assert_error("no live session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_is_seen_by_watchers_elsewhere_as_ended_by_operator() {
    let s = Server::start().await;
    let (sessions, phone, laptop) = two_sessions(&s).await;
    let phone_id = sessions.session_id(&phone).to_string();
    let phone_ended = tokio::spawn(sessions.ended(&phone));
    let laptop_ended = tokio::spawn(sessions.ended(&laptop));
    assert!(
        keygate_tests::eventually(Duration::from_secs(10), async || {
            let stats = sessions.watch_stats();
            stats.watched == 2 && stats.tracking && stats.pending == 0
        })
        .await,
        "the watches are armed"
    );
    let within = Duration::from_secs(5);
    s.run(&["sessions", "end", "598", &phone_id, "--yes"]);
    let reason = tokio::time::timeout(within, phone_ended)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reason, keygate::EndReason::EndedByOperator);
    assert!(!laptop_ended.is_finished());
    s.run(&["sessions", "end", "598", "--all", "--yes"]);
    let reason = tokio::time::timeout(within, laptop_ended)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reason, keygate::EndReason::EndedByOperator);
}

#[tokio::test]
async fn destructive_commands_refuse_a_server_without_keygates_keys() {
    let s = Server::start().await;
    // Someone else's data.
    let _: () = s.server.query(redis::cmd("SET").arg("app:config").arg("x"));
    s.run(&["sessions", "end", "598", "--all", "--yes"])
        .assert_error("no live session");
    for action in ["replay", "drop"] {
        s.run(&[
            "flash-sale",
            "dead-letters",
            action,
            "7",
            "1733130000000-0",
            "--yes",
        ])
        .assert_error("no flash sale for voucher 7");
    }
    s.run(&["flash-sale", "status", "7"])
        .assert_error("no flash sale for voucher 7");
    let keys: Vec<String> = s.server.query(redis::cmd("KEYS").arg("*"));
    assert_eq!(keys, vec!["app:config".to_owned()], "nothing written");
}

#[tokio::test]
async fn sessions_count_counts_each_layout_and_the_indexes() {
    let s = Server::start().await;
    let java = s.sessions(SessionConfig::java_seed());
    let node = s.sessions(SessionConfig::node_seed("myapp"));
    for user in 1..=3u64 {
        java.login(&UserId::from(user), &json!({"id": user}))
            .await
            .unwrap();
    }
    for user in 1..=2u64 {
        node.login(&UserId::from(100 + user), &json!({"id": user}))
            .await
            .unwrap();
    }
    // Under the Java prefix but not a hash: not a session.
    let _: () = s
        .server
        .query(redis::cmd("SET").arg("login:token:notes").arg("x"));

    let counted = s
        .run(&[
            "sessions",
            "count",
            "--layout",
            "java",
            "--layout",
            "node:myapp",
            "--json",
        ])
        .json();
    assert_eq!(
        counted,
        json!([
            {"layout": "java", "prefix": "login:token:", "redisType": "hash", "keys": 3},
            {"layout": "node:myapp", "prefix": "myapp_", "redisType": "string", "keys": 2},
            {"layout": "index", "prefix": "keygate:user-sessions:", "redisType": "zset", "keys": 5},
        ])
    );
    let table = s.run(&["sessions", "count"]);
    assert_eq!(table.code, 0, "{table:?}");
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{table:?}");
    assert!(
        lines[1].starts_with("java") && lines[1].ends_with(" 3"),
        "{table:?}"
    );
    assert!(
        table.stderr.is_empty(),
        "no progress bar without a terminal: {table:?}"
    );
}

#[tokio::test]
async fn flash_sale_status_shows_stock_buyers_streams_lag_and_pending() {
    let s = Server::start().await;
    let sale = FlashSale::new(s.store.clone());
    let orders = dead_lettered_orders(&sale, 7, 5, &[1, 2]).await;
    assert_eq!(orders.len(), 2);
    // A read the stopped consumer had in flight may still take an order until its block
    // time ends: wait for it to end, so that the next order goes to the stuck worker.
    let unblocked = keygate_tests::eventually(Duration::from_secs(5), async || {
        let info: String = s.server.query(redis::cmd("INFO").arg("clients"));
        info.contains("blocked_clients:0")
    })
    .await;
    assert!(unblocked);
    // One more order, read by a consumer that never acknowledges it.
    sale.order(7, &UserId::from(3u64)).await.unwrap();
    let _: redis::Value = s.server.query(
        redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("keygate-orders")
            .arg("stuck-worker")
            .arg("COUNT")
            .arg(10)
            .arg("STREAMS")
            .arg("keygate:seckill:{keygate:seckill:0}:orders")
            .arg(">"),
    );
    let status = s.run(&["flash-sale", "status", "7", "--json"]).json();
    assert_eq!(status["voucherId"], 7);
    assert_eq!(status["shard"], 0);
    assert_eq!(status["stock"], 2);
    assert_eq!(status["buyers"], 3);
    assert_eq!(status["orders"], 3);
    assert_eq!(status["deadLetters"], 2);
    let groups = status["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{status}");
    assert_eq!(groups[0]["name"], "keygate-orders");
    assert_eq!(groups[0]["lag"], 0);
    assert_eq!(groups[0]["pending"], 1);
    let stuck: Vec<&Value> = groups[0]["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["pending"] != 0)
        .collect();
    assert_eq!(stuck.len(), 1, "{status}");
    assert_eq!(stuck[0]["name"], "stuck-worker", "{status}");
    assert_eq!(stuck[0]["pending"], 1);

    let table = s.run(&["flash-sale", "status", "7"]);
    assert_eq!(table.code, 0, "{table:?}");
    assert!(table.stdout.contains("stuck-worker"), "{table:?}");
    assert!(table.stdout.starts_with("VOUCHER"), "{table:?}");
}

#[tokio::test]
async fn dead_letters_are_listed_replayed_exactly_once_and_dropped() {
    let s = Server::start().await;
    let sale = FlashSale::new(s.store.clone());
    let orders = dead_lettered_orders(&sale, 7, 5, &[1, 2]).await;
    // Another voucher's dead letter on the same shard is not listed with voucher 7's.
    dead_lettered_orders(&sale, 8, 1, &[9]).await;

    let listed = s
        .run(&["flash-sale", "dead-letters", "list", "7", "--json"])
        .json();
    let letters = listed.as_array().unwrap();
    assert_eq!(letters.len(), 2, "{listed}");
    let listed_orders: Vec<u64> = letters
        .iter()
        .map(|l| l["orderId"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(listed_orders, orders);
    assert_eq!(letters[0]["error"], "database down");
    assert_eq!(letters[0]["userId"], "1");
    let first = letters[0]["id"].as_str().unwrap().to_owned();
    let second = letters[1]["id"].as_str().unwrap().to_owned();

    let stream = "keygate:seckill:{keygate:seckill:0}:orders";
    let xlen = || -> u64 { s.server.query(redis::cmd("XLEN").arg(stream)) };
    let before = xlen();

    s.run(&["flash-sale", "dead-letters", "replay", "7", &first])
        .assert_error("--yes");
    assert_eq!(xlen(), before, "refused: nothing enqueued");
    // Voucher 8's dead letter cannot be replayed as voucher 7's.
    let eights = s
        .run(&["flash-sale", "dead-letters", "list", "8", "--json"])
        .json();
    let eight = eights[0]["id"].as_str().unwrap().to_owned();
    s.run(&["flash-sale", "dead-letters", "replay", "7", &eight, "--yes"])
        .assert_error("no dead letter");
    assert_eq!(xlen(), before);
    let replayed = s
        .run(&[
            "flash-sale",
            "dead-letters",
            "replay",
            "7",
            &first,
            "--yes",
            "--json",
        ])
        .json();
    assert_eq!(replayed["replayed"], first.as_str());
    let entry = replayed["entryId"].as_str().unwrap().to_owned();
    assert_eq!(xlen(), before + 1);
    let added: Vec<(String, Vec<(String, String)>)> = s
        .server
        .query(redis::cmd("XRANGE").arg(stream).arg(&entry).arg(&entry));
    assert_eq!(
        added[0].1,
        vec![
            ("orderId".to_owned(), orders[0].to_string()),
            ("userId".to_owned(), "1".to_owned()),
            ("voucherId".to_owned(), "7".to_owned()),
        ]
    );

    // A second replay of the same id: an error, and the stream has the order once.
    s.run(&["flash-sale", "dead-letters", "replay", "7", &first, "--yes"])
        .assert_error("no dead letter");
    assert_eq!(xlen(), before + 1);
    let entries: Vec<(String, Vec<(String, String)>)> = s.server.query(
        redis::cmd("XRANGE")
            .arg(stream)
            .arg(format!("({}", just_before(&entry)))
            .arg("+"),
    );
    let copies = entries
        .iter()
        .filter(|(_, fields)| fields.contains(&("orderId".to_owned(), orders[0].to_string())))
        .count();
    assert_eq!(copies, 1, "replayed once");

    s.run(&["flash-sale", "dead-letters", "drop", "7", &second])
        .assert_error("--yes");
    let dropped = s.run(&[
        "flash-sale",
        "dead-letters",
        "drop",
        "7",
        &second,
        "-y",
        "--json",
    ]);
    assert_eq!(dropped.json(), json!({"dropped": second}));
    s.run(&["flash-sale", "dead-letters", "drop", "7", &second, "-y"])
        .assert_error("no dead letter");
    assert_eq!(
        s.run(&["flash-sale", "dead-letters", "list", "7", "--json"])
            .json(),
        json!([])
    );
    let others = s
        .run(&["flash-sale", "dead-letters", "list", "8", "--json"])
        .json();
    assert_eq!(
        others.as_array().unwrap().len(),
        1,
        "voucher 8's is untouched"
    );
}

/// A stream id just before `entry`, to read what was added from `entry` on (the original
/// order entry stays in the orders stream until a consumer trims it).
fn just_before(entry: &str) -> String {
    let (ms, _) = entry.split_once('-').unwrap();
    format!("{}-0", ms.parse::<u64>().unwrap() - 1)
}

#[tokio::test]
async fn lock_status_shows_holder_presence_lease_and_fence_never_the_owner() {
    let s = Server::start().await;
    let free = s.run(&["lock", "status", "order:42", "--json"]).json();
    assert_eq!(
        free,
        json!({"name": "order:42", "held": false, "leaseLeftMs": null, "fence": null})
    );
    let locks = Locks::new(s.store.clone())
        .with_options(LockOptions::new().with_lease(Duration::from_secs(30)));
    let guard = locks.try_acquire("order:42").await.unwrap();
    let owner: String = s
        .server
        .query(redis::cmd("GET").arg("keygate:lock:{order:42}"));

    let held = s.run(&["lock", "status", "order:42", "--json"]);
    let doc = held.json();
    assert_eq!(doc["held"], true);
    let left = doc["leaseLeftMs"].as_u64().unwrap();
    assert!(left > 0 && left <= 30_000, "{doc}");
    assert_eq!(doc["fence"], guard.fence());
    let table = s.run(&["lock", "status", "order:42"]);
    assert!(
        table.stdout.starts_with("lock order:42: held, lease left"),
        "{table:?}"
    );
    assert!(
        table.stdout.contains(&guard.fence().to_string()),
        "{table:?}"
    );
    for run in [&held, &table] {
        assert!(!run.stdout.contains(&owner), "the owner id was printed");
    }

    let fence = guard.fence();
    guard.release().await.unwrap();
    let released = s.run(&["lock", "status", "order:42", "--json"]).json();
    assert_eq!(released["held"], false);
    assert_eq!(released["fence"], fence);
}

#[tokio::test]
async fn usage_errors_exit_2_and_operation_errors_exit_1() {
    let s = Server::start().await;
    for args in [
        &["sessions", "end", "598"][..],
        &["sessions", "end", "598", "--all", &"a".repeat(32)],
        &["sessions", "list", "a b"],
        &["sessions", "list", "598", "--layout", "yaml:x"],
        &["sessions", "end", "598", "not-a-session-id"],
        &["flash-sale", "status", "seven"],
        &["lock"],
    ] {
        let run = s.run(args);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
    }
    let help = s.run(&["--help"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("REDIS_CLUSTER_URLS"), "{help:?}");
    // A prefix the core refuses: its configuration error, status 1.
    s.run(&["sessions", "list", "598", "--layout", "json:a{b"])
        .assert_error("may not contain braces");
    // No Redis named, or none reachable: one line, status 1.
    cli(&[], &["lock", "status", "x"]).assert_error("no Redis configured");
    cli(
        &[("REDIS_URL", "redis://:s3cret@127.0.0.1:1".to_owned())],
        &["lock", "status", "x"],
    )
    .assert_error("cannot reach Redis at 127.0.0.1:1");
    let leaked = cli(
        &[("REDIS_URL", "redis://:s3cret@127.0.0.1:1".to_owned())],
        &["lock", "status", "x"],
    );
    assert!(!leaked.stderr.contains("s3cret"), "{leaked:?}");
}

/// `events tail` prints a user's (or everyone's) last events, never a token; `--follow`
/// then prints new ones as they are recorded; `sessions end` records `operator-ended`
/// where the log is in use.
#[tokio::test]
async fn events_tail_prints_and_follows_the_log() {
    use keygate::session::EventLog;
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let s = Server::start().await;
    let sessions = s.sessions(SessionConfig::java_seed().with_event_log(EventLog::new()));
    let user = UserId::from(598u64);
    let data = json!({"id": "598"});
    let phone = sessions
        .login_with(&user, &data, &LoginOptions::new().with_device("Phone"))
        .await
        .unwrap();
    let other = sessions.login(&UserId::from(7u64), &data).await.unwrap();

    let mine = s.run(&["events", "tail", "--user", "598", "--json"]);
    assert_eq!(mine.code, 0, "{mine:?}");
    let rows: Vec<Value> = mine
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["kind"], "login");
    assert_eq!(rows[0]["user"], "598");
    assert_eq!(rows[0]["device"], "Phone");
    assert_eq!(
        rows[0]["sessionId"],
        sessions.session_id(&phone).to_string()
    );
    let all = s.run(&["events", "tail"]);
    assert_eq!(all.code, 0, "{all:?}");
    assert_eq!(
        all.stdout.lines().count(),
        3,
        "a header and two events: {all:?}"
    );
    for token in [&phone, &other] {
        assert!(!all.stdout.contains(token.expose()));
        assert!(!mine.stdout.contains(token.expose()));
    }

    // Follow: the process prints new events as they come.
    let mut child = Command::new(env!("CARGO_BIN_EXE_keygate-cli"))
        .env("REDIS_URL", s.server.url())
        .args([
            "events", "tail", "--user", "598", "--follow", "--json", "-n", "0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines_tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    // The follower starts from the stream's end: a login after it has connected shows.
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while seen.is_empty() && std::time::Instant::now() < deadline {
        let laptop = sessions
            .login_with(&user, &data, &LoginOptions::new().with_device("Laptop"))
            .await
            .unwrap();
        if let Ok(line) = lines_rx.recv_timeout(Duration::from_millis(500)) {
            seen.push((line, laptop));
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (line, _laptop) = seen.pop().expect("a followed event within 10 s");
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["kind"], "login");
    assert_eq!(event["device"], "Laptop");

    // An operator's end is recorded as such.
    let phone_id = sessions.session_id(&phone).to_string();
    let ended = s.run(&["sessions", "end", "598", &phone_id, "--yes", "--json"]);
    assert_eq!(ended.json()["ended"], 1);
    let last = sessions.events(&user, 1).await.unwrap();
    assert_eq!(
        last[0].kind,
        keygate::session::SessionEventKind::OperatorEnded
    );
    assert_eq!(last[0].session, sessions.session_id(&phone));
}
