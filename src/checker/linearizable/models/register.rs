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

use crate::checker::linearizable::model::{Model, Observed, Values};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
            "write" => Ok(RegisterOp::Write(self.values.intern(value))),
            "cas" if self.cas => match value.as_array().map(Vec::as_slice) {
                Some([from, to]) => Ok(RegisterOp::Cas {
                    from: self.values.intern(from),
                    to: self.values.intern(to),
                }),
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
        match *op {
            RegisterOp::Read(v) => (v == state).then_some(state),
            RegisterOp::ReadAny => Some(state),
            RegisterOp::Write(v) => Some(v),
            RegisterOp::Cas { from, to } => (from == state).then_some(to),
        }
    }

    fn is_read_only(&self, op: &RegisterOp) -> bool {
        matches!(op, RegisterOp::Read(_) | RegisterOp::ReadAny)
    }

    fn skippable(&self, op: &RegisterOp) -> bool {
        matches!(op, RegisterOp::ReadAny)
    }

    fn describe_state(&self, state: &u32) -> String {
        self.show(*state)
    }

    fn describe_op(&self, op: &RegisterOp) -> String {
        match *op {
            RegisterOp::Read(v) => format!("read -> {}", self.show(v)),
            RegisterOp::ReadAny => "read -> ?".into(),
            RegisterOp::Write(v) => format!("write {}", self.show(v)),
            RegisterOp::Cas { from, to } => format!("cas {} -> {}", self.show(from), self.show(to)),
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
