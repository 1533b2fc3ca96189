//! The flagship (axum) only: flash sales over HTTP, orders stored by the in-process
//! consumer, and payment callbacks under a distributed lock
//! (docs/http-api.md § Flagship routes).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use futures_util::future::join_all;
use hmac::{Hmac, Mac};
use keygate::Token;
use keygate_tests::fixtures::{JavaUser, plant_java_session};
use keygate_tests::{RedisServer, eventually};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::http::{Client, Request};
use crate::launcher::{ADMIN_TOKEN, Example, PAY_CALLBACK_SECRET};

const FLAGSHIP: &str = "axum-login";

/// An order id no order has.
const UNKNOWN_ORDER: u64 = 999_999_999;

/// The stock field of a voucher, at the core's documented key (shard 0); `None` without a
/// sale.
fn stock(example: &Example, voucher: u64) -> Option<i64> {
    example.redis.query(
        redis::cmd("HGET")
            .arg(format!(
                "keygate:seckill:{{keygate:seckill:0}}:voucher:{voucher}"
            ))
            .arg("stock"),
    )
}

/// Logs users in by planting their sessions, as a Java service sharing the Redis would.
fn plant_users(example: &Example, ids: impl IntoIterator<Item = u64>) -> Vec<(u64, String)> {
    ids.into_iter()
        .map(|id| {
            let token = Token::generate().expect("token").expose().to_owned();
            plant_java_session(&example.redis, &token, &JavaUser::new(id));
            (id, token)
        })
        .collect()
}

/// `POST /voucher/seckill` as the operator (docs/http-api.md § Flagship routes).
fn operator(http: &Client) -> Request {
    http.post("/voucher/seckill")
        .header("x-admin-token", ADMIN_TOKEN)
}

async fn load(http: &Client, voucher: u64, stock: u64) {
    operator(http)
        .json(&json!({"voucherId": voucher, "stock": stock}))
        .send()
        .await
        .envelope(200);
}

