//! `qunguard scan`: the batch core ([`crate::batch`]) with files around it. JSONL messages
//! in, one verdict JSON line per input line out, in input order.
//!
//! Threads joined by bounded channels, so each overlaps the others and a slow reader or writer
//! never lets memory grow: a reader cuts lines into batches; the caller's thread parses and
//! screens them (in parallel on the global rayon pool); a watcher runs the heuristics (one
//! sequential pass) and writes their records; a serialiser (parallel) and a writer produce the
//! output. A line that cannot be screened (bad JSON, missing fields, invalid UTF-8, over a size
//! limit) yields `{"line": N, "error": "..."}` in its place.

use crate::batch::{Input, Outcome, Rejection, Screened, Screener, Watched};
use crate::config::OutputTopic;
use crate::hint::timed;
use crate::screen::Engine;
use crate::watch::{Output, Watch};
use rayon::prelude::*;
use std::io::{self, BufRead, Write};
use std::time::{Duration, Instant};

/// Limits and batching for [`scan`].
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Longest input line accepted, in bytes; longer lines are skipped with an error line
    /// (the line is never held in memory whole).
    pub max_line_bytes: usize,
    /// Longest message `text` accepted, in bytes.
    pub max_text_bytes: usize,
    /// Hits (and suppressions) a verdict keeps at most, as the pipeline's
    /// `pipeline.max_hits` (the heuristics see them all).
    pub max_hits: usize,
    /// Lines per batch handed to the engine.
    pub batch_lines: usize,
    /// Add `"explain"` to every verdict line: the normalised text, and where each hit and
    /// suppression lies in it ([`crate::screen::explain`]).
    pub explain: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        // The pipeline's defaults: a replay with no config gets what a default pipeline gave.
        let p = crate::config::PipelineConfig::default();
        ScanOptions {
            max_line_bytes: p.max_message_bytes,
            max_text_bytes: p.max_text_bytes,
            max_hits: p.max_hits,
            batch_lines: 8192,
            explain: false,
        }
    }
}

/// What a scan did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Input lines read.
    pub lines: u64,
    /// Lines that produced a verdict.
    pub verdicts: u64,
    /// Lines that produced an error line.
    pub errors: u64,
    /// Where each of the scan's threads spent its time.
    pub stages: Stages,
}

/// Where `scan`'s threads spent their time, stage by stage in the order batches pass through
/// them (`RUST_LOG=qunguard=debug qunguard scan …` prints it). A stage that is busy nearly all
/// the time bounds the scan; a stage waiting for input is starved by the ones before it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stages {
    /// Reading and cutting lines into batches.
    pub read: StageTime,
    /// Parsing and screening (its busy time includes waiting for the worker threads).
    pub screen: StageTime,
    /// The heuristics, one pass in input order.
    pub watch: StageTime,
    /// Serialising verdicts (on the worker threads).
    pub serialise: StageTime,
    /// Writing the output.
    pub write: StageTime,
}

/// Time one thread of a scan spent working, and waiting on its neighbours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTime {
    /// Working on batches.
    pub busy: Duration,
    /// Waiting for the stage before it.
    pub waiting_for_input: Duration,
    /// Waiting for the stage after it to take a batch.
    pub waiting_to_hand_over: Duration,
}

impl std::fmt::Display for Stages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stages = [
            ("read", self.read),
            ("screen", self.screen),
            ("watch", self.watch),
            ("serialise", self.serialise),
            ("write", self.write),
        ];
        f.write_str("seconds busy / waiting for input / waiting to hand over:")?;
        for (i, (name, t)) in stages.iter().enumerate() {
            let sep = if i == 0 { " " } else { "; " };
            write!(
                f,
                "{sep}{name} {:.3} / {:.3} / {:.3}",
                t.busy.as_secs_f64(),
                t.waiting_for_input.as_secs_f64(),
                t.waiting_to_hand_over.as_secs_f64()
            )?;
        }
        Ok(())
    }
}

enum Line {
    /// Byte range of the line in the batch buffer.
    Data(usize, usize),
    /// The line was longer than the limit; its full length.
    TooLong(usize),
}

struct Batch {
    first_line: u64,
    data: Vec<u8>,
    lines: Vec<Line>,
}

/// Reads one line into `buf`; past `max` bytes stops storing and only counts. Returns the line's
/// full length (without the newline), or `None` at end of input.
fn read_line_limited<R: BufRead>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Option<usize>> {
    let mut total = 0usize;
    let mut any = false;
    loop {
        let avail = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok(any.then_some(total));
        }
        any = true;
        let (chunk, done) = match memchr::memchr(b'\n', avail) {
            Some(i) => (&avail[..i], Some(i + 1)),
            None => (avail, None),
        };
        if total + chunk.len() <= max {
            buf.extend_from_slice(chunk);
        }
        total += chunk.len();
        let used = done.unwrap_or(avail.len());
        r.consume(used);
        if done.is_some() {
            return Ok(Some(total));
        }
    }
}

