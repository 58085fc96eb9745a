//! Topic creation and existence checks (for `demo`, `loadgen`, tests and start-up checks).

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

/// Creates each `(topic, partitions)` that does not exist yet (replication factor 1 unless the
/// broker's default applies). Existing topics are left as they are.
pub fn create_topics(brokers: &str, topics: &[(&str, i32)]) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = futures_executor::block_on(admin.create_topics(&new, &opts))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => anyhow::bail!("cannot create topic {t}: {e}"),
        }
    }
    Ok(())
}

/// Returns the topics among `topics` that the cluster does not have (so `run` can refuse to
/// start with a clear message instead of failing every delivery).
pub fn missing_topics(
    config: &ClientConfig,
    topics: &[&str],
    timeout: Duration,
) -> anyhow::Result<Vec<String>> {
    let client: BaseConsumer = config.create()?;
    let md = client.fetch_metadata(None, timeout)?;
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
