//! Hyperscan: compiling pattern databases and scanning buffers with a per-thread scratch.
//!
//! The main database scans the dense encoding of normalised text ([`super::dense`]), so it is
//! compiled in byte mode. Literal terms are compiled without start-of-match tracking (start =
//! end − length, and SOM costs ~60% throughput); regexes, already translated to the encoding,
//! get `SOM_LEFTMOST` because verdicts need their positions, and `MULTILINE` so `^`/`$` hold at
//! every message of a batch buffer.

use hyperscan::{
    BlockDatabase, BlockMode, ExprExt, Matching, Pattern, PatternFlags, Patterns, Scratch,
};
use hyperscan::{Builder, SerializedDatabase};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::path::Path;

/// Flags for translated pack regexes: leftmost start reported, `^`/`$` at line breaks.
fn regex_flags() -> PatternFlags {
    PatternFlags::SOM_LEFTMOST | PatternFlags::MULTILINE
}

/// The patterns to compile, in one buffer: each a literal byte string (a dense-encoded term) or a
/// Hyperscan expression (a pack regex translated by [`super::dense::translate_regex`]). A vector
/// per pattern spent more on its header and growth slack than on a dictionary term's bytes.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    bytes: Vec<u8>,
    /// Per pattern: where it ends in `bytes`, and whether it is a regex.
    ends: Vec<(u32, bool)>,
}

impl Sources {
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Appends a literal that `write` appends to the buffer it is given; returns its length.
    pub fn push_literal_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> usize {
        let start = self.bytes.len();
        write(&mut self.bytes);
        self.end(false);
        self.bytes.len() - start
    }

    pub fn push_literal(&mut self, literal: &[u8]) {
        self.push_literal_with(|b| b.extend_from_slice(literal));
    }

    pub fn push_regex(&mut self, expression: &str) {
        self.bytes.extend_from_slice(expression.as_bytes());
        self.end(true);
    }

    fn end(&mut self, regex: bool) {
        let end = u32::try_from(self.bytes.len()).expect("patterns fit in 4 GiB");
        self.ends.push((end, regex));
    }

    /// Each pattern's bytes and whether it is a regex, in order.
    fn iter(&self) -> impl Iterator<Item = (&[u8], bool)> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&(end, regex)| {
            let s = &self.bytes[start..end as usize];
            start = end as usize;
            (s, regex)
        })
    }
}

/// Writes the Hyperscan expression of a pattern into `out` (cleared first), and returns its
/// flags.
fn expression(bytes: &[u8], regex: bool, out: &mut String) -> PatternFlags {
    out.clear();
    if regex {
        out.push_str(std::str::from_utf8(bytes).expect("pushed as a str"));
        regex_flags()
    } else {
        escape_literal(bytes, out);
        PatternFlags::empty()
    }
}

/// Escapes a literal so Hyperscan matches exactly its bytes.
fn escape_literal(s: &[u8], out: &mut String) {
    use std::fmt::Write;
    for &b in s {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            write!(out, "\\x{b:02x}").expect("write to String");
        }
    }
}

