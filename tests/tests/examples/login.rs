//! The login contract (docs/http-api.md § Routes of every example), driven over HTTP
//! against each example.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keygate::Token;
use keygate_tests::fixtures::{JavaUser, malformed_tokens, plant_java_session, pttl};
use keygate_tests::{RedisServer, eventually};
use serde_json::{Value, json};

use crate::http::Client;
use crate::launcher::Example;

/// The page's `Content-Security-Policy` (docs/http-api.md § The page).
pub const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
     style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// A distinct valid mainland mobile number per call.
pub fn phone() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "1380013{:04}",
        NEXT.fetch_add(1, Ordering::Relaxed) % 10_000
    )
}

fn code_key(phone: &str) -> String {
    format!("login:code:{phone}")
}

fn token_key(token: &str) -> String {
    format!("login:token:{token}")
}

fn exists(redis: &RedisServer, key: &str) -> bool {
    redis.query::<i64>(redis::cmd("EXISTS").arg(key)) == 1
}

/// Sends a code over HTTP and reads it from Redis, as a test of the Java layout may.
pub async fn send_code(http: &Client, redis: &RedisServer, phone: &str) -> String {
    http.post(&format!("/user/code?phone={phone}"))
        .send()
        .await
        .envelope(200);
    redis.query(redis::cmd("GET").arg(code_key(phone)))
}

/// Logs in with `code`; returns the token.
pub async fn login_with(http: &Client, phone: &str, code: &str) -> String {
    let data = http
        .post("/user/login")
        .json(&json!({"phone": phone, "code": code}))
        .send()
        .await
        .data();
    data.as_str()
        .unwrap_or_else(|| panic!("the token is a string: {data}"))
        .to_owned()
}

/// Requests a code, reads it from Redis, logs in.
pub async fn login(http: &Client, redis: &RedisServer, phone: &str) -> String {
    let code = send_code(http, redis, phone).await;
    login_with(http, phone, &code).await
}

/// Logs in again within the resend cooldown: the code is written to Redis directly, as
/// the Java service of the seed writes it.
pub async fn login_again(http: &Client, redis: &RedisServer, phone: &str) -> String {
    let _: () = redis.query(
        redis::cmd("SET")
            .arg(code_key(phone))
            .arg("424242")
            .arg("EX")
            .arg(120),
    );
    login_with(http, phone, "424242").await
}

async fn me(http: &Client, token: &str) -> Value {
    http.get("/user/me").token(token).send().await.data()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// docs/http-api.md § Routes of every example, § Redis layout: codes at `login:code:<phone>` (string, TTL ≤ 120 s), the 60 s resend limit with
/// `Retry-After`, login creating a user and a session hash at `login:token:<token>`
/// (fields id, nickName, icon; TTL ≤ 1800 s), codes working once.
pub async fn code_login_and_redis_layout(example: &'static str) {
    let Example { redis, http, .. } = &Example::start(example).await;
    let phone = phone();

    let code = send_code(http, redis, &phone).await;
    assert_eq!(
        redis.query::<String>(redis::cmd("TYPE").arg(code_key(&phone))),
        "string"
    );
    assert!(
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        "{code}"
    );
    let ttl: i64 = redis.query(redis::cmd("TTL").arg(code_key(&phone)));
    assert!((1..=120).contains(&ttl), "code TTL {ttl}");

    // Resend within 60 s: 429 with Retry-After.
    let again = http.post(&format!("/user/code?phone={phone}")).send().await;
    again.envelope(429);
    let retry: u64 = again
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("429 carries Retry-After: {:?}", again.headers));
    assert!((1..=60).contains(&retry), "Retry-After {retry}");

    // The phone as a form field.
    let other = self::phone();
    http.post("/user/code")
        .form(&format!("phone={other}"))
        .send()
        .await
        .envelope(200);
    assert!(exists(redis, &code_key(&other)));

    // Malformed phones and no phone: 400.
    for bad in ["12345", "23800138000", "138001380000", "1380013800a"] {
        http.post(&format!("/user/code?phone={bad}"))
            .send()
            .await
            .envelope(400);
    }
    http.post("/user/code").send().await.envelope(400);

    // A wrong code: 401; the right one: a token; the same code again: 401.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    http.post("/user/login")
        .json(&json!({"phone": phone, "code": wrong}))
        .send()
        .await
        .envelope(401);
    let token = login_with(http, &phone, &code).await;
    assert!(Token::parse(&token).is_ok(), "a well-formed token: {token}");
    http.post("/user/login")
        .json(&json!({"phone": phone, "code": code}))
        .send()
        .await
        .envelope(401);
    assert!(!exists(redis, &code_key(&phone)), "a used code is gone");

    // The session: a hash of string fields with the Java seed's names.
    let key = token_key(&token);
    assert_eq!(redis.query::<String>(redis::cmd("TYPE").arg(&key)), "hash");
    let fields: std::collections::HashMap<String, String> =
        redis.query(redis::cmd("HGETALL").arg(&key));
    for field in ["id", "nickName", "icon"] {
        assert!(fields.contains_key(field), "field {field} in {fields:?}");
    }
    let nick = &fields["nickName"];
    assert!(
        nick.len() == 15
            && nick.starts_with("user_")
            && nick[5..]
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
        "seed nickname: {nick}"
    );
    let ttl = pttl(redis, &key);
    assert!(
        (1_700_000..=1_800_000).contains(&ttl),
        "session TTL {ttl} ms"
    );

    let user = me(http, &token).await;
    assert_eq!(user["id"].to_string(), fields["id"]);
    assert_eq!(user["nickName"], json!(nick));
    assert_eq!(user["icon"], json!(fields["icon"]));

    // The same phone again is the same user (found in SQLite, not created twice).
    let second = login_again(http, redis, &phone).await;
    assert_ne!(second, token, "every login gets a new token");
    assert_eq!(me(http, &second).await, user);
}

