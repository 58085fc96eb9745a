//! What operators deploy and dashboards watch, checked with the real parts: the metrics README
//! documents are the ones `qunguard demo` serves, `/readyz`, the Prometheus alert rules
//! (`promtool`), a real Prometheus scraping the demo answering every Grafana dashboard query,
//! and docker-compose.yml (parsed only: no Docker engine runs here).
//!
//! `promtool` and `prometheus` come from Debian's `prometheus` package; the tests fail, not
//! skip, when they are missing.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// A program from Debian's `prometheus` package, or a failure that says how to get it.
fn tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not on PATH: install Debian's `prometheus` package (apt-get install prometheus)")
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP/1.0 GET (no chunked replies): status and body, or None if nothing listens.
fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Some((status, body.to_string()))
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            t0.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `qunguard demo` (rate-limited, so two at once leave the machine usable) with its metrics
/// endpoint on a free port.
fn demo() -> (Running, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_qunguard"))
        .args([
            "demo",
            "--duration",
            "300",
            "--rate",
            "3000",
            "--groups",
            "2000",
        ])
        .args(["--metrics", &addr])
        .env("QUNGUARD_CACHE_DIR", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (Running(child), addr)
}

/// README's "Metrics" table: metric name → type.
fn documented_metrics() -> BTreeMap<String, String> {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let section = readme
        .split("\n## Metrics\n")
        .nth(1)
        .expect("README has a Metrics section");
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter(|l| l.starts_with("| `qunguard_"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_string(), cells[2].to_string())
        })
        .collect()
}

/// Every `qunguard_…` metric name in a PromQL expression, with the histogram series suffixes
/// taken back to the histogram's name.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("qunguard_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|n| n.ends_with("_seconds") || n.ends_with("_messages"))
            })
            .unwrap_or(name);
        names.insert(name.to_string());
        rest = &tail[end..];
    }
    names
}

