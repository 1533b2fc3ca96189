//! The login page in a real browser (docs/http-api.md § The page): headless Chromium
//! driven over WebDriver by Debian's chromedriver (no browser download), against the
//! flagship example on a private Redis, with the page's Content-Security-Policy in force
//! and the browser's console checked for violations of it. A screenshot of the logged-in
//! page is kept in `target/browser-artifacts/`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use keygate_tests::{eventually, free_port};
use serde_json::{Value, json};

use crate::http::Client;
use crate::launcher::Example;

const PHONE: &str = "13912345678";
/// The `User-Agent` of the second device, logged in over HTTP.
const OTHER_DEVICE: &str = "KeygateTest/other-device (tablet)";
/// The W3C WebDriver element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one browser session on it.
struct Browser {
    driver: Child,
    client: Client,
    session: String,
    _profile: PathBuf,
}

impl Browser {
    async fn start() -> Self {
        let port = free_port();
        let driver = Command::new(std::env::var("KEYGATE_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run chromedriver ({e}): install it with `apt-get install chromium chromium-driver`")
            });
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let up = eventually(Duration::from_secs(10), async || {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
        assert!(up, "chromedriver did not listen on {addr}");
        let client = Client::new(addr);
        let profile =
            std::env::temp_dir().join(format!("keygate-chromium-{}-{port}", std::process::id()));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            // The console (where Chromium reports Content-Security-Policy violations),
            // read back through the log endpoint.
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": std::env::var("KEYGATE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1000,900",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }}});
        let created = client.post("/session").json(&capabilities).send().await;
        let value = created.json()["value"].clone();
        let session = value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {value}"))
            .to_owned();
        Self {
            driver,
            client,
            session,
            _profile: profile,
        }
    }

    async fn call(&self, method: &'static str, path: &str, body: Value) -> Value {
        let target = format!("/session/{}{path}", self.session);
        let request = self.client.request(method, &target);
        let request = if body.is_null() {
            request
        } else {
            request.json(&body)
        };
        let response = request.send().await;
        let value = response.json()["value"].clone();
        assert!(
            response.status == 200,
            "webdriver {method} {path}: {} {value}",
            response.status
        );
        value
    }

    async fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url })).await;
    }

    async fn find(&self, css: &str) -> String {
        let found = self
            .call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call("POST", &format!("/element/{id}/clear"), json!({}))
            .await;
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call("POST", &format!("/element/{id}/click"), json!({}))
            .await;
    }

    /// The element's visible text ("" when hidden).
    async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.call("GET", &format!("/element/{id}/text"), Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        let mut last = String::new();
        let found = eventually(Duration::from_secs(10), async || {
            last = self.text(css).await;
            last.contains(needle)
        })
        .await;
        assert!(found, "{css} never showed {needle:?}; last text {last:?}");
        last
    }

    /// Runs `script` in the page and returns its result.
    async fn execute(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// The console messages since the last call (the log endpoint hands each out once).
    async fn console(&self) -> Vec<String> {
        self.call("POST", "/se/log", json!({"type": "browser"}))
            .await
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|e| e["message"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let encoded = self.call("GET", "/screenshot", Value::Null).await;
        let png = base64_decode(encoded.as_str().unwrap_or_default());
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/browser-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session closes the browser; killing the driver alone would leave
        // Chromium running without a parent.
        let _ = end_session(self.client.addr(), &self.session);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `DELETE /session/<id>`, blocking (for `Drop`): chromedriver answers once the browser
/// has quit.
fn end_session(driver: SocketAddr, session: &str) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&driver, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "DELETE /session/{session} HTTP/1.1\r\nhost: {driver}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
    )?;
    let mut answer = [0u8; 64];
    stream.read(&mut answer).map(|_| ())
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for b in text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
    {
        let Some(v) = ALPHABET.iter().position(|a| *a == b) else {
            continue;
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Whether a console message reports a Content-Security-Policy violation.
fn is_csp_violation(message: &str) -> bool {
    message.contains("Content Security Policy")
}

/// docs/http-api.md § The page: a person logs in, sees the profile and sessions, logs out;
/// the page stays within its Content-Security-Policy.
pub async fn the_login_page_works_in_a_real_browser() {
    let Example {
        process: _app,
        redis,
        http,
    } = Example::start("axum-login").await;
    let addr = http.addr();
    // The page is served with its policy (docs/http-api.md § The page).
    let policy = http.get("/").send().await;
    assert_eq!(
        policy.header("content-security-policy"),
        Some(crate::login::PAGE_POLICY)
    );
    let browser = Browser::start().await;
    browser.goto(&format!("http://{addr}/")).await;

    // A wrong phone is refused with a readable message, not raw JSON.
    browser.type_into("#phone", "12345").await;
    browser.click("#send-code").await;
    let error = browser.wait_for_text("#error", "phone").await;
    assert!(
        !error.trim_start().starts_with('{'),
        "errors are shown as text: {error}"
    );

    browser.type_into("#phone", PHONE).await;
    browser.click("#send-code").await;
    let mut code = None;
    assert!(
        eventually(Duration::from_secs(10), async || {
            code =
                redis.query::<Option<String>>(redis::cmd("GET").arg(format!("login:code:{PHONE}")));
            code.is_some()
        })
        .await,
        "the page requested a code"
    );
    browser.type_into("#code", &code.unwrap()).await;
    browser.click("#login").await;
    let profile = browser.wait_for_text("#profile", "user_").await;
    browser.wait_for_text("#sessions", "this browser").await;
    // The page did all of that (script, style sheet, API calls) within its policy.
    let console = browser.console().await;
    let violations: Vec<&String> = console.iter().filter(|m| is_csp_violation(m)).collect();
    assert!(
        violations.is_empty(),
        "the page violated its Content-Security-Policy: {violations:?}"
    );
    let styled = browser
        .execute(r#"return getComputedStyle(document.querySelector("main")).maxWidth;"#)
        .await;
    assert_eq!(styled, json!("480px"), "the style sheet applies (30rem)");
    let shot = browser.screenshot("login-page.png").await;
    eprintln!(
        "profile shown: {profile:?}; screenshot at {}",
        shot.display()
    );
    let sessions: Vec<String> = redis.query(redis::cmd("KEYS").arg("login:token:*"));
    assert_eq!(
        sessions.len(),
        1,
        "one session in Redis after the page logged in"
    );

    // The page keeps no token where a script could read it: the cookie is HttpOnly.
    let visible = browser
        .execute("return [localStorage.length, document.cookie];")
        .await;
    assert_eq!(
        visible,
        json!([0, ""]),
        "no token in localStorage or document.cookie"
    );

    // A second device, logged in over HTTP with its own User-Agent.
    let _: () = redis.query(
        redis::cmd("SET")
            .arg(format!("login:code:{PHONE}"))
            .arg("424242")
            .arg("EX")
            .arg(120),
    );
    let other = http
        .post("/user/login")
        .header("user-agent", OTHER_DEVICE)
        .json(&json!({"phone": PHONE, "code": "424242"}))
        .send()
        .await
        .data()
        .as_str()
        .expect("a token")
        .to_owned();
    browser.goto(&format!("http://{addr}/")).await;
    let listed = browser.wait_for_text("#sessions", OTHER_DEVICE).await;
    assert!(
        listed.contains("this browser") && listed.contains("last seen"),
        "{listed:?}"
    );
    // The page's own device is the browser's User-Agent.
    let agent = browser.execute("return navigator.userAgent;").await;
    let agent = agent.as_str().unwrap_or_default();
    assert!(
        listed.contains(&agent[..agent.len().min(40)]),
        "{listed:?} vs {agent:?}"
    );

    // End the other device from the page: its token is refused at once.
    browser.click(".end-session").await;
    assert!(
        eventually(Duration::from_secs(10), async || {
            http.get("/user/me").token(&other).send().await.status == 401
        })
        .await,
        "the other device's token still works"
    );
    let mut remaining = String::new();
    assert!(
        eventually(Duration::from_secs(10), async || {
            remaining = browser.text("#sessions").await;
            !remaining.contains(OTHER_DEVICE)
        })
        .await,
        "the list still shows the ended device: {remaining:?}"
    );

    // A page on another origin (another local port: same site, so the Lax cookie goes
    // along) posts a form to /user/logout: refused with 403, the session lives on.
    let evil = serve_cross_origin_form(&format!("http://{addr}/user/logout")).await;
    browser.goto(&format!("http://{evil}/")).await;
    let refused = browser.wait_for_text("body", "cross-origin").await;
    assert!(!refused.contains("\"success\":true"), "{refused}");
    let sessions: Vec<String> = redis.query(redis::cmd("KEYS").arg("login:token:*"));
    assert_eq!(sessions.len(), 1, "the cross-origin logout changed nothing");
    browser.goto(&format!("http://{addr}/")).await;
    browser.wait_for_text("#sessions", "this browser").await;

    browser.click("#logout").await;
    assert!(
        eventually(Duration::from_secs(10), async || {
            redis
                .query::<Vec<String>>(redis::cmd("KEYS").arg("login:token:*"))
                .is_empty()
        })
        .await,
        "logout ended the session in Redis"
    );
    // Redis drops the key before the page has handled the logout's response: wait for the
    // page to catch up.
    let mut after = String::new();
    assert!(
        eventually(Duration::from_secs(10), async || {
            after = browser.text("#profile").await;
            !after.contains("user_")
        })
        .await,
        "the profile is gone after logout: {after:?}"
    );

    // The policy is in force, and violations do reach the console this test reads: an
    // inline script written into the page is refused and reported.
    let before: Vec<String> = browser.console().await;
    assert!(
        !before.iter().any(|m| is_csp_violation(m)),
        "no violation during logout: {before:?}"
    );
    let ran = browser
        .execute(
            r#"window.inlineRan = false;
               const s = document.createElement("script");
               s.textContent = "window.inlineRan = true;";
               document.body.append(s);
               return window.inlineRan;"#,
        )
        .await;
    assert_eq!(ran, json!(false), "an inline script does not run");
    let mut reported = Vec::new();
    assert!(
        eventually(Duration::from_secs(5), async || {
            reported.extend(browser.console().await);
            reported.iter().any(|m| is_csp_violation(m))
        })
        .await,
        "the refused inline script is reported in the console: {reported:?}"
    );
}

/// Serves, on another local port, a page whose form posts itself to `target` at once (a
/// cross-site request forgery attempt); returns its address.
async fn serve_cross_origin_form(target: &str) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let page = format!(
        "<!doctype html><form id=f method=post action=\"{target}\"></form>\
         <script>document.getElementById('f').submit()</script>"
    );
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    addr
}

/// Wraps the page's `EventSource` so that the test can read every stream the page opened
/// (`window.keygateStreams`) and count their `error` events (`window.keygateStreamErrors`:
/// an `EventSource` whose stream the server closed fires one as it starts to reconnect);
/// installed before the page logs in.
const RECORD_STREAMS: &str = r#"
    window.keygateStreams = [];
    window.keygateStreamErrors = 0;
    const Original = window.EventSource;
    window.EventSource = function (url) {
        const source = new Original(url);
        source.addEventListener("error", () => { window.keygateStreamErrors += 1; });
        window.keygateStreams.push(source);
        return source;
    };
    return true;"#;

/// Logs the page in as [`PHONE`] with a code planted in Redis.
async fn log_in(browser: &Browser, redis: &keygate_tests::RedisServer, code: &str) {
    let _: () = redis.query(
        redis::cmd("SET")
            .arg(format!("login:code:{PHONE}"))
            .arg(code)
            .arg("EX")
            .arg(120),
    );
    browser.type_into("#phone", PHONE).await;
    browser.type_into("#code", code).await;
    browser.click("#login").await;
    browser.wait_for_text("#profile", "user_").await;
}

/// docs/http-api.md § Session events: two browsers (two profiles, so two cookies and two
/// sessions) logged in as one user; the first hears of the second's login, and "log out
/// everywhere" in the first closes the second's event stream: its page says so and closes
/// its `EventSource` for good instead of reconnecting.
pub async fn log_out_everywhere_reaches_the_other_browser_live() {
    let Example {
        process: _app,
        redis,
        http,
    } = Example::start("axum-login").await;
    let page = format!("http://{}/", http.addr());
    let first = Browser::start().await;
    let second = Browser::start().await;
    for browser in [&first, &second] {
        browser.goto(&page).await;
        assert_eq!(browser.execute(RECORD_STREAMS).await, json!(true));
    }
    log_in(&first, &redis, "111111").await;
    log_in(&second, &redis, "222222").await;
    let sessions: Vec<String> = redis.query(redis::cmd("KEYS").arg("login:token:*"));
    assert_eq!(sessions.len(), 2, "two browsers, two sessions");
    // The first page hears of the second login on its open stream.
    first
        .wait_for_text("#notice", "Signed in on another device")
        .await;
    // Both pages hold one open stream (EventSource.OPEN is 1).
    for browser in [&first, &second] {
        let open = browser
            .execute("return window.keygateStreams.map(s => s.readyState);")
            .await;
        assert_eq!(open, json!([1]), "one open event stream per page");
    }

    first.click("#logout-all").await;
    second
        .wait_for_text("#notice", "Signed out: logged out everywhere")
        .await;
    // The second page closed its stream itself on `ended` (EventSource.CLOSED is 2) and
    // opened no other. Had it left the stream to the browser, the server's close would
    // have fired `error` and a reconnection. The absence of that error is checked a
    // second later: it fires as soon as the connection drops.
    let mut states = Value::Null;
    assert!(
        eventually(Duration::from_secs(3), async || {
            states = second
                .execute("return window.keygateStreams.map(s => s.readyState);")
                .await;
            states == json!([2])
        })
        .await,
        "the second page's streams: {states}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let errors = second.execute("return window.keygateStreamErrors;").await;
    assert_eq!(
        errors,
        json!(0),
        "the page closed its stream on `ended`, no reconnection"
    );
    let sessions: Vec<String> = redis.query(redis::cmd("KEYS").arg("login:token:*"));
    assert!(
        sessions.is_empty(),
        "log out everywhere ended both sessions"
    );
}