/// docs/http-api.md § Envelope and statuses: 400 for unreadable, incomplete or oversized
/// login bodies and bad phones.
pub async fn bad_bodies_are_400(example: &'static str) {
    let Example { http, .. } = &Example::start(example).await;
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"not json".to_vec(),
        br#"{"phone": "13800138000"}"#.to_vec(),
        br#"{"code": "123456"}"#.to_vec(),
        br#"{"phone": 13800138000, "code": "123456"}"#.to_vec(),
        vec![0xff, 0xfe, 0x00],
    ];
    for body in bodies {
        let response = http
            .post("/user/login")
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        assert_eq!(
            response.status,
            400,
            "body {:?}",
            String::from_utf8_lossy(&body)
        );
        response.envelope(400);
    }
    http.post("/user/login")
        .json(&json!({"phone": "12345", "code": "123456"}))
        .send()
        .await
        .envelope(400);
    // Larger than the examples read (16 KiB): 400 with the envelope.
    let huge = format!(
        r#"{{"phone": "13800138000", "code": "{}"}}"#,
        "1".repeat(64 * 1024)
    );
    http.post("/user/login")
        .header("content-type", "application/json")
        .body(huge.into_bytes())
        .send()
        .await
        .envelope(400);
    http.post("/user/code")
        .form(&format!("phone={}", "1".repeat(64 * 1024)))
        .send()
        .await
        .envelope(400);
}

/// docs/http-api.md § Routes of every example: five wrong codes burn the code: 429, and then even the right code is refused.
pub async fn wrong_codes_burn_the_code(example: &'static str) {
    let Example { redis, http, .. } = &Example::start(example).await;
    let phone = phone();
    let code = send_code(http, redis, &phone).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = http
            .post("/user/login")
            .json(&json!({"phone": phone, "code": wrong}))
            .send()
            .await;
        response.envelope(response.status);
        statuses.push(response.status);
    }
    assert_eq!(statuses, [401, 401, 401, 401, 429]);
    http.post("/user/login")
        .json(&json!({"phone": phone, "code": code}))
        .send()
        .await
        .envelope(429);
}

