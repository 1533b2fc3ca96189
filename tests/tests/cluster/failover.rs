//! A master of the cluster crashes while requests run: its replica takes over, and the
//! same store serves every session again without being rebuilt.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keygate::{SessionConfig, SessionManager, Token, UserId};
use keygate_tests::eventually;
use keygate_tests::fixtures::JavaUser;
use tokio::time::Instant;

/// One load of the session at `index`, and whether it returned that session.
#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    took: Duration,
    index: usize,
    ok: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_is_replaced_and_requests_recover() {
    let (_turn, b) = crate::turn().await;
    let cluster = b.redis_cluster().unwrap();
    let m = SessionManager::<JavaUser>::from_shared_store(b.sessions(), SessionConfig::java_seed())
        .unwrap();

    // Sessions on every master: at least three on each.
    let masters = cluster.masters();
    assert_eq!(masters.len(), 3);
    let mut sessions: Vec<(Token, u64, u16)> = Vec::new();
    let mut per_master: HashMap<u16, usize> = HashMap::new();
    let mut id = 0u64;
    while masters
        .iter()
        .any(|p| per_master.get(p).copied().unwrap_or(0) < 3)
    {
        id += 1;
        let token = m
            .login(&UserId::from(id), &JavaUser::new(id))
            .await
            .unwrap();
        let owner = cluster.master_of(&format!("login:token:{}", token.expose()));
        *per_master.entry(owner).or_default() += 1;
        sessions.push((token, id, owner));
    }
    let victim = sessions[0].2;
    let on_victim: Vec<usize> = (0..sessions.len())
        .filter(|&i| sessions[i].2 == victim)
        .collect();
    // Replication is asynchronous: let the replicas have every session before the crash.
    assert!(
        eventually(Duration::from_secs(10), async || cluster
            .replicas_caught_up())
        .await
    );

    // Four request loops over all sessions, through one store, recording every outcome.
    let sessions = Arc::new(sessions);
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let loops: Vec<_> = (0..4)
        .map(|offset| {
            let (m, sessions, samples, stop) =
                (m.clone(), sessions.clone(), samples.clone(), stop.clone());
            tokio::spawn(async move {
                let mut index = offset;
                while !stop.load(Ordering::SeqCst) {
                    index = (index + 1) % sessions.len();
                    let (token, id, _) = &sessions[index];
                    let started = Instant::now();
                    let ok = match m.load(token).await {
                        Ok(Some(session)) => {
                            assert_eq!(session.id, *id, "a session loads its own user");
                            true
                        }
                        Ok(None) | Err(_) => false,
                    };
                    samples.lock().unwrap().push(Sample {
                        at: Instant::now(),
                        took: started.elapsed(),
                        index,
                        ok,
                    });
                    // Pacing, so failures that return at once do not flood the log.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        })
        .collect();
    let all_ok_since = |since: Instant, wanted: &[usize]| {
        let samples = samples.lock().unwrap();
        wanted.iter().all(|i| {
            samples
                .iter()
                .any(|s| s.index == *i && s.at >= since && s.ok)
        })
    };
    let start = Instant::now();
    let everyone: Vec<usize> = (0..sessions.len()).collect();
    assert!(
        eventually(Duration::from_secs(10), async || all_ok_since(
            start, &everyone
        ))
        .await,
        "every session loads before the crash"
    );

    let slot = cluster.kill_master(victim);
    let killed_at = Instant::now();
    let mut promoted = None;
    assert!(
        eventually(Duration::from_secs(30), async || {
            promoted = cluster.failover_done(victim, slot);
            promoted.is_some()
        })
        .await,
        "a replica took over from the killed master"
    );
    let promoted_at = Instant::now();
    let promoted = promoted.unwrap();
    assert!(
        eventually(Duration::from_secs(30), async || all_ok_since(
            promoted_at,
            &on_victim
        ))
        .await,
        "the killed master's sessions load again through the same store"
    );
    // Run a little longer, then stop the loops.
    let settled = Instant::now();
    assert!(
        eventually(Duration::from_secs(10), async || all_ok_since(
            settled, &everyone
        ))
        .await
    );
    stop.store(true, Ordering::SeqCst);
    for task in loops {
        task.await.unwrap();
    }

    let samples = samples.lock().unwrap().clone();
    let victim_samples: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= killed_at && on_victim.contains(&s.index))
        .collect();
    let last_failure = victim_samples.iter().filter(|s| !s.ok).map(|s| s.at).max();
    let recovered_at = victim_samples
        .iter()
        .filter(|s| s.ok && last_failure.is_none_or(|f| s.at > f))
        .map(|s| s.at)
        .min()
        .unwrap();
    let failed = victim_samples.iter().filter(|s| !s.ok).count();
    let others_during_outage: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= killed_at && s.at < promoted_at && !on_victim.contains(&s.index))
        .collect();
    let others_ok_during_outage = others_during_outage.iter().filter(|s| s.ok).count();
    let others_slowest = others_during_outage.iter().map(|s| s.took).max();
    eprintln!(
        "cluster failover: replica promoted {:?} after the kill; requests to the killed \
         master's keys succeed again {:?} after the kill ({failed} failed meanwhile); \
         {others_ok_during_outage} of {} requests to the other masters succeeded during the \
         outage (slowest {others_slowest:?})",
        promoted_at - killed_at,
        recovered_at - killed_at,
        others_during_outage.len(),
    );
    assert!(
        others_ok_during_outage > 0,
        "the other masters kept serving while one was down"
    );

    // Every session survived (it was replicated before the crash), through the same store.
    for (token, id, _) in sessions.iter() {
        assert_eq!(m.load(token).await.unwrap().map(|s| s.id), Some(*id));
    }
    // New sessions on the promoted master are written and read.
    let mut written = false;
    for id in 1000..1100u64 {
        let token = m
            .login(&UserId::from(id), &JavaUser::new(id))
            .await
            .unwrap();
        assert_eq!(m.load(&token).await.unwrap().map(|s| s.id), Some(id));
        if cluster.master_of(&format!("login:token:{}", token.expose())) == promoted {
            written = true;
            break;
        }
    }
    assert!(written, "a session was written to the promoted master");

    // Back to six nodes for the tests that follow: the old master rejoins as a replica.
    let cluster = Arc::clone(cluster);
    tokio::task::spawn_blocking(move || cluster.restart(victim))
        .await
        .unwrap();
}
