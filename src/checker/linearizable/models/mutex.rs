//! `mutex`: `acquire` and `release` of one lock. Acquiring a held lock or
//! releasing a free one is impossible. Values are ignored.

use crate::checker::linearizable::model::{Model, Observed};
use serde_json::Value;

#[derive(Debug, Default)]
pub struct Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MutexOp {
    Acquire,
    Release,
}

impl Model for Mutex {
    type Op = MutexOp;
    /// Whether the lock is held.
    type State = bool;

    fn parse(
        &mut self,
        f: &str,
        _value: &Value,
        _observed: Observed<'_>,
    ) -> Result<MutexOp, String> {
        match f {
            "acquire" => Ok(MutexOp::Acquire),
            "release" => Ok(MutexOp::Release),
            other => Err(format!(
                "the mutex model knows acquire, release; got {other:?}"
            )),
        }
    }

    fn init(&self) -> bool {
        false
    }

    fn step(&mut self, &held: &bool, op: &MutexOp) -> Option<bool> {
        match op {
            MutexOp::Acquire => (!held).then_some(true),
            MutexOp::Release => held.then_some(false),
        }
    }

    fn skippable(&self, _op: &MutexOp) -> bool {
        false
    }

    fn describe_state(&self, &held: &bool) -> String {
        if held { "held".into() } else { "free".into() }
    }

    fn describe_op(&self, op: &MutexOp) -> String {
        match op {
            MutexOp::Acquire => "acquire".into(),
            MutexOp::Release => "release".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_cannot_be_acquired_and_a_free_one_not_released() {
        let mut m = Mutex;
        let held = m.step(&m.init(), &MutexOp::Acquire).unwrap();
        assert_eq!(m.step(&held, &MutexOp::Acquire), None);
        assert_eq!(m.step(&m.init(), &MutexOp::Release), None);
        assert_eq!(m.step(&held, &MutexOp::Release), Some(false));
    }
}