/// docs/http-api.md § Token transport: the token in `authorization` (raw and Bearer) and `?tokenid=`; no token, unknown
/// tokens and malformed ones are 401, malformed ones without touching Redis.
pub async fn token_transports_and_malformed_tokens(example: &'static str) {
    let Example {
        redis,
        http,
        process,
    } = &Example::start(example).await;
    let token = login(http, redis, &phone()).await;
    let expected = me(http, &token).await;
    let bearer = http
        .get("/user/me")
        .header("Authorization", &format!("Bearer {token}"))
        .send()
        .await
        .data();
    assert_eq!(bearer, expected);
    let query = http
        .get(&format!("/user/me?tokenid={token}"))
        .send()
        .await
        .data();
    assert_eq!(query, expected);

    http.get("/user/me").send().await.envelope(401);
    let unknown = Token::generate().expect("token");
    http.get("/user/me")
        .token(unknown.expose())
        .send()
        .await
        .envelope(401);

    redis.reset_stats();
    let mut malformed = malformed_tokens();
    malformed.push("a".repeat(300));
    malformed.push("short".to_owned());
    for bad in &malformed {
        let encoded: String = bad
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        http.get(&format!("/user/me?tokenid={encoded}"))
            .send()
            .await
            .envelope(401);
        let printable = bad.len() <= 1024 && bad.bytes().all(|b| b.is_ascii_graphic());
        if printable {
            http.get("/user/me").token(bad).send().await.envelope(401);
            http.post("/user/logout")
                .token(bad)
                .send()
                .await
                .envelope(401);
        }
    }
    let session_commands: Vec<_> = redis
        .command_calls()
        .into_iter()
        .filter(|(name, _)| {
            // The flagship's order consumer polls its stream meanwhile; that is not a
            // session lookup.
            !name.starts_with('x')
                && !["info", "config", "ping", "client", "hello"]
                    .iter()
                    .any(|ignored| name.starts_with(ignored))
        })
        .collect();
    assert!(
        session_commands.is_empty(),
        "malformed tokens reached Redis: {session_commands:?}"
    );
    // The token travelled in a header and in a query string; the app's logs (the
    // framework's included) never show it.
    let logs: Vec<String> = process
        .stdout
        .all()
        .into_iter()
        .chain(process.stderr.all())
        .collect();
    assert!(
        !logs.is_empty(),
        "the app logged something (at least its ready line)"
    );
    let leaks: Vec<&String> = logs.iter().filter(|l| l.contains(token.as_str())).collect();
    assert!(leaks.is_empty(), "the token reached the logs: {leaks:?}");
}

/// docs/http-api.md § Redis layout: a session hash written by another service is a login; each request resets its TTL.
pub async fn java_session_and_ttl_reset(example: &'static str) {
    let Example { redis, http, .. } = &Example::start(example).await;
    let token = Token::generate().expect("token");
    let user = JavaUser::new(4242);
    plant_java_session(redis, token.expose(), &user);
    let key = token_key(token.expose());
    let _: () = redis.query(redis::cmd("EXPIRE").arg(&key).arg(100));
    let data = me(http, token.expose()).await;
    assert_eq!(
        data,
        json!({"id": 4242, "nickName": "user_4242", "icon": ""})
    );
    let ttl = pttl(redis, &key);
    assert!(
        ttl > 1_700_000,
        "TTL reset to 1800 s by the request, got {ttl} ms"
    );

    // The same for a session this example created.
    let own = login(http, redis, &phone()).await;
    let key = token_key(&own);
    let _: () = redis.query(redis::cmd("PEXPIRE").arg(&key).arg(5_000));
    http.get("/user/sessions")
        .token(&own)
        .send()
        .await
        .envelope(200);
    let ttl = pttl(redis, &key);
    assert!(
        (1_700_000..=1_800_000).contains(&ttl),
        "TTL reset to 1800 s by the request, got {ttl} ms"
    );

    // An expired session is gone.
    let _: () = redis.query(redis::cmd("PEXPIRE").arg(&key).arg(1));
    let gone = eventually(Duration::from_secs(5), async || !exists(redis, &key)).await;
    assert!(gone);
    http.get("/user/me").token(&own).send().await.envelope(401);
}

