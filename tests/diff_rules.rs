//! `qunguard diff-rules` on the real binary: a crafted file, two rule directories, exactly the
//! changed messages on stdout and the summary on stderr.

mod bin;

use bin::qunguard;

#[test]
fn diff_rules_lists_exactly_the_changed_messages() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old"), dir.path().join("new"));
    for d in [&old, &new] {
        std::fs::create_dir(d).unwrap();
    }
    let ads = |action: &str, words: &str| {
        format!("category = \"ads\"\naction = \"{action}\"\nwords = [{words}]\n")
    };
    std::fs::write(
        old.join("ads.toml"),
        ads("review", "\"代开发票\", \"刷单\""),
    )
    .unwrap();
    std::fs::write(new.join("ads.toml"), ads("block", "\"代开发票\"")).unwrap();
    // A new pack, tried in shadow: its hits must not show up as changes.
    std::fs::write(
        new.join("gambling.toml"),
        "category = \"gambling\"\naction = \"block\"\nshadow = true\nwords = [\"百家乐\"]\n",
    )
    .unwrap();
    // (id, text, changed?)
    let table = [
        ("m1", "代开发票", true), // review -> block
        ("m2", "刷单赚钱", true), // review -> allow (term removed)
        ("m3", "今天天气不错", false),
        ("m4", "百家乐", false), // shadow only
        ("m5", "代开发票，百家乐", true),
    ];
    let mut input = String::new();
    for (id, text, _) in table {
        input.push_str(&format!(
            "{{\"id\":\"{id}\",\"group_id\":\"g\",\"sender_id\":\"u\",\"ts\":1,\"text\":\"{text}\"}}\n"
        ));
    }
    input.push_str("{not json\n");
    let file = dir.path().join("recorded.jsonl");
    std::fs::write(&file, input).unwrap();
    let out = qunguard()
        .arg("diff-rules")
        .args([&old, &new, &file])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    let want: Vec<&str> = table.iter().filter(|t| t.2).map(|t| t.0).collect();
    assert_eq!(ids, want);
    assert_eq!(
        lines[1],
        serde_json::json!({"id": "m2", "old": {"action": "review", "categories": ["ads"]},
            "new": {"action": "allow", "categories": []}})
    );
    // check-rules marks the shadow pack.
    let check = qunguard().arg("check-rules").arg(&new).output().unwrap();
    let listing = String::from_utf8(check.stdout).unwrap();
    let line = |pack: &str| listing.lines().find(|l| l.starts_with(pack)).unwrap();
    assert!(line("gambling").ends_with("(shadow)"), "{listing}");
    assert!(!line("ads").contains("shadow"), "{listing}");
    for needle in [
        "5 messages, 3 changed; lines skipped: 1 not messages (bad JSON or a text over the limit), 0 blank",
        "action review -> block: 2",
        "action review -> allow: 1",
        "category ads: +0 -1",
    ] {
        assert!(stderr.contains(needle), "{needle:?} in {stderr}");
    }
}
