//! `scripts/install-deps`: what it runs on a fresh machine, as root and as a user.
//!
//! A fresh Debian image cannot be started here (no container engine), so `apt-get`, `sudo`,
//! `dpkg-query` and `id` are stand-ins on `PATH` that log their arguments; the script itself
//! is the real one.

use std::path::Path;
use std::process::Command;

/// Runs the script with stand-ins: `uid` for `id -u`, `installed` packages known to dpkg,
/// `with_sudo` whether a `sudo` exists. Returns (exit code, log of apt-get/sudo calls, stderr).
fn run(uid: u32, installed: &[&str], with_sudo: bool, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = dir.path().join("log");
    let write = |name: &str, body: String| {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/bash\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let log_s = log.display().to_string();
    write("id", format!("echo {uid}"));
    write(
        "dpkg-query",
        format!(
            "for p in {}; do [[ \"${{@: -1}}\" == \"$p\" ]] && {{ printf 'install ok installed'; exit 0; }}; done; exit 1",
            installed.join(" ")
        ),
    );
    write("apt-get", format!("echo \"apt-get $*\" >> {log_s}"));
    if with_sudo {
        write("sudo", format!("echo \"sudo\" >> {log_s}; \"$@\""));
    }
    // Only the stand-ins and the plain tools the script uses: never the real apt-get or sudo.
    for tool in ["env", "sed", "cat"] {
        std::os::unix::fs::symlink(Path::new("/usr/bin").join(tool), bin.join(tool)).unwrap();
    }
    let path = bin.display().to_string();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-deps");
    let out = Command::new("/bin/bash")
        .arg(script)
        .args(args)
        .env_clear()
        .env("PATH", path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        std::fs::read_to_string(&log).unwrap_or_default(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn as_root_without_sudo_it_updates_then_installs_what_is_missing() {
    let (code, log, err) = run(0, &["pkg-config", "make"], false, &[]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines[0].starts_with("apt-get update"), "{log}");
    assert!(lines[1].starts_with("apt-get install -y"), "{log}");
    for p in [
        "libhyperscan-dev",
        "libssl-dev",
        "openjdk-17-jre-headless",
        "prometheus",
    ] {
        assert!(lines[1].contains(p), "{p} missing: {log}");
    }
    for p in [" pkg-config", " make"] {
        assert!(!lines[1].contains(p), "{p} is installed: {log}");
    }
}

#[test]
fn as_a_user_it_uses_sudo() {
    let (code, log, err) = run(1000, &[], true, &["--build"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        log.lines().filter(|l| *l == "sudo").count(),
        2,
        "update and install both through sudo: {log}"
    );
    assert!(
        !log.contains("openjdk"),
        "--build installs only build deps: {log}"
    );
}

#[test]
fn as_a_user_without_sudo_it_says_what_to_install() {
    let (code, log, err) = run(1000, &[], false, &["--build"]);
    assert_eq!(code, 1);
    assert!(log.is_empty(), "{log}");
    assert!(
        err.contains("no sudo") && err.contains("libhyperscan-dev"),
        "{err}"
    );
}

#[test]
fn nothing_missing_means_no_apt_get_at_all() {
    let all = [
        "libhyperscan-dev",
        "pkg-config",
        "libssl-dev",
        "zlib1g-dev",
        "make",
        "gcc",
    ];
    let (code, log, err) = run(1000, &all, false, &["--build"]);
    assert_eq!(code, 0, "{err}");
    assert!(log.is_empty(), "{log}");
}