/// Every query of the Grafana dashboard, with Grafana's variables replaced as it would.
fn dashboard_queries() -> Vec<(String, String)> {
    let d: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo("config/grafana/qunguard.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("a PromQL target");
            let q = expr
                .replace("$__rate_interval", "30s")
                .replace("$__range", "1m")
                .replace("$instance", ".+");
            out.push((format!("{} / {}", p["title"], t["legendFormat"]), q));
        }
    }
    out
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn the_demo_serves_exactly_the_documented_metrics_and_is_ready_only_once_consuming() {
    let (_demo, addr) = demo();
    let first = wait_for("the metrics endpoint", Duration::from_secs(60), || {
        get(&addr, "/readyz")
    });
    // The endpoint starts before the consumer has joined its group and before librdkafka's
    // first statistics (a second apart in the demo).
    assert_eq!(first.0, 503, "{first:?}");
    assert!(first.1.starts_with("not ready: "), "{first:?}");
    let ready = wait_for("/readyz to answer 200", Duration::from_secs(60), || {
        get(&addr, "/readyz").filter(|r| r.0 == 200)
    });
    assert_eq!(ready.1, "ready\n");
    assert_eq!(get(&addr, "/healthz").unwrap(), (200, "ok\n".into()));

    let (status, body) = get(&addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    let served: BTreeMap<String, String> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .filter(|(n, _)| n.starts_with("qunguard_"))
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    let documented = documented_metrics();
    assert!(
        documented.len() > 20,
        "README's table was not found: {documented:?}"
    );
    let missing: Vec<_> = documented
        .keys()
        .filter(|n| !served.contains_key(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "documented in README but not served: {missing:?}"
    );
    let undocumented: Vec<_> = served
        .keys()
        .filter(|n| !documented.contains_key(*n))
        .collect();
    assert!(
        undocumented.is_empty(),
        "served but not in README's Metrics table: {undocumented:?}"
    );
    for (name, kind) in &documented {
        assert_eq!(&served[name], kind, "README's type of {name}");
    }
    // Lag per partition comes from librdkafka's statistics, which readiness waited for.
    assert!(
        body.contains("qunguard_consumer_lag_messages{partition=\"0\",topic=\"chat.messages\"}"),
        "{body}"
    );
    assert!(body.contains("qunguard_ready 1"), "{body}");

    // The new series carry what happened, not just zeros.
    let sum = |prefix: &str, filter: &str| -> f64 {
        body.lines()
            .filter(|l| l.starts_with(prefix) && l.contains(filter))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!(sum("qunguard_rule_hits_total{", "") > 0.0, "{body}");
    for clock in ["event", "broker"] {
        let n = sum(
            "qunguard_verdict_latency_seconds_count{",
            &format!("clock=\"{clock}\""),
        );
        assert!(n > 0.0, "no {clock} latency samples: {body}");
    }
    assert!(sum("qunguard_batch_watch_seconds_count", "") > 0.0);
    // Alerts keep opening while a scrape reads the counters one after another: compare
    // counts from one scrape in which they did not move.
    let consistent = (0..50).any(|_| {
        let (_, b) = get(&addr, "/metrics").unwrap();
        let sum = |prefix: &str, filter: &str| -> f64 {
            b.lines()
                .filter(|l| l.starts_with(prefix) && l.contains(filter))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        sum("qunguard_alert_records_total{", "status=\"open\"") == sum("qunguard_alerts_total{", "")
    });
    assert!(
        consistent,
        "opened alerts by kind and severity never added up to opened alerts by kind"
    );
}

#[test]
fn alert_rules_pass_promtool_and_every_alert_has_a_unit_test() {
    let promtool = tool("promtool");
    let dir = repo("config/prometheus");
    run_ok(
        Command::new(&promtool)
            .arg("check")
            .arg("config")
            .arg(dir.join("prometheus.yml")),
    );
    run_ok(
        Command::new(&promtool)
            .arg("check")
            .arg("rules")
            .arg(dir.join("alerts.yml")),
    );
    let tested = run_ok(Command::new(&promtool).current_dir(&dir).args([
        "test",
        "rules",
        "alerts_test.yml",
    ]));
    assert!(tested.contains("SUCCESS"), "{tested}");

    let rules: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("alerts.yml")).unwrap()).unwrap();
    let tests: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("alerts_test.yml")).unwrap())
            .unwrap();
    let mut alerts = BTreeSet::new();
    let documented = documented_metrics();
    for g in rules["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            let name = r["alert"]
                .as_str()
                .expect("only alerting rules")
                .to_string();
            for m in metric_names(r["expr"].as_str().unwrap()) {
                assert!(
                    documented.contains_key(&m),
                    "{name} uses {m}, which README does not document"
                );
            }
            alerts.insert(name);
        }
    }
    // An alert counts as tested where some test expects it to fire.
    let fired: BTreeSet<String> = tests["tests"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_sequence().unwrap())
        .filter(|c| !c["exp_alerts"].as_sequence().unwrap().is_empty())
        .map(|c| c["alertname"].as_str().unwrap().to_string())
        .collect();
    let untested: Vec<_> = alerts.difference(&fired).collect();
    assert!(
        untested.is_empty(),
        "alerts without a test that fires them: {untested:?}"
    );
    assert!(alerts.len() >= 5, "{alerts:?}");
}

