//! The task that keeps a cache in front of a store current: the keys the
//! `Auth` layer holds and the budgets both poll their store's revision.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::MissedTickBehavior;

/// Runs `job` every `every`, in a task that the first call made inside a
/// Tokio runtime spawns (`started` remembers it; a call outside a runtime
/// does nothing, so that a later one starts it). The task holds `owner`
/// weakly, strongly only while `job` runs, and ends once the owner is
/// dropped: a cache never outlives what it serves.
pub(crate) fn poll_every<T, F, Fut>(started: &OnceLock<()>, owner: &Arc<T>, every: Duration, job: F)
where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    if started.get().is_some() {
        return;
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    started.get_or_init(|| {
        let weak = Arc::downgrade(owner);
        handle.spawn(async move {
            let mut tick = tokio::time::interval(every);
            // A slow store delays the next poll instead of bunching them.
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(owner) = weak.upgrade() else { break };
                job(owner).await;
            }
        });
    });
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn it_polls_once_per_period_and_ends_with_its_owner() {
        let started = OnceLock::new();
        let owner = Arc::new(AtomicU32::new(0));
        let job = |o: Arc<AtomicU32>| async move {
            o.fetch_add(1, Ordering::Relaxed);
        };
        poll_every(&started, &owner, Duration::from_secs(1), job);
        // A second call starts no second task.
        poll_every(&started, &owner, Duration::from_secs(1), job);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        // At 0s, 1s and 2s.
        assert_eq!(owner.load(Ordering::Relaxed), 3);
        let weak = Arc::downgrade(&owner);
        drop(owner);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(weak.upgrade().is_none(), "the task let go of its owner");
    }

    #[test]
    fn outside_a_runtime_it_waits_for_a_later_call() {
        let started = OnceLock::new();
        let owner = Arc::new(());
        poll_every(&started, &owner, Duration::from_secs(1), |_| async {});
        assert!(started.get().is_none());
    }
}
