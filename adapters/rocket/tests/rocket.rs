//! What only Rocket has, beside the conformance suite (`tests/conformance.rs`): sentinels
//! refusing to launch without the fairing, a guard out of their sight, the catchers, the
//! rejection as a responder, and one gate per user type.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use keygate_rocket::keygate::web::Rejection as CoreRejection;
use keygate_rocket::{
    Auth, Envelope, Keygate, KeygateFairing, MaybeAuth, MemoryStore, Rejection, SessionConfig,
    SessionManager, Sessions,
};
use keygate_tests::RedisServer;
use keygate_tests::fixtures::{JavaUser, java_gate};
use rocket::error::ErrorKind;
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::Client;
use rocket::request::{FromRequest, Outcome};
use rocket::serde::json::Json;
use rocket::{Build, Request, Rocket, catch, catchers, get, post, routes};
use serde_json::{Value, json};

const TOKEN: &str = "dd9b7511874889f4192fbda3d8b0881c";

#[get("/me")]
fn me(user: Auth<JavaUser>) -> Json<Envelope<u64>> {
    Json(Envelope::ok(user.id))
}

#[get("/maybe")]
fn maybe(user: MaybeAuth<JavaUser>) -> Json<Envelope<Option<u64>>> {
    Json(Envelope::ok(user.0.map(|user| user.id)))
}

#[post("/login")]
fn login(_sessions: Sessions<JavaUser>) {}

fn quiet() -> Rocket<Build> {
    rocket::custom(rocket::Config::figment().merge(("log_level", "off")))
}

fn memory_gate() -> Keygate<JavaUser> {
    Keygate::new(SessionManager::new(MemoryStore::new(), SessionConfig::java_seed()).unwrap())
}

/// Status, content type and JSON body of a response.
async fn read(
    response: rocket::local::asynchronous::LocalResponse<'_>,
) -> (Status, Option<ContentType>, Value) {
    let status = response.status();
    let content_type = response.content_type();
    let text = response.into_string().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, content_type, body)
}

#[tokio::test]
async fn ignite_fails_when_a_route_needs_the_missing_fairing() {
    let rocket = quiet().mount("/", routes![me, maybe, login]);

    let Err(error) = Client::untracked(rocket).await else {
        panic!("ignite succeeded");
    };

    let ErrorKind::SentinelAborts(sentries) = error.kind() else {
        panic!("not a sentinel abort: {:?}", error.kind());
    };
    let mut aborted: Vec<_> = sentries.iter().map(|sentry| sentry.type_name).collect();
    aborted.sort_unstable();
    assert_eq!(aborted.len(), 3, "{aborted:?}");
    assert!(aborted[0].contains("Auth<"), "{aborted:?}");
    assert!(aborted[1].contains("MaybeAuth<"), "{aborted:?}");
    assert!(aborted[2].contains("Sessions<"), "{aborted:?}");
}

/// A guard of the application built on `Auth`, out of the sentinels' sight.
struct Wrapped(Auth<JavaUser>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Wrapped {
    type Error = Rejection;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        request.guard::<Auth<JavaUser>>().await.map(Wrapped)
    }
}

#[get("/wrapped")]
fn wrapped(user: Wrapped) -> String {
    user.0.nick_name.clone()
}

#[tokio::test]
async fn a_guard_without_the_fairing_is_a_500_naming_it_not_a_panic() {
    let rocket = quiet()
        .mount("/", routes![wrapped])
        .register("/", keygate_rocket::catchers());
    let client = Client::untracked(rocket).await.unwrap();

    let response = client
        .get("/wrapped")
        .header(Header::new("authorization", TOKEN))
        .dispatch()
        .await;

    let (status, content_type, body) = read(response).await;
    assert_eq!(status, Status::InternalServerError);
    assert_eq!(content_type, Some(ContentType::JSON));
    assert_eq!(body["success"], json!(false));
    let message = body["errorMsg"].as_str().unwrap();
    assert!(
        message.starts_with("keygate-rocket: KeygateFairing is not installed"),
        "{message}"
    );
}

#[catch(401)]
fn own_unauthorized(request: &Request<'_>) -> String {
    let message = keygate_rocket::rejection(request).map_or("none", CoreRejection::message);
    format!("own catcher: {message}")
}

#[tokio::test]
async fn an_applications_own_catcher_is_kept_and_sees_the_rejection() {
    let mut server = RedisServer::start();
    let rocket = quiet()
        .mount("/", routes![me])
        .attach(KeygateFairing::new(java_gate(&server).await))
        .register("/", catchers![own_unauthorized]);
    let client = Client::untracked(rocket).await.unwrap();

    let response = client.get("/me").dispatch().await;
    assert_eq!(response.status(), Status::Unauthorized);
    assert_eq!(
        response.into_string().await.as_deref(),
        Some("own catcher: not logged in: no token")
    );

    // The fairing's other catchers are still there.
    server.stop();
    let response = client
        .get("/me")
        .header(Header::new("authorization", TOKEN))
        .dispatch()
        .await;
    let (status, content_type, body) = read(response).await;
    assert_eq!(status, Status::ServiceUnavailable);
    assert_eq!(content_type, Some(ContentType::JSON));
    let expected: Value = serde_json::from_str(&CoreRejection::BackendUnavailable.body()).unwrap();
    assert_eq!(body, expected);
}

/// A handler that takes the guard's outcome itself and answers its rejection.
#[get("/result")]
fn result(user: Result<Auth<JavaUser>, Rejection>) -> Result<String, Rejection> {
    user.map(|user| user.id.to_string())
}

#[tokio::test]
async fn a_rejection_taken_by_the_handler_answers_the_envelope_as_a_responder() {
    let client = Client::untracked(
        quiet()
            .mount("/", routes![result])
            .attach(KeygateFairing::new(memory_gate()).without_catchers()),
    )
    .await
    .unwrap();
    let response = client
        .get("/result")
        .header(Header::new("authorization", "*"))
        .dispatch()
        .await;
    let (status, content_type, body) = read(response).await;
    assert_eq!(status, Status::Unauthorized);
    assert_eq!(content_type, Some(ContentType::JSON));
    let expected: Value = serde_json::from_str(&CoreRejection::MalformedToken.body()).unwrap();
    assert_eq!(body, expected);
}

#[tokio::test]
async fn a_second_gate_for_the_same_user_type_fails_ignite() {
    let rocket = quiet()
        .mount("/", routes![me])
        .attach(KeygateFairing::new(memory_gate()))
        .attach(KeygateFairing::new(memory_gate()));

    let Err(error) = Client::untracked(rocket).await else {
        panic!("ignite succeeded");
    };

    assert!(
        matches!(error.kind(), ErrorKind::FailedFairings(failed) if failed.iter().any(|f| f.name == "keygate")),
        "{:?}",
        error.kind()
    );
}
