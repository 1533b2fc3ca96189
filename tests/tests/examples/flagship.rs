//! The flagship (axum) only: flash sales over HTTP, orders stored by the in-process
//! consumer, and payment callbacks under a distributed lock.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures_util::future::join_all;
use keygate::Token;
use keygate_tests::eventually;
use keygate_tests::fixtures::{JavaUser, plant_java_session};
use serde_json::{Value, json};

use crate::http::Client;
use crate::launcher::Example;

const FLAGSHIP: &str = "axum-login";

/// The stock field of a voucher, at the core's documented key (shard 0).
fn stock(example: &Example, voucher: u64) -> i64 {
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

async fn load(http: &Client, voucher: u64, stock: u64) {
    http.post("/voucher/seckill")
        .json(&json!({"voucherId": voucher, "stock": stock}))
        .send()
        .await
        .envelope(200);
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

/// 300 concurrent orders from 100 users for a stock of 20: exactly 20 orders, to 20
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
    assert_eq!(stock(&example, 7), 0);

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

/// The statuses of the order routes: 404 unknown voucher or order, 409 already ordered
/// and sold out, 401 without a token, 400 for bad bodies.
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

    for body in [
        json!({"voucherId": 1}),
        json!({"stock": 1}),
        json!({"voucherId": -1, "stock": 1}),
    ] {
        http.post("/voucher/seckill")
            .json(&body)
            .send()
            .await
            .envelope(400);
    }
    http.post("/voucher/seckill")
        .body("{")
        .send()
        .await
        .envelope(400);
}

/// 50 concurrent payment callbacks for one order, from both sources: exactly one
/// `"processed"`, the order paid; bad sources are 400, unknown orders 404.
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
    http.post("/order/12345/pay-callback?source=web")
        .send()
        .await
        .envelope(404);
    http.post("/order/nope/pay-callback?source=web")
        .send()
        .await
        .envelope(404);

    let callbacks = (0..50).map(|i| {
        let source = if i % 2 == 0 { "web" } else { "wechat" };
        let target = format!("/order/{order}/pay-callback?source={source}");
        async move { http.post(&target).send().await }
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
    let again = http
        .post(&format!("/order/{order}/pay-callback?source=web"))
        .send()
        .await
        .data();
    assert_eq!(again, json!("duplicate"));
}

/// The callback goes through the distributed lock: while another instance holds the
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
    let answer = http
        .post(&format!("/order/{order}/pay-callback?source=wechat"))
        .send()
        .await
        .data();
    let waited = started.elapsed();
    assert_eq!(answer, json!("processed"));
    assert!(
        waited >= Duration::from_millis(1200),
        "the callback waited for the other holder: {waited:?}"
    );
}

/// With `REDIS_CLUSTER_URLS` the flagship runs on a Redis Cluster: login, sessions, a
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
    let paid = http
        .post(&format!("/order/{order}/pay-callback?source=wechat"))
        .send()
        .await
        .data();
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
