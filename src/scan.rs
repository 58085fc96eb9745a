//! `qunguard scan`: JSONL messages in, one verdict JSON line per input line out, in order.
//!
//! Reading, screening (parse, normalise, match: parallel), the heuristics (one sequential pass),
//! serialising and writing run on their own threads joined by bounded channels, so each stage
//! overlaps the others and a slow reader or writer never lets memory grow. A line that cannot be screened (bad JSON, missing
//! fields, invalid UTF-8, over a size limit) yields `{"line": N, "error": "..."}` in its place.

use crate::model::Message;
use crate::screen::Engine;
use crate::watch::{Output, Signature, Watch};
use rayon::prelude::*;
use std::io::{self, BufRead, Write};

/// Limits and batching for [`scan`].
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Longest input line accepted, in bytes; longer lines are skipped with an error line
    /// (the line is never held in memory whole).
    pub max_line_bytes: usize,
    /// Longest message `text` accepted, in bytes.
    pub max_text_bytes: usize,
    /// Lines per batch handed to the engine.
    pub batch_lines: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            max_line_bytes: 1 << 20,
            max_text_bytes: 64 << 10,
            batch_lines: 8192,
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
}

/// Why an input could not be screened: a stable code (a metric label and dead-letter header)
/// and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// `invalid_utf8`, `empty`, `invalid_json` or `too_large`.
    pub code: &'static str,
    /// What exactly is wrong with this input.
    pub detail: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

/// Every [`Rejection::code`], for pre-registering metric labels.
pub const REJECTION_CODES: &[&str] = &["invalid_utf8", "empty", "invalid_json", "too_large"];

/// Parses one input record; the error says why it cannot be screened (also used for
/// dead-letter records).
pub fn parse_message(bytes: &[u8], max_text_bytes: usize) -> Result<Message, Rejection> {
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(Rejection {
            code: "invalid_utf8",
            detail: format!(
                "invalid UTF-8 at byte {}: the input must be UTF-8 JSON",
                e.valid_up_to()
            ),
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Rejection {
            code: "empty",
            detail: "empty line: expected a JSON message object".into(),
        });
    }
    let msg: Message = serde_json::from_slice(bytes).map_err(|e| Rejection {
        code: "invalid_json",
        detail: format!("not a valid message: {e}"),
    })?;
    if msg.text.len() > max_text_bytes {
        return Err(Rejection {
            code: "too_large",
            detail: format!(
                "text is {} bytes, over the limit of {max_text_bytes} bytes",
                msg.text.len()
            ),
        });
    }
    Ok(msg)
}

enum Line {
    /// Byte range of the line in the batch buffer.
    Data(usize, usize),
    /// The line was longer than the limit; its full length.
    TooLong(usize),
}

