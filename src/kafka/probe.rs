//! The start-up connection check shared by `run`, `topics` and `loadgen`.
//!
//! librdkafka retries a refused connection, an unknown host or a rejected password forever and
//! surfaces them only as `BrokerTransportFailure` or `OperationTimedOut` after the caller's
//! timeout (30–60 s). The probe asks for cluster metadata in short steps, keeps librdkafka's
//! error events and fails within [`PROBE_TIMEOUT`] (at once for authentication and TLS, which
//! retries cannot fix) with a message naming the brokers and the cause.

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long the probe waits for a broker before giving up.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the brokers could not be used; one wording and one fix per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Nothing listens at the address (TCP connection refused).
    Refused,
    /// The host name does not resolve.
    Unresolved,
    /// The broker rejected the SASL credentials or mechanism.
    Authentication,
    /// The TLS handshake failed (certificate, CA, or a plaintext listener).
    Tls,
    /// No answer within the probe's time, for another reason.
    NoAnswer,
    /// librdkafka refused the client settings before trying any broker (an unknown property,
    /// a bad value, a feature this build lacks).
    Settings,
}

impl Failure {
    /// The cause in a few words.
    pub fn what(self) -> &'static str {
        match self {
            Failure::Refused => "connection refused",
            Failure::Unresolved => "cannot resolve the broker's host name",
            Failure::Authentication => "authentication failed",
            Failure::Tls => "TLS handshake failed",
            Failure::NoAnswer => "no answer",
            Failure::Settings => "the client settings are refused",
        }
    }

    /// What to check.
    pub fn fix(self) -> &'static str {
        match self {
            Failure::Refused => {
                "check the address and port (kafka.brokers, QUNGUARD_KAFKA_BROKERS or --brokers) and that the broker is up"
            }
            Failure::Unresolved => {
                "check the host name (kafka.brokers, QUNGUARD_KAFKA_BROKERS or --brokers) and DNS"
            }
            Failure::Authentication => {
                "check \"sasl.mechanisms\", \"sasl.username\" and \"sasl.password\" in [kafka.consumer] and [kafka.producer]"
            }
            Failure::Tls => {
                "check \"security.protocol\" and \"ssl.ca.location\" in [kafka.consumer] and [kafka.producer], and that the listener speaks TLS"
            }
            Failure::NoAnswer => {
                "check the address, that the broker is up and that \"security.protocol\" matches its listener"
            }
            Failure::Settings => {
                "check the properties in [kafka.consumer] and [kafka.producer] (librdkafka's names and values, all strings); GSSAPI (Kerberos) needs a build with `--features gssapi`"
            }
        }
    }

    /// Whether retrying cannot help (wrong credentials or certificates stay wrong).
    fn is_permanent(self) -> bool {
        matches!(
            self,
            Failure::Authentication | Failure::Tls | Failure::Settings
        )
    }

    /// Classifies one librdkafka error event.
    fn of(code: Option<RDKafkaErrorCode>, reason: &str) -> Option<Failure> {
        let r = reason.to_ascii_lowercase();
        match code {
            Some(RDKafkaErrorCode::Authentication) => Some(Failure::Authentication),
            Some(RDKafkaErrorCode::SSL) => Some(Failure::Tls),
            Some(RDKafkaErrorCode::Resolve) => Some(Failure::Unresolved),
            _ if r.contains("sasl") && r.contains("authentication") => {
                Some(Failure::Authentication)
            }
            _ if r.contains("failed to resolve") => Some(Failure::Unresolved),
            _ if r.contains("connection refused") => Some(Failure::Refused),
            _ if r.contains("ssl handshake") || r.contains("certificate verify") => {
                Some(Failure::Tls)
            }
            _ => None,
        }
    }
}

/// A failed probe: the brokers tried, the cause and librdkafka's own words for it.
#[derive(Debug)]
pub struct ProbeError {
    /// The bootstrap servers tried.
    pub brokers: String,
    /// The classified cause.
    pub failure: Failure,
    /// librdkafka's most telling error event, if any.
    pub detail: Option<String>,
    /// How long the probe tried.
    pub waited: Duration,
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot use Kafka at {}: {}",
            self.brokers,
            self.failure.what()
        )?;
        // Settings are refused before any broker is tried: no time to tell.
        if self.failure != Failure::Settings {
            write!(f, " after {:.1} s", self.waited.as_secs_f64())?;
        }
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        write!(f, "; {}", self.failure.fix())
    }
}

impl std::error::Error for ProbeError {}

/// Collects librdkafka's error events during the probe instead of logging each retry.
#[derive(Default)]
struct ProbeContext {
    events: Mutex<Vec<(Option<RDKafkaErrorCode>, String)>>,
}

impl ClientContext for ProbeContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        // Retries of the same failure would repeat every 100 ms; the error events carry them.
        log::debug!("librdkafka (probe) {level:?} {fac}: {msg}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let code = match &error {
            KafkaError::Global(c) => Some(*c),
            e => e.rdkafka_error_code(),
        };
        self.events
            .lock()
            .expect("not poisoned")
            .push((code, reason.to_string()));
    }
}

impl ConsumerContext for ProbeContext {}

impl ProducerContext for ProbeContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

