//! `faultline check`: read history files, check each, print a one-screen
//! summary and write one `results.json` holding every file.
//!
//! Raw command-line arguments ([`CheckArgs`]) are resolved once into the
//! checker's options ([`Checker`]). Files are checked in parallel (rayon), each
//! with its own time limit and memory budget. The checker is chosen by one
//! dispatch ([`check_file`]): linearizability, or with `--workload
//! list-append|rw-register` the Elle transactional checker.

use crate::checker::Verdict;
use crate::checker::elle::{self, ElleOptions, ElleResult};
use crate::checker::linearizable::{
    self, KeysMode, ModelKind, NilRead, Options, RegisterOptions, Report,
};
use crate::history::text::{clip_message, escape, escape_keep_lines, excerpt};
use crate::history::{Format, read_path};
use crate::outcome::Outcome;
use crate::report::results::{self, FileResult, Results, Valid};
use crate::suite::Span;
use anyhow::Context;
use clap::builder::{BoolishValueParser, PossibleValuesParser, TypedValueParser};
use rayon::prelude::*;
use serde_json::Value;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct CheckArgs {
    /// History files: faultline JSONL, Jepsen EDN (history.edn, or one vector
    /// as in Knossos), or Jepsen console logs.
    #[arg(required = true, value_name = "HISTORY")]
    pub histories: Vec<PathBuf>,
    /// The sequential model to check against.
    #[arg(long, default_value = "cas-register",
          value_parser = PossibleValuesParser::new(ModelKind::NAMES).map(|s| s.parse::<ModelKind>().expect("a listed name")))]
    pub model: ModelKind,
    /// The history file format; `auto` looks at the first line.
    #[arg(long, default_value = "auto",
          value_parser = PossibleValuesParser::new(["auto", "jsonl", "edn", "jepsen-log"]).map(|s| s.parse::<Format>().expect("a listed name")))]
    pub format: Format,
    /// How values carry keys: `tuple` ([key, value], each key checked on its
    /// own), `single` (one object), `auto` (tuple iff every client op value is
    /// a two-element array).
    #[arg(long, default_value = "auto",
          value_parser = PossibleValuesParser::new(KeysMode::NAMES).map(|s| s.parse::<KeysMode>().expect("a listed name")))]
    pub keys: KeysMode,
    /// Register models: the value before any write, as JSON (`null` = absent;
    /// Knossos histories start at `0`).
    #[arg(long, default_value = "null", value_name = "JSON")]
    pub initial_value: String,
    /// Register models: what an ok read of null means: `absent` (the register
    /// holds nothing: etcd, faultline) or `any` (nothing was learnt: Knossos).
    #[arg(long, default_value = "absent", value_parser = PossibleValuesParser::new(["absent", "any"]))]
    pub nil_read: String,
    /// Per file; past it the verdict is `unknown`.
    #[arg(long, default_value = "60s")]
    pub time_limit: Span,
    /// Per file, for the search's configuration caches; past it the verdict is `unknown`.
    #[arg(long, default_value_t = 2048, value_name = "MIB")]
    pub memory_limit_mb: u64,
    /// Where results.json is written.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub out: PathBuf,
    /// Check transactions with the Elle checker instead (`--model` and the
    /// register options then do not apply).
    #[arg(long, value_parser = PossibleValuesParser::new(["list-append", "rw-register"]))]
    pub workload: Option<String>,
    /// With --workload: the consistency model the history must satisfy, in
    /// Elle's names (read-committed, repeatable-read, snapshot-isolation,
    /// serializable, strong-session-serializable, strict-serializable, ...).
    #[arg(long, default_value = "strict-serializable", value_name = "MODEL")]
    pub consistency: String,
    /// With --workload: order each client's transactions (default: when the
    /// model needs it, as strong-session and strict models do).
    #[arg(long, value_name = "on|off", value_parser = BoolishValueParser::new())]
    pub process_order: Option<bool>,
    /// With --workload: order transactions by real time (default: when the
    /// model needs it, as strict-serializable does).
    #[arg(long, value_name = "on|off", value_parser = BoolishValueParser::new())]
    pub realtime_order: Option<bool>,
    /// With --workload rw-register: assume each key is sequentially
    /// consistent, so a process's later transactions see versions at least as
    /// new (an assumption about the database, off by default).
    #[arg(long)]
    pub sequential_keys: bool,
    /// With --workload rw-register: assume each key is linearizable, so a
    /// transaction invoked after another completed sees versions at least as
    /// new (an assumption about the database, off by default).
    #[arg(long)]
    pub linearizable_keys: bool,
}

