//! What keygate records for operators (keygate::telemetry): the documented metrics move as
//! the operations happen, no token, code, phone or user id ever becomes a label value, and
//! the spans carry their outcome but never the token. On both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use keygate::code::{CodeConfig, Codes};
use keygate::flash_sale::{FlashSale, OrderOutcome, SaleWindow};
use keygate::lock::Locks;
use keygate::rate_limit::{RateLimiter, Window};
use keygate::telemetry::names;
use keygate::web::Rejection;
use keygate::{Keygate, SessionConfig, SessionManager, SessionUser, Token};
use keygate_tests::fixtures::{Authorization, Backend, CapturingSender, JavaUser};
use keygate_tests::log_capture::LogCapture;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

const PHONE: &str = "13800138000";

/// The secrets of one run, none of which may appear in a label or a span.
struct Secrets {
    tokens: Vec<Token>,
    code: String,
}

/// Drives one of everything through the core and returns what must stay secret.
async fn exercise(backend: &Backend) -> Secrets {
    let manager = SessionManager::<JavaUser>::from_shared_store(
        backend.sessions(),
        SessionConfig::java_seed(),
    )
    .unwrap();
    let gate = Keygate::new(manager.clone());
    let user = JavaUser::new(598);
    let first = manager.login(&user.user_id(), &user).await.unwrap();
    let second = manager.login(&user.user_id(), &user).await.unwrap();
    // Loads: a hit, a miss, a malformed token (no backend call).
    assert!(
        gate.resolve(&Authorization::new(first.expose()))
            .await
            .is_ok()
    );
    let unknown = Token::generate().unwrap();
    assert_eq!(
        gate.resolve(&Authorization::new(unknown.expose()))
            .await
            .err(),
        Some(Rejection::NoSession)
    );
    assert_eq!(
        gate.resolve(&Authorization::new("not a token")).await.err(),
        Some(Rejection::MalformedToken)
    );
    keygate::adapter::report_rejection(Rejection::NoSession);
    keygate::adapter::report_rejection(Rejection::MalformedToken);
    keygate::adapter::report_rejection(Rejection::CrossOrigin);

    let session = manager.load(&second).await.unwrap().unwrap();
    let rotated = manager.rotate(&session).await.unwrap().unwrap().token;
    let listed = manager.sessions(&user.user_id(), None).await.unwrap();
    assert!(
        manager
            .end_session(&user.user_id(), &listed[0].id)
            .await
            .unwrap()
    );
    assert!(
        !manager.logout(&first).await.unwrap(),
        "ended by id already"
    );
    let third = manager.login(&user.user_id(), &user).await.unwrap();
    assert!(manager.logout(&third).await.unwrap());
    assert_eq!(manager.logout_everywhere(&user.user_id()).await.unwrap(), 1);

    let sender = CapturingSender::default();
    let codes =
        Codes::from_shared(backend.codes(), Arc::new(sender.clone()), CodeConfig::new()).unwrap();
    let phone = codes.phone(PHONE).unwrap();
    codes.send(&phone).await.unwrap();
    assert!(codes.send(&phone).await.is_err(), "cooldown");
    let code = sender.last(PHONE).unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert!(codes.verify(&phone, wrong).await.is_err());
    codes.verify(&phone, &code).await.unwrap();

    let locks = Locks::from_shared(backend.locks());
    let held = locks.try_acquire("order:1").await.unwrap();
    assert!(locks.try_acquire("order:1").await.is_err(), "busy");
    held.release().await.unwrap();
    let again = locks
        .acquire("order:1", Duration::from_secs(1))
        .await
        .unwrap();
    again.release().await.unwrap();

    let sale = FlashSale::from_shared(backend.flash_sale());
    sale.load(7, 1, SaleWindow::default()).await.unwrap();
    let buyer = JavaUser::new(598).user_id();
    assert!(matches!(
        sale.order(7, &buyer).await.unwrap(),
        OrderOutcome::Ordered { .. }
    ));
    assert_eq!(
        sale.order(7, &buyer).await.unwrap(),
        OrderOutcome::AlreadyOrdered
    );
    assert_eq!(
        sale.order(7, &JavaUser::new(2).user_id()).await.unwrap(),
        OrderOutcome::SoldOut
    );
    assert_eq!(
        sale.order(8, &buyer).await.unwrap(),
        OrderOutcome::UnknownVoucher
    );

    let limiter =
        RateLimiter::from_shared(backend.rate_limit(), "login-ip", Window::per_minute(1)).unwrap();
    assert!(limiter.check("ip:127.0.0.1").await.unwrap().allowed);
    assert!(!limiter.check("ip:127.0.0.1").await.unwrap().allowed);

    Secrets {
        tokens: vec![first, second, rotated, third, unknown],
        code,
    }
}

