//! `register` (read, write) and `cas-register` (read, write, cas): one model,
//! with cas switched on for `cas-register`.
//!
//! Semantics chosen by options, because the corpora disagree:
//! - the initial value (etcd: absent; Knossos: 0);
//! - what an `ok` read of `null` means: "the register is absent" (etcd) or
//!   "nothing was observed", which matches any value (Knossos).
//!
//! A cas that completed `fail` did nothing; it never reaches the model (the
//! checker drops every `fail` op). `null` and absent are the same value.
//!
//! Crashed writes and cas (outcome unknown) are where the search explodes,
//! so the model narrows what it tries, keeping every verdict:
//! - a crashed op placed in the order must be observed at once: the next op
//!   must be a read of the value it left or a cas from it (the state carries
//!   a [`PENDING`] mark until then, and a write is refused meanwhile). Any
//!   legal order can be made so: drop each crashed op followed by a write
//!   (the write hides it) or by nothing, until none is left;
//! - hence a crashed op that no read or cas of its value can follow (none
//!   returns after its invocation) never appears in such an order, and is
//!   left out before the search ([`Model::cannot_matter`], to a fixpoint:
//!   a crashed cas left out observes nothing);
//! - a crashed op that would leave the value as it was is never placed (drop
//!   it from any order and the rest stays legal), and a crashed cas from a
//!   value to itself is left out.

use crate::checker::linearizable::model::{Entry, Model, Observed, Values};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// What an `ok` read of `null` tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NilRead {
    /// The register held no value (etcd, faultline's own registers).
    #[default]
    Absent,
    /// The client learnt nothing; the read matches any value (Knossos).
    Any,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegisterOptions {
    /// The value before any write; `null` means absent.
    pub initial: Value,
    pub nil_read: NilRead,
}

impl Default for RegisterOptions {
    fn default() -> Self {
        RegisterOptions {
            initial: Value::Null,
            nil_read: NilRead::Absent,
        }
    }
}

#[derive(Debug)]
pub struct Register {
    values: Values,
    initial: u32,
    nil_read: NilRead,
    cas: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegisterOp {
    /// A read that observed this value (an interned id).
    Read(u32),
    /// A read that observed nothing: it timed out, or read `null` under
    /// [`NilRead::Any`].
    ReadAny,
    Write(u32),
    Cas {
        from: u32,
        to: u32,
    },
    /// A write whose outcome is unknown: placed only right before an op that
    /// observes its value (see the module doc).
    CrashedWrite(u32),
    /// A cas whose outcome is unknown, likewise.
    CrashedCas {
        from: u32,
        to: u32,
    },
}

/// The state's mark of a crashed op placed but not yet observed (value ids are below it).
pub const PENDING: u32 = 1 << 31;

impl RegisterOp {
    /// The value a crashed op leaves, if it takes effect.
    fn crashed_leaves(self) -> Option<u32> {
        match self {
            RegisterOp::CrashedWrite(v) | RegisterOp::CrashedCas { to: v, .. } => Some(v),
            _ => None,
        }
    }
}

impl Register {
    /// `cas`: whether cas ops are allowed (`cas-register`) or an input error (`register`).
    pub fn new(options: &RegisterOptions, cas: bool) -> Register {
        let mut values = Values::default();
        let initial = values.intern(&options.initial);
        Register {
            values,
            initial,
            nil_read: options.nil_read,
            cas,
        }
    }

    fn name(&self) -> &'static str {
        if self.cas { "cas-register" } else { "register" }
    }

    fn show(&self, id: u32) -> String {
        if id == Values::NULL {
            "absent".into()
        } else {
            self.values.get(id).to_string()
        }
    }
}

impl Model for Register {
    type Op = RegisterOp;
    type State = u32;

    fn parse(
        &mut self,
        f: &str,
        value: &Value,
        observed: Observed<'_>,
    ) -> Result<RegisterOp, String> {
        match f {
            "read" => Ok(match observed {
                Observed::Unknown => RegisterOp::ReadAny,
                Observed::Ok(Value::Null) if self.nil_read == NilRead::Any => RegisterOp::ReadAny,
                Observed::Ok(v) => RegisterOp::Read(self.values.intern(v)),
            }),
            "write" => {
                let v = self.values.intern(value);
                Ok(match observed {
                    Observed::Ok(_) => RegisterOp::Write(v),
                    Observed::Unknown => RegisterOp::CrashedWrite(v),
                })
            }
            "cas" if self.cas => match value.as_array().map(Vec::as_slice) {
                Some([from, to]) => {
                    let (from, to) = (self.values.intern(from), self.values.intern(to));
                    Ok(match observed {
                        Observed::Ok(_) => RegisterOp::Cas { from, to },
                        Observed::Unknown => RegisterOp::CrashedCas { from, to },
                    })
                }
                _ => Err(format!("a cas value must be [from, to], got {value}")),
            },
            "cas" => Err("the register model has no cas; use --model cas-register".into()),
            other => Err(format!(
                "the {} model knows read, write{}; got {other:?}",
                self.name(),
                if self.cas { ", cas" } else { "" }
            )),
        }
    }

    fn init(&self) -> u32 {
        self.initial
    }