fn pattern(expression: String, flags: PatternFlags, id: usize) -> Pattern {
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

/// Translates and compiles one pack regex alone, so a pack error can name the regex that cannot
/// be used and say why.
pub(crate) fn check_regex(expr: &str) -> Result<(), String> {
    let translated = super::dense::translate_regex(expr)?;
    Patterns(vec![pattern(translated, regex_flags(), 0)])
        .build::<BlockMode>()
        .map(|_| ())
        .map_err(describe)
}

/// Compiles all sources into one block-mode database; pattern ids are the sources' indices.
///
/// With `cache` set, a database compiled before for the same patterns, Hyperscan version and CPU
/// is loaded from there instead (compiling a 64k-term dictionary takes seconds, loading it
/// milliseconds). A cache file that fails to load or validate is ignored and rewritten.
pub(crate) fn compile(sources: &Sources, cache: Option<&Path>) -> Result<BlockDatabase, String> {
    // The patterns as the Hyperscan crate takes them (a `String` and ~100 bytes of options
    // each) are made only when the database must really be compiled, not for a cache hit.
    let build = || {
        let mut buf = String::new();
        Patterns(
            sources
                .iter()
                .enumerate()
                .map(|(i, (bytes, regex))| {
                    let flags = expression(bytes, regex, &mut buf);
                    pattern(buf.clone(), flags, i)
                })
                .collect(),
        )
        .build::<BlockMode>()
        .map_err(describe)
    };
    let Some(dir) = cache else {
        return build();
    };
    let mut h = Sha256::new();
    h.update(hyperscan::version_str().to_bytes());
    h.update(cpu_signature());
    let mut buf = String::new();
    for (bytes, regex) in sources.iter() {
        let flags = expression(bytes, regex, &mut buf);
        h.update(flags.bits().to_le_bytes());
        h.update((buf.len() as u64).to_le_bytes());
        h.update(buf.as_bytes());
    }
    let key: String = h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let file = dir.join(format!("hs-{key}.db"));
    if let Ok(bytes) = std::fs::read(&file)
        && let Ok(db) = bytes.deserialize::<BlockMode>()
        && db.alloc_scratch().is_ok()
    {
        // Marked as used, so pruning keeps what is loaded.
        let _ = std::fs::File::options()
            .append(true)
            .open(&file)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        return Ok(db);
    }
    let db = build()?;
    // Caching is an optimisation: failing to write it must not fail the compile.
    if let Ok(bytes) = db.serialize() {
        let tmp = dir.join(format!("hs-{key}.{}.tmp", std::process::id()));
        let _ = std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::write(&tmp, &*bytes))
            .and_then(|_| std::fs::rename(&tmp, &file));
        let _ = std::fs::remove_file(&tmp);
        prune(dir, CACHE_KEEP);
    }
    Ok(db)
}

/// Compiled database files kept in the cache: every reload of an edited rule set adds one or
/// two (the main database, and the pinyin view's when a pack has `pinyin = true`; ~7 MB with
/// a 64k-term dictionary), so without a bound the cache would fill the disk of a long-running
/// instance whose rules change daily. 16 files hold eight rule sets: the live one, the ones
/// a rollback or `diff-rules` would load, and instances sharing the directory.
const CACHE_KEEP: usize = 16;

