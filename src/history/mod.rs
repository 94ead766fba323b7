//! Histories: the operation model, pairing, JSONL reading and writing,
//! importers for Jepsen's formats, and `text`: making text from a history (or
//! any input) safe to print and to quote in errors.
//!
//! Architecture invariant: this module imports nothing else of faultline. A
//! history is read years after the run, without hosts or networks.

pub mod edn;
pub mod import;
pub mod jsonl;
pub mod nemesis;
pub mod op;
pub mod pair;
pub mod text;
pub mod txn;

pub use import::{Format, read_path};
pub use jsonl::{HistoryError, ReadHistory};
pub use op::{Ended, Op, OpType, Process};
pub use pair::{Call, Outcome, pair};