    fn step(&mut self, &state: &u32, op: &RegisterOp) -> Option<u32> {
        let value = state & !PENDING;
        let pending = state & PENDING != 0;
        match *op {
            // Observing the value clears the mark.
            RegisterOp::Read(v) => (v == value).then_some(value),
            RegisterOp::ReadAny => Some(state),
            RegisterOp::Write(v) => (!pending).then_some(v),
            RegisterOp::Cas { from, to } => (from == value).then_some(to),
            // A crashed op that leaves the value as it was can be dropped from any order.
            RegisterOp::CrashedWrite(v) => (!pending && v != value).then_some(v | PENDING),
            RegisterOp::CrashedCas { from, to } => {
                (from == value && to != value).then_some(to | PENDING)
            }
        }
    }

    fn is_read_only(&self, op: &RegisterOp) -> bool {
        matches!(op, RegisterOp::Read(_) | RegisterOp::ReadAny)
    }

    fn skippable(&self, op: &RegisterOp) -> bool {
        match *op {
            RegisterOp::ReadAny => true,
            RegisterOp::CrashedCas { from, to } => from == to,
            _ => false,
        }
    }

    /// Crashed ops whose value nothing can observe right after them: no
    /// `ok` read of it or cas from it returns after their invocation, and
    /// no crashed cas from it is kept (see the module doc).
    fn cannot_matter(&self, entries: &[Entry<RegisterOp>]) -> Vec<bool> {
        // The last return of an `ok` observer of each value.
        let mut last_ok_observer: HashMap<u32, usize> = HashMap::new();
        for e in entries {
            if let (RegisterOp::Read(v) | RegisterOp::Cas { from: v, .. }, Some(ret)) =
                (e.op, e.ret)
            {
                let last = last_ok_observer.entry(v).or_insert(ret);
                *last = (*last).max(ret);
            }
        }
        let mut out = vec![false; entries.len()];
        // Each round leaves out at least one more op, or ends.
        for _ in 0..=entries.len() {
            let mut crashed_cas_from: HashMap<u32, usize> = HashMap::new();
            for (e, gone) in entries.iter().zip(&out) {
                if let (RegisterOp::CrashedCas { from, .. }, false) = (e.op, gone) {
                    *crashed_cas_from.entry(from).or_default() += 1;
                }
            }
            let mut changed = false;
            for (e, gone) in entries.iter().zip(out.iter_mut()) {
                let Some(v) = e.op.crashed_leaves() else {
                    continue;
                };
                let observed = last_ok_observer.get(&v).is_some_and(|&r| r > e.call)
                    || crashed_cas_from.get(&v).is_some_and(|&n| n > 0);
                if !*gone && !observed {
                    *gone = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        out
    }

    fn describe_state(&self, state: &u32) -> String {
        self.show(*state & !PENDING)
    }

    fn describe_op(&self, op: &RegisterOp) -> String {
        match *op {
            RegisterOp::Read(v) => format!("read -> {}", self.show(v)),
            RegisterOp::ReadAny => "read -> ?".into(),
            RegisterOp::Write(v) | RegisterOp::CrashedWrite(v) => format!("write {}", self.show(v)),
            RegisterOp::Cas { from, to } | RegisterOp::CrashedCas { from, to } => {
                format!("cas {} -> {}", self.show(from), self.show(to))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(
        m: &mut Register,
        f: &str,
        v: Value,
        seen: Option<Value>,
    ) -> Result<RegisterOp, String> {
        let observed = match &seen {
            Some(v) => Observed::Ok(v),
            None => Observed::Unknown,
        };
        m.parse(f, &v, observed)
    }

    #[test]
    fn nil_read_means_absent_or_anything_as_configured() {
        let mut etcd = Register::new(&RegisterOptions::default(), true);
        let read_nil = parse(&mut etcd, "read", json!(null), Some(json!(null))).unwrap();
        assert_eq!(etcd.step(&etcd.init(), &read_nil), Some(etcd.init()));
        let w = parse(&mut etcd, "write", json!(3), Some(json!(3))).unwrap();
        let s = etcd.step(&etcd.init(), &w).unwrap();
        assert_eq!(
            etcd.step(&s, &read_nil),
            None,
            "etcd: nil means absent, not 3"
        );

        let opts = RegisterOptions {
            initial: json!(0),
            nil_read: NilRead::Any,
        };
        let mut knossos = Register::new(&opts, true);
        let read_nil = parse(&mut knossos, "read", json!(null), Some(json!(null))).unwrap();
        assert!(knossos.skippable(&read_nil));
        let read0 = parse(&mut knossos, "read", json!(null), Some(json!(0))).unwrap();
        assert_eq!(
            knossos.step(&knossos.init(), &read0),
            Some(knossos.init()),
            "Knossos starts at 0"
        );
    }

    #[test]
    fn cas_applies_only_from_the_expected_value_and_plain_register_rejects_it() {
        let mut m = Register::new(&RegisterOptions::default(), true);
        let cas = parse(&mut m, "cas", json!([1, 2]), Some(json!([1, 2]))).unwrap();
        let w1 = parse(&mut m, "write", json!(1), None).unwrap();
        let one = m.step(&m.init(), &w1).unwrap();
        let two = m.step(&one, &cas).unwrap();
        assert_eq!(m.describe_state(&two), "2");
        assert_eq!(m.step(&m.init(), &cas), None);
        assert!(
            parse(&mut m, "cas", json!(3), None)
                .unwrap_err()
                .contains("[from, to]")
        );
        let mut plain = Register::new(&RegisterOptions::default(), false);
        assert!(
            parse(&mut plain, "cas", json!([1, 2]), None)
                .unwrap_err()
                .contains("cas-register")
        );
        assert!(
            parse(&mut plain, "append", json!(1), None)
                .unwrap_err()
                .contains("\"append\"")
        );
    }
}
