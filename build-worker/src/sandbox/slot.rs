//! Sandbox slots: a number per running build, unique on the host, so that
//! the build's namespace, veth pair, addresses and control group have names
//! no other build (of this worker or another one on the same host) uses.
//! A slot is held by a lock on a file, which the kernel releases when the
//! worker dies; the next holder removes what the dead one left.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::Path;

/// How many builds one host can sandbox at once.
pub const MAX_SLOTS: u32 = 256;

#[derive(Debug)]
pub struct Slot {
    pub index: u32,
    _lock: File,
}

/// Takes the lowest free slot in `dir`.
pub fn acquire(dir: &Path) -> io::Result<Slot> {
    std::fs::create_dir_all(dir)?;
    for index in 0..MAX_SLOTS {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("slot-{index}.lock")))?;
        match file.try_lock() {
            Ok(()) => return Ok(Slot { index, _lock: file }),
            Err(TryLockError::WouldBlock) => continue,
            Err(TryLockError::Error(error)) => return Err(error),
        }
    }
    Err(io::Error::other(format!(
        "all {MAX_SLOTS} build sandboxes of this host are in use"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_unique_while_held_and_reused_when_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path()).unwrap();
        let second = acquire(dir.path()).unwrap();
        assert_eq!((first.index, second.index), (0, 1));
        drop(first);
        assert_eq!(acquire(dir.path()).unwrap().index, 0);
    }
}