/// One recorded metric: its name, its labels, its value.
struct Recorded {
    name: String,
    labels: Vec<(String, String)>,
    value: DebugValue,
}

/// The values recorded under `name` with (at least) these labels.
fn matching<'a>(
    snapshot: &'a [Recorded],
    name: &'a str,
    labels: &'a [(&str, &str)],
) -> impl Iterator<Item = &'a DebugValue> {
    snapshot
        .iter()
        .filter(move |r| {
            r.name == name
                && labels
                    .iter()
                    .all(|(k, v)| r.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|r| &r.value)
}

fn counter(snapshot: &[Recorded], name: &str, labels: &[(&str, &str)]) -> u64 {
    matching(snapshot, name, labels)
        .map(|value| match value {
            DebugValue::Counter(n) => *n,
            other => panic!("{name} is not a counter: {other:?}"),
        })
        .sum()
}

fn histogram_count(snapshot: &[Recorded], name: &str, labels: &[(&str, &str)]) -> usize {
    matching(snapshot, name, labels)
        .map(|value| match value {
            DebugValue::Histogram(samples) => samples.len(),
            other => panic!("{name} is not a histogram: {other:?}"),
        })
        .sum()
}

fn run(on_redis: bool) {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let log = LogCapture::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("keygate=debug")
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let secrets = metrics::with_local_recorder(&recorder, || {
        tracing::subscriber::with_default(subscriber, || {
            runtime.block_on(async move {
                let backend = if on_redis {
                    Backend::redis().await
                } else {
                    Backend::memory()
                };
                exercise(&backend).await
            })
        })
    });
    let snapshot: Vec<Recorded> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            Recorded {
                name: key.name().to_owned(),
                labels,
                value,
            }
        })
        .collect();

    let c = |name, labels: &[(&str, &str)]| counter(&snapshot, name, labels);
    assert_eq!(c(names::LOGINS, &[]), 3);
    // Loads: gate hit, miss, malformed; then the manager's own load before rotating.
    assert_eq!(c(names::SESSION_LOADS, &[("outcome", "hit")]), 2);
    assert_eq!(c(names::SESSION_LOADS, &[("outcome", "miss")]), 1);
    assert_eq!(c(names::SESSION_LOADS, &[("outcome", "malformed")]), 1);
    assert_eq!(
        histogram_count(&snapshot, names::BACKEND_SECONDS, &[("op", "load")]),
        3
    );
    assert_eq!(
        histogram_count(&snapshot, names::BACKEND_SECONDS, &[("op", "login")]),
        3
    );
    assert_eq!(c(names::ROTATIONS, &[]), 1);
    assert_eq!(c(names::LOGOUTS, &[("kind", "session")]), 1);
    assert_eq!(c(names::LOGOUTS, &[("kind", "one")]), 1);
    assert_eq!(c(names::LOGOUTS, &[("kind", "everywhere")]), 1);
    assert_eq!(c(names::REJECTIONS, &[("status", "401")]), 2);
    assert_eq!(c(names::REJECTIONS, &[("status", "403")]), 1);
    assert_eq!(c(names::CODE_ISSUED, &[("outcome", "sent")]), 1);
    assert_eq!(c(names::CODE_ISSUED, &[("outcome", "cooldown")]), 1);
    assert_eq!(c(names::CODE_VERIFIED, &[("outcome", "wrong")]), 1);
    assert_eq!(c(names::CODE_VERIFIED, &[("outcome", "ok")]), 1);
    assert_eq!(c(names::LOCK_ACQUIRED, &[]), 2);
    assert_eq!(c(names::LOCK_BUSY, &[]), 1);
    assert_eq!(histogram_count(&snapshot, names::LOCK_WAITED, &[]), 2);
    assert_eq!(c(names::FLASH_SALE_ORDERS, &[("outcome", "ordered")]), 1);
    assert_eq!(
        c(names::FLASH_SALE_ORDERS, &[("outcome", "already_ordered")]),
        1
    );
    assert_eq!(c(names::FLASH_SALE_ORDERS, &[("outcome", "sold_out")]), 1);
    assert_eq!(
        c(names::FLASH_SALE_ORDERS, &[("outcome", "unknown_voucher")]),
        1
    );
    assert_eq!(
        histogram_count(
            &snapshot,
            names::BACKEND_SECONDS,
            &[("op", "flash_sale_order")]
        ),
        4
    );
    let decisions = |outcome| {
        c(
            names::RATE_LIMIT_DECISIONS,
            &[("limiter", "login-ip"), ("outcome", outcome)],
        )
    };
    assert_eq!((decisions("allowed"), decisions("refused")), (1, 1));
    assert_eq!(c(names::BACKEND_ERRORS, &[]), 0);

    // No secret or personal value in any label.
    let forbidden: Vec<String> = secrets
        .tokens
        .iter()
        .map(|t| t.expose().to_owned())
        .chain([secrets.code.clone(), PHONE.to_owned(), "598".to_owned()])
        .collect();
    for recorded in &snapshot {
        let name = &recorded.name;
        assert!(name.starts_with("keygate_"), "{name}");
        for (key, value) in &recorded.labels {
            assert!(
                !forbidden.iter().any(|f| value.contains(f.as_str())),
                "{name}{{{key}={value}}} carries a secret"
            );
        }
    }

    // Spans: each load with its layout and outcome, never a token.
    let log = log.text();
    assert!(
        log.lines().any(|l| l.contains("keygate.load")
            && l.contains("layout=\"hash\"")
            && l.contains("outcome=\"hit\"")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("keygate.op") && l.contains("op=\"rotate\"")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("keygate.lock") && l.contains("outcome=\"busy\"")),
        "{log}"
    );
    for secret in &forbidden[..forbidden.len() - 2] {
        assert!(!log.contains(secret.as_str()), "a secret reached the log");
    }
}

