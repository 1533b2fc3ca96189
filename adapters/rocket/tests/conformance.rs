//! The adapter conformance suite (`keygate_tests::adapter_suite`) through Rocket's
//! asynchronous local `Client`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use keygate_rocket::keygate::web::RateLimitPolicy;
use keygate_rocket::{
    ApiError, Auth, Envelope, Keygate, KeygateFairing, MaybeAuth, RateLimitFairing, RateLimited,
    Sessions,
};
use keygate_tests::adapter_suite::{OptionOnOutage, Reply, Runs, TestApp};
use keygate_tests::fixtures::JavaUser;
use rocket::http::{ContentType, Header, Method};
use rocket::local::asynchronous::Client;
use rocket::serde::json::Json;
use rocket::{State, get, post, routes};

#[get("/me")]
fn me(user: Auth<JavaUser>) -> Json<Envelope<JavaUser>> {
    Json(Envelope::ok(user.data().clone()))
}

#[get("/maybe")]
fn maybe(user: MaybeAuth<JavaUser>) -> Json<Envelope<Option<u64>>> {
    Json(Envelope::ok(user.0.map(|u| u.id)))
}

#[get("/option")]
fn option(user: Option<Auth<JavaUser>>) -> Json<Envelope<Option<u64>>> {
    Json(Envelope::ok(user.map(|u| u.id)))
}

#[get("/two")]
fn two(user: Auth<JavaUser>, again: MaybeAuth<JavaUser>) -> Json<Envelope<u64>> {
    assert_eq!(again.0.map(|u| u.id), Some(user.id));
    Json(Envelope::ok(user.id))
}

#[post("/login", data = "<user>")]
async fn login(
    sessions: Sessions<JavaUser>,
    user: Json<JavaUser>,
) -> Result<Json<Envelope<String>>, ApiError> {
    let token = sessions.login(&user).await?;
    Ok(Json(Envelope::ok(token.expose().to_owned())))
}

#[post("/logout")]
async fn logout(user: Auth<JavaUser>) -> Result<Json<Envelope<bool>>, ApiError> {
    Ok(Json(Envelope::ok(user.logout().await?)))
}

#[post("/logout-all")]
async fn logout_all(user: Auth<JavaUser>) -> Result<Json<Envelope<u64>>, ApiError> {
    Ok(Json(Envelope::ok(user.logout_everywhere().await?)))
}

#[get("/public")]
fn public(runs: &State<Runs>) -> Json<Envelope<u64>> {
    Json(Envelope::ok(runs.count()))
}

/// The rate-limit guard first: a refused request reaches no other guard.
#[get("/limited")]
fn limited(_limit: RateLimited, runs: &State<Runs>) -> Json<Envelope<u64>> {
    Json(Envelope::ok(runs.ran()))
}

#[get("/error/backend")]
fn backend_error() -> Result<(), ApiError> {
    Err(keygate::Error::Backend(keygate::BackendError::Timeout(Duration::from_secs(1))).into())
}

#[get("/error/script")]
fn script_error() -> Result<(), ApiError> {
    Err(keygate::Error::Script("the script failed".into()).into())
}

#[get("/error/config")]
fn config_error() -> Result<(), ApiError> {
    Err(keygate::Error::Config("a bad configuration".into()).into())
}

/// The rocket: the fairing is attached once and covers every mount, `/nested` included
/// (Rocket has no per-mount fairings, and a second `KeygateFairing` for the same user type
/// refuses to ignite). There is no `/unprotected/...`: a rocket whose route needs `Auth`
/// without the fairing does not launch (the guards are `Sentinel`s), so those requests
/// reach no route.
struct RocketApp(Client);

async fn make_app(gate: Keygate<JavaUser>, limit: RateLimitPolicy) -> RocketApp {
    let rocket = rocket::custom(rocket::Config::figment().merge(("log_level", "off")))
        .mount(
            "/",
            routes![
                me,
                maybe,
                option,
                two,
                login,
                logout,
                logout_all,
                public,
                limited,
                backend_error,
                script_error,
                config_error
            ],
        )
        .mount("/nested", routes![me])
        .attach(KeygateFairing::new(gate))
        .attach(RateLimitFairing::with_policy(limit))
        .manage(Runs::default());
    RocketApp(Client::untracked(rocket).await.unwrap())
}

#[async_trait::async_trait(?Send)]
impl TestApp for RocketApp {
    fn component(&self) -> &'static str {
        "KeygateFairing"
    }

    fn option_auth_on_outage(&self) -> OptionOnOutage {
        // Rocket's `Option<T>` guard turns any failure of `T` into `None`.
        OptionOnOutage::Anonymous
    }

    fn missing_peer_hint(&self) -> &'static str {
        "remote address"
    }

    async fn send_from(
        &self,
        peer: Option<IpAddr>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        let mut request = self
            .0
            .req(Method::from_str(method).unwrap(), path.to_owned());
        for (name, value) in headers {
            request = request.header(Header::new((*name).to_owned(), (*value).to_owned()));
        }
        if let Some(body) = body {
            request = request.header(ContentType::JSON).body(body);
        }
        if let Some(peer) = peer {
            request = request.remote(SocketAddr::new(peer, 40000));
        }
        let response = request.dispatch().await;
        let status = response.status().code;
        let headers: Vec<_> = response
            .headers()
            .iter()
            .map(|header| {
                (
                    header.name().to_string(),
                    header.value().as_bytes().to_vec(),
                )
            })
            .collect();
        let bytes = response.into_bytes().await.unwrap_or_default();
        Reply::new(status, headers, &bytes)
    }
}

keygate_tests::adapter_conformance!(#[tokio::test] make_app, known_differences: {
    route_without_the_component_is_500_naming_it:
        "Rocket cannot serve a route whose guard needs KeygateFairing without it: such a \
         rocket refuses to launch (Sentinel; tests/rocket.rs \
         ignite_fails_when_a_route_needs_the_missing_fairing), so /unprotected/me is a 404 here",
});
