//! `faultline bench check`: checks the reference corpora (porcupine-etcd,
//! porcupine-kv, knossos-cas) and prints per-file and total times, peak
//! memory, and any verdict that differs from the published one.
//!
//! Each file is read and checked `--repeat` times; the fastest is reported
//! (the machine is shared, the minimum is the least noisy figure), as wall
//! time and as CPU time of all threads (which a loaded machine inflates less).
//! Figures are printed, never asserted.

use super::check::{Checker, FileCheck, check_file};
use crate::checker::Verdict;
use crate::checker::linearizable::{ModelKind, NilRead, Options, RegisterOptions};
use crate::history::Format;
use crate::outcome::Outcome;
use anyhow::Context;
use rayon::prelude::*;
use serde_json::json;
use std::collections::HashMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct BenchCheckArgs {
    /// The corpus folder, holding porcupine-etcd/, porcupine-kv/ and knossos-cas/
    /// (README, "The reference corpora").
    #[arg(
        long,
        env = "FAULTLINE_CORPUS",
        default_value = "../shared/corpus",
        value_name = "DIR"
    )]
    pub corpus: PathBuf,
    /// How many times each file is checked; the fastest time is reported.
    #[arg(long, default_value_t = 5)]
    pub repeat: u32,
    /// Print a line per file of every set (the etcd set has 103).
    #[arg(long)]
    pub verbose: bool,
}

/// One corpus folder and the options its semantics need.
struct CorpusSet {
    dir: &'static str,
    options: Options,
}

fn sets() -> Vec<CorpusSet> {
    vec![
        CorpusSet {
            dir: "porcupine-etcd",
            options: Options {
                model: ModelKind::CasRegister,
                ..Options::default()
            },
        },
        CorpusSet {
            dir: "porcupine-kv",
            options: Options {
                model: ModelKind::Kv,
                ..Options::default()
            },
        },
        CorpusSet {
            dir: "knossos-cas",
            options: Options {
                model: ModelKind::CasRegister,
                register: RegisterOptions {
                    initial: json!(0),
                    nil_read: NilRead::Any,
                },
                ..Options::default()
            },
        },
    ]
}

/// Reads `VERDICTS.txt`: `relative/path true|false` per line, `#` comments.
pub fn read_verdicts(dir: &Path) -> anyhow::Result<HashMap<String, Verdict>> {
    let path = dir.join("VERDICTS.txt");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let verdict = match line.split_whitespace().collect::<Vec<_>>()[..] {
            [name, "true"] => (name, Verdict::Valid),
            [name, "false"] => (name, Verdict::Invalid),
            _ => anyhow::bail!(
                "{}:{}: expected `name true|false`, got {line:?}",
                path.display(),
                n + 1
            ),
        };
        out.insert(verdict.0.to_string(), verdict.1);
    }
    Ok(out)
}

/// The history files of a corpus folder (sub-folders included), sorted.
pub fn corpus_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in
            std::fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.file_name().is_some_and(|n| n != "VERDICTS.txt") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

struct Row {
    name: String,
    ops: usize,
    verdict: String,
    expected: Option<Verdict>,
    read: Duration,
    check: Duration,
    /// CPU time of reading and checking, all threads.
    cpu: Duration,
}

