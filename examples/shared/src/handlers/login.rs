//! `/user/*`: codes, login, profile, sessions, logout.

use keygate::{CurrentSession, Keygate, SessionId};
use serde::{Deserialize, Serialize};

use super::form_field;
use crate::user::UserDto;
use crate::{App, Reply};

/// `POST /user/login`'s body.
#[derive(Deserialize)]
struct LoginForm {
    phone: String,
    code: String,
}

/// One entry of `GET /user/sessions`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionView<'a> {
    id: &'a SessionId,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds.
    last_seen_at: i64,
    device: &'a str,
    current: bool,
}

/// The `phone` of a form body (`phone=...`) or a JSON body (`{"phone": "..."}`).
fn phone_in_body(body: &[u8]) -> Option<String> {
    if body.trim_ascii_start().starts_with(b"{") {
        #[derive(Deserialize)]
        struct PhoneBody {
            phone: String,
        }
        serde_json::from_slice::<PhoneBody>(body)
            .ok()
            .map(|b| b.phone)
    } else {
        form_field(body, "phone")
    }
}

impl App {
    /// `POST /user/code`: the phone from the query (`?phone=`) or else the body (form field
    /// or JSON); stores a fresh code and hands it to the development sender, which logs it.
    pub async fn send_code(&self, query: Option<&str>, body: &[u8]) -> Reply {
        let phone = query
            .and_then(|q| form_field(q.as_bytes(), "phone"))
            .or_else(|| phone_in_body(body));
        let Some(phone) = phone else {
            return Reply::bad_request(
                "missing phone number: pass ?phone= or a form field `phone`",
            );
        };
        match self.login.send_code(&phone).await {
            Ok(()) => Reply::done(),
            Err(e) => Reply::code(&e),
        }
    }

    /// `POST /user/login` with `{"phone": "...", "code": "..."}`: the new token, also set
    /// as the session cookie. `gate` is the adapter's gate for this request, so that the
    /// response carries the cookie and the session records the request's `User-Agent`.
    pub async fn login(&self, gate: &Keygate<UserDto>, body: &[u8]) -> Reply {
        let form: LoginForm = match serde_json::from_slice(body) {
            Ok(form) => form,
            Err(e) => {
                return Reply::bad_request(format!(
                    "expected a JSON body {{\"phone\": \"...\", \"code\": \"...\"}}: {e}"
                ));
            }
        };
        let user = match self.login.authenticate(&form.phone, &form.code).await {
            Ok(user) => user,
            Err(e) => return Reply::login(&e),
        };
        match gate.login(&user).await {
            Ok(token) => Reply::ok(token.expose()),
            Err(e) => Reply::core(&e),
        }
    }

    /// `GET /user/me`: the session's user.
    pub fn me(&self, session: &CurrentSession<UserDto>) -> Reply {
        Reply::ok(session.data())
    }

    /// `POST /user/logout`: ends this session at once.
    pub async fn logout(&self, session: &CurrentSession<UserDto>) -> Reply {
        match session.logout().await {
            Ok(_) => Reply::done(),
            Err(e) => Reply::core(&e),
        }
    }

    /// `GET /user/sessions`: the user's live sessions (those created by keygate), oldest
    /// first, the current one marked.
    pub async fn sessions(&self, session: &CurrentSession<UserDto>) -> Reply {
        match session.sessions().await {
            Ok(list) => Reply::ok(
                list.iter()
                    .map(|info| SessionView {
                        id: &info.id,
                        created_at: info.created_at_ms.div_euclid(1000),
                        last_seen_at: info.last_seen_ms.div_euclid(1000),
                        device: info.device.as_deref().unwrap_or_default(),
                        current: info.current,
                    })
                    .collect::<Vec<_>>(),
            ),
            Err(e) => Reply::core(&e),
        }
    }

    /// `DELETE /user/sessions/{id}`: ends that one session of this user; 404 for an unknown
    /// id and for another user's session, which stays untouched.
    pub async fn end_session(&self, session: &CurrentSession<UserDto>, id: &str) -> Reply {
        let Some(id) = SessionId::parse(id) else {
            return Reply::not_found("session");
        };
        match session.end_session(&id).await {
            Ok(true) => Reply::done(),
            Ok(false) => Reply::not_found("session"),
            Err(e) => Reply::core(&e),
        }
    }

    /// `POST /user/logout-all`: ends every session of the user; answers how many ended.
    ///
    /// A session another service created is not in keygate's per-user index; the current
    /// one is ended explicitly too, so the token used for this call never survives it.
    pub async fn logout_all(&self, session: &CurrentSession<UserDto>) -> Reply {
        let indexed = match session.logout_everywhere().await {
            Ok(n) => n,
            Err(e) => return Reply::core(&e),
        };
        match session.logout().await {
            Ok(current_was_unindexed) => Reply::ok(indexed + u64::from(current_was_unindexed)),
            Err(e) => Reply::core(&e),
        }
    }
}