/// docs/http-api.md § Routes of every example: listing sessions, logout (one token, at once) and logout everywhere (all of the
/// user's tokens, the count answered).
pub async fn logout_sessions_and_logout_all(example: &'static str) {
    let Example { redis, http, .. } = &Example::start(example).await;
    let phone = phone();
    let a = login(http, redis, &phone).await;
    let b = login_again(http, redis, &phone).await;

    let listed = http.get("/user/sessions").token(&a).send().await.data();
    let sessions = listed.as_array().expect("an array");
    assert_eq!(sessions.len(), 2, "{listed}");
    assert_eq!(
        sessions
            .iter()
            .filter(|s| s["current"] == json!(true))
            .count(),
        1,
        "{listed}"
    );
    for s in sessions {
        let created = s["createdAt"].as_i64().expect("unix seconds");
        assert!((unix_now() - created).abs() < 120, "createdAt {created}");
    }

    http.post("/user/logout")
        .token(&a)
        .send()
        .await
        .envelope(200);
    http.get("/user/me").token(&a).send().await.envelope(401);
    assert!(!exists(redis, &token_key(&a)));
    me(http, &b).await;
    let listed = http.get("/user/sessions").token(&b).send().await.data();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["current"], json!(true), "{listed}");

    let c = login_again(http, redis, &phone).await;
    let ended = http.post("/user/logout-all").token(&b).send().await.data();
    assert_eq!(ended, json!(2));
    for token in [&b, &c] {
        http.get("/user/me").token(token).send().await.envelope(401);
        assert!(!exists(redis, &token_key(token)));
    }
    http.post("/user/logout")
        .token(&b)
        .send()
        .await
        .envelope(401);
    http.post("/user/logout-all")
        .token(&b)
        .send()
        .await
        .envelope(401);
    http.get("/user/sessions").send().await.envelope(401);

    // A session another service created ends with logout-all too.
    let planted = Token::generate().expect("token");
    plant_java_session(redis, planted.expose(), &JavaUser::new(777));
    let ended = http
        .post("/user/logout-all")
        .token(planted.expose())
        .send()
        .await
        .data();
    assert_eq!(ended, json!(1));
    http.get("/user/me")
        .token(planted.expose())
        .send()
        .await
        .envelope(401);
}