/// Lowercase hex HMAC-SHA256 of `message` keyed with `key`.
fn hmac_hex(key: &str, message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The payment provider's signature of a callback for `order` (docs/http-api.md
/// § Flagship routes): HMAC-SHA256 of `<orderId>:wechat` keyed with `PAY_CALLBACK_SECRET`.
fn signature(order: u64) -> String {
    hmac_hex(PAY_CALLBACK_SECRET, &format!("{order}:wechat"))
}

/// A payment callback as the provider sends it, signed.
fn provider_callback(http: &Client, order: u64) -> Request {
    http.post(&format!("/order/{order}/pay-callback?source=wechat"))
        .header("x-pay-signature", &signature(order))
}

/// A payment callback from the buyer's browser, with the buyer's token.
fn browser_callback(http: &Client, order: u64, token: &str) -> Request {
    http.post(&format!("/order/{order}/pay-callback?source=web"))
        .token(token)
}

/// The operator routes' budget: every request counts, refused or not (docs/http-api.md
/// § Operator route).
const OPERATOR_BUDGET: &str = "keygate:rate:{operator-ip:ip:127.0.0.1}";

/// Everything in a Redis but the operator routes' budget: every key with its type and
/// value (streams by length: the consumer group's bookkeeping changes as the consumer
/// polls). Compared before and after a refused request.
fn redis_state(redis: &RedisServer) -> (u64, BTreeMap<String, String>) {
    let keys: Vec<String> = redis.query(redis::cmd("KEYS").arg("*"));
    let keys: Vec<String> = keys.into_iter().filter(|k| k != OPERATOR_BUDGET).collect();
    let size = keys.len() as u64;
    let mut state = BTreeMap::new();
    for key in keys {
        let kind: String = redis.query(redis::cmd("TYPE").arg(&key));
        let value = match kind.as_str() {
            "string" => format!(
                "{:?}",
                redis.query::<Option<String>>(redis::cmd("GET").arg(&key))
            ),
            "hash" => format!(
                "{:?}",
                redis.query::<BTreeMap<String, String>>(redis::cmd("HGETALL").arg(&key))
            ),
            "set" => format!(
                "{:?}",
                redis.query::<BTreeSet<String>>(redis::cmd("SMEMBERS").arg(&key))
            ),
            "zset" => format!(
                "{:?}",
                redis.query::<Vec<(String, String)>>(
                    redis::cmd("ZRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .arg("WITHSCORES")
                )
            ),
            "stream" => format!(
                "length {}",
                redis.query::<u64>(redis::cmd("XLEN").arg(&key))
            ),
            _ => String::new(),
        };
        state.insert(key, format!("{kind} {value}"));
    }
    (size, state)
}

/// Waits until the consumer stored `order` and returns it.
async fn stored_order(http: &Client, token: &str, order: u64) -> Value {
    let mut found = None;
    let stored = eventually(Duration::from_secs(15), async || {
        let response = http
            .get(&format!("/voucher-order/{order}"))
            .token(token)
            .send()
            .await;
        if response.status == 200 {
            found = Some(response.data());
        } else {
            response.envelope(404);
        }
        found.is_some()
    })
    .await;
    assert!(stored, "order {order} was never stored");
    found.expect("stored")
}

/// A user with one processed order of `voucher` (stock 5): the user's token and the order id.
async fn one_stored_order(example: &Example, user: u64, voucher: u64) -> (String, u64) {
    let http = example.http;
    let (_, token) = plant_users(example, [user]).remove(0);
    load(&http, voucher, 5).await;
    let order = http
        .post(&format!("/voucher-order/seckill/{voucher}"))
        .token(&token)
        .send()
        .await
        .data()
        .as_u64()
        .expect("order id");
    stored_order(&http, &token, order).await;
    (token, order)
}

/// docs/http-api.md § Flagship routes: 300 concurrent orders from 100 users for a stock of 20: exactly 20 orders, to 20
/// different users, the stock at 0, and every order stored by the consumer.
pub async fn flash_sale_never_oversells() {
    let example = Example::start(FLAGSHIP).await;
    let http = example.http;
    load(&http, 7, 20).await;
    let users = plant_users(&example, 5001..=5100);

    let attempts = users
        .iter()
        .cycle()
        .take(300)
        .map(|(id, token)| async move {
            let response = http
                .post("/voucher-order/seckill/7")
                .token(token)
                .send()
                .await;
            (*id, response)
        });
    let results = join_all(attempts).await;

    let mut orders: HashMap<u64, u64> = HashMap::new();
    for (user, response) in &results {
        match response.status {
            200 => {
                let order = response.data().as_u64().expect("the order id is a number");
                assert!(
                    orders.insert(order, *user).is_none(),
                    "order id {order} given twice"
                );
            }
            409 => {
                response.envelope(409);
            }
            other => panic!("unexpected status {other}: {}", response.text()),
        }
    }
    assert_eq!(orders.len(), 20, "exactly the stock was sold");
    let buyers: HashSet<u64> = orders.values().copied().collect();
    assert_eq!(buyers.len(), 20, "nobody bought twice");
    assert_eq!(stock(&example, 7), Some(0));

    // Sold out for a newcomer; already ordered for a buyer.
    let (_, newcomer) = &plant_users(&example, [6000])[0];
    http.post("/voucher-order/seckill/7")
        .token(newcomer)
        .send()
        .await
        .envelope(409);

    // Every order is stored by the consumer and visible to its buyer only.
    let tokens: HashMap<u64, &String> = users.iter().map(|(id, t)| (*id, t)).collect();
    for (order, user) in &orders {
        let stored = stored_order(&http, tokens[user], *order).await;
        assert_eq!(
            stored,
            json!({"id": order, "voucherId": 7, "userId": user, "status": "unpaid"})
        );
        http.get(&format!("/voucher-order/{order}"))
            .token(newcomer)
            .send()
            .await
            .envelope(404);
    }
}

/// docs/http-api.md § Flagship routes: the statuses of the order routes: 404 unknown
/// voucher or order, 409 already ordered and sold out, 401 without a token.
pub async fn order_routes_answer_the_contract() {
    let example = Example::start(FLAGSHIP).await;
    let http = &example.http;
    let users = plant_users(&example, 1..=2);
    let (_, first) = &users[0];
    let (_, second) = &users[1];

    http.post("/voucher-order/seckill/99")
        .token(first)
        .send()
        .await
        .envelope(404);
    http.post("/voucher-order/seckill/not-a-number")
        .token(first)
        .send()
        .await
        .envelope(404);
    http.post("/voucher-order/seckill/99")
        .send()
        .await
        .envelope(401);
    http.get("/voucher-order/1").send().await.envelope(401);

    load(http, 3, 1).await;
    let order = http
        .post("/voucher-order/seckill/3")
        .token(first)
        .send()
        .await
        .data()
        .as_u64()
        .expect("order id");
    http.post("/voucher-order/seckill/3")
        .token(first)
        .send()
        .await
        .envelope(409);
    http.post("/voucher-order/seckill/3")
        .token(second)
        .send()
        .await
        .envelope(409);
    // An order that was never taken is not found.
    http.get(&format!("/voucher-order/{}", order + 1_000_000))
        .token(first)
        .send()
        .await
        .envelope(404);
    stored_order(http, first, order).await;

    // Reloading resets the stock and forgets the buyers.
    load(http, 3, 1).await;
    http.post("/voucher-order/seckill/3")
        .token(first)
        .send()
        .await
        .envelope(200);
}

/// docs/http-api.md § Flagship routes: 50 concurrent payment callbacks for one order,
/// from both sources (the buyer's browser with the buyer's token, the provider signed):
/// exactly one `"processed"`, the order paid; bad sources are 400, unknown orders 404.
pub async fn pay_callbacks_process_exactly_once() {
    let example = Example::start(FLAGSHIP).await;
    let http = example.http;
    let (token, order) = one_stored_order(&example, 42, 11).await;

    for target in [
        format!("/order/{order}/pay-callback"),
        format!("/order/{order}/pay-callback?source=alipay"),
        format!("/order/{order}/pay-callback?source="),
    ] {
        http.post(&target).send().await.envelope(400);
    }
    browser_callback(&http, 12345, &token)
        .send()
        .await
        .envelope(404);
    http.post("/order/nope/pay-callback?source=web")
        .token(&token)
        .send()
        .await
        .envelope(404);

    let callbacks = (0..50).map(|i| {
        let request = if i % 2 == 0 {
            browser_callback(&http, order, &token)
        } else {
            provider_callback(&http, order)
        };
        async move { request.send().await }
    });
    let answers: Vec<Value> = join_all(callbacks)
        .await
        .iter()
        .map(|response| response.data())
        .collect();
    let processed = answers.iter().filter(|a| **a == json!("processed")).count();
    let duplicate = answers.iter().filter(|a| **a == json!("duplicate")).count();
    assert_eq!((processed, duplicate), (1, 49), "{answers:?}");

    let stored = stored_order(&http, &token, order).await;
    assert_eq!(stored["status"], json!("paid"));
    let again = browser_callback(&http, order, &token).send().await.data();
    assert_eq!(again, json!("duplicate"));
}

/// docs/http-api.md § Flagship routes (payment callbacks): every refused callback answers
/// its status and changes nothing, in Redis (same keys, same values) or in SQLite (the
/// order stays unpaid). An unknown order is looked up before any lock is taken, so it
/// leaves no key behind.
pub async fn refused_pay_callbacks_change_nothing() {
    let example = Example::start(FLAGSHIP).await;
    let http = example.http;
    let (owner, order) = one_stored_order(&example, 42, 11).await;
    let (_, stranger) = plant_users(&example, [77]).remove(0);
    let target = |order: u64, source: &str| format!("/order/{order}/pay-callback?source={source}");
    let wechat = || http.post(&target(order, "wechat"));
    let web = || http.post(&target(order, "web"));
    let good = signature(order);
    let unknown_token = Token::generate().unwrap().expose().to_owned();

    let refusals: Vec<(&str, Request, u16)> = vec![
        ("provider without a signature", wechat(), 401),
        (
            "provider with a signature keyed otherwise",
            wechat().header(
                "x-pay-signature",
                &hmac_hex("another-secret", &format!("{order}:wechat")),
            ),
            401,
        ),
        (
            "provider with the signature in upper case",
            wechat().header("x-pay-signature", &good.to_uppercase()),
            401,
        ),
        (
            "provider with a truncated signature",
            wechat().header("x-pay-signature", &good[..63]),
            401,
        ),
        (
            "provider with the signature of another order",
            wechat().header("x-pay-signature", &signature(order + 1)),
            401,
        ),
        (
            "provider with a signature over the web source",
            wechat().header(
                "x-pay-signature",
                &hmac_hex(PAY_CALLBACK_SECRET, &format!("{order}:web")),
            ),
            401,
        ),
        (
            "provider with the owner's token instead of a signature",
            wechat().token(&owner),
            401,
        ),
        ("browser without a token", web(), 401),
        (
            "browser with a valid signature instead of a token",
            web().header("x-pay-signature", &good),
            401,
        ),
        ("browser with a malformed token", web().token("x"), 401),
        (
            "browser with an unknown token",
            web().token(&unknown_token),
            401,
        ),
        (
            "browser with another user's token",
            web().token(&stranger),
            404,
        ),
        (
            "browser for an unknown order",
            browser_callback(&http, UNKNOWN_ORDER, &owner),
            404,
        ),
        (
            "provider for an unknown order, validly signed",
            provider_callback(&http, UNKNOWN_ORDER),
            404,
        ),
    ];
    for (what, request, status) in refusals {
        let before = redis_state(&example.redis);
        let response = request.send().await;
        assert_eq!(response.status, status, "{what}: {}", response.text());
        response.envelope(status);
        assert_eq!(redis_state(&example.redis), before, "{what} changed Redis");
        let stored = stored_order(&http, &owner, order).await;
        assert_eq!(
            stored["status"],
            json!("unpaid"),
            "{what} changed the order"
        );
    }
    let left: Vec<String> = example
        .redis
        .query(redis::cmd("KEYS").arg(format!("*{UNKNOWN_ORDER}*")));
    assert!(left.is_empty(), "keys left for an unknown order: {left:?}");

    // Properly signed, the same order is processed, once.
    let paid = provider_callback(&http, order).send().await.data();
    assert_eq!(paid, json!("processed"));
    let again = browser_callback(&http, order, &owner).send().await.data();
    assert_eq!(again, json!("duplicate"));
    assert_eq!(
        stored_order(&http, &owner, order).await["status"],
        json!("paid")
    );
}

/// docs/http-api.md § Start-up (`PAY_CALLBACK_SECRET` unset): provider callbacks answer
/// 403 whatever they carry and change nothing; the buyer's own confirmation still works.
pub async fn provider_callbacks_are_off_without_a_secret() {
    let example = Example::start_without(FLAGSHIP, &["PAY_CALLBACK_SECRET"]).await;
    let http = example.http;
    let (owner, order) = one_stored_order(&example, 42, 11).await;
    let wechat = || http.post(&format!("/order/{order}/pay-callback?source=wechat"));
    for (what, request) in [
        ("without a signature", wechat()),
        (
            "with the suite's signature",
            provider_callback(&http, order),
        ),
        (
            "with an empty signature",
            wechat().header("x-pay-signature", ""),
        ),
    ] {
        let before = redis_state(&example.redis);
        request.send().await.envelope(403);
        assert_eq!(redis_state(&example.redis), before, "{what} changed Redis");
        let stored = stored_order(&http, &owner, order).await;
        assert_eq!(
            stored["status"],
            json!("unpaid"),
            "{what} changed the order"
        );
    }
    let paid = browser_callback(&http, order, &owner).send().await.data();
    assert_eq!(paid, json!("processed"));
}

/// docs/http-api.md § Flagship routes (operator route): without the right
/// `x-admin-token` the flash sale cannot be loaded or reset (401, nothing changed); with
/// it, out-of-range or malformed bodies are 400 and change nothing; the bounds themselves
/// are accepted.
pub async fn the_operator_route_needs_the_admin_token() {
    let example = Example::start(FLAGSHIP).await;
    let http = example.http;
    load(&http, 1, 5).await;
    assert_eq!(stock(&example, 1), Some(5));
    let reset = json!({"voucherId": 1, "stock": 999_999});

    let last = ADMIN_TOKEN.len() - 1;
    let same_length = format!("{}{}", &ADMIN_TOKEN[..last], "x");
    assert_eq!(same_length.len(), ADMIN_TOKEN.len());
    assert_ne!(same_length, ADMIN_TOKEN);
    let unauthorized: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("an empty token", Some(String::new())),
        ("a wrong token of the same length", Some(same_length)),
        ("a shorter token", Some(ADMIN_TOKEN[..last].to_owned())),
        ("a longer token", Some(format!("{ADMIN_TOKEN}x"))),
        ("the token in upper case", Some(ADMIN_TOKEN.to_uppercase())),
    ];
    for (what, token) in unauthorized {
        let before = redis_state(&example.redis);
        let mut request = http.post("/voucher/seckill").json(&reset);
        if let Some(token) = &token {
            request = request.header("x-admin-token", token);
        }
        request.send().await.envelope(401);
        assert_eq!(redis_state(&example.redis), before, "{what} changed Redis");
    }
    // The token goes in its header, nowhere else.
    for request in [
        http.post("/voucher/seckill")
            .token(ADMIN_TOKEN)
            .json(&reset),
        http.post(&format!("/voucher/seckill?tokenid={ADMIN_TOKEN}"))
            .json(&reset),
    ] {
        request.send().await.envelope(401);
    }
    assert_eq!(stock(&example, 1), Some(5), "the sale was not reset");

    let max_id: u64 = 1 << 53;
    let malformed: Vec<(&str, Vec<u8>)> = vec![
        (
            "voucherId 0",
            json!({"voucherId": 0, "stock": 1}).to_string().into(),
        ),
        (
            "voucherId 2^53 + 1",
            json!({"voucherId": max_id + 1, "stock": 1})
                .to_string()
                .into(),
        ),
        (
            "voucherId -1",
            json!({"voucherId": -1, "stock": 1}).to_string().into(),
        ),
        (
            "voucherId 1.5",
            json!({"voucherId": 1.5, "stock": 1}).to_string().into(),
        ),
        (
            "voucherId as text",
            json!({"voucherId": "1", "stock": 1}).to_string().into(),
        ),
        (
            "stock -1",
            json!({"voucherId": 1, "stock": -1}).to_string().into(),
        ),
        (
            "stock 10^9 + 1",
            json!({"voucherId": 1, "stock": 1_000_000_001})
                .to_string()
                .into(),
        ),
        (
            "stock above i64::MAX",
            br#"{"voucherId": 1, "stock": 9223372036854775808}"#.to_vec(),
        ),
        (
            "stock above u64::MAX",
            br#"{"voucherId": 1, "stock": 18446744073709551616}"#.to_vec(),
        ),
        ("no stock", json!({"voucherId": 1}).to_string().into()),
        ("no voucherId", json!({"stock": 1}).to_string().into()),
        ("unreadable JSON", b"{".to_vec()),
        ("no body", Vec::new()),
    ];
    for (what, body) in malformed {
        let before = redis_state(&example.redis);
        operator(&http)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .envelope(400);
        assert_eq!(redis_state(&example.redis), before, "{what} changed Redis");
    }
    assert_eq!(stock(&example, 1), Some(5));

    // The bounds are accepted: voucher 2^53 with 10^9, and a stock of 0 (sold out at once).
    load(&http, max_id, 1_000_000_000).await;
    assert_eq!(stock(&example, max_id), Some(1_000_000_000));
    load(&http, 1, 0).await;
    let (_, buyer) = plant_users(&example, [90]).remove(0);
    http.post("/voucher-order/seckill/1")
        .token(&buyer)
        .send()
        .await
        .envelope(409);
}

/// docs/http-api.md § Start-up (`ADMIN_TOKEN` unset): the operator route answers 403,
/// even with the token the suite would use, and changes nothing.
pub async fn the_operator_route_is_off_without_an_admin_token() {
    let example = Example::start_without(FLAGSHIP, &["ADMIN_TOKEN"]).await;
    let http = example.http;
    let body = json!({"voucherId": 1, "stock": 10});
    for (what, token) in [
        ("no token", None),
        ("the suite's token", Some(ADMIN_TOKEN)),
        ("an empty token", Some("")),
    ] {
        let before = redis_state(&example.redis);
        let mut request = http.post("/voucher/seckill").json(&body);
        if let Some(token) = token {
            request = request.header("x-admin-token", token);
        }
        request.send().await.envelope(403);
        assert_eq!(redis_state(&example.redis), before, "{what} changed Redis");
    }
    assert_eq!(stock(&example, 1), None, "no sale was loaded");
}

/// docs/http-api.md § Flagship routes: the callback goes through the distributed lock: while another instance holds the
/// order's lock, a callback waits for it (here until that holder's lease ends), then
/// processes. (The 50-callback test above checks the outcome; its race window is too short
/// to tell whether a lock was what serialized it.)
pub async fn pay_callbacks_wait_for_the_order_lock() {
    let example = Example::start(FLAGSHIP).await;
    let http = example.http;
    let (_, order) = one_stored_order(&example, 43, 12).await;

    // Another instance holds the order's lock for 1.5 s.
    let lock_key = format!("keygate:lock:{{order:{order}}}");
    let _: () = example.redis.query(
        redis::cmd("SET")
            .arg(&lock_key)
            .arg("another-instance")
            .arg("PX")
            .arg(1500),
    );
    let started = std::time::Instant::now();
    let answer = provider_callback(&http, order).send().await.data();
    let waited = started.elapsed();
    assert_eq!(answer, json!("processed"));
    assert!(
        waited >= Duration::from_millis(1200),
        "the callback waited for the other holder: {waited:?}"
    );
}

/// docs/http-api.md § Start-up: with `REDIS_CLUSTER_URLS` the flagship runs on a Redis
/// Cluster: login, sessions, a
/// flash sale and its consumer, and a payment callback.
pub async fn runs_on_a_redis_cluster() {
    let cluster = tokio::task::spawn_blocking(keygate_tests::RedisCluster::start)
        .await
        .expect("the cluster starts");
    let mut process = crate::launcher::Process::spawn(
        FLAGSHIP,
        &[
            ("REDIS_CLUSTER_URLS", cluster.urls().join(",")),
            // Ignored: the cluster wins.
            ("REDIS_URL", "redis://127.0.0.1:1".to_owned()),
            ("BIND_ADDR", "127.0.0.1:0".to_owned()),
            ("DATABASE_URL", "sqlite::memory:".to_owned()),
            ("ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
            ("PAY_CALLBACK_SECRET", PAY_CALLBACK_SECRET.to_owned()),
        ],
    );
    let http = Client::new(process.ready().await);
    let ready = process.stdout.find(" ready on ").expect("ready line");
    assert!(ready.contains("(backend: redis-cluster)"), "{ready}");

    let phone = crate::login::phone();
    http.post(&format!("/user/code?phone={phone}"))
        .send()
        .await
        .envelope(200);
    let code_key = format!("login:code:{phone}");
    let code: String = cluster.query_key(&code_key, redis::cmd("GET").arg(&code_key));
    let token = http
        .post("/user/login")
        .json(&json!({"phone": phone, "code": code}))
        .send()
        .await
        .data();
    let token = token.as_str().expect("a token").to_owned();
    let token_key = format!("login:token:{token}");
    let kind: String = cluster.query_key(&token_key, redis::cmd("TYPE").arg(&token_key));
    assert_eq!(kind, "hash");
    let me = http.get("/user/me").token(&token).send().await.data();
    let listed = http.get("/user/sessions").token(&token).send().await.data();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");

    load(&http, 21, 1).await;
    let order = http
        .post("/voucher-order/seckill/21")
        .token(&token)
        .send()
        .await
        .data()
        .as_u64()
        .expect("order id");
    http.post("/voucher-order/seckill/21")
        .token(&token)
        .send()
        .await
        .envelope(409);
    let stored = stored_order(&http, &token, order).await;
    assert_eq!(stored["userId"], me["id"]);
    let paid = provider_callback(&http, order).send().await.data();
    assert_eq!(paid, json!("processed"));

    http.post("/user/logout-all")
        .token(&token)
        .send()
        .await
        .envelope(200);
    http.get("/user/me")
        .token(&token)
        .send()
        .await
        .envelope(401);
}

/// `GET /metrics` after an order: the order attempt and its handling by the consumer are
/// counted (docs/http-api.md § Routes of every example, `GET /metrics`).
pub async fn metrics_count_orders_and_their_handling() {
    let example = Example::start(FLAGSHIP).await;
    let before = crate::login::scrape(&example.http).await;
    one_stored_order(&example, 41, 9).await;
    let after = crate::login::scrape(&example.http).await;
    let moved =
        |series: &str| crate::login::sample(&after, series) - crate::login::sample(&before, series);
    assert_eq!(
        moved("keygate_flash_sale_orders_total{outcome=\"ordered\"}"),
        1.0,
        "{after}"
    );
    // The consumer counts its handling after it stored the order, which the test saw:
    // the count may land a moment after. Scraped every 500 ms: the operator routes allow
    // 60 requests a minute.
    let mut handled_page = after.clone();
    let handled = eventually(Duration::from_secs(10), async || {
        let moved =
            crate::login::sample(
                &handled_page,
                "keygate_flash_sale_handled_total{outcome=\"ok\"}",
            ) - crate::login::sample(&before, "keygate_flash_sale_handled_total{outcome=\"ok\"}");
        if moved == 1.0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        handled_page = crate::login::scrape(&example.http).await;
        false
    })
    .await;
    assert!(handled, "the handled order is counted once: {handled_page}");
    // The running consumer reports its backlog every claim interval (5 s): nothing left.
    // Scraped every 500 ms: the operator routes allow 60 requests a minute.
    let mut page = after;
    let reported = eventually(Duration::from_secs(15), async || {
        page = crate::login::scrape(&example.http).await;
        let found = page.contains("keygate_flash_sale_pending{");
        if !found {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        found
    })
    .await;
    assert!(reported, "{page}");
    assert!(
        page.lines()
            .any(|l| l.starts_with("keygate_flash_sale_pending{") && l.ends_with(" 0")),
        "{page}"
    );
}
