//! A wrong broker address fails fast and says why, in every command that talks to Kafka.
//! No broker is needed: nothing listens on the port and the host name cannot resolve.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A port with nothing listening: bound, then released.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn config(dir: &std::path::Path, brokers: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{}.toml", brokers.replace([':', '.'], "_")));
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rules");
    std::fs::write(
        &path,
        format!(
            "[kafka]\nbrokers = \"{brokers}\"\n[rules]\ndir = \"{}\"\n[metrics]\nlisten = \"\"\n",
            rules.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_wrong_broker_address_fails_within_about_10_s_naming_the_broker_and_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let refused = format!("127.0.0.1:{}", closed_port());
    // RFC 6761: `.invalid` never resolves.
    let unresolved = "kafka.qunguard.invalid:9092".to_string();
    // (command, brokers, words the error must hold)
    let cases: Vec<(&str, &String, &str)> = vec![
        ("run", &refused, "connection refused"),
        ("topics", &refused, "connection refused"),
        ("loadgen", &refused, "connection refused"),
        ("run", &unresolved, "cannot resolve"),
        ("topics", &unresolved, "cannot resolve"),
        ("loadgen", &unresolved, "cannot resolve"),
    ];
    let runs: Vec<_> = cases
        .iter()
        .map(|(cmd, brokers, _)| {
            let mut c = Command::new(env!("CARGO_BIN_EXE_qunguard"));
            c.arg(cmd).env("QUNGUARD_CACHE_DIR", "off");
            if *cmd == "loadgen" {
                c.args(["--brokers", brokers, "--count", "10"]);
            } else {
                c.arg("--config").arg(config(dir.path(), brokers));
            }
            let start = Instant::now();
            let child = c
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (start, child)
        })
        .collect();
    for ((cmd, brokers, want), (start, child)) in cases.iter().zip(runs) {
        let out = child.wait_with_output().unwrap();
        let took = start.elapsed();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cmd} {brokers}: {err}");
        assert!(
            took < Duration::from_secs(20),
            "{cmd} {brokers}: took {took:?}"
        );
        assert!(
            err.contains(brokers.as_str()),
            "{cmd}: names the broker: {err}"
        );
        assert!(err.contains(want), "{cmd} {brokers}: says {want:?}: {err}");
    }
}
