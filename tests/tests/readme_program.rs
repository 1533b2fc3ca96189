//! The README's complete program, as a user gets it: its `Cargo.toml` and `src/main.rs`
//! blocks are taken from README.md (between the `quickstart:` markers, so the test and
//! the README cannot drift), written into a new crate outside the workspace with a path
//! dependency on this checkout and the workspace's `Cargo.lock`, built with the
//! workspace's target directory (nothing is built twice) and run: log in, `GET /me`, log
//! out, `GET /me` again. Once on the embedded backend and once on a private Redis
//! (`REDIS_URL`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use keygate_tests::RedisServer;

fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The fenced block that follows `<!-- quickstart:<name> -->` in README.md.
fn readme_block(name: &str) -> String {
    let readme = std::fs::read_to_string(checkout().join("README.md")).unwrap();
    let marker = format!("<!-- quickstart:{name} -->");
    let after = &readme[readme
        .find(&marker)
        .unwrap_or_else(|| panic!("no {marker}"))..];
    let start = after.find("```").unwrap();
    let body = &after[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("\n```").unwrap() + 1].to_owned()
}

/// The target directory this test was built in (`<target>/debug/deps/<test binary>`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// Builds the README's program once and answers its binary.
fn program() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let dir = target_dir().join("readme-program");
        std::fs::create_dir_all(dir.join("src")).unwrap();
        let manifest = readme_block("Cargo.toml");
        let readme_path = "path = \"../keygate/adapters/axum\"";
        assert!(manifest.contains(readme_path), "{manifest}");
        let here = checkout().join("adapters/axum");
        let manifest = manifest.replace(readme_path, &format!("path = {:?}", here.display().to_string()))
            // Its own workspace: the crate sits below the checkout's target directory.
            + "\n[workspace]\n";
        std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
        std::fs::write(dir.join("src/main.rs"), readme_block("main.rs")).unwrap();
        std::fs::copy(checkout().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--offline", "--quiet"])
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", target_dir())
            .env_remove("RUSTFLAGS")
            .status()
            .unwrap();
        assert!(status.success(), "the README's program does not build");
        target_dir().join("debug").join("hello-keygate")
    })
}

struct Running(Child, String);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(redis_url: Option<&str>) -> Running {
    let mut command = Command::new(program());
    command
        .env("BIND_ADDR", "127.0.0.1:0")
        .env_remove("REDIS_URL")
        .stdout(Stdio::piped());
    if let Some(url) = redis_url {
        command.env("REDIS_URL", url);
    }
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Running(child, addr)
}

/// One HTTP/1.1 request on a new connection: status and body.
fn http(addr: &str, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let auth = token.map_or(String::new(), |t| format!("authorization: {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\n{auth}content-length: 0\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let status = reply[9..12].parse().unwrap();
    let body = reply.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

fn login_me_logout(addr: &str) -> String {
    let (status, token) = http(addr, "POST", "/login", None);
    assert_eq!(status, 200, "{token}");
    assert_eq!(token.len(), 32, "a 32-hex token: {token}");
    let (status, me) = http(addr, "GET", "/me", Some(&token));
    assert_eq!((status, me.as_str()), (200, r#"{"id":598,"name":"Ada"}"#));
    let (status, _) = http(addr, "POST", "/logout", Some(&token));
    assert_eq!(status, 200);
    let (status, refused) = http(addr, "GET", "/me", Some(&token));
    assert_eq!(status, 401, "{refused}");
    assert!(refused.contains(r#""success":false"#), "{refused}");
    token
}

#[test]
fn the_readme_program_runs_on_the_embedded_backend() {
    let app = start(None);
    login_me_logout(&app.1);
}

#[test]
fn the_readme_program_runs_on_redis() {
    let server = RedisServer::start();
    let app = start(Some(&server.url()));
    let (status, token) = http(&app.1, "POST", "/login", None);
    assert_eq!(status, 200);
    let key = format!("keygate:session:{token}");
    let stored: String = server.query(redis::cmd("GET").arg(&key));
    assert_eq!(stored, r#"{"id":598,"name":"Ada"}"#);
    login_me_logout(&app.1);
}
