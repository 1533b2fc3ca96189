//! The gate on the memory backend: cookies, origins, devices.

use std::time::Duration;

use super::*;
use crate::memory_store::MemoryStore;
use crate::session::DEVICE_LABEL_MAX_CHARS;
use crate::session::{SessionConfig, UserId};
use crate::web::{Rejection, TokenSource};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct User {
    id: u64,
}

impl SessionUser for User {
    fn user_id(&self) -> UserId {
        UserId::from(self.id)
    }
}

use crate::web::transport::TestRequest;

fn req(method: &'static str, headers: &[(&'static str, &str)]) -> TestRequest {
    headers
        .iter()
        .fold(TestRequest::new(method), |r, (name, value)| {
            r.header(name, value)
        })
}

fn gate(config: SessionConfig) -> Keygate<User> {
    let manager = SessionManager::new(MemoryStore::new(), config).unwrap();
    Keygate::new(manager).with_cookie(SessionCookie::new().with_secure(false))
}

#[test]
fn a_gate_without_a_cookie_gives_requests_no_context() {
    let manager =
        SessionManager::<User>::new(MemoryStore::new(), SessionConfig::java_seed()).unwrap();
    let plain = Keygate::new(manager);
    let request = plain.for_request(&req("POST", &[("user-agent", "curl/8")]));
    assert!(request.request.is_none());
    assert_eq!(plain.reader(), &TokenReader::default());
    let with = gate(SessionConfig::java_seed());
    assert_eq!(
        with.reader().sources().last(),
        Some(&TokenSource::Cookie("token".into()))
    );
    // A reader set afterwards keeps the cookie source, once.
    let again = with
        .clone()
        .with_reader(TokenReader::default().with_source(TokenSource::Cookie("token".into())));
    assert_eq!(again.reader().sources().len(), 3);
}

