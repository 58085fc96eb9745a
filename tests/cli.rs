//! The `qunguard scan` and `check-rules` command-line contracts, run on the real binary.

mod bin;

use bin::{qunguard, succeeded};
use std::io::Write;
use std::process::{Command, Stdio};

fn scan(input: &[u8], extra: &[&str]) -> (Vec<serde_json::Value>, String) {
    scan_with_env(input, extra, &[])
}

/// [`scan`] with environment variables set for it.
fn scan_with_env(
    input: &[u8],
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Vec<serde_json::Value>, String) {
    let mut child = qunguard()
        .args(["scan", "--rules", "config/rules"])
        .args(extra)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    succeeded(&out);
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (lines, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn scan_writes_one_line_per_input_line_in_order() {
    let good = |id: &str, text: &str| {
        format!(
            r#"{{"id":"{id}","group_id":"g","sender_id":"u","ts":1,"text":"{text}","extra":true}}"#
        )
        .into_bytes()
    };
    // (input line, expected: Ok(id) for a verdict, Err(words in the error) for an error line)
    let cases: Vec<(Vec<u8>, Result<&str, &str>)> = vec![
        (good("a", "代开发票"), Ok("a")),
        (b"{not json".to_vec(), Err("not a valid message")),
        (
            br#"{"id":"b","group_id":"g","ts":1,"text":"x"}"#.to_vec(),
            Err("missing field `sender_id`"),
        ),
        (
            br#"{"id":"c","group_id":"g","sender_id":"u","ts":"soon","text":"x"}"#.to_vec(),
            Err("invalid type"),
        ),
        (
            b"{\"id\":\"d\",\"text\":\"\xff\xfe\"}".to_vec(),
            Err("invalid UTF-8"),
        ),
        (Vec::new(), Err("empty input")),
        (good("e", &"长".repeat(30_000)), Err("over the limit")),
        (vec![b'x'; 3 << 20], Err("line is 3145728 bytes")),
        (good("f", "你好"), Ok("f")),
    ];
    let mut input = Vec::new();
    for (line, _) in &cases {
        input.extend_from_slice(line);
        input.push(b'\n');
    }
    let (out, stderr) = scan(&input, &[]);
    assert_eq!(out.len(), cases.len(), "{stderr}");
    for (n, ((_, want), got)) in cases.iter().zip(&out).enumerate() {
        match want {
            Ok(id) => assert_eq!(got["id"], *id, "line {}: {got}", n + 1),
            Err(words) => {
                assert_eq!(got["line"], n + 1, "{got}");
                let e = got["error"].as_str().unwrap();
                assert!(e.contains(words), "line {}: {e}", n + 1);
            }
        }
    }
    assert_eq!(out[0]["action"], "review");
    assert_eq!(out[0]["hits"][0]["rule"], "ads:代开发票");
    assert_eq!(out[8]["action"], "allow");
    assert!(stderr.contains("9 lines, 2 verdicts, 7 errors"), "{stderr}");
}

#[test]
fn scan_reads_the_shipped_sample_file() {
    let out = qunguard()
        .args(["scan", "--rules", "config/rules", "examples/messages.jsonl"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let sample = std::fs::read_to_string("examples/messages.jsonl").unwrap();
    assert_eq!(text.lines().count(), sample.lines().count());
    assert!(text.contains(r#""action":"block""#));
}

#[test]
fn check_rules_reports_counts_and_names_bad_files() {
    let ok = qunguard()
        .args(["check-rules", "config/rules"])
        .output()
        .unwrap();
    assert!(ok.status.success());
    let stdout = String::from_utf8(ok.stdout).unwrap();
    assert!(
        stdout.contains("privacy") && stdout.contains("ok: 16 packs"),
        "{stdout}"
    );

    let dir = tempfile::tempdir().unwrap();
    // (pack file content, words the error must contain)
    let cases = [
        (
            "category = \"a\"\naction = \"review\"\nwords = [\"x\"]\ncolour = 1\n",
            "bad.toml:4",
        ),
        (
            "category = \"a\"\naction = \"review\"\n[[regex]]\nid = \"a.x\"\npattern = \"[a-\"\n",
            "regex[0].pattern",
        ),
        (
            "category = \"a\"\naction = \"review\"\nwords = [\"ok\", \"  \"]\n",
            "words[1]",
        ),
        (
            "category = \"a\"\naction = \"review\"\nwords_file = \"nope.txt\"\n",
            "nope.txt",
        ),
    ];
    for (src, words) in cases {
        std::fs::write(dir.path().join("bad.toml"), src).unwrap();
        let out = qunguard()
            .arg("check-rules")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{src}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(words) && err.contains("fix:"), "{src}\n{err}");
    }
}

/// `run` refuses bad configuration and bad rules with a message naming what to fix, before it
/// touches Kafka (the brokers below do not exist).
#[test]
fn run_rejects_bad_config_and_rules_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let bad_rules = dir.path().join("rules");
    std::fs::create_dir(&bad_rules).unwrap();
    std::fs::write(
        bad_rules.join("broken.toml"),
        "category = \"ads\"\naction = \"block\"\nterms = [\"ok\", 3]\n",
    )
    .unwrap();
    let cases: &[(&str, &[&str])] = &[
        (
            "[kafka]\nbrokerz = \"x:1\"\n",
            &["cfg.toml:2", "unknown field `brokerz`"],
        ),
        (
            "[pipeline]\nqueue_batches = 0\n",
            &["pipeline.queue_batches", "positive"],
        ),
        (
            "[kafka]\nbrokers = \"127.0.0.1:1\"\n[rules]\ndir = \"rules\"\n",
            &["broken.toml", "terms"],
        ),
        (
            "[kafka]\nbrokers = \"127.0.0.1:1\"\n[rules]\ndir = \"missing\"\n",
            &["missing"],
        ),
    ];
    for (cfg, wants) in cases {
        let path = dir.path().join("cfg.toml");
        std::fs::write(&path, cfg).unwrap();
        let out = qunguard()
            .args(["run", "--config"])
            .arg(&path)
            .env("QUNGUARD_METRICS_LISTEN", "")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cfg:?}: {err}");
        for w in *wants {
            assert!(err.contains(w), "{cfg:?}: wanted {w:?} in: {err}");
        }
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// README's "run the main job" command: the demo runs the whole pipeline on the embedded mock
/// cluster, stops by itself and reports that nothing was lost.
#[test]
fn demo_runs_the_pipeline_and_accounts_for_every_message() {
    let out = qunguard()
        .args(["demo", "--duration", "6", "--metrics", "", "--rate", "2000"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("final report"), "{stdout}");
    assert!(
        stdout.contains("every consumed message has a verdict or a dead-letter: yes"),
        "{stdout}"
    );
    let consumed: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("consumed "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a consumed count");
    assert!(consumed > 1000, "{stdout}");
}

/// The screening pool's size must not change a byte of the output: parsing and screening run in
/// parallel but their results are put back in input order, and the heuristics are one pass in
/// that order. Three batches (8,192 lines each) of the synthetic stream, with malformed lines,
/// so batch cuts, error lines and the heuristics' records all take part.
#[test]
fn scan_output_does_not_depend_on_the_number_of_threads() {
    let dir = tempfile::tempdir().unwrap();
    let synthetic = qunguard()
        .args(["gen", "--count", "20000", "--groups", "300"])
        .output()
        .unwrap();
    assert!(synthetic.status.success());
    let mut input = Vec::new();
    for (i, line) in synthetic.stdout.split(|&b| b == b'\n').enumerate() {
        if i % 997 == 500 {
            input.extend_from_slice(b"{not json\n");
        }
        input.extend_from_slice(line);
        input.push(b'\n');
    }
    let file = dir.path().join("in.jsonl");
    std::fs::write(&file, &input).unwrap();
    let run = |threads: &str| {
        let records = dir.path().join(format!("records-{threads}.jsonl"));
        let out = qunguard()
            .args([
                "scan",
                "--rules",
                "config/rules",
                "--threads",
                threads,
                "--records",
            ])
            .arg(&records)
            .arg(&file)
            .output()
            .unwrap();
        succeeded(&out);
        (out.stdout, std::fs::read(&records).unwrap())
    };
    let (one, one_records) = run("1");
    let text = String::from_utf8_lossy(&one);
    assert!(
        text.contains(r#""reason":"incident""#) && text.contains(r#""error":"#),
        "the stream exercises the heuristics and error lines"
    );
    assert!(!one_records.is_empty(), "the stream raises alerts");
    for threads in ["2", "3"] {
        let (out, records) = run(threads);
        assert!(out == one, "verdicts differ with --threads {threads}");
        assert!(
            records == one_records,
            "records differ with --threads {threads}"
        );
    }
}

/// The demo carries its own config and rule packs, so it works from any directory; a metrics
/// port in use is named in the error.
#[test]
fn demo_runs_outside_the_repository_and_names_a_busy_metrics_address() {
    let elsewhere = tempfile::tempdir().unwrap();
    let out = qunguard()
        .current_dir(elsewhere.path())
        .args(["demo", "--duration", "3", "--metrics", "", "--rate", "1000"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("every consumed message has a verdict or a dead-letter: yes"),
        "{stdout}"
    );

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = qunguard()
        .current_dir(elsewhere.path())
        .args(["demo", "--duration", "3", "--metrics", &addr])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&addr), "names {addr}: {err}");
    assert!(err.contains("--metrics"), "says how to change it: {err}");
}

/// `scan --config FILE` screens with that config's `rules.dir` (unless --rules says
/// otherwise), and a missing rules directory names the keys that really exist.
#[test]
fn scan_with_a_config_uses_its_rules_dir_and_errors_name_real_keys() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("packs")).unwrap();
    std::fs::write(
        dir.path().join("packs/secret.toml"),
        "category = \"secret\"\naction = \"block\"\nwords = [\"独角兽暗号\"]\n",
    )
    .unwrap();
    let cfg = dir.path().join("q.toml");
    std::fs::write(&cfg, "[rules]\ndir = \"packs\"\n").unwrap();
    let line =
        r#"{"id":"a","group_id":"g","sender_id":"u","ts":1,"text":"今天的独角兽暗号是什么"}"#
            .as_bytes();
    let run = |args: &[&str]| {
        let mut child = qunguard()
            .arg("scan")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(line).unwrap();
        child.wait_with_output().unwrap()
    };
    let cfg_arg = cfg.to_str().unwrap();
    let out = run(&["--config", cfg_arg, "--no-watch"]);
    succeeded(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["categories"], serde_json::json!(["secret"]), "{v}");

    // --rules wins over the config's rules.dir.
    let out = run(&["--config", cfg_arg, "--rules", "config/rules", "--no-watch"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["action"], "allow", "{v}");

    let out = run(&["--rules", dir.path().join("nowhere").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("rules.dir") && !err.contains("rules_dir"),
        "{err}"
    );
}

/// A replay must be held to the pipeline's limits, or a message the pipeline cut or
/// dead-lettered would replay differently: `pipeline.max_hits`, `max_text_bytes` and
/// `max_message_bytes` of --config (their defaults without one); the flags still win.
#[test]
fn scan_applies_the_pipelines_limits_from_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("q.toml");
    std::fs::write(
        &cfg,
        "[pipeline]\nmax_hits = 2\nmax_text_bytes = 1000\nmax_message_bytes = 1500\n",
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let line = |insults: usize| {
        // 9 bytes and one hit each (repeats without the comma fold into one).
        let text = "傻逼，".repeat(insults);
        format!(r#"{{"id":"a","group_id":"g","sender_id":"u","ts":1,"text":"{text}"}}"#)
    };
    let input = [line(3), line(120), line(300)].join("\n");
    let hits = |v: &serde_json::Value| v["hits"].as_array().map_or(0, Vec::len);
    let cut = |v: &serde_json::Value| v.get("hits_truncated") == Some(&true.into());
    let error = |v: &serde_json::Value| v["error"].as_str().unwrap_or("").to_string();

    let (out, _) = scan(input.as_bytes(), &["--no-watch", "--config", cfg]);
    assert!(hits(&out[0]) == 2 && cut(&out[0]), "{}", out[0]);
    // 1,080 bytes of text; a line of over 2,700 bytes.
    assert!(
        error(&out[1]).contains("over the limit of 1000"),
        "{}",
        out[1]
    );
    assert!(
        error(&out[2]).contains("over the limit of 1500"),
        "{}",
        out[2]
    );

    // Without a config, the pipeline's defaults: 256 hits, 64 KiB of text, 1 MiB lines.
    let (out, _) = scan(input.as_bytes(), &["--no-watch"]);
    assert!(hits(&out[0]) >= 3 && !cut(&out[0]), "{}", out[0]);
    assert!(hits(&out[1]) >= 120 && !cut(&out[1]), "{}", out[1]);
    assert!(hits(&out[2]) == 256 && cut(&out[2]), "{}", out[2]);

    let flags = ["--max-text-bytes", "5000", "--max-line-bytes", "5000"];
    let args = [&["--no-watch", "--config", cfg][..], &flags].concat();
    let (out, _) = scan(input.as_bytes(), &args);
    assert!(hits(&out[1]) == 2 && hits(&out[2]) == 2, "{out:?}");
}

/// `dir/q.toml`: the shipped rules (by absolute path: a config's relative `rules.dir` is read
/// from the config's own directory), then `rest`. Returns its path.
fn config_with_shipped_rules(dir: &tempfile::TempDir, rest: &str) -> String {
    let cfg = dir.path().join("q.toml");
    let rules = std::fs::canonicalize("config/rules").unwrap();
    let rules = rules.to_str().unwrap();
    std::fs::write(&cfg, format!("[rules]\ndir = {rules:?}\n{rest}")).unwrap();
    cfg.to_str().unwrap().to_string()
}

/// Runs `qunguard run` on the shipped rules, a broker address nothing listens on and `rest`
/// (TOML tables other than `[kafka]`), asserts it fails (exit 1) and returns its stderr.
fn run_fails_before_kafka(rest: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let rest = format!("[kafka]\nbrokers = \"127.0.0.1:1\"\n{rest}");
    let cfg = config_with_shipped_rules(&dir, &rest);
    let out = qunguard().args(["run", "--config", &cfg]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    err
}

/// A mistyped quarrel category would silently turn off quarrel alerts and incident mode:
/// `run`, `demo` and `scan` refuse it at start, naming the key and the categories there are.
#[test]
fn a_quarrel_category_the_rules_do_not_have_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_with_shipped_rules(&dir, "[watch.quarrel]\ncategories = [\"insults\"]\n");
    let cfg = cfg.as_str();
    for args in [
        &["scan", "--config", cfg, "/dev/null"][..],
        &["run", "--config", cfg],
        &["demo", "--config", cfg, "--duration", "1", "--metrics", ""],
    ] {
        let out = qunguard().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("watch.quarrel.categories")
                && err.contains("\"insults\"")
                && err.contains("insult, "),
            "{args:?}: {err}"
        );
    }
    // Rules only: the heuristics' settings do not matter.
    let out = qunguard()
        .args(["scan", "--no-watch", "--config", cfg, "/dev/null"])
        .output()
        .unwrap();
    succeeded(&out);
    // The built-in default with packs that have no `insult`: those rules have no abuse to
    // count, so a warning, not a refusal.
    std::fs::create_dir(dir.path().join("packs")).unwrap();
    std::fs::write(
        dir.path().join("packs/ads.toml"),
        "category = \"ads\"\naction = \"review\"\nwords = [\"代开发票\"]\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("q.toml"), "[rules]\ndir = \"packs\"\n").unwrap();
    let out = qunguard()
        .args(["scan", "--config", cfg, "/dev/null"])
        .output()
        .unwrap();
    succeeded(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("WARN") && err.contains("no quarrel alerts"),
        "{err}"
    );
    // An empty list turns quarrels off as quietly: a warning too.
    let cfg = config_with_shipped_rules(&dir, "[watch.quarrel]\ncategories = []\n");
    let out = qunguard()
        .args(["scan", "--config", &cfg, "/dev/null"])
        .output()
        .unwrap();
    succeeded(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("WARN") && err.contains("watch.quarrel.categories") && err.contains("empty"),
        "{err}"
    );
}

/// Client settings librdkafka refuses are a settings problem, found before any broker is
/// tried: not "no answer" with advice to check that the broker is up.
#[test]
fn kafka_settings_librdkafka_refuses_are_reported_as_settings() {
    // (settings, side and words the error must hold): an unknown property, a bad value, and a
    // check librdkafka makes only when it creates a consumer.
    let cases = [
        (
            "[kafka.consumer]\n\"no.such.property\" = \"1\"\n",
            "consumer:",
            "no.such.property",
        ),
        (
            "[kafka.producer]\n\"acks\" = \"some\"\n",
            "producer:",
            "acks",
        ),
        (
            "[kafka.consumer]\n\"max.poll.interval.ms\" = \"1000\"\n",
            "consumer:",
            "session.timeout.ms",
        ),
    ];
    for (settings, side, needle) in cases {
        let err = run_fails_before_kafka(settings);
        assert!(
            err.contains(side)
                && err.contains("client settings are refused")
                && err.contains(needle)
                && !err.contains("broker is up"),
            "{settings}: {err}"
        );
    }
}

/// A metrics address already in use names the key that sets it.
#[test]
fn a_metrics_address_in_use_names_its_key() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = run_fails_before_kafka(&format!("[metrics]\nlisten = \"{addr}\"\n"));
    assert!(
        err.contains(&addr.to_string()) && err.contains("metrics.listen"),
        "{err}"
    );
}

/// `--log-format json` holds for the error that ends a command too (log shippers parse every
/// line), even when RUST_LOG silences logging.
#[test]
fn a_fatal_error_is_a_json_line_with_log_format_json() {
    let out = qunguard()
        .args([
            "--log-format",
            "json",
            "run",
            "--config",
            "/nonexistent/q.toml",
        ])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let last = lines.last().expect("an error line");
    assert_eq!(last["level"], "ERROR", "{err}");
    let msg = last["fields"]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("/nonexistent/q.toml") && msg.contains("cannot read"),
        "{err}"
    );
}

/// Under `--log-format json` a command's own summary lines are JSON too, whatever RUST_LOG
/// says: a log shipper reading stderr must be able to parse every line.
#[test]
fn with_log_format_json_every_stderr_line_of_scan_and_diff_rules_is_json() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("m.jsonl");
    std::fs::write(
        &input,
        "{\"id\":\"a\",\"group_id\":\"g\",\"sender_id\":\"u\",\"ts\":1,\"text\":\"代开发票\"}\n",
    )
    .unwrap();
    let input = input.to_str().unwrap();
    // (arguments after the global flag, what one line's message starts with)
    let table: [(&[&str], &str); 3] = [
        (
            &["scan", "--rules", "config/rules", input],
            "qunguard scan: 1 lines",
        ),
        (
            &["scan", "--rules", "config/rules", input],
            "qunguard scan: heuristics:",
        ),
        (
            &["diff-rules", "config/rules", "config/rules", input],
            "qunguard diff-rules: rules",
        ),
    ];
    for (args, starts) in table {
        let out = qunguard()
            .args(["--log-format", "json"])
            .args(args)
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        succeeded(&out);
        let err = String::from_utf8_lossy(&out.stderr);
        let messages: Vec<String> = err
            .lines()
            .map(|l| {
                let v: serde_json::Value =
                    serde_json::from_str(l).unwrap_or_else(|e| panic!("{args:?}: {e}: {l}"));
                v["fields"]["message"].as_str().unwrap_or("").to_string()
            })
            .collect();
        assert!(
            messages.iter().any(|m| m.starts_with(starts)),
            "{args:?}: {err}"
        );
    }
}

/// `gen | head` stops quietly: a closed pipe is how a reader says it has enough.
#[test]
fn gen_stops_quietly_when_its_reader_goes() {
    let mut child = qunguard()
        .args(["gen", "--count", "1000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `QUNGUARD_RULES_DIR` chooses the rules of `scan` and `eval` without --rules, as it does for
/// `run` (the rules-directory error tells the user to set it).
#[test]
fn the_rules_dir_variable_is_read_by_scan_and_eval() {
    let nowhere = "/nonexistent/qunguard-rules";
    for args in [&["scan", "/dev/null"][..], &["eval", "/dev/null"]] {
        let out = qunguard()
            .args(args)
            .env("QUNGUARD_RULES_DIR", nowhere)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(nowhere),
            "{args:?}: {err}"
        );
    }
}

/// A stream needs somewhere to post: 0 groups is a usage error, not a panic.
#[test]
fn zero_groups_is_a_usage_error() {
    for args in [&["gen", "--groups", "0"][..], &["demo", "--groups", "0"]] {
        let out = qunguard().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("--groups") && err.contains("at least 1"),
            "{err}"
        );
    }
}

/// An unusable QUNGUARD_CACHE_DIR is warned about once, and the command still works.
#[test]
fn an_unwritable_cache_dir_is_warned_about_once() {
    let dir = tempfile::tempdir().unwrap();
    // A directory below a plain file can never be created, even by root.
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"").unwrap();
    let cache = file.join("cache");
    let out = Command::new(env!("CARGO_BIN_EXE_qunguard"))
        .args(["check-rules", "config/rules"])
        .env("QUNGUARD_CACHE_DIR", &cache)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        err.matches("cannot cache compiled rules").count(),
        1,
        "{err}"
    );
    assert!(err.contains(cache.to_str().unwrap()), "{err}");
    assert!(err.contains("QUNGUARD_CACHE_DIR"), "{err}");

    let writable = dir.path().join("cache");
    let out = Command::new(env!("CARGO_BIN_EXE_qunguard"))
        .args(["check-rules", "config/rules"])
        .env("QUNGUARD_CACHE_DIR", &writable)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read_dir(&writable).unwrap().count() > 0,
        "the compiled rules are cached there"
    );
}

/// README's verdict example is consistent: each hit's `end - start` is its text's byte length.
#[test]
fn readme_verdict_example_offsets_span_the_hit_text() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("### Verdict")
        .nth(1)
        .expect("a Verdict section");
    let json = section
        .split("```json")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a json block");
    let v: serde_json::Value = serde_json::from_str(json).expect("the example is JSON");
    let hits = v["hits"].as_array().expect("hits");
    assert!(!hits.is_empty());
    for h in hits {
        let text = h["text"].as_str().unwrap();
        let (start, end) = (h["start"].as_u64().unwrap(), h["end"].as_u64().unwrap());
        assert_eq!(end - start, text.len() as u64, "{h}");
    }
}

/// `scan --explain` adds the normalised text and each hit's offset map, and nothing else.
#[test]
fn scan_explain_adds_the_normalised_text_and_each_hits_offset_map() {
    let input = concat!(
        r#"{"id":"1","group_id":"g","sender_id":"u","ts":1,"text":"买了大麻花"}"#,
        "\n",
        r#"{"id":"2","group_id":"g","sender_id":"u","ts":2,"text":"出售仿 真 枪"}"#,
        "\n",
        r#"{"id":"3","group_id":"g","#,
        "\n",
    );
    let (plain, _) = scan(input.as_bytes(), &["--no-watch"]);
    let (lines, _) = scan(input.as_bytes(), &["--no-watch", "--explain"]);
    assert_eq!(lines.len(), 3);
    // The allow-listed drug term is explained, not silently dropped.
    assert_eq!(lines[0]["action"], "allow");
    assert_eq!(lines[0]["suppressed"][0]["by"], "大麻花");
    assert_eq!(lines[0]["explain"]["normalised"], "买了大麻花");
    assert_eq!(
        lines[0]["explain"]["suppressed"][0]["map"],
        serde_json::json!([[6, 9, 6, 9], [9, 12, 9, 12]])
    );
    // One hit for the term, mapped character by character past the spaces.
    assert_eq!(
        lines[1]["hits"].as_array().unwrap().len(),
        1,
        "{}",
        lines[1]
    );
    assert_eq!(lines[1]["explain"]["normalised"], "出售仿真枪");
    assert_eq!(
        lines[1]["explain"]["hits"][0]["map"],
        serde_json::json!([[6, 9, 6, 9], [9, 12, 10, 13], [12, 15, 14, 17]])
    );
    // Error lines stay as they are; without the explanation, verdict lines are the plain ones.
    assert!(lines[2]["error"].is_string() && lines[2].get("explain").is_none());
    for (mut explained, plain) in lines.into_iter().zip(plain) {
        if let Some(o) = explained.as_object_mut() {
            o.remove("explain");
        }
        assert_eq!(explained, plain);
    }
}

#[test]
fn scan_logs_where_its_threads_spent_their_time_at_debug_level() {
    let input = br#"{"id":"m1","group_id":"g","sender_id":"u","ts":1700000000,"text":"hi"}
"#;
    let run = |rust_log: &str| scan_with_env(input, &[], &[("RUST_LOG", rust_log)]).1;
    let debug = run("qunguard=debug");
    let stages = debug
        .lines()
        .find(|l| l.contains("stages:"))
        .unwrap_or_else(|| panic!("no stages line in {debug}"));
    for stage in ["read ", "screen ", "watch ", "serialise ", "write "] {
        assert!(stages.contains(stage), "{stage} missing from {stages}");
    }
    let watch = debug
        .lines()
        .find(|l| l.contains("watch stages"))
        .unwrap_or_else(|| panic!("no watch stages line in {debug}"));
    for stage in ["rates ", "floods ", "ordered pass "] {
        assert!(watch.contains(stage), "{stage} missing from {watch}");
    }
    // The watch's own warnings reach the log too: this `ts` is in seconds.
    assert!(debug.contains("looks like seconds"), "{debug}");
    assert!(!run("info").contains("stages:"), "only at debug level");
}
