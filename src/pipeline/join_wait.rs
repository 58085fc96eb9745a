//! Says why a started instance has no partitions yet.
//!
//! After a crash the group still counts the dead member until its session times out
//! (`session.timeout.ms`, 45 s by default); until then the broker does not rebalance and a
//! restarted instance sits idle and silent. This watch logs, once, what it waits for and how
//! static membership (`kafka.group_instance_id`) avoids the wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// librdkafka's default `session.timeout.ms`.
const DEFAULT_SESSION_TIMEOUT_MS: u64 = 45_000;

/// How long to wait for the first assignment before explaining.
const QUIET_FOR: Duration = Duration::from_secs(5);

/// Set by the rebalance callback on the first assignment (even an empty one).
#[derive(Default)]
pub(super) struct JoinWait {
    joined: AtomicBool,
}

impl JoinWait {
    /// Called on every assignment.
    pub(super) fn joined(&self) {
        self.joined.store(true, Ordering::Release);
    }
}

/// What to log after [`QUIET_FOR`] without an assignment.
pub(super) fn explanation(
    consumer: &std::collections::BTreeMap<String, String>,
    group_id: &str,
    instance_id: &str,
    waited: Duration,
) -> String {
    let session_ms = consumer
        .get("session.timeout.ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SESSION_TIMEOUT_MS);
    let mut s = format!(
        "no partitions assigned after {} s: if an instance of group {group_id} stopped without leaving the group (a crash or kill -9), the broker waits for its session to time out (session.timeout.ms = {session_ms} ms) before handing its partitions out again",
        waited.as_secs()
    );
    if instance_id.is_empty() {
        s.push_str(
            "; set kafka.group_instance_id (QUNGUARD_KAFKA_GROUP_INSTANCE_ID) to a stable name per instance so a restart takes its partitions back at once",
        );
    } else {
        s.push_str(&format!(
            "; with kafka.group_instance_id = {instance_id:?} a restart normally rejoins at once, so check that no other live instance uses the same name"
        ));
    }
    s
}

/// Starts a thread that logs [`explanation`] once if nothing is assigned within
/// [`QUIET_FOR`]; it ends on the first assignment or on `stop`.
pub(super) fn watch(
    wait: Arc<JoinWait>,
    stop: Arc<AtomicBool>,
    message: impl FnOnce(Duration) -> String + Send + 'static,
) {
    let start = Instant::now();
    let spawned = std::thread::Builder::new()
        .name("join-wait".into())
        .spawn(move || {
            while !wait.joined.load(Ordering::Acquire) && !stop.load(Ordering::Relaxed) {
                if start.elapsed() >= QUIET_FOR {
                    log::warn!("{}", message(start.elapsed()));
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
    if let Err(e) = spawned {
        log::debug!("join-wait thread not started: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn the_explanation_names_the_session_timeout_and_the_remedy() {
        let mut consumer = BTreeMap::new();
        // (session.timeout.ms override, instance id, words expected)
        let table: &[(Option<&str>, &str, &[&str])] = &[
            (None, "", &["45000 ms", "kafka.group_instance_id", "crash"]),
            (
                Some("6000"),
                "",
                &["6000 ms", "QUNGUARD_KAFKA_GROUP_INSTANCE_ID"],
            ),
            (None, "pod-0", &["\"pod-0\"", "same name"]),
        ];
        for (timeout, id, want) in table {
            consumer.clear();
            if let Some(t) = timeout {
                consumer.insert("session.timeout.ms".to_string(), t.to_string());
            }
            let s = explanation(&consumer, "qunguard", id, Duration::from_secs(5));
            for w in *want {
                assert!(s.contains(w), "{w}: {s}");
            }
        }
    }
}