enum OutLine<'a> {
    Verdict(&'a crate::model::Verdict),
    Error(u64, &'a str),
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
    let (screened_tx, screened_rx) = crossbeam_channel::bounded::<Screened>(2);
    let (watched_tx, watched_rx) = crossbeam_channel::bounded::<Screened>(2);
    let (out_tx, out_rx) = crossbeam_channel::bounded::<Vec<u8>>(2);
    let fingerprinter = watch.as_ref().map(|w| w.watch.fingerprinter());
    std::thread::scope(|s| {
        let reader = s.spawn(move || -> io::Result<()> {
            let mut next_line = 1u64;
            loop {
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
                if batch.lines.is_empty() {
                    return Ok(());
                }
                next_line += batch.lines.len() as u64;
                if batch_tx.send(batch).is_err() {
                    return Ok(()); // the screening side stopped (write error)
                }
            }
        });
        // The heuristics are one sequential pass in input order: on a thread of their own they
        // run while the next batch is parsed and screened and the last one serialised.
        let watcher = s.spawn(move || -> io::Result<()> {
            let Some(w) = watch else {
                for b in screened_rx {
                    if watched_tx.send(b).is_err() {
                        break;
                    }
                }
                return Ok(());
            };
            let mut records = Vec::new();
            for mut b in screened_rx {
                records.clear();
                w.watch
                    .observe(&b.msgs, &b.sigs, &mut b.verdicts, &mut records);
                write_records(&mut *w.records, &records)?;
                if watched_tx.send(b).is_err() {
                    break;
                }
            }
            Ok(())
        });
        let serialiser = s.spawn(move || {
            for b in watched_rx {
                if out_tx.send(serialise(&b)).is_err() {
                    break; // the writer failed; its error is returned below
                }
            }
        });
        let writer = s.spawn(move || -> io::Result<()> {
            for bytes in out_rx {
                output.write_all(&bytes)?;
            }
            output.flush()
        });

        let mut stats = ScanStats::default();
        for batch in batch_rx {
            let parsed: Vec<Result<Message, String>> = batch
                .lines
                .par_iter()
                .map(|l| match *l {
                    Line::Data(s, e) => {
                        parse_message(&batch.data[s..e], opts.max_text_bytes).map_err(|r| r.detail)
                    }
                    Line::TooLong(len) => Err(format!(
                        "line is {len} bytes, over the limit of {} bytes",
                        opts.max_line_bytes
                    )),
                })
                .collect();
            let mut msgs = Vec::with_capacity(parsed.len());
            let mut outcome = Vec::with_capacity(parsed.len());
            for p in parsed {
                match p {
                    Ok(m) => {
                        msgs.push(m);
                        outcome.push(None);
                    }
                    Err(e) => outcome.push(Some(e)),
                }
            }
            let (verdicts, sigs) = match &fingerprinter {
                None => (engine.screen_batch(&msgs), Vec::new()),
                Some(fp) => fp.screen(engine, &msgs),
            };
            stats.lines += outcome.len() as u64;
            stats.verdicts += verdicts.len() as u64;
            stats.errors += (outcome.len() - verdicts.len()) as u64;
            let screened = Screened {
                first_line: batch.first_line,
                outcome,
                msgs,
                sigs,
                verdicts,
            };
            if screened_tx.send(screened).is_err() {
                break; // a later stage failed; its error is returned below
            }
        }
        drop(screened_tx);
        let watched = watcher.join().expect("watch thread panicked");
        serialiser.join().expect("serialiser thread panicked");
        let wres = writer.join().expect("writer thread panicked");
        let rres = reader.join().expect("reader thread panicked");
        watched?;
        wres?;
        rres?;
        Ok(stats)
    })
}

/// A batch between the stages of [`scan_with`].
struct Screened {
    first_line: u64,
    /// Per input line: `None` for a message (its verdict is next in `verdicts`), or the error.
    outcome: Vec<Option<String>>,
    msgs: Vec<Message>,
    /// Heuristic signatures, one per message (empty without the heuristics).
    sigs: Vec<Signature>,
    verdicts: Vec<crate::model::Verdict>,
}

/// The output lines of a batch: verdicts and error lines interleaved back into input order.
fn serialise(b: &Screened) -> Vec<u8> {
    let mut next_verdict = b.verdicts.iter();
    let lines: Vec<OutLine<'_>> = b
        .outcome
        .iter()
        .enumerate()
        .map(|(i, o)| match o {
            Some(error) => OutLine::Error(b.first_line + i as u64, error),
            None => OutLine::Verdict(next_verdict.next().expect("one verdict per message")),
        })
        .collect();
    lines
        .par_chunks(512)
        .map(|chunk| {
            let mut buf = Vec::with_capacity(chunk.len() * 256);
            for l in chunk {
                match l {
                    OutLine::Verdict(v) => serde_json::to_writer(&mut buf, v),
                    OutLine::Error(line, error) => serde_json::to_writer(
                        &mut buf,
                        &serde_json::json!({ "line": line, "error": error }),
                    ),
                }
                .expect("serialising to memory cannot fail");
                buf.push(b'\n');
            }
            buf
        })
        .collect::<Vec<_>>()
        .concat()
}

/// Writes watch records as `{"KIND": RECORD}` lines.
pub fn write_records(w: &mut dyn Write, records: &[Output]) -> io::Result<()> {
    for r in records {
        let kind = match r {
            Output::Alert(_) => "alert",
            Output::Scorecard(_) => "scorecard",
            Output::Reward(_) => "reward",
            Output::Review(_) => "review",
        };
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
