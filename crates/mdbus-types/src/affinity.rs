//! CPU affinity: pin a thread to one core.
//!
//! Low-latency users pin: the publisher and its WAL threads on one core,
//! each busy-spinning subscriber on a core of its own, so that no thread of
//! the bus preempts another (measured here: a spinning subscriber was
//! preempted ~600 times in 15 s, unpinned, by the publisher waking from
//! its pacing sleep). On Linux a thread started after the pin inherits it:
//! pin the publishing thread *before* it opens the WAL, and the WAL's sync
//! and preallocation threads share its core.

use crate::error::{Error, Result};

/// The CPUs the calling thread may run on (their ids), in order. A thread
/// started by a pinned thread starts with its pin: this is then that one
/// CPU, though [`pin_current_thread`] may still move it to another.
pub fn available_cpus() -> Vec<usize> {
    core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|core| core.id)
        .collect()
}

/// CPU ids an affinity mask can hold (glibc's `CPU_SETSIZE`).
const CPU_SETSIZE: usize = 1024;

/// Pins the calling thread to CPU `cpu`: any CPU the process's cpuset
/// allows, not only those of the calling thread's current mask (a thread
/// started by a pinned one inherits that pin, and may still be pinned
/// elsewhere).
///
/// Errors: [`Error::Affinity`] when `cpu` is not a CPU this process may
/// run on (the system refused), naming the calling thread's CPUs.
pub fn pin_current_thread(cpu: usize) -> Result<()> {
    if cpu >= CPU_SETSIZE {
        return Err(Error::Affinity {
            cpu,
            reason: format!("not a CPU id (ids are below {CPU_SETSIZE})"),
        });
    }
    if core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
        return Ok(());
    }
    let refused = std::io::Error::last_os_error();
    Err(Error::Affinity {
        cpu,
        reason: format!(
            "not one of the CPUs this process may run on (the system refused: {refused}); this thread runs on {:?}",
            available_cpus()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_to_an_available_cpu_and_names_a_bad_one() {
        let cpus = available_cpus();
        assert!(!cpus.is_empty());
        // In a thread of its own: the pin must not leak into other tests.
        let first = cpus[0];
        std::thread::spawn(move || pin_current_thread(first).unwrap())
            .join()
            .unwrap();
        // (The last id of a mask: no CPU unless the machine has 1024.)
        for bad in [usize::MAX, CPU_SETSIZE - 1].into_iter().filter(|c| !cpus.contains(c)) {
            let err = pin_current_thread(bad).unwrap_err().to_string();
            assert!(err.contains(&bad.to_string()) && err.contains("not"), "{err}");
        }
    }

    #[test]
    fn a_thread_started_by_a_pinned_thread_can_pin_elsewhere() {
        let cpus = available_cpus();
        let [first, .., last] = cpus[..] else {
            eprintln!("SKIP: one CPU ({cpus:?}): nowhere else to pin");
            return;
        };
        std::thread::spawn(move || {
            pin_current_thread(first).unwrap();
            std::thread::spawn(move || {
                assert_eq!(available_cpus(), [first], "the pin is inherited");
                pin_current_thread(last).unwrap();
                assert_eq!(available_cpus(), [last]);
            })
            .join()
            .unwrap();
        })
        .join()
        .unwrap();
    }
}