pub fn run(args: &BenchCheckArgs) -> anyhow::Result<u8> {
    let mut out = String::new();
    let mut mismatches = 0;
    let repeat = args.repeat.max(1);
    let _ = writeln!(
        out,
        "faultline bench check: {} (fastest of {repeat} checks per file, release build: {})",
        args.corpus.display(),
        !cfg!(debug_assertions)
    );
    for set in sets() {
        let dir = args.corpus.join(set.dir);
        let expected = read_verdicts(&dir)?;
        let files = corpus_files(&dir)?;
        let mut rows = Vec::new();
        for file in &files {
            let (mut best, mut best_cpu) = timed(|| {
                check_file(
                    file,
                    Format::Auto,
                    &Checker::Linearizable(set.options.clone()),
                )
            });
            for _ in 1..repeat {
                let (again, cpu) = timed(|| {
                    check_file(
                        file,
                        Format::Auto,
                        &Checker::Linearizable(set.options.clone()),
                    )
                });
                best.read_time = best.read_time.min(again.read_time);
                best.check_time = best.check_time.min(again.check_time);
                best_cpu = best_cpu.min(cpu);
            }
            let name = file
                .strip_prefix(&dir)
                .unwrap_or(file)
                .display()
                .to_string();
            rows.push(row(
                name.clone(),
                &best,
                best_cpu,
                expected.get(&name).copied(),
            ));
        }
        // The whole set as `faultline check` does it: files in parallel, reading included.
        let wall = (0..repeat)
            .map(|_| {
                let started = Instant::now();
                let _: Vec<FileCheck> = files
                    .par_iter()
                    .map(|f| {
                        check_file(f, Format::Auto, &Checker::Linearizable(set.options.clone()))
                    })
                    .collect();
                started.elapsed()
            })
            .min()
            .unwrap_or_default();
        mismatches += print_set(&mut out, set.dir, &rows, wall, args.verbose);
    }
    let _ = writeln!(
        out,
        "peak memory (VmHWM): {}",
        peak_memory().unwrap_or_else(|| "unknown".into())
    );
    if mismatches > 0 {
        let _ = writeln!(out, "{mismatches} verdicts differ from the published ones");
    }
    print!("{out}");
    // A verdict unlike the published one fails the benchmark as an anomaly would.
    let outcome = if mismatches > 0 {
        Outcome::Invalid
    } else {
        Outcome::Valid
    };
    Ok(outcome.exit_code())
}

/// Runs `f` and measures the CPU time all of the process's threads spent.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let before = cpu_time();
    let out = f();
    (out, cpu_time().saturating_sub(before))
}

/// CPU time of all threads of this process, in nanoseconds precision, from
/// /proc/self/task/*/schedstat (zero where that is missing).
fn cpu_time() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let ns: u64 = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(ns)
}

fn row(name: String, c: &FileCheck, cpu: Duration, expected: Option<Verdict>) -> Row {
    let verdict = match &c.outcome {
        Ok(r) => r.verdict().as_str().to_string(),
        Err(e) => format!("error: {e}"),
    };
    let ops = c.outcome.as_ref().map(|r| r.calls()).unwrap_or(0);
    Row {
        name,
        ops,
        verdict,
        expected,
        read: c.read_time,
        check: c.check_time,
        cpu,
    }
}

/// Prints a set's table and totals; returns how many verdicts differ.
fn print_set(out: &mut String, set: &str, rows: &[Row], wall: Duration, verbose: bool) -> usize {
    let _ = writeln!(out, "\n== {set}: {} files", rows.len());
    let _ = writeln!(
        out,
        "{:<40} {:>6} {:>9} {:>9} {:>9} {:>9}  note",
        "file", "ops", "verdict", "read ms", "check ms", "cpu ms"
    );
    let mut mismatches = 0;
    let (mut read, mut check, mut with_verdict, mut cpu) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    for r in rows {
        let note = match r.expected {
            None => "no published verdict".to_string(),
            Some(v) if v.as_str() == r.verdict => String::new(),
            Some(v) => {
                mismatches += 1;
                format!("MISMATCH: published {}", v.as_str())
            }
        };
        read += r.read;
        check += r.check;
        cpu += r.cpu;
        if r.expected.is_some() {
            with_verdict += r.check;
        }
        if verbose || rows.len() <= 10 || !note.is_empty() {
            let _ = writeln!(
                out,
                "{:<40} {:>6} {:>9} {:>9.3} {:>9.3} {:>9.3}  {note}",
                r.name,
                r.ops,
                r.verdict,
                ms(r.read),
                ms(r.check),
                ms(r.cpu)
            );
        }
    }
    let _ = writeln!(
        out,
        "total: check {:.1} ms ({:.1} ms for the files with a published verdict), read {:.1} ms, cpu (read + check) {:.1} ms",
        ms(check),
        ms(with_verdict),
        ms(read),
        ms(cpu)
    );
    let _ = writeln!(
        out,
        "whole set in parallel, reading included: {:.1} ms",
        ms(wall)
    );
    mismatches
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The process's peak resident memory (VmHWM of /proc/self/status), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The peak resident memory, for people.
fn peak_memory() -> Option<String> {
    peak_rss_bytes().map(|b| format!("{} MiB", b >> 20))
}
