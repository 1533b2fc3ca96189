//! docs/http-api.md § Rate limit: `POST /user/code` and `POST /user/login` share one
//! per-IP limit of `RATE_LIMIT_PER_IP` requests per rolling minute, kept in Redis; a
//! refused request is 429 with `Retry-After` and changes nothing else. The operator routes
//! have a budget of their own: 60 requests per IP per rolling minute, refused and accepted
//! alike.

use serde_json::json;

use crate::launcher::{ADMIN_TOKEN, Example};

fn phone(n: u32) -> String {
    format!("1390013{:04}", 8000 + n)
}

fn keys(example: &Example, pattern: &str) -> Vec<String> {
    example.redis.query(redis::cmd("KEYS").arg(pattern))
}

pub async fn the_fourth_request_of_a_minute_is_429(example: &'static str) {
    let example = Example::start_with(example, &[], &[("RATE_LIMIT_PER_IP", "3".to_owned())]).await;
    let http = &example.http;
    // Three codes for three phones (the per-phone resend cooldown does not interfere).
    for n in 0..3 {
        http.post(&format!("/user/code?phone={}", phone(n)))
            .send()
            .await
            .envelope(200);
    }
    let refused = http
        .post(&format!("/user/code?phone={}", phone(3)))
        .send()
        .await;
    let envelope = refused.envelope(429);
    assert_eq!(envelope["errorMsg"], "too many requests");
    // 3 in any rolling minute, all used at once: the next fits when the first is a minute
    // old, rounded up to whole seconds (a refilling quota would say 20 s).
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((59..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(refused.header("ratelimit-limit"), Some("3"));
    assert_eq!(refused.header("ratelimit-remaining"), Some("0"));
    // Nothing was sent or stored for the refused phone.
    assert!(keys(&example, &format!("*{}*", phone(3))).is_empty());
    example.process.logged_code(&phone(2)).await;
    let sent: Vec<String> = example
        .process
        .stdout
        .all()
        .into_iter()
        .filter(|l| l.contains("development code sender"))
        .collect();
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(!sent.iter().any(|l| l.contains(&phone(3))));

    // Login shares the budget: refused before the code is checked, so no try is counted.
    let code: String = example
        .redis
        .query(redis::cmd("GET").arg(format!("login:code:{}", phone(0))));
    let login = http
        .post("/user/login")
        .json(&json!({"phone": phone(0), "code": code}))
        .send()
        .await;
    login.envelope(429);
    assert!(login.header("retry-after").is_some());
    assert!(
        keys(&example, &format!("*tries*{}*", phone(0))).is_empty(),
        "{:?}",
        keys(&example, "*")
    );
    let code_still: Option<String> = example
        .redis
        .query(redis::cmd("GET").arg(format!("login:code:{}", phone(0))));
    assert_eq!(code_still, Some(code));

    // A refused login that carries a session's token does not load (or touch) it either.
    let session = "login:token:dd9b7511874889f4192fbda3d8b0881c";
    let _: () = example.redis.query(
        redis::cmd("HSET")
            .arg(session)
            .arg("id")
            .arg("1")
            .arg("nickName")
            .arg("user_x")
            .arg("icon")
            .arg(""),
    );
    let _: () = example
        .redis
        .query(redis::cmd("PEXPIRE").arg(session).arg(100_000));
    http.post("/user/login")
        .token("dd9b7511874889f4192fbda3d8b0881c")
        .json(&json!({"phone": phone(0), "code": "000000"}))
        .send()
        .await
        .envelope(429);
    let ttl: i64 = example.redis.query(redis::cmd("PTTL").arg(session));
    assert!(
        ttl <= 100_000,
        "the refused login touched the session: PTTL {ttl}"
    );

    // The budget lives in Redis, per client IP, and expires by itself: a log of the three
    // admitted requests' times (the refused ones are not recorded), kept one minute.
    let key = "keygate:rate:{login-ip:ip:127.0.0.1}";
    let ttl: i64 = example.redis.query(redis::cmd("PTTL").arg(key));
    assert!((1..=60_000).contains(&ttl), "{ttl}");
    let admitted: u64 = example.redis.query(redis::cmd("ZCARD").arg(key));
    assert_eq!(admitted, 3);
    // Other routes are not limited.
    http.get("/user/me").send().await.envelope(401);
}

/// docs/http-api.md § Operator route: every request to an operator route (`GET /metrics`,
/// and on the flagship `POST /voucher/seckill`) counts against one per-IP budget of 60 per
/// rolling minute, whether its token was right, wrong or missing; the 61st is 429 with
/// `Retry-After`, even with the right token. The login routes' budget is another.
pub async fn the_61st_operator_request_of_a_minute_is_429(example: &'static str) {
    let example_name = example;
    let example = Example::start(example).await;
    let http = &example.http;
    for n in 0..60 {
        let (token, status) = match n % 3 {
            0 => (Some(ADMIN_TOKEN), 200),
            1 => (Some("wrong"), 401),
            _ => (None, 401),
        };
        let mut request = if example_name == "axum-login" && n % 2 == 1 {
            http.post("/voucher/seckill")
                .json(&json!({"voucherId": 1, "stock": 10}))
        } else {
            http.get("/metrics")
        };
        if let Some(token) = token {
            request = request.header("x-admin-token", token);
        }
        let response = request.send().await;
        assert_eq!(response.status, status, "request {n}: {}", response.text());
    }
    for request in [
        http.get("/metrics").header("x-admin-token", ADMIN_TOKEN),
        http.get("/metrics"),
    ] {
        let refused = request.send().await;
        let envelope = refused.envelope(429);
        assert_eq!(envelope["errorMsg"], "too many requests");
        let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
    }
    if example_name == "axum-login" {
        http.post("/voucher/seckill")
            .header("x-admin-token", ADMIN_TOKEN)
            .json(&json!({"voucherId": 1, "stock": 10}))
            .send()
            .await
            .envelope(429);
    }
    // Kept in Redis per client IP, apart from the login routes' budget.
    let key = "keygate:rate:{operator-ip:ip:127.0.0.1}";
    let admitted: u64 = example.redis.query(redis::cmd("ZCARD").arg(key));
    assert_eq!(admitted, 60);
    http.post(&format!("/user/code?phone={}", phone(0)))
        .send()
        .await
        .envelope(200);
}

/// A `POST /user/code` for the `n`th phone, with these `X-Forwarded-For` lines.
async fn code_from(example: &Example, n: u32, forwarded_for: &[&str]) -> u16 {
    let mut request = example.http.post(&format!("/user/code?phone={}", phone(n)));
    for line in forwarded_for {
        request = request.header("x-forwarded-for", line);
    }
    request.send().await.status
}

/// Behind a trusted proxy (`TRUSTED_PROXIES`, here the loopback range the tests connect
/// from), the client IP is the rightmost untrusted address of every `X-Forwarded-For`
/// line: a client's own first line cannot pick its budget.
pub async fn trusted_proxies_name_the_client(example: &'static str) {
    let example = Example::start_with(
        example,
        &[],
        &[
            ("RATE_LIMIT_PER_IP", "2".to_owned()),
            ("TRUSTED_PROXIES", "127.0.0.0/8, ::1".to_owned()),
        ],
    )
    .await;
    // The client wrote the first line; the proxy appended the second.
    assert_eq!(
        code_from(&example, 0, &["198.51.100.1", "203.0.113.5"]).await,
        200
    );
    assert_eq!(
        code_from(&example, 1, &["198.51.100.2", "203.0.113.5"]).await,
        200
    );
    assert_eq!(
        code_from(&example, 2, &["198.51.100.3", "203.0.113.5"]).await,
        429
    );
    // Another client behind the same proxy has a budget of its own.
    assert_eq!(code_from(&example, 3, &["203.0.113.6"]).await, 200);
    let key = "keygate:rate:{login-ip:ip:203.0.113.5}";
    let admitted: u64 = example.redis.query(redis::cmd("ZCARD").arg(key));
    assert_eq!(admitted, 2);
    assert!(keys(&example, "keygate:rate:*198.51.100*").is_empty());
}

/// Without `TRUSTED_PROXIES`, `X-Forwarded-For` is ignored: the peer is the client.
pub async fn an_untrusted_peer_cannot_name_the_client(example: &'static str) {
    let example = Example::start_with(example, &[], &[("RATE_LIMIT_PER_IP", "2".to_owned())]).await;
    assert_eq!(code_from(&example, 0, &["203.0.113.1"]).await, 200);
    assert_eq!(code_from(&example, 1, &["203.0.113.2"]).await, 200);
    assert_eq!(code_from(&example, 2, &["203.0.113.3"]).await, 429);
    let admitted: u64 = example
        .redis
        .query(redis::cmd("ZCARD").arg("keygate:rate:{login-ip:ip:127.0.0.1}"));
    assert_eq!(admitted, 2);
}

/// IPv6 clients are counted per /64: two addresses of one /64 share one budget, an
/// address of another /64 has its own.
pub async fn ipv6_clients_of_one_64_share_a_budget(example: &'static str) {
    let example = Example::start_with(
        example,
        &[],
        &[
            ("RATE_LIMIT_PER_IP", "2".to_owned()),
            ("TRUSTED_PROXIES", "127.0.0.1".to_owned()),
        ],
    )
    .await;
    assert_eq!(code_from(&example, 0, &["2001:db8:1:2::1"]).await, 200);
    assert_eq!(code_from(&example, 1, &["2001:db8:1:2::ffff"]).await, 200);
    assert_eq!(code_from(&example, 2, &["2001:db8:1:2:aaaa::1"]).await, 429);
    assert_eq!(code_from(&example, 3, &["2001:db8:1:3::1"]).await, 200);
}