/// Screens JSONL from `input` and writes one line per input line to `output` (rules only, no
/// heuristics).
pub fn scan<R, W>(engine: &Engine, input: R, output: W, opts: &ScanOptions) -> io::Result<ScanStats>
where
    R: BufRead + Send,
    W: Write + Send,
{
    scan_with(engine, None, input, output, opts)
}

/// What the heuristics need in a scan: the watch, and where its records (alerts, scorecards)
/// go, one JSON object a line, each as `{"alert": {...}}`, `{"scorecard": {...}}`.
pub struct ScanWatch<'a> {
    /// The watch, fed every verdict in input order.
    pub watch: &'a mut Watch,
    /// Where its records are written.
    pub records: &'a mut (dyn Write + Send),
}

/// [`scan`], with heuristics when `watch` is given: the verdicts are those the live pipeline
/// gives for the same messages in the same order (everything runs on the messages' `ts`).
pub fn scan_with<R, W>(
    engine: &Engine,
    watch: Option<ScanWatch<'_>>,
    mut input: R,
    mut output: W,
    opts: &ScanOptions,
) -> io::Result<ScanStats>
where
    R: BufRead + Send,
    W: Write + Send,
{
    let (batch_tx, batch_rx) = crossbeam_channel::bounded::<Batch>(2);
    let (screened_tx, screened_rx) = crossbeam_channel::bounded::<(u64, Screened)>(2);
    let (watched_tx, watched_rx) = crossbeam_channel::bounded::<(u64, Watched)>(2);
    let (out_tx, out_rx) = crossbeam_channel::bounded::<Vec<Vec<u8>>>(2);
    let screener = Screener::new(
        engine,
        watch.as_ref().map(|w| w.watch.fingerprinter()),
        opts.max_text_bytes,
    );
    std::thread::scope(|s| {
        let reader = s.spawn(move || -> io::Result<StageTime> {
            let mut t = StageTime::default();
            let mut next_line = 1u64;
            loop {
                let began = Instant::now();
                let mut batch = Batch {
                    first_line: next_line,
                    data: Vec::with_capacity(opts.batch_lines * 160),
                    lines: Vec::with_capacity(opts.batch_lines),
                };
                while batch.lines.len() < opts.batch_lines {
                    let start = batch.data.len();
                    match read_line_limited(&mut input, &mut batch.data, opts.max_line_bytes)? {
                        None => break,
                        Some(len) if len > opts.max_line_bytes => {
                            batch.data.truncate(start);
                            batch.lines.push(Line::TooLong(len));
                        }
                        Some(_) => {
                            let mut end = batch.data.len();
                            if batch.data[start..end].last() == Some(&b'\r') {
                                end -= 1;
                            }
                            batch.lines.push(Line::Data(start, end));
                        }
                    }
                }
                t.busy += began.elapsed();
                if batch.lines.is_empty() {
                    return Ok(t);
                }
                next_line += batch.lines.len() as u64;
                if !timed(&mut t.waiting_to_hand_over, || batch_tx.send(batch).is_ok()) {
                    return Ok(t); // the screening side stopped (write error)
                }
            }
        });
        // The heuristics are one sequential pass in input order: on a thread of their own they
        // run while the next batch is parsed and screened and the last one serialised.
        let watcher = s.spawn(move || -> io::Result<StageTime> {
            let mut t = StageTime::default();
            let mut watch = watch;
            while let Ok((first_line, b)) = timed(&mut t.waiting_for_input, || screened_rx.recv()) {
                let watched = timed(&mut t.busy, || -> io::Result<Watched> {
                    let watched = b.watch(watch.as_mut().map(|w| &mut *w.watch), opts.max_hits);
                    if let Some(w) = &mut watch {
                        write_records(&mut *w.records, watched.records())?;
                    }
                    Ok(watched)
                })?;
                // `is_ok` inside: the error would carry the whole batch back.
                if !timed(&mut t.waiting_to_hand_over, || {
                    watched_tx.send((first_line, watched)).is_ok()
                }) {
                    break;
                }
            }
            Ok(t)
        });
        let serialiser = s.spawn(move || {
            let mut t = StageTime::default();
            while let Ok((first_line, b)) = timed(&mut t.waiting_for_input, || watched_rx.recv()) {
                let chunks = timed(&mut t.busy, || serialise(first_line, &b, opts.explain));
                if !timed(&mut t.waiting_to_hand_over, || out_tx.send(chunks).is_ok()) {
                    break; // the writer failed; its error is returned below
                }
            }
            t
        });
        let writer = s.spawn(move || -> io::Result<StageTime> {
            let mut t = StageTime::default();
            while let Ok(chunks) = timed(&mut t.waiting_for_input, || out_rx.recv()) {
                timed(&mut t.busy, || -> io::Result<()> {
                    for bytes in chunks {
                        output.write_all(&bytes)?;
                    }
                    Ok(())
                })?;
            }
            timed(&mut t.busy, || output.flush())?;
            Ok(t)
        });

        let mut stats = ScanStats::default();
        let t = &mut stats.stages.screen;
        while let Ok(batch) = timed(&mut t.waiting_for_input, || batch_rx.recv()) {
            let screened = timed(&mut t.busy, || {
                screener.screen(&batch.lines, |l| match *l {
                    Line::Data(s, e) => Input::Message(&batch.data[s..e]),
                    Line::TooLong(len) => Input::Rejected(Rejection {
                        code: "too_large",
                        detail: format!(
                            "line is {len} bytes, over the limit of {} bytes",
                            opts.max_line_bytes
                        ),
                    }),
                })
            });
            stats.lines += batch.lines.len() as u64;
            stats.errors += screened.rejected() as u64;
            stats.verdicts += screened.verdicts().len() as u64;
            if !timed(&mut t.waiting_to_hand_over, || {
                screened_tx.send((batch.first_line, screened)).is_ok()
            }) {
                break; // a later stage failed; its error is returned below
            }
        }
        drop(screened_tx);
        let watched = watcher.join().expect("watch thread panicked");
        stats.stages.serialise = serialiser.join().expect("serialiser thread panicked");
        let written = writer.join().expect("writer thread panicked");
        let read = reader.join().expect("reader thread panicked");
        stats.stages.watch = watched?;
        stats.stages.write = written?;
        stats.stages.read = read?;
        Ok(stats)
    })
}

