//! Running the `qunguard` binary from a test.

#![allow(dead_code)] // each test crate uses its own part of this

use std::process::{Command, Output};

/// The binary, hermetic: no compiled-rules cache in the user's home (the cache has its own
/// test).
pub fn qunguard() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_qunguard"));
    c.env("QUNGUARD_CACHE_DIR", "off");
    c
}

/// Fails the test, with the command's exit status and stderr, unless the command succeeded.
#[track_caller]
pub fn succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
