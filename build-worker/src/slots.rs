//! Build slots: how many builds this worker runs at once, and how many of
//! them one tenant may hold, so a tenant's burst of pushes cannot take every
//! slot. A build over its tenant's share waits (its message stays
//! unacknowledged) without holding a slot, and its deadline has not started:
//! waiting is not building.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct BuildSlots {
    all: Arc<Semaphore>,
    per_tenant: usize,
    tenants: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A held slot; dropping it frees the slot and the tenant's share.
pub struct Slot {
    _tenant: OwnedSemaphorePermit,
    _all: OwnedSemaphorePermit,
}

impl BuildSlots {
    pub fn new(total: usize, per_tenant: usize) -> Self {
        Self {
            all: Arc::new(Semaphore::new(total.max(1))),
            per_tenant: per_tenant.max(1),
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for a share of `tenant`, then for a slot.
    pub async fn acquire(&self, tenant: &str) -> Slot {
        let share = {
            let mut tenants = self.tenants.lock().expect("slots lock");
            // Tenants with nothing held or waiting are forgotten.
            tenants.retain(|_, share| Arc::strong_count(share) > 1);
            tenants
                .entry(tenant.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant)))
                .clone()
        };
        let tenant = share.acquire_owned().await.expect("never closed");
        let all = self
            .all
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        Slot {
            _tenant: tenant,
            _all: all,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_tenant_over_its_share_waits_while_others_build() {
        let slots = Arc::new(BuildSlots::new(2, 1));
        let first = slots.acquire("busy").await;
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire("busy").await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the tenant's second build waits");
        // Another tenant gets the free slot at once.
        let other = tokio::time::timeout(Duration::from_millis(200), slots.acquire("quiet"))
            .await
            .expect("another tenant is not held up");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("the waiting build starts once the first ends")
            .unwrap();
        drop((second, other));
        assert!(slots.tenants.lock().unwrap().len() <= 2);
    }
}
