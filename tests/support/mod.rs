//! Test harness for the end-to-end tests: a real Apache Kafka broker (scripts/kafka-broker),
//! `qunguard run` processes, and helpers to produce and read topics.
//!
//! The broker is started once per test binary and tied to its process id (the script's
//! watchdog stops it and removes its directory when the binary exits, even after a panic).
//! If it cannot start, tests FAIL with the reason; `QUNGUARD_SKIP_KAFKA_TESTS=1` skips them.

#![allow(dead_code)]

use rdkafka::ClientConfig;
use rdkafka::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Bootstrap address of the shared broker, or `None` when explicitly skipped.
pub fn broker() -> Option<&'static str> {
    if std::env::var("QUNGUARD_SKIP_KAFKA_TESTS").as_deref() == Ok("1") {
        eprintln!("QUNGUARD_SKIP_KAFKA_TESTS=1: skipping a test that needs Kafka");
        return None;
    }
    static BROKER: OnceLock<Result<String, String>> = OnceLock::new();
    let r = BROKER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("qunguard-kafka-{}", std::process::id()));
        let out = Command::new(repo().join("scripts/kafka-broker"))
            .arg("start")
            .arg(&dir)
            .env("QUNGUARD_KAFKA_WATCH_PID", std::process::id().to_string())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run scripts/kafka-broker: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "scripts/kafka-broker start failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    match r {
        Ok(b) => Some(b.as_str()),
        Err(e) => panic!(
            "the Kafka integration tests need a broker and it did not start: {e}\n\
             (needs java 17+ and mvn; set QUNGUARD_SKIP_KAFKA_TESTS=1 to skip explicitly)"
        ),
    }
}

/// A unique name per call, so tests sharing the broker never share topics or groups.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Topic names for one test.
#[derive(Clone, Debug)]
pub struct Topics {
    pub input: String,
    pub reports: String,
    pub verdicts: String,
    pub review: String,
    pub dead: String,
    pub alerts: String,
    pub scorecards: String,
    pub rewards: String,
}

impl Topics {
    /// Names for a test's topics under a fresh prefix made from `prefix` (not created).
    pub fn named(prefix: &str) -> Topics {
        let p = unique(prefix);
        Topics {
            input: format!("{p}.in"),
            reports: format!("{p}.reports"),
            verdicts: format!("{p}.verdicts"),
            review: format!("{p}.review"),
            dead: format!("{p}.dead"),
            alerts: format!("{p}.alerts"),
            scorecards: format!("{p}.scorecards"),
            rewards: format!("{p}.rewards"),
        }
    }

    pub fn create(brokers: &str, input_partitions: i32) -> Topics {
        let t = Topics::named("t");
        let mut list: Vec<(&str, i32)> = vec![(&t.input, input_partitions)];
        for o in [
            &t.reports,
            &t.verdicts,
            &t.review,
            &t.dead,
            &t.alerts,
            &t.scorecards,
            &t.rewards,
        ] {
            list.push((o, 2));
        }
        qunguard::internal::kafka::admin::create_topics(brokers, &list).expect("create topics");
        t
    }

    /// A config file for `qunguard run` on these topics; `extra` is appended (TOML tables).
    pub fn config(&self, dir: &Path, brokers: &str, group: &str, extra: &str) -> PathBuf {
        let path = dir.join(format!("{group}.toml"));
        let text = format!(
            r#"
[kafka]
brokers = "{brokers}"
group_id = "{group}"
input_topics = ["{}"]
reports_topic = "{}"
verdicts_topic = "{}"
review_topic = "{}"
dead_letter_topic = "{}"
alerts_topic = "{}"
scorecards_topic = "{}"
rewards_topic = "{}"
[kafka.consumer]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"
[rules]
dir = "{}"
[metrics]
listen = "127.0.0.1:0"
{extra}
"#,
            self.input,
            self.reports,
            self.verdicts,
            self.review,
            self.dead,
            self.alerts,
            self.scorecards,
            self.rewards,
            repo().join("config/rules").display(),
        );
        std::fs::write(&path, text).expect("write config");
        path
    }
}

/// A record to produce: optional key, optional value.
pub type Kv<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Messages as `(group_id, JSON)` records, keyed the way producers key them.
pub fn encode(msgs: &[qunguard::Message]) -> Vec<(Vec<u8>, Vec<u8>)> {
    msgs.iter()
        .map(|m| {
            (
                m.group_id.as_bytes().to_vec(),
                serde_json::to_vec(m).unwrap(),
            )
        })
        .collect()
}