impl ProbeContext {
    /// The most specific failure seen so far and its reason text.
    fn worst(&self) -> Option<(Failure, String)> {
        let events = self.events.lock().expect("not poisoned");
        let rank = |f: Failure| match f {
            Failure::Authentication | Failure::Tls | Failure::Settings => 0,
            Failure::Unresolved => 1,
            Failure::Refused => 2,
            Failure::NoAnswer => 3,
        };
        events
            .iter()
            .filter_map(|(c, r)| Failure::of(*c, r).map(|f| (f, r.clone())))
            .min_by_key(|(f, _)| rank(*f))
    }
}

/// Which client a set of settings is for: librdkafka checks some only when that kind of
/// client is created (`max.poll.interval.ms` against `session.timeout.ms`, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// `[kafka.producer]`.
    Producer,
    /// `[kafka.consumer]`.
    Consumer,
}

/// Whether librdkafka accepts `config` for a `side` client (unknown properties, bad values and
/// features this build lacks fail here), without waiting for any broker: run on every
/// client's settings before probing, so a settings mistake is not reported as a broker that
/// does not answer. The client made to check is dropped at once, before it joins anything.
pub fn check_settings(config: &ClientConfig, side: Side) -> Result<(), ProbeError> {
    let mut config = config.clone();
    config.set_log_level(RDKafkaLogLevel::Emerg);
    let made = match side {
        Side::Producer => config
            .create_with_context::<_, BaseProducer<ProbeContext>>(ProbeContext::default())
            .map(drop),
        Side::Consumer => config
            .create_with_context::<_, BaseConsumer<ProbeContext>>(ProbeContext::default())
            .map(drop),
    };
    made.map_err(|e| ProbeError {
        brokers: config.get("bootstrap.servers").unwrap_or("").to_string(),
        failure: Failure::Settings,
        detail: Some(e.to_string()),
        waited: Duration::ZERO,
    })
}

/// Fetches cluster metadata with `config` (its security settings included), failing within
/// `timeout` with a [`ProbeError`] that names `config`'s brokers and the cause.
pub fn probe(config: &ClientConfig, timeout: Duration) -> Result<Metadata, ProbeError> {
    let brokers = config.get("bootstrap.servers").unwrap_or("").to_string();
    let start = Instant::now();
    let fail = |failure, detail, start: Instant| ProbeError {
        brokers: brokers.clone(),
        failure,
        detail,
        waited: start.elapsed(),
    };
    let mut config = config.clone();
    // The probe is a producer because a producer hands librdkafka's error events, with their
    // text, to the context (a consumer returns only the code). A consumer's settings make it
    // warn about each property it ignores; it only reads metadata, so those say nothing.
    config.set_log_level(RDKafkaLogLevel::Error);
    let client: BaseProducer<ProbeContext> = config
        .create_with_context(ProbeContext::default())
        .map_err(|e| fail(Failure::Settings, Some(e.to_string()), start))?;
    let step = Duration::from_millis(250);
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        match client
            .client()
            .fetch_metadata(None, left.min(step).max(Duration::from_millis(1)))
        {
            Ok(md) if !md.brokers().is_empty() => return Ok(md),
            Ok(_) | Err(_) => {}
        }
        // Serves the error events into the context.
        client.poll(Duration::ZERO);
        let worst = client.context().worst();
        if let Some((f, detail)) = &worst
            && f.is_permanent()
        {
            return Err(fail(*f, Some(detail.clone()), start));
        }
        if start.elapsed() >= timeout {
            return Err(match worst {
                Some((f, d)) => fail(f, Some(d), start),
                None => fail(Failure::NoAnswer, None, start),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn librdkafka_events_are_classified_by_code_then_wording() {
        let table: &[(Option<RDKafkaErrorCode>, &str, Option<Failure>)] = &[
            (
                Some(RDKafkaErrorCode::BrokerTransportFailure),
                "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in state CONNECT)",
                Some(Failure::Refused),
            ),
            (
                Some(RDKafkaErrorCode::Resolve),
                "nohost.invalid:9092/bootstrap: Failed to resolve 'nohost.invalid:9092': Name or service not known",
                Some(Failure::Unresolved),
            ),
            (
                Some(RDKafkaErrorCode::BrokerTransportFailure),
                "Failed to resolve 'x:1': Temporary failure in name resolution",
                Some(Failure::Unresolved),
            ),
            (
                Some(RDKafkaErrorCode::Authentication),
                "SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512",
                Some(Failure::Authentication),
            ),
            (
                Some(RDKafkaErrorCode::SSL),
                "ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: certificate verify failed",
                Some(Failure::Tls),
            ),
            (
                Some(RDKafkaErrorCode::AllBrokersDown),
                "1/1 brokers are down",
                None,
            ),
        ];
        for (code, reason, want) in table {
            assert_eq!(Failure::of(*code, reason), *want, "{reason}");
        }
    }

    #[test]
    fn the_message_names_brokers_cause_detail_and_fix() {
        let e = ProbeError {
            brokers: "10.0.0.9:9092".into(),
            failure: Failure::Refused,
            detail: Some("Connect to ipv4#10.0.0.9:9092 failed: Connection refused".into()),
            waited: Duration::from_millis(2500),
        };
        let s = e.to_string();
        for want in [
            "10.0.0.9:9092",
            "connection refused",
            "2.5 s",
            "kafka.brokers",
        ] {
            assert!(s.contains(want), "{want}: {s}");
        }
    }
}
