//! A user's own operations as the user's session count grows: login, the device list,
//! ending one session, logging out everywhere; and logins of a user held at the cap.

use std::time::Instant;

use keygate::{RedisStore, SessionConfig, SessionManager, UserId};

use super::populate;
use crate::Result;
use crate::redis_admin::Admin;
use crate::user::{NODE_CUSTOM, NodeUser};

/// Repetitions of the cheap operations.
const REPEAT: usize = 20;

/// One operation at one session count.
#[derive(Debug, Clone)]
pub struct OpPoint {
    pub op: &'static str,
    /// Sessions the user had.
    pub sessions: usize,
    /// Mean wall time per call, µs.
    pub mean_us: f64,
    /// Redis commands per call (scripts count as one).
    pub commands: f64,
}

/// Logins of a user held at a cap.
#[derive(Debug, Clone)]
pub struct CappedPoint {
    pub cap: usize,
    pub logins_per_sec: f64,
    pub commands: f64,
}

fn commands(admin: &mut Admin) -> Result<u64> {
    admin.all_command_calls()
}

async fn timed<F, Fut>(admin: &mut Admin, times: usize, mut op: F) -> Result<(f64, f64)>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    admin.reset_stats()?;
    let started = Instant::now();
    for i in 0..times {
        op(i).await?;
    }
    let took = started.elapsed();
    let n = commands(admin)? as f64;
    Ok((took.as_secs_f64() * 1e6 / times as f64, n / times as f64))
}

/// Per-user operations for users with each of `counts` sessions.
pub async fn run(store: &RedisStore, admin: &mut Admin, counts: &[usize]) -> Result<Vec<OpPoint>> {
    let sessions =
        SessionManager::<NodeUser>::new(store.clone(), SessionConfig::node_seed(NODE_CUSTOM))?;
    let data = NodeUser::seed();
    // Warm-up: scripts loaded, the server past whatever ran before.
    let warm = UserId::new("warm-up")?;
    populate::login_one_user(&sessions, &warm, &data, 100).await?;
    sessions.logout_everywhere(&warm).await?;
    let mut points = Vec::new();
    for &count in counts {
        let user = UserId::new(format!("per-user-{count}"))?;
        populate::login_one_user(&sessions, &user, &data, count).await?;
        let mut push = |op: &'static str, (mean_us, commands): (f64, f64)| {
            eprintln!(
                "scale:   user with {count} sessions: {op}: {mean_us:.0} us, {commands:.1} commands"
            );
            points.push(OpPoint {
                op,
                sessions: count,
                mean_us,
                commands,
            });
        };
        // Each login adds one: the user has count..count+REPEAT sessions meanwhile; the
        // newest REPEAT are ended again below.
        push(
            "login",
            timed(admin, REPEAT, |_| async {
                sessions.login(&user, &data).await?;
                Ok(())
            })
            .await?,
        );
        push(
            "sessions() (device list)",
            timed(admin, REPEAT.min(5), |_| async {
                let listed = sessions.sessions(&user, None).await?;
                if listed.len() < count {
                    return Err(format!("listed {} of {count}", listed.len()).into());
                }
                Ok(())
            })
            .await?,
        );
        // End the newest sessions: the ones a device list shows last.
        let listed = sessions.sessions(&user, None).await?;
        let newest: Vec<_> = listed
            .iter()
            .rev()
            .take(REPEAT)
            .map(|s| s.id.clone())
            .collect();
        push(
            "end_session (newest)",
            timed(admin, newest.len(), |i| {
                let id = newest[i].clone();
                let sessions = sessions.clone();
                let user = user.clone();
                async move {
                    if !sessions.end_session(&user, &id).await? {
                        return Err("end_session found no session".into());
                    }
                    Ok(())
                }
            })
            .await?,
        );
        push(
            "logout_everywhere",
            timed(admin, 1, |_| async {
                let ended = sessions.logout_everywhere(&user).await?;
                if ended < count as u64 {
                    return Err(format!("ended {ended} of {count}").into());
                }
                Ok(())
            })
            .await?,
        );
    }
    Ok(points)
}

/// Login rate of one user at each of `caps` (`with_max_sessions_per_user`): every login
/// past the cap ends the oldest session.
pub async fn capped(
    store: &RedisStore,
    admin: &mut Admin,
    caps: &[usize],
) -> Result<Vec<CappedPoint>> {
    let data = NodeUser::seed();
    let mut points = Vec::new();
    for &cap in caps {
        let sessions = SessionManager::<NodeUser>::new(
            store.clone(),
            SessionConfig::node_seed(NODE_CUSTOM).with_max_sessions_per_user(cap),
        )?;
        let user = UserId::new(format!("capped-{cap}"))?;
        populate::login_one_user(&sessions, &user, &data, cap).await?;
        let logins = 200;
        let (mean_us, commands) = timed(admin, logins, |_| async {
            sessions.login(&user, &data).await?;
            Ok(())
        })
        .await?;
        let live = sessions.sessions(&user, None).await?.len();
        if live != cap {
            return Err(format!("cap {cap}: {live} sessions live").into());
        }
        let point = CappedPoint {
            cap,
            logins_per_sec: 1e6 / mean_us,
            commands,
        };
        eprintln!(
            "scale:   logins at a cap of {cap}: {:.0}/s (one caller), {:.1} commands each",
            point.logins_per_sec, point.commands
        );
        points.push(point);
        sessions.logout_everywhere(&user).await?;
    }
    Ok(points)
}
