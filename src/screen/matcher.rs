//! Hyperscan: compiling pattern databases and scanning buffers with a per-thread scratch.
//!
//! Literal terms are compiled without start-of-match tracking (start = end − length, and SOM
//! costs ~60% throughput); regexes get `SOM_LEFTMOST` because verdicts need their positions.

use hyperscan::Builder;
use hyperscan::{
    BlockDatabase, BlockMode, ExprExt, Matching, Pattern, PatternFlags, Patterns, Scratch,
};
use std::cell::RefCell;

/// Flags for pack regexes: UTF-8 aware, Unicode classes, leftmost start reported.
fn regex_flags() -> PatternFlags {
    PatternFlags::UTF8 | PatternFlags::UCP | PatternFlags::SOM_LEFTMOST
}

/// One pattern to compile: either a literal byte string or a regex.
pub(crate) enum Source<'a> {
    Literal(&'a str),
    Regex(&'a str),
}

/// Escapes a literal so Hyperscan matches exactly its bytes.
fn escape_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 4);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

fn pattern(src: &Source<'_>, id: usize) -> Pattern {
    let (expression, flags) = match src {
        Source::Literal(s) => (escape_literal(s), PatternFlags::empty()),
        Source::Regex(r) => (r.to_string(), regex_flags()),
    };
    Pattern {
        expression,
        flags,
        id: Some(id),
        ext: ExprExt::default(),
        som: None,
    }
}

fn describe(e: hyperscan::Error) -> String {
    match e {
        hyperscan::Error::Hyperscan(hyperscan::HsError::CompileError(c)) => c.message().to_string(),
        other => other.to_string(),
    }
}

/// Compiles one regex alone, so a pack error can name the regex Hyperscan rejects.
pub(crate) fn check_regex(expr: &str) -> Result<(), String> {
    Patterns(vec![pattern(&Source::Regex(expr), 0)])
        .build::<BlockMode>()
        .map(|_| ())
        .map_err(describe)
}

/// Compiles all sources into one block-mode database; pattern ids are the sources' indices.
pub(crate) fn compile(sources: &[Source<'_>]) -> Result<BlockDatabase, String> {
    Patterns(
        sources
            .iter()
            .enumerate()
            .map(|(i, s)| pattern(s, i))
            .collect(),
    )
    .build::<BlockMode>()
    .map_err(describe)
}

/// A scratch space sized for a set of databases, kept per thread and keyed by the engine that
/// sized it: `Scratch` is `Send` but not `Sync`, so each rayon worker needs its own.
pub(crate) struct ThreadScratch {
    engine: u64,
    scratch: Scratch,
}

thread_local! {
    static SCRATCH: RefCell<Option<ThreadScratch>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's scratch for engine `engine` (allocating it for `dbs` on first use).
pub(crate) fn with_scratch<R>(
    engine: u64,
    dbs: &[&BlockDatabase],
    f: impl FnOnce(&Scratch) -> R,
) -> R {
    let alloc = || {
        let mut s = dbs[0]
            .alloc_scratch()
            .expect("Hyperscan scratch allocation");
        for db in &dbs[1..] {
            db.realloc_scratch(&mut s)
                .expect("Hyperscan scratch allocation");
        }
        ThreadScratch { engine, scratch: s }
    };
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => {
            if slot.as_ref().is_none_or(|t| t.engine != engine) {
                *slot = Some(alloc());
            }
            f(&slot.as_ref().expect("just set").scratch)
        }
        // Re-entered on this thread (should not happen): use a private scratch.
        Err(_) => f(&alloc().scratch),
    })
}

/// Scans `data`, calling `on_match(pattern id, from, to)` for every match. `from` is only
/// meaningful for SOM patterns (regexes).
pub(crate) fn scan(
    db: &BlockDatabase,
    scratch: &Scratch,
    data: &[u8],
    mut on_match: impl FnMut(u32, usize, usize),
) {
    let res = db.scan(data, scratch, |id, from, to, _flags| {
        on_match(id, from as usize, to as usize);
        Matching::Continue
    });
    match res {
        // Terminated means a callback asked to stop, which is success; ours never does.
        Ok(()) | Err(hyperscan::Error::Hyperscan(hyperscan::HsError::ScanTerminated)) => {}
        // Only a broken scratch or database can fail a block scan: not recoverable per message.
        Err(e) => panic!("Hyperscan scan failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_every_metacharacter() {
        let db = compile(&[Source::Literal("a.b*c"), Source::Literal("代开")]).unwrap();
        let s = db.alloc_scratch().unwrap();
        let mut hits = vec![];
        scan(&db, &s, "axbbc a.b*c 代开".as_bytes(), |id, _, to| {
            hits.push((id, to))
        });
        assert_eq!(hits, vec![(0, 11), (1, 18)]);
    }

    #[test]
    fn regex_reports_leftmost_start() {
        let db = compile(&[Source::Regex("1[3-9][0-9]{9}")]).unwrap();
        let s = db.alloc_scratch().unwrap();
        let mut hits = vec![];
        scan(&db, &s, b"tel13812345678", |id, from, to| {
            hits.push((id, from, to))
        });
        assert_eq!(hits, vec![(0, 3, 14)]);
    }

    #[test]
    fn bad_regex_is_described() {
        assert!(check_regex("(ab").unwrap_err().contains("parenthes"));
        assert!(check_regex("a*").unwrap_err().contains("empty"));
        assert!(check_regex("1[3-9][0-9]{9}").is_ok());
    }
}