#[test]
fn metrics_and_spans_on_the_memory_backend() {
    run(false);
}

#[test]
fn metrics_and_spans_on_redis() {
    run(true);
}

/// A script failure (a deterministic error inside one of keygate's scripts, answered 500)
/// is logged at ERROR at most once a second, with the number left out since the last one:
/// a client that provokes one on every request cannot flood the log.
#[test]
fn script_failures_are_logged_at_most_once_a_second() {
    use keygate::backend::SessionStore;
    let log = LogCapture::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("keygate=info")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let failures = || {
        log.text()
            .lines()
            .filter(|l| l.contains("script failure"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let Backend::Redis(store, server) = Backend::redis().await else {
                unreachable!("a Redis backend")
            };
            // An index that is not a sorted set: the index script's ZREM fails inside it.
            let _: () = server.query(redis::cmd("SET").arg("broken-index").arg("x"));
            let fail = async || {
                let reply = store
                    .index_replace("broken-index", "a", "b", 1, 60_000)
                    .await;
                assert!(matches!(reply, Err(keygate::Error::Script(_))), "{reply:?}");
            };
            for _ in 0..50 {
                fail().await;
            }
            assert_eq!(failures().len(), 1, "50 failures in a row: one line");
            tokio::time::sleep(Duration::from_millis(1100)).await;
            fail().await;
            let logged = failures();
            assert_eq!(logged.len(), 2, "{logged:?}");
            assert!(logged[1].contains("suppressed=49"), "{logged:?}");
        });
    });
}