/// The output lines of a batch whose first line is `first_line`: verdicts and error lines in
/// input order, in chunks serialised in parallel (written one after the other: joining them
/// first copied every output byte once more).
fn serialise(first_line: u64, b: &Watched, explain: bool) -> Vec<Vec<u8>> {
    let outcomes: Vec<Outcome<'_>> = b.outcomes().collect();
    outcomes
        .par_chunks(512)
        .enumerate()
        .map(|(c, chunk)| {
            let mut buf = Vec::with_capacity(chunk.len() * 256);
            for (i, o) in chunk.iter().enumerate() {
                match o {
                    Outcome::Verdict { verdict, message } if explain => serde_json::to_writer(
                        &mut buf,
                        &Explained {
                            verdict,
                            explain: crate::screen::explain::explain(message, verdict),
                        },
                    ),
                    Outcome::Verdict { verdict, .. } => {
                        verdict.write_json(&mut buf);
                        Ok(())
                    }
                    Outcome::Rejected(r) => {
                        let line = first_line + (c * 512 + i) as u64;
                        serde_json::to_writer(
                            &mut buf,
                            &serde_json::json!({ "line": line, "error": r.detail }),
                        )
                    }
                    Outcome::Report | Outcome::Decision(..) => {
                        unreachable!("scan reads no reports or decisions")
                    }
                }
                .expect("serialising to memory cannot fail");
                buf.push(b'\n');
            }
            buf
        })
        .collect()
}

/// A verdict line of `scan --explain`: the verdict's fields, then `"explain"`.
#[derive(serde::Serialize)]
struct Explained<'a> {
    #[serde(flatten)]
    verdict: &'a crate::model::Verdict,
    explain: crate::screen::explain::Explanation,
}

/// Writes watch records as `{"KIND": RECORD}` lines.
pub fn write_records(w: &mut dyn Write, records: &[Output]) -> io::Result<()> {
    for r in records {
        let kind = OutputTopic::of_watch_output(r).record_kind();
        serde_json::to_writer(&mut *w, &serde_json::json!({ kind: r }))?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_measured_not_stored() {
        let data = b"short\nxxxxxxxxxxxxxxxxxxxx\nend";
        let mut r = io::BufReader::with_capacity(4, &data[..]);
        let mut buf = Vec::new();
        assert_eq!(read_line_limited(&mut r, &mut buf, 8).unwrap(), Some(5));
        assert_eq!(buf, b"short");
        buf.clear();
        assert_eq!(read_line_limited(&mut r, &mut buf, 8).unwrap(), Some(20));
        assert!(buf.len() <= 8);
        buf.clear();
        assert_eq!(read_line_limited(&mut r, &mut buf, 8).unwrap(), Some(3));
        assert_eq!(read_line_limited(&mut r, &mut buf, 8).unwrap(), None);
    }
}