/// Which checker, with its options.
#[derive(Debug, Clone)]
pub enum Checker {
    Linearizable(Options),
    Elle(ElleOptions),
}

impl CheckArgs {
    /// The checker, and its options, these arguments ask for.
    pub fn checker(&self) -> anyhow::Result<Checker> {
        let Some(workload) = &self.workload else {
            return Ok(Checker::Linearizable(self.options()?));
        };
        let workload = workload.parse().map_err(anyhow::Error::msg)?;
        let model = self
            .consistency
            .parse()
            .map_err(|e: String| anyhow::anyhow!("--consistency: {}", clip_message(&e)))?;
        let mut o = ElleOptions::new(workload, model);
        o.time_limit = self.time_limit.0;
        o.process_order = self.process_order.unwrap_or(o.process_order);
        o.realtime_order = self.realtime_order.unwrap_or(o.realtime_order);
        o.sequential_keys = self.sequential_keys;
        o.linearizable_keys = self.linearizable_keys;
        Ok(Checker::Elle(o))
    }

    /// The linearizability checker's options these arguments ask for.
    pub fn options(&self) -> anyhow::Result<Options> {
        let initial: Value = serde_json::from_str(&self.initial_value).map_err(|e| {
            anyhow::anyhow!(
                "--initial-value \"{}\" is not JSON (write 0, null or '\"text\"'): {}",
                excerpt(&self.initial_value),
                clip_message(&e.to_string())
            )
        })?;
        let nil_read = if self.nil_read == "any" {
            NilRead::Any
        } else {
            NilRead::Absent
        };
        Ok(Options {
            model: self.model,
            keys: self.keys,
            register: RegisterOptions { initial, nil_read },
            time_limit: self.time_limit.0,
            memory_limit_bytes: usize::try_from(self.memory_limit_mb.saturating_mul(1 << 20))
                .unwrap_or(usize::MAX),
        })
    }
}

/// What checking one file gave.
#[derive(Debug)]
pub struct FileCheck {
    pub path: PathBuf,
    pub read_time: Duration,
    pub check_time: Duration,
    pub history_ops: usize,
    pub truncated_line: Option<usize>,
    /// Why the file is known not to hold a whole history (see
    /// [`ends_early`]): the verdict is then at best unknown.
    pub ends_early: Option<String>,
    /// The report, or what was wrong with the file and where.
    pub outcome: Result<Checked, String>,
}

/// What a checker said about one file.
#[derive(Debug)]
pub enum Checked {
    Linearizable(Report),
    Elle(Box<ElleResult>),
}

impl Checked {
    pub fn verdict(&self) -> Verdict {
        match self {
            Checked::Linearizable(r) => r.verdict,
            Checked::Elle(r) => r.verdict,
        }
    }

    /// The linearizability report, if that checker ran.
    pub fn into_linearizable(self) -> Option<Report> {
        match self {
            Checked::Linearizable(r) => Some(r),
            Checked::Elle(_) => None,
        }
    }

    /// Client operations (linearizability) or transactions (Elle) checked.
    pub fn calls(&self) -> usize {
        match self {
            Checked::Linearizable(r) => r.client_calls,
            Checked::Elle(r) => r.stats.txns,
        }
    }
}

