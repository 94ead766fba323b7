//! One test run from start to end (`run.rs`), the pieces it is made of
//! (history recorder, client workers, checks, progress, output), and the
//! offline commands that share them (`check`, `bench`). The only module that
//! uses everything else.

pub mod args;
pub mod bench;
pub mod bench_controller;
pub mod bench_elle;
pub mod bench_register;
pub mod bench_system;
pub mod check;
pub mod checks;
pub mod first_anomaly;
pub mod junit;
pub mod liveness;
pub mod merge;
pub mod output;
pub mod progress;
pub mod recorder;
pub mod run;
pub mod suite;
pub mod suite_runs;
pub mod summary;
pub mod workers;
