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

/// The CPUs this process may run on (their ids), in order.
pub fn available_cpus() -> Vec<usize> {
    core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|core| core.id)
        .collect()
}

/// Pins the calling thread to CPU `cpu` (an id of [`available_cpus`]).
///
/// Errors: [`Error::Affinity`] when `cpu` is not one this process may run
/// on, or the system refused.
pub fn pin_current_thread(cpu: usize) -> Result<()> {
    let cpus = available_cpus();
    if !cpus.contains(&cpu) {
        return Err(Error::Affinity {
            cpu,
            reason: format!("not one of the CPUs this process may run on {cpus:?}"),
        });
    }
    if core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
        Ok(())
    } else {
        Err(Error::Affinity {
            cpu,
            reason: format!("the system refused: {}", std::io::Error::last_os_error()),
        })
    }
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
        let err = pin_current_thread(usize::MAX).unwrap_err().to_string();
        assert!(
            err.contains(&usize::MAX.to_string()) && err.contains("not one of"),
            "{err}"
        );
    }
}