/// docs/http-api.md § Envelope and statuses, § The page: unknown routes and methods are
/// 404 with the envelope; `GET /` serves the page, its script and style sheet under the
/// page's policy.
pub async fn unknown_routes_and_the_page(example: &'static str) {
    let Example { http, .. } = &Example::start(example).await;
    for (method, path) in [
        ("GET", "/nope"),
        ("POST", "/user"),
        ("GET", "/user/me/more"),
        ("DELETE", "/user/me"),
        ("GET", "/user/login"),
        ("PUT", "/user/code"),
    ] {
        let response = http.request(method, path).send().await;
        assert_eq!(response.status, 404, "{method} {path}: {}", response.text());
        response.envelope(404);
    }
    // docs/http-api.md § The page: the page and its two files, all under the same policy.
    let page = http.get("/").send().await;
    assert_eq!(page.status, 200);
    let html = page.text();
    for (path, content_type) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/app.css", "text/css"),
    ] {
        let file = http.get(path).send().await;
        assert_eq!(file.status, 200, "{path}");
        assert!(
            file.header("content-type")
                .is_some_and(|t| t.starts_with(content_type)),
            "{path}: {:?}",
            file.header("content-type")
        );
        assert_eq!(
            file.header("content-security-policy"),
            Some(PAGE_POLICY),
            "{path}"
        );
        assert_eq!(file.header("x-content-type-options"), Some("nosniff"));
        assert!(!file.body.is_empty(), "{path}");
    }
    for id in [
        "phone",
        "send-code",
        "code",
        "login",
        "profile",
        "sessions",
        "logout",
        "logout-all",
        "error",
        "nickname",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "the page has #{id}");
    }
    // No inline script or style: the policy would refuse them.
    assert!(html.contains(r#"<script src="/app.js" defer></script>"#));
    assert!(html.contains(r#"<link rel="stylesheet" href="/app.css">"#));
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    for inline in ["<style", " style=", " onclick=", "javascript:"] {
        assert!(!html.contains(inline), "the page has {inline:?}");
    }
    let script = http.get("/app.js").send().await.text();
    assert!(
        script.contains("errorMsg"),
        "the page shows errorMsg, not raw JSON"
    );
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
    ] {
        assert!(!script.contains(sink), "the script writes HTML: {sink}");
    }
}

/// docs/http-api.md § Envelope and statuses: with Redis gone, 503 with the envelope (never a 500, never a hang); after a restart
/// the same process serves again.
pub async fn redis_outage_answers_503_and_recovers(example: &'static str) {
    let Example {
        process: _running,
        mut redis,
        http,
    } = Example::start(example).await;
    let phone = phone();
    let token = login(&http, &redis, &phone).await;

    redis.stop();
    let started = std::time::Instant::now();
    http.get("/user/me")
        .token(&token)
        .send()
        .await
        .envelope(503);
    http.post("/user/logout")
        .token(&token)
        .send()
        .await
        .envelope(503);
    http.post(&format!("/user/code?phone={}", self::phone()))
        .send()
        .await
        .envelope(503);
    http.post("/user/login")
        .json(&json!({"phone": phone, "code": "123456"}))
        .send()
        .await
        .envelope(503);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "503s come within the command timeout, took {:?}",
        started.elapsed()
    );

    redis.restart();
    // The restarted server is empty: the old session is gone, new logins work.
    let fresh = self::phone();
    let recovered = eventually(Duration::from_secs(20), async || {
        http.post(&format!("/user/code?phone={fresh}"))
            .send()
            .await
            .status
            == 200
    })
    .await;
    assert!(recovered, "the example serves again after Redis came back");
    let code: String = redis.query(redis::cmd("GET").arg(code_key(&fresh)));
    let token = login_with(&http, &fresh, &code).await;
    me(&http, &token).await;
}

/// Logs in with a `User-Agent` of its own: another "device".
pub async fn login_from(http: &Client, redis: &RedisServer, phone: &str, device: &str) -> String {
    let _: () = redis.query(
        redis::cmd("SET")
            .arg(code_key(phone))
            .arg("424242")
            .arg("EX")
            .arg(120),
    );
    let data = http
        .post("/user/login")
        .header("user-agent", device)
        .json(&json!({"phone": phone, "code": "424242"}))
        .send()
        .await
        .data();
    data.as_str().expect("the token is a string").to_owned()
}

/// docs/http-api.md § Routes of every example: `GET /user/sessions` names each session by an
/// id that is not its token, with its device and last use; `DELETE /user/sessions/{id}`
/// ends one session of this user, and nobody else's.
pub async fn sessions_name_devices_and_end_one(example: &'static str) {
    let Example { redis, http, .. } = &Example::start(example).await;
    let number = phone();
    let long_agent = format!("KeygateTest/laptop {}", "x".repeat(300));
    let a = login_from(http, redis, &number, "KeygateTest/phone (Android 14)").await;
    let b = login_from(http, redis, &number, &long_agent).await;
    // The phone is used again after the laptop logged in.
    me(http, &a).await;

    let listed = http.get("/user/sessions").token(&b).send().await.data();
    let sessions = listed.as_array().expect("an array");
    assert_eq!(sessions.len(), 2, "{listed}");
    let (phone_s, laptop_s) = (&sessions[0], &sessions[1]);
    assert_eq!(phone_s["device"], json!("KeygateTest/phone (Android 14)"));
    assert_eq!(
        laptop_s["device"].as_str().map(|d| d.chars().count()),
        Some(200),
        "the User-Agent cut to 200 characters"
    );
    assert_eq!(
        (phone_s["current"].clone(), laptop_s["current"].clone()),
        (json!(false), json!(true))
    );
    let now = unix_now();
    for s in sessions {
        let id = s["id"].as_str().expect("a string id");
        assert!(id.len() >= 16 && id != a && id != b, "{id}");
        assert!(!a.contains(id) && !b.contains(id));
        let (created, seen) = (
            s["createdAt"].as_i64().unwrap(),
            s["lastSeenAt"].as_i64().unwrap(),
        );
        assert!(
            (now - created).abs() < 60 && created <= seen && seen <= now + 1,
            "{s}"
        );
    }

    // Another user cannot end them: 404, nothing changed.
    let stranger = login_from(http, redis, &phone(), "KeygateTest/stranger").await;
    let phone_id = phone_s["id"].as_str().unwrap();
    http.request("DELETE", &format!("/user/sessions/{phone_id}"))
        .token(&stranger)
        .send()
        .await
        .envelope(404);
    me(http, &a).await;
    for unknown in ["0123456789abcdef0123456789abcdef", "not-an-id", &a] {
        http.request("DELETE", &format!("/user/sessions/{unknown}"))
            .token(&b)
            .send()
            .await
            .envelope(404);
    }
    me(http, &a).await;

    // The laptop ends the phone's session: the phone's token is refused at once.
    http.request("DELETE", &format!("/user/sessions/{phone_id}"))
        .token(&b)
        .send()
        .await
        .envelope(200);
    http.get("/user/me").token(&a).send().await.envelope(401);
    assert!(!exists(redis, &token_key(&a)));
    let listed = http.get("/user/sessions").token(&b).send().await.data();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["current"], json!(true));
    http.request("DELETE", &format!("/user/sessions/{phone_id}"))
        .token(&b)
        .send()
        .await
        .envelope(404);
    me(http, &stranger).await;
}

