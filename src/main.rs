//! The `qunguard` command line: parse arguments, load rules, start the job, map errors to exit
//! codes. Everything else lives in the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use qunguard::scan::{ScanOptions, scan};
use qunguard::{Engine, RuleSet};
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "qunguard",
    version,
    about = "Streaming moderation for group-chat message streams"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Screen JSONL messages from FILE (or stdin) and print one verdict JSON line per input line.
    Scan {
        /// Directory of rule packs (*.toml).
        #[arg(long, default_value = "config/rules")]
        rules: PathBuf,
        /// Input file of JSONL messages; stdin when absent or "-".
        file: Option<PathBuf>,
        /// Longest message text accepted, in bytes.
        #[arg(long, default_value_t = ScanOptions::default().max_text_bytes)]
        max_text_bytes: usize,
        /// Longest input line accepted, in bytes.
        #[arg(long, default_value_t = ScanOptions::default().max_line_bytes)]
        max_line_bytes: usize,
        /// Worker threads for screening (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Write N synthetic city-chat messages as JSONL to stdout (for benchmarks and trials).
    Gen {
        /// How many messages.
        #[arg(long, default_value_t = 100_000)]
        count: usize,
        /// Distinct groups.
        #[arg(long, default_value_t = 5000)]
        groups: usize,
        /// Seed, for repeatable streams.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Validate and compile a rules directory, print per-pack counts.
    CheckRules {
        /// Directory of rule packs (*.toml).
        dir: PathBuf,
    },
}

/// Where compiled Hyperscan databases are cached: `QUNGUARD_CACHE_DIR` (empty or `off` disables),
/// else `$XDG_CACHE_HOME/qunguard`, else `~/.cache/qunguard`.
fn cache_dir() -> Option<PathBuf> {
    match std::env::var_os("QUNGUARD_CACHE_DIR") {
        Some(d) if d.is_empty() || d == "off" => None,
        Some(d) => Some(PathBuf::from(d)),
        None => std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|d| d.join("qunguard")),
    }
}

fn load_engine(dir: &Path) -> anyhow::Result<Engine> {
    let rules = RuleSet::load_dir(dir)?;
    Ok(Engine::compile_cached(&rules, cache_dir().as_deref())?)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Scan {
            rules,
            file,
            max_text_bytes,
            max_line_bytes,
            threads,
        } => {
            if let Some(n) = threads {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build_global()
                    .context("setting up the worker threads")?;
            }
            let engine = load_engine(&rules)?;
            let opts = ScanOptions {
                max_text_bytes,
                max_line_bytes,
                ..ScanOptions::default()
            };
            let out = BufWriter::with_capacity(1 << 20, std::io::stdout());
            let stdin = || BufReader::with_capacity(1 << 20, std::io::stdin());
            let stats = match file.as_deref() {
                None => scan(&engine, stdin(), out, &opts),
                Some(p) if p == Path::new("-") => scan(&engine, stdin(), out, &opts),
                Some(p) => {
                    let f = std::fs::File::open(p)
                        .with_context(|| format!("cannot open input {}", p.display()))?;
                    scan(&engine, BufReader::with_capacity(1 << 20, f), out, &opts)
                }
            };
            match stats {
                Ok(s) => {
                    eprintln!(
                        "qunguard scan: {} lines, {} verdicts, {} errors (rules {})",
                        s.lines,
                        s.verdicts,
                        s.errors,
                        engine.rules_version()
                    );
                    Ok(())
                }
                // A closed pipe (`| head`) is a normal way to stop reading.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                Err(e) => Err(e).context("scan failed"),
            }
        }
        Command::Gen {
            count,
            groups,
            seed,
        } => {
            use std::io::Write;
            let cfg = qunguard::synth::SynthConfig {
                groups,
                seed,
                ..Default::default()
            };
            let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout());
            for m in qunguard::synth::Synth::new(cfg).take(count) {
                serde_json::to_writer(&mut out, &m)?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            Ok(())
        }
        Command::CheckRules { dir } => {
            let engine = load_engine(&dir)?;
            println!(
                "{:<16} {:<16} {:<7} {:>7} {:>6} {:>6}  pinyin",
                "pack", "category", "action", "terms", "allow", "regex"
            );
            for p in engine.packs() {
                println!(
                    "{:<16} {:<16} {:<7} {:>7} {:>6} {:>6}  {}",
                    p.name,
                    p.category,
                    p.action.as_str(),
                    p.terms,
                    p.allow,
                    p.regexes,
                    if p.pinyin { "yes" } else { "no" }
                );
            }
            println!(
                "ok: {} packs compiled, rules version {}",
                engine.packs().len(),
                engine.rules_version()
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qunguard: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