#[test]
fn a_real_prometheus_scraping_the_demo_answers_every_dashboard_query() {
    let prometheus = tool("prometheus");
    let (_demo, qunguard) = demo();
    wait_for("the demo to be ready", Duration::from_secs(60), || {
        get(&qunguard, "/readyz").filter(|r| r.0 == 200)
    });
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: qunguard\n    static_configs:\n      - targets: ['{qunguard}']\n",
            repo("config/prometheus/alerts.yml").display()
        ),
    )
    .unwrap();
    let web = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(tmp.path().join("prometheus.log")).unwrap();
    let _prom = Running(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                tmp.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let query = |q: &str| -> serde_json::Value {
        let (status, body) = get(&web, &format!("/api/v1/query?query={}", url_encode(q)))
            .unwrap_or_else(|| panic!("Prometheus at {web} stopped answering"));
        assert_eq!(status, 200, "{q}: {body}");
        serde_json::from_str(&body).unwrap()
    };
    wait_for("Prometheus to start", Duration::from_secs(60), || {
        get(&web, "/-/ready").filter(|r| r.0 == 200)
    });
    // Rates need a few samples in their window.
    wait_for("8 scrapes of the demo", Duration::from_secs(60), || {
        let v = query("count_over_time(up{job=\"qunguard\"}[1m])");
        let n = v["data"]["result"][0]["value"][1]
            .as_str()?
            .parse::<f64>()
            .ok()?;
        (n >= 8.0).then_some(())
    });
    assert_eq!(
        query("up{job=\"qunguard\"}")["data"]["result"][0]["value"][1],
        "1"
    );

    let documented = documented_metrics();
    let queries = dashboard_queries();
    assert!(queries.len() >= 15, "{queries:?}");
    let mut empty = Vec::new();
    for (panel, q) in &queries {
        let names = metric_names(q);
        assert!(!names.is_empty(), "{panel}: uses no qunguard metric: {q}");
        for m in &names {
            assert!(
                documented.contains_key(m),
                "{panel}: {m} is not a metric README documents"
            );
        }
        let v = query(q);
        assert_eq!(v["status"], "success", "{panel}: {q}: {v}");
        if v["data"]["result"].as_array().is_none_or(Vec::is_empty) {
            empty.push(format!("{panel}: {q}"));
        }
    }
    assert!(
        empty.is_empty(),
        "queries that returned no data:\n{}",
        empty.join("\n")
    );

    // The alert rules load and evaluate against real series without errors.
    let (_, rules) = get(&web, "/api/v1/rules").unwrap();
    let rules: serde_json::Value = serde_json::from_str(&rules).unwrap();
    let all: Vec<&serde_json::Value> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert!(all.len() >= 5, "{rules}");
    for r in all {
        assert_ne!(r["health"], "err", "{r}");
    }
}

