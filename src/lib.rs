//! faultline: a Jepsen-style fault-injection test harness.
//!
//! See ARCHITECTURE.md for the code map. `main.rs` only parses the command line
//! and calls into this library (`cli/` and the modules it names).

pub mod atomic_file;
pub mod checker;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod control;
pub mod disk;
pub mod fan_out;
pub mod fleet;
pub mod generator;
pub mod history;
pub mod logging;
pub mod nemesis;
pub mod net;
pub mod nodes;
pub mod os;
pub mod outcome;
pub mod report;
pub mod runner;
pub mod seed;
pub mod span;
pub mod store;
pub mod suite;
pub mod system;
pub mod workload;
pub mod yaml;
