//! Doing one thing on every host (or node, or cluster) at once: one thread
//! per item, the results in the items' order, and one panic policy for all
//! of it. A panic in one item's work is that item's result ([`Panicked`]):
//! it never ends the controller and never loses the other items' results.
//!
//! Not here: what a failure means. Each caller turns [`Panicked`] into its
//! own error for that item, with the item's name (the host's, mostly).

use std::any::Any;
use std::cell::Cell;

/// One item's work panicked: the panic's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panicked(pub String);

impl std::fmt::Display for Panicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

thread_local! {
    static WORKER: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread runs one item's work for [`on_every`]. The process's
/// panic hook lets such a panic unwind (it becomes that item's error)
/// instead of ending the process.
pub fn is_worker() -> bool {
    WORKER.with(Cell::get)
}

/// Runs `work` on every item at once (a thread each, so the slowest item
/// sets the time) and returns each item's result, in the order of `items`.
/// The number of threads is the number of items: hosts of one cluster.
pub fn on_every<T, R, F>(items: &[T], work: F) -> Vec<Result<R, Panicked>>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let work = &work;
    let log = crate::logging::current();
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .iter()
            .map(|item| {
                let log = log.clone();
                scope.spawn(move || {
                    WORKER.with(|w| w.set(true));
                    crate::logging::adopt(log);
                    work(item)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|payload| Panicked(message(&*payload))))
            .collect()
    })
}

/// A panic's message: the text given to `panic!`, when there is one.
fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn results_come_back_in_the_order_of_the_items() {
        // The first items finish last: the order is the items', not the finishing order.
        let items: Vec<u64> = (0..8).collect();
        let results = on_every(&items, |&i| {
            std::thread::sleep(Duration::from_millis(5 * (8 - i)));
            i * 10
        });
        let values: Vec<u64> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(values, [0, 10, 20, 30, 40, 50, 60, 70]);
    }

    #[test]
    fn items_run_at_once() {
        let items = [(); 6];
        let started = Instant::now();
        on_every(&items, |()| std::thread::sleep(Duration::from_millis(200)));
        // One after the other would take 1.2 s.
        assert!(started.elapsed() < Duration::from_millis(1000));
    }

    #[test]
    fn one_items_error_or_panic_does_not_lose_the_others() {
        let items = ["n1", "n2", "n3", "n4"];
        let results = on_every(&items, |&name| match name {
            "n2" => Err(format!("{name}: refused")),
            "n3" => panic!("{name} fell over"),
            _ => Ok(name.len()),
        });
        assert_eq!(results.len(), 4);
        assert_eq!(results[0], Ok(Ok(2)));
        assert_eq!(results[1], Ok(Err("n2: refused".to_string())));
        assert_eq!(results[2], Err(Panicked("n3 fell over".to_string())));
        assert_eq!(results[3], Ok(Ok(2)));
    }

    #[test]
    fn a_panic_with_a_plain_message_is_kept_and_workers_know_what_they_are() {
        assert!(!is_worker());
        let results = on_every(&[1, 2], |&i| {
            assert!(is_worker());
            if i == 2 {
                std::panic::panic_any(7u8);
            }
            i
        });
        assert_eq!(results[0], Ok(1));
        assert_eq!(
            results[1],
            Err(Panicked("a panic without a message".to_string()))
        );
        assert!(!is_worker());
        assert!(on_every(&[] as &[u8], |_| ()).is_empty());
    }
}
