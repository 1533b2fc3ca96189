use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use keygate::code::{CodeConfig, CodeError, Codes, Phone};
use keygate::login::{DirectoryError, PhoneLogin, UserDirectory, random_nickname};
use keygate::{SessionConfig, SessionManager};
use keygate_tests::fixtures::{Backend, CapturingSender, JavaUser, pttl};

const PHONE: &str = "13800138000";

/// Users by phone, as the example apps keep them in SQLite.
#[derive(Default)]
struct Directory {
    users: Mutex<HashMap<String, JavaUser>>,
}

#[async_trait]
impl UserDirectory for Directory {
    type User = JavaUser;

    async fn find_or_create_by_phone(&self, phone: &Phone) -> Result<JavaUser, DirectoryError> {
        let mut users = self.users.lock().unwrap();
        let next_id = users.len() as u64 + 1;
        Ok(users
            .entry(phone.as_str().to_owned())
            .or_insert_with(|| JavaUser {
                id: next_id,
                nick_name: random_nickname().unwrap(),
                icon: String::new(),
            })
            .clone())
    }
}

fn codes(b: &Backend, sender: &CapturingSender, config: CodeConfig) -> Codes {
    Codes::from_shared(b.codes(), Arc::new(sender.clone()), config).unwrap()
}

fn code_key(phone: &str) -> String {
    format!("login:code:{phone}")
}

pub async fn happy_path_logs_in_and_creates_the_user(b: &Backend) {
    let sender = CapturingSender::default();
    let sessions =
        SessionManager::<JavaUser>::from_shared_store(b.sessions(), SessionConfig::java_seed())
            .unwrap();
    // No cooldown, so the second login below can request another code at once.
    let login = PhoneLogin::new(
        codes(b, &sender, CodeConfig::new().with_cooldown(Duration::ZERO)),
        Directory::default(),
        sessions.clone(),
    );
    login.send_code(PHONE).await.unwrap();
    let code = sender.last(PHONE).unwrap();
    assert_eq!(code.len(), 6);
    if let Some(server) = b.server() {
        // The seed's layout: the plain code at login:code:<phone>, TTL 120 s.
        let stored: String = server.query(redis::cmd("GET").arg(code_key(PHONE)));
        assert_eq!(stored, code);
        assert!((110_000..=120_000).contains(&pttl(server, &code_key(PHONE))));
    }
    let (token, user) = login.login(PHONE, &code).await.unwrap();
    assert!(user.nick_name.starts_with("user_") && user.nick_name.len() == 15);
    assert_eq!(sessions.load(&token).await.unwrap().unwrap().data(), &user);
    if let Some(server) = b.server() {
        let exists: i64 = server.query(redis::cmd("EXISTS").arg(code_key(PHONE)));
        assert_eq!(exists, 0, "the code is consumed");
    }

    // A second login finds the same user and gets a new token.
    let login = PhoneLogin::new(
        codes(b, &sender, CodeConfig::new().with_cooldown(Duration::ZERO)),
        Directory {
            users: Mutex::new(HashMap::from([(PHONE.to_owned(), user.clone())])),
        },
        sessions.clone(),
    );
    login.send_code(PHONE).await.unwrap();
    let (second, again) = login
        .login(PHONE, &sender.last(PHONE).unwrap())
        .await
        .unwrap();
    assert_eq!(again, user);
    assert_ne!(second, token, "every login issues a new token");
}

pub async fn wrong_code_counts_and_the_right_one_still_works(b: &Backend) {
    let sender = CapturingSender::default();
    let codes = codes(b, &sender, CodeConfig::new());
    let phone = codes.phone(PHONE).unwrap();
    codes.send(&phone).await.unwrap();
    let right = sender.last(PHONE).unwrap();
    let wrong = if right == "000000" {
        "000001"
    } else {
        "000000"
    };
    assert!(matches!(
        codes.verify(&phone, wrong).await,
        Err(CodeError::WrongCode { tries_left: 4 })
    ));
    assert!(matches!(
        codes.verify(&phone, "x".repeat(10_000).as_str()).await,
        Err(CodeError::WrongCode { tries_left: 3 })
    ));
    codes.verify(&phone, &right).await.unwrap();
}

pub async fn expired_code_fails(b: &Backend) {
    let sender = CapturingSender::default();
    let codes = codes(
        b,
        &sender,
        CodeConfig::new().with_ttl(Duration::from_millis(300)),
    );
    let phone = codes.phone(PHONE).unwrap();
    codes.send(&phone).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(matches!(
        codes.verify(&phone, &sender.last(PHONE).unwrap()).await,
        Err(CodeError::NoCode)
    ));
}

pub async fn a_code_works_once(b: &Backend) {
    let sender = CapturingSender::default();
    let codes = codes(b, &sender, CodeConfig::new());
    let phone = codes.phone(PHONE).unwrap();
    codes.send(&phone).await.unwrap();
    let code = sender.last(PHONE).unwrap();
    codes.verify(&phone, &code).await.unwrap();
    assert!(matches!(
        codes.verify(&phone, &code).await,
        Err(CodeError::NoCode)
    ));
}

