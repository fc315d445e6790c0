//! The seed runner with the replay environment variable set.
//!
//! This file contains a single test because it changes the process environment, which every
//! test of the same binary would see.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};

use akkord_testkit::sim::{run_seeds, SEED_ENV};

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map(|text| (*text).to_owned())
            .unwrap_or_default(),
    }
}

#[test]
fn runner_replays_seed_from_environment() {
    // Without the variable, every seed runs and the first failure names its seed.
    std::env::remove_var(SEED_ENV);
    let ran = RefCell::new(Vec::new());
    let failure = panic::catch_unwind(AssertUnwindSafe(|| {
        run_seeds(0..10, |seed| {
            ran.borrow_mut().push(seed);
            if seed == 6 {
                Err(format!("member count diverged at seed {seed}"))
            } else {
                Ok(())
            }
        })
    }))
    .unwrap_err();
    let message = panic_text(failure);
    assert!(message.contains("failed with seed 6"), "{message}");
    assert!(message.contains("member count diverged"), "{message}");
    assert!(message.contains("AKKORD_SIM_SEED=6"), "{message}");
    assert_eq!(*ran.borrow(), (0..=6).collect::<Vec<u64>>());

    // With the variable, only that seed runs, even outside the range.
    std::env::set_var(SEED_ENV, "6");
    ran.borrow_mut().clear();
    let replayed = panic::catch_unwind(AssertUnwindSafe(|| {
        run_seeds(0..3, |seed| {
            ran.borrow_mut().push(seed);
            Err(format!("still failing at seed {seed}"))
        })
    }))
    .unwrap_err();
    let message = panic_text(replayed);
    assert!(message.contains("failed with seed 6"), "{message}");
    assert_eq!(*ran.borrow(), vec![6]);

    ran.borrow_mut().clear();
    let count = run_seeds(0..3, |seed| {
        ran.borrow_mut().push(seed);
        Ok::<(), String>(())
    });
    assert_eq!(count, 1);
    assert_eq!(*ran.borrow(), vec![6]);

    // An empty value counts as unset.
    std::env::set_var(SEED_ENV, "");
    assert_eq!(run_seeds(0..4, |_| Ok::<(), String>(())), 4);

    // A value that is not a number is rejected with a message naming it.
    std::env::set_var(SEED_ENV, "six");
    let invalid = panic::catch_unwind(|| run_seeds(0..4, |_| Ok::<(), String>(()))).unwrap_err();
    let message = panic_text(invalid);
    assert!(
        message.contains("AKKORD_SIM_SEED=six is not a valid seed"),
        "{message}"
    );
    std::env::remove_var(SEED_ENV);
}