impl FileCheck {
    /// The checker's verdict, at best unknown for a history that ends early:
    /// an anomaly in a prefix is one in the whole, a valid prefix says
    /// nothing of the rest.
    pub fn verdict(&self) -> Option<Verdict> {
        let checked = self.outcome.as_ref().ok()?.verdict();
        Some(match self.ends_early {
            Some(_) => checked.combine(Verdict::Unknown),
            None => checked,
        })
    }

    /// The verdict; a file that could not be checked is a harness error.
    pub fn outcome(&self) -> Outcome {
        self.verdict().map_or(Outcome::HarnessError, Outcome::from)
    }
}

/// Why the history at `path` is known to end early: its last line was cut
/// off mid-write, or it is a run's history.jsonl (a test.yaml beside it)
/// whose last line is not the end record the run writes once it has written
/// everything (`history::jsonl::END_OF_HISTORY`): the cut fell between lines.
pub fn ends_early(path: &Path, truncated_line: Option<usize>) -> Option<String> {
    if let Some(line) = truncated_line {
        return Some(format!(
            "the history ends early: line {line} was cut off mid-write; checked as far as it goes"
        ));
    }
    let in_run_folder = path.file_name().is_some_and(|n| n == "history.jsonl")
        && path.with_file_name("test.yaml").is_file();
    if in_run_folder && !crate::history::jsonl::ends_whole(path).unwrap_or(false) {
        return Some(format!(
            "the history ends early: the run did not finish writing it (no `{}` record at its end); \
             checked as far as it goes",
            crate::history::jsonl::END_OF_HISTORY
        ));
    }
    None
}

/// Reads and checks one history file.
pub fn check_file(path: &Path, format: Format, checker: &Checker) -> FileCheck {
    let started = Instant::now();
    let mut check = FileCheck {
        path: path.into(),
        read_time: Duration::ZERO,
        check_time: Duration::ZERO,
        history_ops: 0,
        truncated_line: None,
        ends_early: None,
        outcome: Err(String::new()),
    };
    let outcome = match checker {
        Checker::Linearizable(options) => read_path(path, format)
            .map_err(|e| e.to_string())
            .and_then(|history| {
                check.history_ops = history.ops.len();
                check.truncated_line = history.truncated_line;
                check.read_time = started.elapsed();
                linearizable::check(&history.ops, options)
                    .map(Checked::Linearizable)
                    .map_err(|e| format!("{}: {e}", path.display()))
            }),
        Checker::Elle(options) => read_txns(path, format).and_then(|(txns, ops, truncated)| {
            check.history_ops = ops;
            check.truncated_line = truncated;
            check.read_time = started.elapsed();
            elle::check_txns(&txns, options)
                .map(|r| Checked::Elle(Box::new(r)))
                .map_err(|e| format!("{}: {e}", path.display()))
        }),
    };
    // Errors quote the history: at most excerpts of it, in results.json too.
    let outcome = outcome.map_err(|e| clip_message(&e));
    if check.read_time == Duration::ZERO {
        check.read_time = started.elapsed();
    }
    check.check_time = started.elapsed() - check.read_time;
    if outcome.is_ok() {
        check.ends_early = ends_early(path, check.truncated_line);
    }
    check.outcome = outcome;
    check
}

/// Reads a transactional history: JSONL through the fast typed reader,
/// other formats through the importers. Gives the transactions, the number
/// of history ops (when known) and a cut-off last line.
fn read_txns(
    path: &Path,
    format: Format,
) -> Result<(crate::history::txn::Txns, usize, Option<usize>), String> {
    use crate::history::txn;
    let jsonl = match format {
        Format::Jsonl => true,
        Format::Auto => starts_like_jsonl(path),
        _ => false,
    };
    if jsonl {
        let read = txn::read_jsonl(path).map_err(|e| e.to_string())?;
        let ops = read
            .txns
            .txns
            .iter()
            .map(|t| 1 + usize::from(t.complete_index.is_some()))
            .sum();
        return Ok((read.txns, ops, read.truncated_line));
    }
    let history = read_path(path, format).map_err(|e| e.to_string())?;
    let txns = txn::Txns::from_ops(&history.ops).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((txns, history.ops.len(), history.truncated_line))
}