pub async fn five_wrong_tries_burn_the_code(b: &Backend) {
    let sender = CapturingSender::default();
    let codes = codes(b, &sender, CodeConfig::new());
    let phone = codes.phone(PHONE).unwrap();
    codes.send(&phone).await.unwrap();
    let right = sender.last(PHONE).unwrap();
    let wrong = if right == "111111" {
        "222222"
    } else {
        "111111"
    };
    for left in (1..=4).rev() {
        assert!(matches!(
            codes.verify(&phone, wrong).await,
            Err(CodeError::WrongCode { tries_left }) if tries_left == left
        ));
    }
    let fifth = codes.verify(&phone, wrong).await.unwrap_err();
    assert!(matches!(fifth, CodeError::TooManyTries));
    assert_eq!(fifth.status(), 429);
    let refused = codes.verify(&phone, &right).await.unwrap_err();
    assert!(matches!(refused, CodeError::TooManyTries), "{refused:?}");
}

pub async fn resend_cooldown_and_daily_cap(b: &Backend) {
    let sender = CapturingSender::default();
    let codes_with_cooldown = codes(b, &sender, CodeConfig::new());
    let phone = codes_with_cooldown.phone(PHONE).unwrap();
    codes_with_cooldown.send(&phone).await.unwrap();
    let error = codes_with_cooldown.send(&phone).await.unwrap_err();
    let wait = error.retry_after().unwrap();
    assert!(matches!(error, CodeError::Cooldown { .. }));
    assert!(
        wait > Duration::from_secs(55) && wait <= Duration::from_secs(60),
        "{wait:?}"
    );
    assert_eq!(error.status(), 429);

    let capped = codes(
        b,
        &sender,
        CodeConfig::new()
            .with_cooldown(Duration::ZERO)
            .with_daily_cap(3),
    );
    let other = capped.phone("13900139000").unwrap();
    for _ in 0..3 {
        capped.send(&other).await.unwrap();
    }
    let error = capped.send(&other).await.unwrap_err();
    assert!(matches!(error, CodeError::DailyLimit { .. }), "{error:?}");
    assert!(error.retry_after().unwrap() > Duration::from_secs(23 * 3600));
}

pub async fn concurrent_verifications_of_one_code_succeed_once(b: &Backend) {
    let sender = CapturingSender::default();
    let codes = codes(b, &sender, CodeConfig::new().with_max_tries(1000));
    let phone = codes.phone(PHONE).unwrap();
    codes.send(&phone).await.unwrap();
    let right = sender.last(PHONE).unwrap();
    let wrong = if right == "333333" {
        "444444"
    } else {
        "333333"
    };
    let attempts: Vec<_> = (0..75)
        .map(|i| {
            let (codes, phone) = (codes.clone(), phone.clone());
            let candidate = if i % 3 == 2 {
                wrong.to_owned()
            } else {
                right.clone()
            };
            tokio::spawn(async move { codes.verify(&phone, &candidate).await.is_ok() })
        })
        .collect();
    let mut successes = 0;
    for attempt in attempts {
        successes += usize::from(attempt.await.unwrap());
    }
    assert_eq!(
        successes, 1,
        "50 right + 25 wrong concurrent tries: exactly one login"
    );
}

pub async fn invalid_phones_are_rejected_before_the_store(b: &Backend) {
    let sender = CapturingSender::default();
    let login = PhoneLogin::new(
        codes(b, &sender, CodeConfig::new()),
        Directory::default(),
        SessionManager::from_shared_store(b.sessions(), SessionConfig::java_seed()).unwrap(),
    );
    for bad in [
        "",
        "1380013800",
        "+8613800138000",
        "1380013800a",
        "12345678901",
        "login:*",
    ] {
        let error = login.send_code(bad).await.unwrap_err();
        assert!(matches!(error, CodeError::InvalidPhone), "{bad:?}");
        assert_eq!(error.status(), 400);
        assert!(matches!(
            login.login(bad, "123456").await.unwrap_err(),
            keygate::login::LoginError::Code(CodeError::InvalidPhone)
        ));
    }
    if let Some(server) = b.server() {
        let keys: Vec<String> = server.query(redis::cmd("KEYS").arg("*"));
        assert!(keys.is_empty(), "nothing stored: {keys:?}");
    }
}

pub async fn a_failed_send_leaves_no_code(b: &Backend) {
    let failing = CapturingSender::failing();
    let codes_failing = codes(b, &failing, CodeConfig::new());
    let phone = codes_failing.phone(PHONE).unwrap();
    let error = codes_failing.send(&phone).await.unwrap_err();
    assert!(matches!(error, CodeError::Send(_)));
    assert!(matches!(
        codes_failing.verify(&phone, "000000").await,
        Err(CodeError::NoCode)
    ));
    if let Some(server) = b.server() {
        let exists: i64 = server.query(redis::cmd("EXISTS").arg(code_key(PHONE)));
        assert_eq!(exists, 0);
    }
    // The withdrawn send does not hold the cooldown: a retry right away goes through.
    let sender = CapturingSender::default();
    codes(b, &sender, CodeConfig::new())
        .send(&phone)
        .await
        .unwrap();
    assert!(sender.last(PHONE).is_some());
}

pub async fn hashed_codes_hide_the_code(b: &Backend) {
    let sender = CapturingSender::default();
    let codes = codes(
        b,
        &sender,
        CodeConfig::new().with_hashed_codes(b"server secret".to_vec()),
    );
    let phone = codes.phone(PHONE).unwrap();
    codes.send(&phone).await.unwrap();
    let code = sender.last(PHONE).unwrap();
    if let Some(server) = b.server() {
        let stored: String = server.query(redis::cmd("GET").arg(code_key(PHONE)));
        assert_eq!(stored.len(), 64);
        assert!(!stored.contains(&code));
    }
    codes.verify(&phone, &code).await.unwrap();
}