#[test]
fn docker_compose_runs_prometheus_and_grafana_with_files_that_exist() {
    let text = std::fs::read_to_string(repo("docker-compose.yml")).unwrap();
    let compose: serde_yaml::Value =
        serde_yaml::from_str(&text).expect("docker-compose.yml is YAML");
    let services = compose["services"].as_mapping().unwrap();
    let names: BTreeSet<&str> = services.keys().filter_map(|k| k.as_str()).collect();
    for s in [
        "kafka",
        "topics",
        "qunguard",
        "loadgen",
        "prometheus",
        "grafana",
    ] {
        assert!(names.contains(s), "service {s} missing: {names:?}");
    }
    let ports = |s: &str| -> Vec<String> {
        compose["services"][s]["ports"]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(|p| p.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ports("prometheus"), ["9090:9090"]);
    assert_eq!(ports("grafana"), ["3000:3000"]);
    // Published on an ephemeral host port, so `--scale qunguard=3` does not clash.
    assert_eq!(ports("qunguard"), ["9898"]);
    let env = &compose["services"]["qunguard"]["environment"];
    assert_eq!(
        env["QUNGUARD_METRICS_LISTEN"], "0.0.0.0:9898",
        "Prometheus scrapes qunguard from another container"
    );
    // qunguard refuses to start while a topic is missing: it must wait for the topics job.
    for s in ["qunguard", "loadgen"] {
        assert_eq!(
            compose["services"][s]["depends_on"]["topics"]["condition"],
            "service_completed_successfully",
            "{s}"
        );
    }
    assert_eq!(compose["services"]["loadgen"]["profiles"][0], "load");
    assert!(
        text.contains("--profile load"),
        "the header says how to start the load generator"
    );

    // Every file or directory mounted from the repository exists.
    let mut mounted = Vec::new();
    for (name, svc) in services {
        for v in svc["volumes"].as_sequence().into_iter().flatten() {
            let src = v.as_str().unwrap().split(':').next().unwrap();
            if let Some(rel) = src.strip_prefix("./") {
                assert!(
                    repo(rel).exists(),
                    "{name:?} mounts {src}, which does not exist"
                );
                mounted.push(rel.to_string());
            }
        }
    }
    for want in ["config/prometheus", "config/grafana/qunguard.json"] {
        assert!(
            mounted.iter().any(|m| m == want),
            "{want} is not mounted: {mounted:?}"
        );
    }
    let prom_cfg = std::fs::read_to_string(repo("config/prometheus/prometheus.yml")).unwrap();
    assert!(
        prom_cfg.contains("alerts.yml"),
        "Prometheus loads the alert rules"
    );
    // The dashboard's datasource is the provisioned one.
    let ds = std::fs::read_to_string(repo(
        "config/grafana/provisioning/datasources/prometheus.yml",
    ))
    .unwrap();
    let ds: serde_yaml::Value = serde_yaml::from_str(&ds).unwrap();
    let uid = ds["datasources"][0]["uid"].as_str().unwrap();
    assert_eq!(ds["datasources"][0]["url"], "http://prometheus:9090");
    let dash = std::fs::read_to_string(repo("config/grafana/qunguard.json")).unwrap();
    assert!(
        dash.contains(&format!("\"uid\": \"{uid}\"")),
        "dashboard uses datasource {uid}"
    );
    let dashboards =
        std::fs::read_to_string(repo("config/grafana/provisioning/dashboards/qunguard.yml"))
            .unwrap();
    assert!(dashboards.contains("/var/lib/grafana/dashboards"));
    assert!(text.contains("/var/lib/grafana/dashboards/qunguard.json"));
}

#[test]
fn json_logs_are_one_object_a_line_and_run_logs_a_periodic_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("qunguard.toml");
    std::fs::write(
        &config,
        format!(
            "[rules]\ndir = {:?}\n\n[log]\nsummary_secs = 1\n",
            repo("config/rules").display().to_string()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_qunguard"))
        .args([
            "--log-format",
            "json",
            "demo",
            "--duration",
            "4",
            "--rate",
            "2000",
        ])
        .args(["--groups", "2000", "--metrics", ""])
        .arg("--config")
        .arg(&config)
        .env("QUNGUARD_CACHE_DIR", "off")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let messages: Vec<&str> = lines
        .iter()
        .map(|l| {
            assert!(l["timestamp"].is_string() && l["level"].is_string(), "{l}");
            l["fields"]["message"].as_str().unwrap_or_default()
        })
        .collect();
    // `log` records of the pipeline arrive through the bridge, with their target.
    assert!(
        lines
            .iter()
            .any(|l| l["target"] == "qunguard::pipeline::offsets"
                && l["fields"]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("partitions assigned:")),
        "{stderr}"
    );
    let summaries: Vec<&&str> = messages
        .iter()
        .filter(|m| m.starts_with("summary: "))
        .collect();
    assert!(summaries.len() >= 2, "a summary a second for 4 s: {stderr}");
    // The numbers are fields too, for log collectors; the generator runs at 2,000 msg/s.
    let consumed: u64 = lines
        .iter()
        .filter(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("summary: "))
        })
        .map(|l| {
            assert_eq!(l["fields"]["partitions"], 12, "{l}");
            assert!(
                l["fields"]["lag"].is_i64() && l["fields"]["block"].is_u64(),
                "{l}"
            );
            l["fields"]["consumed"].as_u64().expect("consumed")
        })
        .sum();
    assert!(consumed >= 2000, "{stderr}");
    for s in &summaries {
        for part in [
            "msg/s",
            "verdicts allow",
            "dead-letters",
            "lag",
            "partitions 12",
        ] {
            assert!(s.contains(part), "{s:?} lacks {part:?}");
        }
    }
}