/// Whether a file's first non-blank text opens a JSON object (`{"`).
fn starts_like_jsonl(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    head[..n].trim_ascii_start().starts_with(b"{\"")
}

/// `faultline check`: checks every file, prints the summary, writes
/// results.json. Returns the worst file's outcome.
pub fn run(args: &CheckArgs) -> anyhow::Result<Outcome> {
    let checker = args.checker()?;
    let checks: Vec<FileCheck> = args
        .histories
        .par_iter()
        .map(|p| check_file(p, args.format, &checker))
        .collect();
    let results = to_results(&checks, &checker);
    let path = args.out.join(results::FILE_NAME);
    write_results(&path, &results)?;
    // Keys, values and file names come from outside: no terminal escapes,
    // no bidirectional overrides reach the screen.
    print!("{}", escape_keep_lines(&summary(&checks, &checker)));
    println!("results: {}", escape(&path.display().to_string()));
    Ok(Outcome::worst(checks.iter().map(FileCheck::outcome)))
}

/// Writes through a temporary file, so no reader sees half of it.
pub fn write_results(path: &Path, results: &Results) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(results).context("serialising results")?;
    crate::atomic_file::write(path, (text + "\n").as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// One screen: a line per file; with a single file, also why it is not valid.
pub fn summary(checks: &[FileCheck], checker: &Checker) -> String {
    let width = checks
        .iter()
        .map(|c| c.path.display().to_string().len())
        .max()
        .unwrap_or(0);
    let mut s = String::new();
    for c in checks {
        let name = c.path.display().to_string();
        let _ = match &c.outcome {
            Err(e) => writeln!(s, "{name:width$}  ERROR    {e}"),
            Ok(r) => writeln!(
                s,
                "{name:width$}  {:<7}  {}",
                verdict_word(c.verdict().unwrap_or(r.verdict())),
                match (r, checker) {
                    (Checked::Linearizable(r), Checker::Linearizable(options)) =>
                        file_detail(c, r, options),
                    (Checked::Elle(r), _) => elle_detail(c, r),
                    (Checked::Linearizable(_), Checker::Elle(_)) =>
                        unreachable!("the checker made the report"),
                }
            ),
        };
        if let Some(why) = &c.ends_early {
            let _ = writeln!(s, "{:width$}  ({why})", "");
        }
    }
    if let [only] = checks
        && let Ok(Checked::Elle(r)) = &only.outcome
        && r.verdict != Verdict::Valid
    {
        s += &r.render_text();
    } else if let [only] = checks
        && let Ok(Checked::Linearizable(report)) = &only.outcome
    {
        for k in report.keys.iter().filter(|k| k.explanation.is_some()) {
            if let Some(key) = &k.key {
                let _ = writeln!(s, "key {key}:");
            }
            s += &k.explanation.as_ref().expect("filtered").text("  ");
        }
    } else if checks.len() > 1 {
        let count = |o| checks.iter().filter(|c| c.outcome() == o).count();
        let _ = writeln!(
            s,
            "{} histories: {} valid, {} invalid, {} unknown, {} not checked",
            checks.len(),
            count(Outcome::Valid),
            count(Outcome::Invalid),
            count(Outcome::Unknown),
            count(Outcome::HarnessError)
        );
    }
    s
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Valid => "valid",
        Verdict::Invalid => "INVALID",
        Verdict::Unknown => "unknown",
    }
}

