//! Renewal locks a session may hold without having them in hand: one whose answer was lost (a call
//! that failed or timed out after the store took the lock) and one whose release failed. Left to its
//! TTL, such a lock would hold up every renewal of the session, in every process, long after the
//! store is back. So each is either taken up again by the session's next attempt to lock (a store
//! takes again a lock its owner holds) or released in the background, by one task per session, until
//! the store answers or the lock has expired by itself.
//!
//! In this process a stray is in one hand at a time: the list's, the next attempt's, or the releasing
//! task's, so the task does not release a lock a renewal has just taken again under the same owner.
//! An unlock already sent and delivered late (a cluster client retrying it after the session gave
//! up) can still release it while that renewal goes on. That costs no safety, only work: the lock
//! only keeps processes from racing, while the claim on the refresh token, a compare-and-set, keeps
//! any second process from presenting it.

use std::sync::{Mutex, MutexGuard};

use tokio::time::Instant;

use crate::store::LockToken;

#[derive(Default)]
pub(super) struct Strays(Mutex<Inner>);

#[derive(Default)]
struct Inner {
    /// Each stray lock, and when it expires by itself at the latest.
    locks: Vec<(LockToken, Instant)>,
    /// Whether a task is releasing them.
    releasing: bool,
}

impl Strays {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Every change under this lock is one push, pop or assignment: a panic leaves it whole.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The owner under which to take the lock next: the newest stray's, so that a lock the store
    /// took without the session knowing is taken again rather than waited out, or a new one.
    pub(super) fn owner(&self) -> LockToken {
        let mut inner = self.inner();
        let now = Instant::now();
        inner.locks.retain(|(_, expires)| *expires > now);
        inner.locks.pop().map_or_else(LockToken::random, |(lock, _)| lock)
    }

    /// Keep `lock`, which the store may hold until `expires`. True if no task is releasing the
    /// strays: the caller starts one.
    #[must_use]
    pub(super) fn keep(&self, lock: LockToken, expires: Instant) -> bool {
        let mut inner = self.inner();
        inner.locks.push((lock, expires));
        !std::mem::replace(&mut inner.releasing, true)
    }

    /// For the releasing task: every stray that has not expired, taken out of the list; `None` when
    /// there is none left, and the task is to end (the next [`keep`](Strays::keep) starts another).
    pub(super) fn take(&self) -> Option<Vec<(LockToken, Instant)>> {
        let mut inner = self.inner();
        let now = Instant::now();
        inner.locks.retain(|(_, expires)| *expires > now);
        if inner.locks.is_empty() {
            inner.releasing = false;
            return None;
        }
        Some(std::mem::take(&mut inner.locks))
    }

    /// The releasing task was dropped before it was done (a runtime shut down): the next stray
    /// starts another.
    pub(super) fn ended(&self) {
        self.inner().releasing = false;
    }

    /// For the releasing task: `lock` could not be released yet.
    pub(super) fn put_back(&self, lock: LockToken, expires: Instant) {
        self.inner().locks.push((lock, expires));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_stray_is_taken_up_by_the_next_attempt_and_released_by_one_task() {
        let strays = Strays::default();
        let later = Instant::now() + Duration::from_secs(60);
        let lost = LockToken::new("lost");
        assert!(strays.keep(lost.clone(), later), "the first stray starts the task");
        assert!(!strays.keep(LockToken::new("other"), later), "one task per session");
        assert_eq!(strays.owner(), LockToken::new("other"), "the newest is taken up");
        let left = strays.take().expect("one left for the task");
        assert_eq!(left, vec![(lost.clone(), later)]);
        assert_ne!(strays.owner(), lost, "in the task's hand, not the next attempt's");
        strays.put_back(lost.clone(), later);
        assert_eq!(strays.take().unwrap().len(), 1);
        assert!(strays.take().is_none(), "none left: the task ends");
        assert!(strays.keep(lost, later), "the next stray starts a task again");
    }

    #[tokio::test]
    async fn an_expired_stray_is_neither_taken_up_nor_released() {
        let strays = Strays::default();
        let _ = strays.keep(LockToken::new("old"), Instant::now());
        assert_ne!(strays.owner(), LockToken::new("old"));
        assert!(strays.take().is_none());
    }
}