/// Produces `msgs` to `topic`, keyed by group, and waits for all acknowledgements.
pub fn produce_msgs(brokers: &str, topic: &str, msgs: &[qunguard::Message]) {
    let enc = encode(msgs);
    let recs: Vec<Kv<'_>> = enc
        .iter()
        .map(|(k, v)| (Some(&k[..]), Some(&v[..])))
        .collect();
    produce(brokers, topic, &recs);
}

/// Produces `(key, value)` records to `topic` and waits for all acknowledgements.
pub fn produce(brokers: &str, topic: &str, records: &[Kv<'_>]) {
    let p: ThreadedProducer<_> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for (k, v) in records {
        let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
        if let Some(k) = k {
            r = r.key(*k);
        }
        if let Some(v) = v {
            r = r.payload(*v);
        }
        loop {
            match p.send(r) {
                Ok(()) => break,
                Err((_, back)) => {
                    r = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    p.flush(Duration::from_secs(60)).expect("flush");
}

/// One record read back.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: HashMap<String, String>,
}

impl Record {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.value).expect("JSON record")
    }
}

/// Reads a topic from the beginning on a background thread.
pub struct Reader {
    records: Arc<Mutex<Vec<Record>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reader {
    pub fn start(brokers: &str, topic: &str) -> Reader {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", unique("reader"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()
            .expect("consumer");
        c.subscribe(&[topic]).expect("subscribe");
        let records = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (r2, s2) = (records.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                    let mut headers = HashMap::new();
                    if let Some(h) = m.headers() {
                        for i in 0..h.count() {
                            let hd = h.get(i);
                            headers.insert(
                                hd.key.to_string(),
                                String::from_utf8_lossy(hd.value.unwrap_or_default()).into(),
                            );
                        }
                    }
                    r2.lock().unwrap().push(Record {
                        key: m.key().map(<[u8]>::to_vec),
                        value: m.payload().unwrap_or_default().to_vec(),
                        headers,
                    });
                }
            }
        });
        Reader {
            records,
            stop,
            thread: Some(thread),
        }
    }

    pub fn len(&self) -> usize {
        self.records.lock().unwrap().len()
    }

    pub fn snapshot(&self) -> Vec<Record> {
        self.records.lock().unwrap().clone()
    }

    /// Waits until `done(records)` holds; panics with `what` after `timeout`.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[Record]) -> bool,
    ) -> Vec<Record> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let r = self.records.lock().unwrap();
                if done(&r) {
                    return r.clone();
                }
                if Instant::now() > deadline {
                    panic!(
                        "timed out after {timeout:?} waiting for {what} ({} records read)",
                        r.len()
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A `qunguard run` child process; killed when dropped.
pub struct Qunguard {
    child: Mutex<Option<Child>>,
    pub log: Arc<Mutex<Vec<String>>>,
    name: String,
}

impl Qunguard {
    pub fn start(name: &str, config: &Path) -> Qunguard {
        let mut child = Command::new(env!("CARGO_BIN_EXE_qunguard"))
            .args(["run", "--config"])
            .arg(config)
            .env("QUNGUARD_CACHE_DIR", "off")
            .env("RUST_LOG", "info,librdkafka=warn,rdkafka=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start qunguard run");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (l2, n2) = (log.clone(), name.to_string());
        let err = child.stderr.take().expect("stderr piped");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                eprintln!("[{n2}] {line}");
                l2.lock().unwrap().push(line);
            }
        });
        Qunguard {
            child: Mutex::new(Some(child)),
            log,
            name: name.to_string(),
        }
    }

    /// The newest log line containing `needle`, waiting up to `timeout`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self
                .log
                .lock()
                .unwrap()
                .iter()
                .rev()
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: no log line with {needle:?} after {timeout:?}",
                    self.name
                );
            }
            if let Some(c) = self.child.lock().unwrap().as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("{} exited ({status}) before logging {needle:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The partitions of the newest `partitions assigned:` line (after any later revoke: empty).
    pub fn assigned(&self) -> Vec<String> {
        let log = self.log.lock().unwrap();
        let last = log
            .iter()
            .rev()
            .find(|l| l.contains("partitions assigned:") || l.contains("partitions revoked:"));
        match last {
            Some(l) if l.contains("partitions assigned:") => l
                .rsplit("partitions assigned: ")
                .next()
                .unwrap_or("")
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A counter value from this instance's /metrics endpoint.
    pub fn metric(&self, series: &str) -> f64 {
        let (_, body) = self.get("/metrics");
        body.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{series} not in /metrics"))
    }

    /// GET `path` from this instance's metrics address: status and the whole reply.
    pub fn get(&self, path: &str) -> (u16, String) {
        let line = self.wait_log("metrics on http://", Duration::from_secs(30));
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|s| s.split('/').next())
            .expect("metrics address")
            .to_string();
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).expect("metrics endpoint");
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        let status = body
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, body)
    }

    /// Waits until `/readyz` answers 200 (librdkafka's first statistics come a few seconds
    /// after the start); panics with its last answer after `timeout`.
    pub fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, body) = self.get("/readyz");
            if status == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: not ready after {timeout:?}: {body}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The process id (to signal it).
    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap().as_ref().expect("running").id()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            c.kill().expect("SIGKILL");
            let _ = c.wait();
        }
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut c = self.child.lock().unwrap().take().expect("running");
        let pid = c.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = c.try_wait().expect("wait") {
                return s;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("{} did not exit within {timeout:?} of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Qunguard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Counts of each verdict id.
pub fn id_counts(records: &[Record]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for r in records {
        let v = r.json();
        *m.entry(v["id"].as_str().expect("id").to_string())
            .or_insert(0) += 1;
    }
    m
}

/// A broker of its own with a SASL_SSL listener (SCRAM-SHA-512, user [`SASL_USER`] with
/// [`SASL_PASSWORD`], a throw-away CA made by scripts/kafka-broker), for the tests that
/// exercise TLS and SASL. `None` when explicitly skipped.
pub fn sasl_broker() -> Option<&'static SaslBroker> {
    if std::env::var("QUNGUARD_SKIP_KAFKA_TESTS").as_deref() == Ok("1") {
        eprintln!("QUNGUARD_SKIP_KAFKA_TESTS=1: skipping a test that needs Kafka");
        return None;
    }
    static BROKER: OnceLock<Result<SaslBroker, String>> = OnceLock::new();
    let r = BROKER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("qunguard-kafka-sasl-{}", std::process::id()));
        let out = Command::new(repo().join("scripts/kafka-broker"))
            .arg("start")
            .arg(&dir)
            .env("QUNGUARD_KAFKA_WATCH_PID", std::process::id().to_string())
            .env(
                "QUNGUARD_KAFKA_SASL_SSL",
                format!("{SASL_USER}:{SASL_PASSWORD}"),
            )
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run scripts/kafka-broker: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "scripts/kafka-broker start (SASL_SSL) failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let sasl_ssl = std::fs::read_to_string(dir.join("sasl_ssl_bootstrap"))
            .map_err(|e| format!("no sasl_ssl_bootstrap in {}: {e}", dir.display()))?;
        Ok(SaslBroker {
            plaintext: String::from_utf8_lossy(&out.stdout).trim().to_string(),
            sasl_ssl: sasl_ssl.trim().to_string(),
            ca: dir.join("tls/ca.pem"),
        })
    });
    match r {
        Ok(b) => Some(b),
        Err(e) => panic!(
            "the SASL_SSL tests need a broker and it did not start: {e}\n\
             (needs java 17+, mvn and openssl; set QUNGUARD_SKIP_KAFKA_TESTS=1 to skip explicitly)"
        ),
    }
}

/// The SCRAM user of [`sasl_broker`].
pub const SASL_USER: &str = "qunguard";
/// Its password.
pub const SASL_PASSWORD: &str = "scram-test-secret";

/// Addresses of the [`sasl_broker`].
pub struct SaslBroker {
    /// PLAINTEXT listener, for test tools (topic creation, producing input, reading output).
    pub plaintext: String,
    /// SASL_SSL listener, for qunguard.
    pub sasl_ssl: String,
    /// The CA that signed the broker's certificate (PEM).
    pub ca: PathBuf,
}

impl Qunguard {
    /// Waits up to `timeout` for the process to exit by itself; its status, or `None`.
    pub fn wait_exit(&self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(c) = self.child.lock().unwrap().as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                // Let the stderr reader catch the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
