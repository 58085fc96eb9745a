//! Topic creation and existence checks (for `demo`, `loadgen`, tests and start-up checks).

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

/// Creates each `(topic, partitions)` that does not exist yet (replication factor 1).
/// Existing topics are left as they are.
pub fn create_topics(brokers: &str, topics: &[(&str, i32)]) -> anyhow::Result<()> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    ensure_topics(&config, topics, 1)?;
    Ok(())
}

/// What [`ensure_topics`] did with one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicState {
    /// The topic did not exist and was created.
    Created,
    /// The topic existed already and was left as it is.
    Existed,
}

/// Creates each `(topic, partitions)` that does not exist yet with `replication` replicas,
/// through a client made from `config` (so its TLS/SASL settings apply), after a
/// [`probe`](super::probe::probe) so an unreachable broker fails fast. Returns each topic's
/// state in the order given.
pub fn ensure_topics(
    config: &ClientConfig,
    topics: &[(&str, i32)],
    replication: i32,
) -> anyhow::Result<Vec<(String, TopicState)>> {
    super::probe::probe(config, super::probe::PROBE_TIMEOUT)?;
    let admin: AdminClient<DefaultClientContext> = config.create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(replication)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = futures_executor::block_on(admin.create_topics(&new, &opts))?;
    let mut states = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Ok(t) => states.push((t, TopicState::Created)),
            Err((t, RDKafkaErrorCode::TopicAlreadyExists)) => states.push((t, TopicState::Existed)),
            Err((t, RDKafkaErrorCode::InvalidReplicationFactor)) => anyhow::bail!(
                "cannot create topic {t}: replication factor {replication} is more than the cluster's brokers; lower --replication-factor"
            ),
            Err((t, e)) => anyhow::bail!("cannot create topic {t}: {e}"),
        }
    }
    Ok(states)
}

/// Returns the topics among `topics` that the cluster does not have (so `run` can refuse to
/// start with a clear message instead of failing every delivery).
pub fn missing_topics(
    config: &ClientConfig,
    topics: &[&str],
    timeout: Duration,
) -> anyhow::Result<Vec<String>> {
    let md = super::probe::probe(config, timeout)?;
    let have: std::collections::HashSet<&str> = md
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| t.name())
        .collect();
    Ok(topics
        .iter()
        .filter(|t| !have.contains(**t))
        .map(|t| t.to_string())
        .collect())
}
