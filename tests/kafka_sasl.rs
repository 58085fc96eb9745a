//! `qunguard run` against a real Apache Kafka broker through a SASL_SSL listener
//! (SCRAM-SHA-512 over TLS, with a CA and broker certificate made for the test), configured
//! only through `[kafka.consumer]` / `[kafka.producer]`.

mod bin;
mod support;

use bin::{qunguard, succeeded};
use qunguard::Message;
use std::time::{Duration, Instant};
use support::*;

/// `t`'s config for `qunguard run` on the SASL_SSL listener with `password`.
fn config(
    t: &Topics,
    dir: &std::path::Path,
    b: &SaslBroker,
    group: &str,
    password: &str,
) -> std::path::PathBuf {
    let security = format!(
        "\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanisms\" = \"SCRAM-SHA-512\"\n\
         \"sasl.username\" = \"{SASL_USER}\"\n\"sasl.password\" = \"{password}\"\n\
         \"ssl.ca.location\" = \"{}\"\n",
        b.ca.display()
    );
    let path = t.config(
        dir,
        &b.sasl_ssl,
        group,
        &format!("[kafka.producer]\n{security}"),
    );
    // The harness writes [kafka.consumer] itself; the same settings go at its top.
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "[kafka.consumer]\n",
        &format!("[kafka.consumer]\n{security}"),
        1,
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn verdicts_flow_through_a_sasl_ssl_listener_with_scram_sha_512() {
    let Some(b) = sasl_broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let t = Topics::create(&b.plaintext, 2);
    let msgs: Vec<Message> = (0..200)
        .map(|i| Message {
            id: format!("s{i}").into(),
            group_id: format!("g{}", i % 7).into(),
            sender_id: format!("u{i}").into(),
            ts: 1_764_000_000_000 + i,
            text: if i % 10 == 0 {
                "代开发票，加V"
            } else {
                "今晚一起吃饭吗"
            }
            .into(),
        })
        .collect();
    produce_msgs(&b.plaintext, &t.input, &msgs);
    let verdicts = Reader::start(&b.plaintext, &t.verdicts);
    let q = Qunguard::start(
        "sasl",
        &config(&t, dir.path(), b, &unique("g"), SASL_PASSWORD),
    );
    let got = verdicts.wait_until("a verdict per message", Duration::from_secs(90), |r| {
        r.len() >= msgs.len()
    });
    let ids = id_counts(&got);
    assert_eq!(ids.len(), msgs.len(), "every message has a verdict");
    let blocked = got.iter().filter(|r| r.json()["action"] != "allow").count();
    assert_eq!(blocked, 20, "the 20 invoice ads are flagged");
    assert!(
        q.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(&b.sasl_ssl)),
        "qunguard consumed from the SASL_SSL listener"
    );
}

#[test]
fn a_wrong_password_stops_run_quickly_naming_the_authentication_failure() {
    let Some(b) = sasl_broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let t = Topics::create(&b.plaintext, 1);
    let start = Instant::now();
    let q = Qunguard::start(
        "sasl-wrong",
        &config(&t, dir.path(), b, &unique("g"), "not-the-password"),
    );
    let status = q
        .wait_exit(Duration::from_secs(30))
        .expect("run exits by itself on a wrong password");
    let took = start.elapsed();
    assert!(!status.success(), "{status}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    let log = q.log.lock().unwrap().join("\n");
    assert!(log.contains("authentication failed"), "{log}");
    assert!(log.contains(&b.sasl_ssl), "names the broker: {log}");
    assert!(log.contains("sasl.password"), "says what to check: {log}");
}

/// A broker certificate the client cannot verify (no `ssl.ca.location`: the test CA is not a
/// system CA) stops `run` at once with a TLS message, not after retries.
#[test]
fn an_unknown_certificate_authority_stops_run_naming_tls() {
    let Some(b) = sasl_broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let t = Topics::create(&b.plaintext, 1);
    let path = config(&t, dir.path(), b, &unique("g"), SASL_PASSWORD);
    let ca_line = format!("\"ssl.ca.location\" = \"{}\"\n", b.ca.display());
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&ca_line, "");
    std::fs::write(&path, text).unwrap();
    let start = Instant::now();
    let q = Qunguard::start("tls-unknown-ca", &path);
    let status = q
        .wait_exit(Duration::from_secs(30))
        .expect("run exits by itself on an unverifiable certificate");
    assert!(!status.success(), "{status}");
    assert!(start.elapsed() < Duration::from_secs(30));
    let log = q.log.lock().unwrap().join("\n");
    assert!(log.contains("TLS handshake failed"), "{log}");
    assert!(log.contains("ssl.ca.location"), "says what to check: {log}");
}

/// `loadgen --config` produces through the SASL_SSL listener with the config's producer
/// settings.
#[test]
fn loadgen_with_a_config_produces_through_sasl_ssl() {
    let Some(b) = sasl_broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let t = Topics::create(&b.plaintext, 1);
    let path = config(&t, dir.path(), b, &unique("g"), SASL_PASSWORD);
    let input = Reader::start(&b.plaintext, &t.input);
    let out = qunguard()
        .args(["loadgen", "--topic", &t.input, "--count", "300", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    succeeded(&out);
    input.wait_until("300 messages", Duration::from_secs(60), |r| r.len() >= 300);
}