/// Logs in by code and returns the token with the `Set-Cookie` of the login's response.
async fn login_for_cookie(
    http: &Client,
    redis: &RedisServer,
    number: &str,
) -> (String, Option<String>) {
    let code = send_code(http, redis, number).await;
    let login = http
        .post("/user/login")
        .json(&json!({"phone": number, "code": code}))
        .send()
        .await;
    let token = login.data().as_str().expect("the token").to_owned();
    (token, login.header("set-cookie").map(str::to_owned))
}

/// docs/http-api.md § Token transport: login sets the `token` cookie (`HttpOnly`,
/// `SameSite=Lax`, `Path=/`, `Secure` only with `COOKIE_SECURE=1`), the cookie alone
/// authenticates, logout clears it; an unsafe request authenticated by the cookie alone must
/// come from the app's own origin (`Origin`, else `Referer`), or it is a 403 that changes
/// nothing; header-authenticated requests are exempt.
pub async fn cookie_transport_and_origin_check(example: &'static str) {
    let Example { redis, http, .. } = &Example::start(example).await;
    let number = phone();
    let (token, set_cookie) = login_for_cookie(http, redis, &number).await;
    assert_eq!(
        set_cookie.as_deref(),
        Some(format!("token={token}; Path=/; HttpOnly; SameSite=Lax").as_str()),
        "no Secure without COOKIE_SECURE=1, a session cookie without an absolute lifetime"
    );
    let cookie = format!("token={token}");
    let own_origin = format!("http://{}", http.addr());
    let user = http
        .get("/user/me")
        .header("cookie", &cookie)
        .send()
        .await
        .data();
    assert!(user["id"].is_number(), "{user}");

    // Refused cross-origin (or origin-less) cookie requests: 403, nothing changes.
    let ids = http
        .get("/user/sessions")
        .header("cookie", &cookie)
        .send()
        .await
        .data();
    let id = ids[0]["id"].as_str().expect("an id").to_owned();
    for (method, path) in [
        ("POST", "/user/logout".to_owned()),
        ("POST", "/user/logout-all".to_owned()),
        ("DELETE", format!("/user/sessions/{id}")),
    ] {
        for headers in [
            vec![],
            vec![("origin", "http://evil.example")],
            vec![("origin", "null")],
            vec![("referer", "http://evil.example/form.html")],
        ] {
            let mut request = http.request(method, &path).header("cookie", &cookie);
            for (name, value) in &headers {
                request = request.header(name, value);
            }
            let response = request.send().await;
            let body = response.envelope(403);
            assert!(body["errorMsg"].as_str().is_some(), "{body}");
            assert_eq!(
                response.header("set-cookie"),
                None,
                "{method} {path} {headers:?}"
            );
        }
    }
    assert!(exists(redis, &token_key(&token)), "nothing changed");
    me(http, &token).await;

    // Login CSRF: a login posted from another site (the attacker's own phone and code)
    // sets no cookie, so it cannot plant the attacker's session in the victim's browser.
    let _: () = redis.query(
        redis::cmd("SET")
            .arg(format!("login:code:{number}"))
            .arg("424242")
            .arg("EX")
            .arg(120),
    );
    let forged = http
        .post("/user/login")
        .header("origin", "http://evil.example")
        .json(&json!({"phone": number, "code": "424242"}))
        .send()
        .await;
    forged.envelope(200);
    assert_eq!(
        forged.header("set-cookie"),
        None,
        "a cross-site login set the cookie"
    );

    // A header-authenticated request needs no origin.
    let other = login_again(http, redis, &number).await;
    http.post("/user/logout")
        .token(&other)
        .header("origin", "http://evil.example")
        .send()
        .await
        .envelope(200);

    // Same origin, by Referer: logout works and clears the cookie.
    let response = http
        .post("/user/logout")
        .header("cookie", &cookie)
        .header("referer", &format!("{own_origin}/"))
        .send()
        .await;
    response.envelope(200);
    assert_eq!(
        response.header("set-cookie"),
        Some("token=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
    );
    http.get("/user/me")
        .header("cookie", &cookie)
        .send()
        .await
        .envelope(401);
    assert!(!exists(redis, &token_key(&token)));
}

/// docs/http-api.md § Start-up: `COOKIE_SECURE=1` adds `Secure` to the session cookie.
pub async fn secure_cookie_when_configured(example: &'static str) {
    let Example { redis, http, .. } =
        &Example::start_with(example, &[], &[("COOKIE_SECURE", "1".to_owned())]).await;
    let (token, set_cookie) = login_for_cookie(http, redis, &phone()).await;
    assert_eq!(
        set_cookie.as_deref(),
        Some(format!("token={token}; Path=/; HttpOnly; SameSite=Lax; Secure").as_str())
    );
    // The app is reached over HTTPS (a TLS proxy in front): its own origin is https, and
    // the plain-http one is refused.
    http.post("/user/logout-all")
        .header("cookie", &format!("token={token}"))
        .header("origin", &format!("http://{}", http.addr()))
        .send()
        .await
        .envelope(403);
    let response = http
        .post("/user/logout-all")
        .header("cookie", &format!("token={token}"))
        .header("origin", &format!("https://{}", http.addr()))
        .send()
        .await;
    assert_eq!(response.envelope(200)["data"], json!(1));
    assert_eq!(
        response.header("set-cookie"),
        Some("token=; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=0")
    );
}

/// The value of one sample of the Prometheus text `page` (`name{labels} value`), 0 when
/// absent.
pub fn sample(page: &str, series: &str) -> f64 {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series)
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .unwrap_or(0.0)
}

