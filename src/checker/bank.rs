//! The bank checker: money is neither made nor lost.
//!
//! Accounts start with known balances and transfers move money between them.
//! Every successful read of all accounts must sum to the initial total, and no
//! balance may be negative. Each bad read is reported with its time and the
//! faults in place then, so a reader sees which fault broke the invariant.

use super::evidence::{Cell, Evidence, Table};
use super::{HistoryChecker, Judgement, Verdict};
use crate::history::nemesis::{fault_intervals, faults_at};
use crate::history::{Op, OpType};
use serde::Serialize;
use serde_json::Value;

/// What the workload promised: the accounts and the money in the bank.
#[derive(Debug, Clone)]
pub struct BankOptions {
    pub accounts: Vec<String>,
    pub total: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum BankErrorKind {
    /// The balances do not sum to the total.
    WrongTotal,
    /// A balance below zero.
    NegativeBalance,
    /// An account missing from the read, or one that does not exist.
    UnexpectedAccounts,
    /// A balance that is not an integer.
    Malformed,
}

impl BankErrorKind {
    /// The anomaly's name, as results and summaries spell it.
    pub fn name(&self) -> &'static str {
        match self {
            BankErrorKind::WrongTotal => "wrong-total",
            BankErrorKind::NegativeBalance => "negative-balance",
            BankErrorKind::UnexpectedAccounts => "unexpected-accounts",
            BankErrorKind::Malformed => "malformed",
        }
    }
}

/// One read that broke the bank's invariant.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BadRead {
    pub kind: BankErrorKind,
    /// History index of the read's completion.
    pub index: u64,
    pub time_ns: u64,
    pub process: String,
    pub balances: Value,
    /// The sum of the balances read (when they were integers).
    pub total: Option<i64>,
    pub expected_total: i64,
    /// Faults in place when the read completed.
    pub faults: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BankResult {
    pub verdict: Verdict,
    pub reads_checked: usize,
    pub bad_reads: Vec<BadRead>,
}

/// Checks every ok read of the history.
pub fn check(ops: &[Op], opts: &BankOptions) -> BankResult {
    let intervals = fault_intervals(ops);
    let mut bad_reads = Vec::new();
    let mut reads_checked = 0;
    for op in ops
        .iter()
        .filter(|op| op.is_client() && op.kind == OpType::Ok && op.f == "read")
    {
        reads_checked += 1;
        if let Some((kind, total)) = bad_read(&op.value, opts) {
            bad_reads.push(BadRead {
                kind,
                index: op.index,
                time_ns: op.time,
                process: op.process.to_string(),
                balances: op.value.clone(),
                total,
                expected_total: opts.total,
                faults: faults_at(&intervals, op.time),
            });
        }
    }
    let verdict = if bad_reads.is_empty() {
        Verdict::Valid
    } else {
        Verdict::Invalid
    };
    BankResult {
        verdict,
        reads_checked,
        bad_reads,
    }
}

impl HistoryChecker for BankOptions {
    fn name(&self) -> &'static str {
        "bank"
    }

    fn check(&self, ops: &[Op]) -> Judgement {
        judge(&check(ops, self), self)
    }
}

/// The bank's result in words and as evidence: each bad read with its
/// balances and the faults in place.
fn judge(r: &BankResult, options: &BankOptions) -> Judgement {
    let mut anomalies: Vec<String> = r
        .bad_reads
        .iter()
        .map(|b| b.kind.name().to_string())
        .collect();
    anomalies.sort();
    anomalies.dedup();
    let summary = match r.bad_reads.first() {
        None => format!(
            "{} reads, every one summed to {}",
            r.reads_checked, options.total
        ),
        Some(b) => format!(
            "{} of {} reads wrong; first at op {} ({}): total {} (expected {}){}",
            r.bad_reads.len(),
            r.reads_checked,
            b.index,
            anomalies.join(", "),
            b.total.map_or("?".into(), |t| t.to_string()),
            b.expected_total,
            if b.faults.is_empty() {
                String::new()
            } else {
                format!(" during {}", b.faults.join(" + "))
            }
        ),
    };
    let mut evidence = Evidence::new()
        .fact("reads checked", r.reads_checked)
        .fact("broke the invariant", r.bad_reads.len());
    for a in &anomalies {
        let n = r.bad_reads.iter().filter(|b| b.kind.name() == a).count();
        evidence = evidence.count(a, n);
    }
    let table = Table::new(
        "",
        &[
            "read",
            "process",
            "what",
            "total",
            "balances",
            "faults in place",
        ],
    )
    .rows(&r.bad_reads, |b| {
        vec![
            Cell::op(b.index, Some(b.time_ns)),
            Cell::text(&b.process),
            Cell::chip(b.kind.name()),
            Cell::text(format!(
                "{} (expected {})",
                b.total.map_or("?".to_string(), |t| t.to_string()),
                b.expected_total
            )),
            Cell::value(&b.balances),
            Cell::text(if b.faults.is_empty() {
                "none".to_string()
            } else {
                b.faults.join(" + ")
            }),
        ]
    })
    .of(r.bad_reads.len(), "bad reads");
    Judgement {
        verdict: r.verdict,
        summary,
        anomalies,
        detail: super::detail(r),
        evidence: evidence.table(table),
    }
}