#[tokio::test]
async fn login_sets_and_logout_clears_the_cookie_of_the_request() {
    let lifetime = Duration::from_secs(3600);
    let gate = gate(SessionConfig::java_seed().with_absolute_lifetime(lifetime));
    let user = User { id: 7 };
    // The configured gate is no request's: nothing to set.
    gate.login(&user).await.unwrap();
    assert_eq!(gate.take_set_cookie(), None);

    let request = gate.for_request(&req("POST", &[]));
    let token = request.login(&user).await.unwrap();
    assert_eq!(
        request.take_set_cookie(),
        Some(format!(
            "token={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=3600",
            token.expose()
        ))
    );
    assert_eq!(request.take_set_cookie(), None, "taken once");

    let cookie = format!("token={}", token.expose());
    let parts = req(
        "POST",
        &[
            ("cookie", &cookie),
            ("host", "a.test"),
            ("origin", "https://a.test"),
        ],
    );
    let request = gate.for_request(&parts);
    let session = request.resolve(&parts).await.unwrap();
    assert_eq!(session.data(), &user);
    assert_eq!(request.take_set_cookie(), None, "loading sets nothing");
    assert!(session.logout().await.unwrap());
    assert_eq!(
        request.take_set_cookie().as_deref(),
        Some("token=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
    );
}

#[test]
fn the_requests_user_agent_is_the_device_unless_the_login_names_one() {
    let gate = gate(SessionConfig::java_seed());
    let request = gate.for_request(&req("POST", &[("user-agent", "Mozilla/5.0 (X11)")]));
    let options = request.with_request_device(LoginOptions::new());
    assert_eq!(options.device(), Some("Mozilla/5.0 (X11)"));
    let options = request.with_request_device(LoginOptions::new().with_device("mine"));
    assert_eq!(options.device(), Some("mine"));
    let long = "x".repeat(10_000);
    let request = gate.for_request(&req("POST", &[("user-agent", &long)]));
    let kept = request
        .request
        .as_ref()
        .and_then(|r| r.user_agent.as_deref());
    assert_eq!(kept.map(str::len), Some(DEVICE_LABEL_MAX_CHARS));
    assert_eq!(
        gate.with_request_device(LoginOptions::new()).device(),
        None,
        "no request, no device"
    );
}

#[tokio::test]
async fn only_cookie_authenticated_unsafe_requests_are_origin_checked() {
    let gate = gate(SessionConfig::java_seed());
    let token = "dd9b7511874889f4192fbda3d8b0881c";
    let cookie = format!("token={token}");
    let foreign = [("host", "a.test"), ("origin", "https://evil.test")];
    let with = |method, extra: &[(&'static str, &str)]| {
        let mut headers = foreign.to_vec();
        headers.extend_from_slice(extra);
        req(method, &headers)
    };
    let refused = gate.resolve(&with("POST", &[("cookie", &cookie)])).await;
    assert_eq!(refused.as_ref().err(), Some(&Rejection::CrossOrigin));
    assert_eq!(optional(&refused).err(), Some(Rejection::CrossOrigin));
    for method in ["PUT", "PATCH", "DELETE"] {
        let refused = gate.resolve(&with(method, &[("cookie", &cookie)])).await;
        assert_eq!(refused.err(), Some(Rejection::CrossOrigin), "{method}");
    }
    // Safe methods, header tokens: not checked (the token is unknown: 401).
    let get = gate.resolve(&with("GET", &[("cookie", &cookie)])).await;
    assert_eq!(get.err(), Some(Rejection::NoSession));
    let header = gate
        .resolve(&with(
            "POST",
            &[("cookie", &cookie), ("authorization", token)],
        ))
        .await;
    assert_eq!(header.err(), Some(Rejection::NoSession));
    // A configured list replaces the request's own host.
    let listed = gate.with_allowed_origins(["https://evil.test"]).unwrap();
    let allowed = listed.resolve(&with("POST", &[("cookie", &cookie)])).await;
    assert_eq!(allowed.err(), Some(Rejection::NoSession));
    assert!(listed.with_allowed_origins(["evil.test"]).is_err());
}

#[tokio::test]
async fn a_request_from_another_origin_never_changes_the_cookie() {
    let gate = gate(SessionConfig::java_seed());
    let user = User { id: 7 };
    // Login CSRF: a cross-site form posting the attacker's own credentials must not plant
    // the attacker's session in the victim's browser.
    let foreign = req(
        "POST",
        &[("host", "a.test"), ("origin", "http://evil.test")],
    );
    let request = gate.for_request(&foreign);
    request.login(&user).await.unwrap();
    assert_eq!(
        request.take_set_cookie(),
        None,
        "no cookie for a foreign login"
    );
    let nulled = req("POST", &[("host", "a.test"), ("origin", "null")]);
    let request = gate.for_request(&nulled);
    request.login(&user).await.unwrap();
    assert_eq!(request.take_set_cookie(), None, "Origin: null is foreign");
    let by_referer = req(
        "POST",
        &[("host", "a.test"), ("referer", "http://evil.test/x")],
    );
    let request = gate.for_request(&by_referer);
    request.login(&user).await.unwrap();
    assert_eq!(request.take_set_cookie(), None, "a foreign Referer too");
    // A logout by query token from another site ends that token's session but leaves the
    // browser's cookie alone.
    let token = gate.login(&user).await.unwrap();
    let query = TestRequest {
        query: Some(format!("tokenid={}", token.expose())),
        ..req(
            "POST",
            &[("host", "a.test"), ("origin", "http://evil.test")],
        )
    };
    let request = gate.for_request(&query);
    let session = request.resolve(&query).await.unwrap();
    assert!(session.logout().await.unwrap());
    assert_eq!(
        request.take_set_cookie(),
        None,
        "no clearing for a foreign request"
    );
    // Same origin, or no origin named at all (a non-browser client): the cookie is set.
    for own in [
        req("POST", &[("host", "a.test"), ("origin", "http://a.test")]),
        req("POST", &[]),
    ] {
        let request = gate.for_request(&own);
        request.login(&user).await.unwrap();
        assert!(request.take_set_cookie().is_some());
    }
}

#[tokio::test]
async fn with_a_secure_cookie_the_origin_must_be_https() {
    let manager = SessionManager::new(MemoryStore::new(), SessionConfig::java_seed()).unwrap();
    let gate = Keygate::new(manager).with_cookie(SessionCookie::new());
    let token = gate.login(&User { id: 7 }).await.unwrap();
    let cookie = format!("token={}", token.expose());
    let plain = req(
        "POST",
        &[
            ("cookie", &cookie),
            ("host", "a.test"),
            ("origin", "http://a.test"),
        ],
    );
    assert_eq!(
        gate.resolve(&plain).await.err(),
        Some(Rejection::CrossOrigin)
    );
    let tls = req(
        "POST",
        &[
            ("cookie", &cookie),
            ("host", "a.test"),
            ("origin", "https://a.test"),
        ],
    );
    assert!(gate.resolve(&tls).await.is_ok());
}

#[tokio::test]
async fn ending_this_very_session_by_id_clears_the_cookie() {
    let gate = gate(SessionConfig::java_seed());
    let user = User { id: 7 };
    let other = gate.login(&user).await.unwrap();
    let token = gate.login(&user).await.unwrap();
    let cookie = format!("token={}", token.expose());
    let parts = req(
        "DELETE",
        &[
            ("cookie", &cookie),
            ("host", "a.test"),
            ("origin", "http://a.test"),
        ],
    );
    let request = gate.for_request(&parts);
    let session = request.resolve(&parts).await.unwrap();
    let other_id = gate.manager().session_id(&other);
    assert!(session.end_session(&other_id).await.unwrap());
    assert_eq!(
        request.take_set_cookie(),
        None,
        "another device: the cookie stays"
    );
    let own = gate.manager().session_id(&token);
    assert!(session.end_session(&own).await.unwrap());
    assert_eq!(
        request.take_set_cookie().as_deref(),
        Some("token=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
    );
}