/// Removes all but the `keep` most recently used databases (by modification time, which a
/// cache hit refreshes: only the file's owner can, so in a directory shared between users
/// another user's database in use may go). Another instance sharing the directory that loses
/// a file it was about to read compiles it again: nothing fails.
fn prune(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut dbs: Vec<(std::time::SystemTime, std::path::PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("hs-") && name.ends_with(".db")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    dbs.sort_by(|a, b| b.cmp(a));
    for (_, path) in dbs.into_iter().skip(keep) {
        let _ = std::fs::remove_file(path);
    }
}

/// CPU features Hyperscan specialises a database for; part of the cache key, so a cache shared
/// between machines never hands one a database built for another CPU.
fn cpu_signature() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        format!(
            "x86_64 avx2={} avx512f={} avx512vbmi={} bmi2={} popcnt={}",
            std::is_x86_feature_detected!("avx2"),
            std::is_x86_feature_detected!("avx512f"),
            std::is_x86_feature_detected!("avx512vbmi"),
            std::is_x86_feature_detected!("bmi2"),
            std::is_x86_feature_detected!("popcnt"),
        )
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::env::consts::ARCH.to_string()
    }
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
        let mut srcs = Sources::default();
        srcs.push_literal(b"a.b*c");
        srcs.push_literal("代开".as_bytes());
        let db = compile(&srcs, None).unwrap();
        let s = db.alloc_scratch().unwrap();
        let mut hits = vec![];
        scan(&db, &s, "axbbc a.b*c 代开".as_bytes(), |id, _, to| {
            hits.push((id, to))
        });
        assert_eq!(hits, vec![(0, 11), (1, 18)]);
    }

    #[test]
    fn regex_reports_leftmost_start() {
        let mut srcs = Sources::default();
        srcs.push_regex("1[3-9][0-9]{9}");
        let db = compile(&srcs, None).unwrap();
        let s = db.alloc_scratch().unwrap();
        let mut hits = vec![];
        scan(&db, &s, b"tel13812345678", |id, from, to| {
            hits.push((id, from, to))
        });
        assert_eq!(hits, vec![(0, 3, 14)]);
    }

    /// The cache keeps the most recently used databases only, and a hit counts as a use:
    /// a long-running instance whose rules change daily must not fill its disk.
    #[test]
    fn the_cache_keeps_the_most_recently_used_databases() {
        let dir = tempfile::tempdir().unwrap();
        let day = std::time::Duration::from_secs(86_400);
        let now = std::time::SystemTime::now();
        let db = |i: u64| dir.path().join(format!("hs-old{i:02}.db"));
        for i in 0..(CACHE_KEEP as u64 + 3) {
            std::fs::write(db(i), b"x").unwrap();
            // hs-old00 is the newest, then older and older.
            let f = std::fs::File::options().append(true).open(db(i)).unwrap();
            f.set_modified(now - day * (i as u32 + 2)).unwrap();
        }
        std::fs::write(dir.path().join("kafka.tgz"), b"not ours").unwrap();

        let mut srcs = Sources::default();
        srcs.push_literal("代开".as_bytes());
        compile(&srcs, Some(dir.path())).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut want: Vec<String> = (0..CACHE_KEEP as u64 - 1)
            .map(|i| format!("hs-old{i:02}.db"))
            .collect();
        want.push("kafka.tgz".into());
        assert_eq!(
            left.iter().filter(|n| !n.starts_with("hs-old")).count(),
            2,
            "{left:?}"
        );
        assert!(want.iter().all(|w| left.contains(w)), "{left:?}");
        assert_eq!(left.len(), CACHE_KEEP + 1, "{left:?}");

        // A hit marks the database used now: it is no longer the oldest.
        let ours = left
            .iter()
            .find(|n| n.starts_with("hs-") && !n.starts_with("hs-old"))
            .unwrap();
        let path = dir.path().join(ours);
        let f = std::fs::File::options().append(true).open(&path).unwrap();
        f.set_modified(now - day * 100).unwrap();
        compile(&srcs, Some(dir.path())).unwrap();
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert!(modified > now - day, "{modified:?}");
    }

    #[test]
    fn cached_database_is_reused_and_a_corrupt_cache_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let mut srcs = Sources::default();
        srcs.push_literal("代开".as_bytes());
        srcs.push_regex("1[3-9][0-9]{9}");
        let scan_all = |db: &BlockDatabase| {
            let s = db.alloc_scratch().unwrap();
            let mut hits = vec![];
            scan(db, &s, "代开13812345678".as_bytes(), |id, _, to| {
                hits.push((id, to))
            });
            hits
        };
        let first = compile(&srcs, Some(dir.path())).unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "one cache file written");
        let second = compile(&srcs, Some(dir.path())).unwrap();
        assert_eq!(scan_all(&first), scan_all(&second));
        assert_eq!(scan_all(&second), vec![(0, 6), (1, 17)]);
        std::fs::write(&files[0], b"garbage").unwrap();
        let third = compile(&srcs, Some(dir.path())).unwrap();
        assert_eq!(scan_all(&third), vec![(0, 6), (1, 17)]);
        assert_ne!(std::fs::read(&files[0]).unwrap(), b"garbage");
    }

    #[test]
    fn bad_regex_is_described() {
        assert!(check_regex("(ab").unwrap_err().contains("unclosed group"));
        assert!(check_regex("a*").unwrap_err().contains("empty"));
        assert!(check_regex("1[3-9][0-9]{9}").is_ok());
    }
}