pub async fn scrape(http: &Client) -> String {
    let response = http
        .get("/metrics")
        .header("x-admin-token", crate::launcher::ADMIN_TOKEN)
        .send()
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{:?}",
        response.header("content-type")
    );
    response.text()
}

/// `GET /metrics` (an operator route): the Prometheus text of keygate's metrics, behind
/// `x-admin-token`; the counters move with logins and authenticated requests, and no token
/// or phone appears in it.
pub async fn metrics_are_scraped_with_the_admin_token(example: &'static str) {
    let Example { redis, http, .. } = &Example::start(example).await;
    http.get("/metrics").send().await.envelope(401);
    http.get("/metrics")
        .header("x-admin-token", "wrong")
        .send()
        .await
        .envelope(401);
    let before = scrape(http).await;
    let number = phone();
    let token = login(http, redis, &number).await;
    me(http, &token).await;
    http.get("/user/me")
        .token(&"0".repeat(32))
        .send()
        .await
        .envelope(401);
    let after = scrape(http).await;
    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(moved("keygate_logins_total"), 1.0, "{after}");
    assert_eq!(
        moved("keygate_session_loads_total{outcome=\"hit\"}"),
        1.0,
        "{after}"
    );
    assert_eq!(
        moved("keygate_session_loads_total{outcome=\"miss\"}"),
        1.0,
        "{after}"
    );
    assert_eq!(
        moved("keygate_rejections_total{status=\"401\"}"),
        1.0,
        "{after}"
    );
    assert_eq!(
        moved("keygate_code_issued_total{outcome=\"sent\"}"),
        1.0,
        "{after}"
    );
    assert_eq!(
        moved("keygate_code_verified_total{outcome=\"ok\"}"),
        1.0,
        "{after}"
    );
    assert!(after.contains("keygate_backend_seconds"), "{after}");
    assert!(
        !after.contains(&token) && !after.contains(&number),
        "a secret in the metrics"
    );
}

/// Without `ADMIN_TOKEN`, `GET /metrics` is off: 403 whatever the request carries.
pub async fn metrics_are_off_without_an_admin_token(example: &'static str) {
    let Example { http, .. } = &Example::start_without(example, &["ADMIN_TOKEN"]).await;
    http.get("/metrics")
        .header("x-admin-token", crate::launcher::ADMIN_TOKEN)
        .send()
        .await
        .envelope(403);
}
