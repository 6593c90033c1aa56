//! Bounds how many log sockets one user holds open at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

pub struct SocketLimiter {
    max_per_user: usize,
    open: Mutex<HashMap<Uuid, usize>>,
}

/// One open socket; dropping it frees the slot.
pub struct SocketGuard {
    limiter: Arc<SocketLimiter>,
    user: Uuid,
}

impl SocketLimiter {
    pub fn new(max_per_user: usize) -> Self {
        Self {
            max_per_user,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for `user`, or `None` when they already hold the maximum.
    pub fn try_acquire(self: &Arc<Self>, user: Uuid) -> Option<SocketGuard> {
        let mut open = self.open.lock().expect("limiter lock");
        let count = open.entry(user).or_insert(0);
        if *count >= self.max_per_user {
            return None;
        }
        *count += 1;
        metrics::gauge!("berth_log_sockets_open").increment(1.0);
        Some(SocketGuard {
            limiter: self.clone(),
            user,
        })
    }

    pub fn open_for(&self, user: Uuid) -> usize {
        self.open
            .lock()
            .expect("limiter lock")
            .get(&user)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let mut open = self.limiter.open.lock().expect("limiter lock");
        if let Some(count) = open.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.user);
            }
        }
        metrics::gauge!("berth_log_sockets_open").decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_per_user_and_freed_on_drop() {
        let limiter = Arc::new(SocketLimiter::new(2));
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let first = limiter.try_acquire(alice).unwrap();
        let _second = limiter.try_acquire(alice).unwrap();
        assert!(limiter.try_acquire(alice).is_none());
        assert!(limiter.try_acquire(bob).is_some());
        drop(first);
        assert_eq!(limiter.open_for(alice), 1);
        assert!(limiter.try_acquire(alice).is_some());
    }
}