/// `85 ops, 1 key, 0.4 ms` and, when not valid, the first reason.
fn file_detail(c: &FileCheck, r: &Report, options: &Options) -> String {
    let keys = if r.keyed {
        format!("{} keys", r.keys.len())
    } else {
        "1 object".into()
    };
    let mut d = format!("{} ops, {keys}, {}", r.client_calls, millis(c.check_time));
    let worst = r
        .keys
        .iter()
        .find(|k| k.explanation.is_some())
        .or_else(|| r.keys.iter().find(|k| k.stopped.is_some()));
    if let Some(k) = worst {
        let key = k
            .key
            .as_ref()
            .map(|key| format!("key {key}: "))
            .unwrap_or_default();
        let why = match (&k.explanation, k.stopped) {
            (Some(e), _) => format!("cannot place {}", e.op.line()),
            (None, Some(reason)) => linearizable::describe_stop(reason, options),
            (None, None) => unreachable!("found by one of the two"),
        };
        let _ = write!(d, "  {key}{why}");
    }
    d
}

/// `1000 txns, 12.3 ms, G-single (1): not snapshot-isolation, repeatable-read`.
fn elle_detail(c: &FileCheck, r: &ElleResult) -> String {
    let mut d = format!(
        "{} txns, {}, {}",
        r.stats.txns,
        millis(c.check_time),
        r.model
    );
    if !r.counts.is_empty() {
        let found: Vec<String> = r.counts.iter().map(|(a, n)| format!("{a} ({n})")).collect();
        let _ = write!(d, "  {}", found.join(", "));
    }
    if !r.boundary.not.is_empty() {
        let not: Vec<&str> = r.boundary.not.iter().map(|m| m.name()).collect();
        let _ = write!(d, ": not {}", not.join(", "));
    }
    if let Some(why) = r.why_unknown() {
        let _ = write!(d, "  ({why})");
    }
    d
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The results.json of these checks.
pub fn to_results(checks: &[FileCheck], checker: &Checker) -> Results {
    let files: Vec<FileResult> = checks.iter().map(|c| file_result(c, checker)).collect();
    let worst = Outcome::worst(checks.iter().map(FileCheck::outcome));
    Results {
        schema_version: results::SCHEMA_VERSION,
        tool: format!("faultline {}", env!("CARGO_PKG_VERSION")),
        // A file that could not be checked makes the whole unknown.
        valid: Valid::from(worst.verdict().unwrap_or(Verdict::Unknown)),
        files,
        run: None,
    }
}

fn file_result(c: &FileCheck, checker: &Checker) -> FileResult {
    let timings_ms = results::Timings {
        read: ms(c.read_time),
        check: ms(c.check_time),
        total: ms(c.read_time + c.check_time),
    };
    let mut f = FileResult {
        path: c.path.display().to_string(),
        valid: Valid::Unknown,
        error: None,
        checker: match checker {
            Checker::Linearizable(_) => "linearizable",
            Checker::Elle(_) => "elle",
        }
        .into(),
        timings_ms,
        ends_early: c.ends_early.clone(),
        linearizable: None,
        elle: None,
    };
    match (&c.outcome, checker) {
        (Err(e), _) => f.error = Some(e.clone()),
        (Ok(r), Checker::Linearizable(options)) => {
            f.valid = Valid::from(c.verdict().unwrap_or(r.verdict()));
            if let Checked::Linearizable(r) = r {
                f.linearizable = Some(linearizable_result(c, r, options));
            }
        }
        (Ok(r), Checker::Elle(_)) => {
            f.valid = Valid::from(c.verdict().unwrap_or(r.verdict()));
            if let Checked::Elle(r) = r {
                f.elle = Some(elle_result(c, r));
            }
        }
    }
    f
}

fn elle_result(c: &FileCheck, r: &ElleResult) -> results::Elle {
    let names = |ms: &[elle::Model]| ms.iter().map(|m| m.name().to_string()).collect();
    let b = &r.boundary;
    results::Elle {
        workload: r.workload.name().into(),
        consistency: r.model.name().into(),
        process_order: r.process_order,
        realtime_order: r.realtime_order,
        counts: results::ElleCounts {
            history_ops: c.history_ops,
            txns: r.stats.txns,
            ok: r.stats.ok,
            info: r.stats.info,
            fail: r.stats.fail,
            truncated_line: c.truncated_line,
        },
        anomaly_types: r.anomaly_names(),
        anomaly_counts: r.counts.iter().map(|(a, n)| (a.name(), *n)).collect(),
        violating: r.violating.iter().map(|a| a.name()).collect(),
        incomplete: r.incomplete.iter().map(|a| a.name()).collect(),
        not: names(&b.not),
        also_not: names(&b.also_not),
        possible: names(&b.possible),
        strongest_possible: names(&b.strongest_possible),
        unchecked: names(&b.unchecked),
        anomalies: r
            .cases
            .iter()
            .map(|k| results::ElleCase {
                anomaly: k.anomaly.name(),
                key: k.key.clone(),
                txns: k
                    .witnesses
                    .iter()
                    .map(|w| results::TxnRef {
                        index: w.index,
                        invoke_index: w.invoke_index,
                        process: w.process,
                        outcome: w.outcome.into(),
                        ops: w.ops.clone(),
                    })
                    .collect(),
                steps: k
                    .steps
                    .iter()
                    .map(|st| results::CycleStep {
                        from: st.from,
                        to: st.to,
                        relation: st.relation.into(),
                        key: st.key.clone(),
                        text: st.text.clone(),
                    })
                    .collect(),
                dot: k.dot.clone(),
                text: k.text.clone(),
            })
            .collect(),
        graph: results::ElleGraph {
            txn_nodes: r.stats.txn_nodes,
            barrier_nodes: r.stats.barrier_nodes,
            edges: r.stats.edges,
            sccs: r.stats.sccs,
            largest_scc: r.stats.largest_scc,
        },
        phases_ms: results::EllePhases {
            infer: ms(r.timings.infer),
            graph: ms(r.timings.graph),
            scc: ms(r.timings.scc),
            cycles: ms(r.timings.cycles),
            weak: ms(r.timings.weak),
        },
        text: r.render_text(),
    }
}

fn linearizable_result(c: &FileCheck, r: &Report, options: &Options) -> results::Linearizable {
    results::Linearizable {
        model: options.model.as_str().into(),
        options: results::LinearizableOptions {
            keys: if r.keyed { "tuple" } else { "single" }.into(),
            initial_value: options.register.initial.clone(),
            nil_read: match options.register.nil_read {
                NilRead::Absent => "absent",
                NilRead::Any => "any",
            }
            .into(),
            time_limit_ms: u64::try_from(options.time_limit.as_millis()).unwrap_or(u64::MAX),
            memory_limit_mb: (options.memory_limit_bytes >> 20) as u64,
        },
        counts: results::Counts {
            history_ops: c.history_ops,
            client_calls: r.client_calls,
            failed: r.failed,
            unknown_outcome: r.unknown,
            truncated_line: c.truncated_line,
        },
        keys: r
            .keys
            .iter()
            .map(|k| results::KeyResult {
                key: k.key.clone().unwrap_or(Value::Null),
                valid: k.verdict.into(),
                ops: k.ops,
                configurations: k.configurations,
                time_ms: ms(k.elapsed),
                reason: k.stopped.map(|s| linearizable::describe_stop(s, options)),
                explanation: k.explanation.as_ref().map(explanation),
            })
            .collect(),
    }
}

fn explanation(e: &linearizable::explain::Explanation) -> results::Explanation {
    results::Explanation {
        op: op_ref(&e.op),
        prefix: e.prefix.clone(),
        prefix_tail: e
            .prefix_tail
            .iter()
            .map(|s| results::PrefixStep {
                op: op_ref(&s.op),
                state_after: s.state_after.clone(),
            })
            .collect(),
        states_before: e.states_before.clone(),
        concurrent: e.concurrent.iter().map(op_ref).collect(),
        concurrent_total: e.concurrent_total,
        text: e.text(""),
    }
}

fn op_ref(o: &linearizable::explain::OpInfo) -> results::OpRef {
    results::OpRef {
        index: o.index,
        completion_index: o.completion_index,
        process: o.process,
        op: o.text.clone(),
    }
}
