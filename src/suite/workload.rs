//! Workloads: what the clients do and how the history is checked.
//!
//! A workload is a YAML map with a `kind` and the knobs that kind has; every
//! knob has a default, and a knob that does not apply to the kind is an error
//! (a typo must not be silently ignored). Presets live in `workloads/*.yaml`
//! and are built into the binary, so `faultline run` works from any folder.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    /// Independent keys, each a register: read, write, cas.
    Register,
    /// Transactions of appends and reads on lists (Elle).
    ListAppend,
    /// Transactions of writes and reads on registers (Elle).
    RwRegister,
    /// Transfers between accounts; the total is preserved.
    Bank,
    /// Adds of unique elements, reads of the whole set.
    Set,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckerName {
    Linearizable,
    Elle,
    Bank,
    Set,
}

/// A workload as written in YAML. Unset knobs take the kind's defaults in
/// [`WorkloadSpec::resolved`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    pub kind: WorkloadKind,
    /// Keys in use at a time (register, list-append, rw-register).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<u32>,
    /// Writes to a key before it retires and a fresh key replaces it, so that
    /// Elle can infer version orders (list-append, rw-register).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_writes_per_key: Option<u32>,
    /// Fewest and most micro-ops per transaction (list-append, rw-register).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn_len: Option<[u32; 2]>,
    /// Relative weights of the operations, e.g. `{read: 2, write: 1, cas: 1}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mix: Option<BTreeMap<String, u32>>,
    /// Register values are drawn from 0..values (register).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<u32>,
    /// Bank accounts, the balance each starts with, the largest transfer (bank).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_balance: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_transfer: Option<i64>,
    /// Checkers to run on the history; defaults to the kind's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkers: Option<Vec<CheckerName>>,
    /// The linearizability model (register: cas-register; set: set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The consistency model Elle checks against (list-append, rw-register).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
}

/// The operation names each kind can weigh in `mix`.
fn mix_ops(kind: WorkloadKind) -> &'static [&'static str] {
    match kind {
        WorkloadKind::Register => &["read", "write", "cas"],
        WorkloadKind::ListAppend => &["append", "r"],
        WorkloadKind::RwRegister => &["w", "r"],
        WorkloadKind::Bank => &["transfer", "read"],
        WorkloadKind::Set => &["add", "read"],
    }
}

impl WorkloadSpec {
    /// Checks that every knob set applies to the kind and is in range.
    /// The error names the knob; the caller adds the file and position.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        use WorkloadKind::*;
        let kind = self.kind;
        let applies: &[(&'static str, bool, &[WorkloadKind])] = &[
            (
                "keys",
                self.keys.is_some(),
                &[Register, ListAppend, RwRegister],
            ),
            (
                "max_writes_per_key",
                self.max_writes_per_key.is_some(),
                &[ListAppend, RwRegister],
            ),
            ("txn_len", self.txn_len.is_some(), &[ListAppend, RwRegister]),
            ("values", self.values.is_some(), &[Register]),
            ("accounts", self.accounts.is_some(), &[Bank]),
            ("initial_balance", self.initial_balance.is_some(), &[Bank]),
            ("max_transfer", self.max_transfer.is_some(), &[Bank]),
            ("model", self.model.is_some(), &[Register, Set]),
            (
                "consistency",
                self.consistency.is_some(),
                &[ListAppend, RwRegister],
            ),
        ];
        for (knob, set, kinds) in applies {
            if *set && !kinds.contains(&kind) {
                return Err((
                    knob,
                    format!("`{knob}` does not apply to a {} workload", kind_name(kind)),
                ));
            }
        }
        let positive = [
            ("keys", self.keys),
            ("max_writes_per_key", self.max_writes_per_key),
            ("values", self.values),
            ("accounts", self.accounts),
        ];
        for (knob, v) in positive {
            if v == Some(0) {
                return Err((knob, format!("`{knob}` must be at least 1")));
            }
        }
        if let Some([lo, hi]) = self.txn_len
            && (lo == 0 || lo > hi || hi > 64)
        {
            return Err((
                "txn_len",
                format!("`txn_len: [{lo}, {hi}]` must be [min, max] with 1 <= min <= max <= 64"),
            ));
        }
        if let Some(mix) = &self.mix {
            let known = mix_ops(kind);
            if let Some(op) = mix.keys().find(|op| !known.contains(&op.as_str())) {
                return Err((
                    "mix",
                    format!(
                        "`mix` names `{op}`, which a {} workload does not do (it does: {})",
                        kind_name(kind),
                        known.join(", ")
                    ),
                ));
            }
            if mix.values().all(|w| *w == 0) {
                return Err(("mix", "`mix` weights are all zero".into()));
            }
        }
        Ok(())
    }

    /// The same workload with every default filled in, as stored in test.yaml.
    pub fn resolved(&self) -> WorkloadSpec {
        use WorkloadKind::*;
        let kind = self.kind;
        let txn = matches!(kind, ListAppend | RwRegister);
        let default_mix: &[(&str, u32)] = match kind {
            Register => &[("read", 2), ("write", 1), ("cas", 1)],
            ListAppend => &[("append", 1), ("r", 1)],
            RwRegister => &[("w", 1), ("r", 1)],
            Bank => &[("transfer", 1), ("read", 1)],
            Set => &[("add", 9), ("read", 1)],
        };
        WorkloadSpec {
            kind,
            keys: self.keys.or(match kind {
                Register => Some(8),
                ListAppend | RwRegister => Some(10),
                _ => None,
            }),
            max_writes_per_key: self.max_writes_per_key.or(txn.then_some(32)),
            txn_len: self.txn_len.or(txn.then_some([1, 4])),
            mix: Some(self.mix.clone().unwrap_or_else(|| {
                default_mix
                    .iter()
                    .map(|(k, w)| (k.to_string(), *w))
                    .collect()
            })),
            values: self.values.or((kind == Register).then_some(5)),
            accounts: self.accounts.or((kind == Bank).then_some(5)),
            initial_balance: self.initial_balance.or((kind == Bank).then_some(10)),
            max_transfer: self.max_transfer.or((kind == Bank).then_some(5)),
            checkers: Some(self.checkers.clone().unwrap_or_else(|| {
                vec![match kind {
                    Register => CheckerName::Linearizable,
                    ListAppend | RwRegister => CheckerName::Elle,
                    Bank => CheckerName::Bank,
                    Set => CheckerName::Set,
                }]
            })),
            model: self
                .model
                .clone()
                .or((kind == Register).then(|| "cas-register".to_string())),
            consistency: self
                .consistency
                .clone()
                .or(txn.then(|| "strict-serializable".to_string())),
        }
    }
}

pub fn kind_name(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Register => "register",
        WorkloadKind::ListAppend => "list-append",
        WorkloadKind::RwRegister => "rw-register",
        WorkloadKind::Bank => "bank",
        WorkloadKind::Set => "set",
    }
}

/// The workload presets built into the binary: (name, YAML text).
pub const PRESETS: &[(&str, &str)] = &[
    ("register", include_str!("../../workloads/register.yaml")),
    (
        "list-append",
        include_str!("../../workloads/list-append.yaml"),
    ),
    (
        "rw-register",
        include_str!("../../workloads/rw-register.yaml"),
    ),
    ("bank", include_str!("../../workloads/bank.yaml")),
    ("set", include_str!("../../workloads/set.yaml")),
];