/// Why a read of `{account: balance}` is wrong, with its sum; `None` if it is right.
fn bad_read(value: &Value, opts: &BankOptions) -> Option<(BankErrorKind, Option<i64>)> {
    let Value::Object(balances) = value else {
        return Some((BankErrorKind::Malformed, None));
    };
    let mut sum: i64 = 0;
    let mut negative = false;
    for balance in balances.values() {
        let Some(b) = balance.as_i64() else {
            return Some((BankErrorKind::Malformed, None));
        };
        negative |= b < 0;
        sum = sum.saturating_add(b);
    }
    let same_accounts = balances.len() == opts.accounts.len()
        && opts.accounts.iter().all(|a| balances.contains_key(a));
    if !same_accounts {
        Some((BankErrorKind::UnexpectedAccounts, Some(sum)))
    } else if sum != opts.total {
        Some((BankErrorKind::WrongTotal, Some(sum)))
    } else if negative {
        Some((BankErrorKind::NegativeBalance, Some(sum)))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Process;
    use serde_json::json;

    #[test]
    fn kind_names_are_their_serde_names() {
        for k in [
            BankErrorKind::WrongTotal,
            BankErrorKind::NegativeBalance,
            BankErrorKind::UnexpectedAccounts,
            BankErrorKind::Malformed,
        ] {
            assert_eq!(serde_json::to_value(&k).unwrap(), json!(k.name()));
        }
    }

    fn op(index: u64, process: Process, kind: OpType, f: &str, value: Value) -> Op {
        Op {
            index,
            time: index * 10,
            process,
            kind,
            f: f.into(),
            value,
            node: None,
            error: None,
        }
    }

    fn opts() -> BankOptions {
        BankOptions {
            accounts: vec!["0".into(), "1".into()],
            total: 20,
        }
    }

    #[test]
    fn consistent_reads_are_valid() {
        let ops = vec![
            op(0, Process::Client(0), OpType::Invoke, "read", Value::Null),
            op(
                1,
                Process::Client(0),
                OpType::Ok,
                "read",
                json!({"0": 10, "1": 10}),
            ),
            op(
                2,
                Process::Client(1),
                OpType::Invoke,
                "transfer",
                json!({"from": 0, "to": 1, "amount": 5}),
            ),
            op(
                3,
                Process::Client(1),
                OpType::Ok,
                "transfer",
                json!({"from": 0, "to": 1, "amount": 5}),
            ),
            op(4, Process::Client(0), OpType::Invoke, "read", Value::Null),
            op(
                5,
                Process::Client(0),
                OpType::Ok,
                "read",
                json!({"0": 5, "1": 15}),
            ),
        ];
        let r = check(&ops, &opts());
        assert_eq!((r.verdict, r.reads_checked), (Verdict::Valid, 2));
    }

    #[test]
    fn reports_each_bad_read_with_the_faults_in_place() {
        let ops = vec![
            op(
                0,
                Process::Nemesis,
                OpType::Info,
                "start-partition",
                json!({"n1": ["n2"]}),
            ),
            op(1, Process::Client(0), OpType::Invoke, "read", Value::Null),
            op(
                2,
                Process::Client(0),
                OpType::Ok,
                "read",
                json!({"0": 15, "1": 10}),
            ),
            op(
                3,
                Process::Nemesis,
                OpType::Info,
                "stop-partition",
                Value::Null,
            ),
            op(4, Process::Client(0), OpType::Invoke, "read", Value::Null),
            op(
                5,
                Process::Client(0),
                OpType::Ok,
                "read",
                json!({"0": 25, "1": -5}),
            ),
            op(6, Process::Client(0), OpType::Invoke, "read", Value::Null),
            op(7, Process::Client(0), OpType::Ok, "read", json!({"0": 20})),
            op(8, Process::Client(0), OpType::Invoke, "read", Value::Null),
            op(
                9,
                Process::Client(0),
                OpType::Fail,
                "read",
                json!({"0": 99, "1": 0}),
            ),
        ];
        let r = check(&ops, &opts());
        assert_eq!(r.verdict, Verdict::Invalid);
        let got: Vec<_> = r
            .bad_reads
            .iter()
            .map(|b| (b.kind.clone(), b.index, b.total, b.faults.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    BankErrorKind::WrongTotal,
                    2,
                    Some(25),
                    vec!["partition".to_string()]
                ),
                (BankErrorKind::NegativeBalance, 5, Some(20), vec![]),
                (BankErrorKind::UnexpectedAccounts, 7, Some(20), vec![]),
            ]
        );
    }
}
