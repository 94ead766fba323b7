//! faultline: a Jepsen-style fault-injection test harness.
//!
//! See ARCHITECTURE.md for the code map. `main.rs` only parses the command line
//! and calls into this library.

pub mod atomic_file;
pub mod checker;
pub mod client;
pub mod cluster;
pub mod control;
pub mod db;
pub mod generator;
pub mod history;
pub mod nemesis;
pub mod net;
pub mod nodes;
pub mod os;
pub mod outcome;
pub mod report;
pub mod runner;
pub mod span;
pub mod store;
pub mod suite;
pub mod workload;
pub mod yaml;
