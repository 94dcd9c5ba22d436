//! Renewal locks a session may hold without having them in hand: one whose answer was lost (a call
//! that failed or timed out after the store took the lock) and one whose release failed. Left to its
//! TTL, such a lock would hold up every renewal of the session, in every process, long after the
//! store is back. So each is released in the background, by one task per session, until the store
//! answers or the lock has expired by itself; a lock whose answer was lost may instead be taken up
//! again by the session's next attempt to lock (a store takes again a lock its owner holds).
//!
//! In this process a stray is in one hand at a time: the list's, the next attempt's, or the releasing
//! task's, so the task does not release a lock a renewal has just taken again under the same owner.
//! Only a lock no unlock was sent for is taken up: an unlock sent but unanswered may still be carried
//! out, late (a cluster client retrying it after the session gave up), and would then release the
//! lock of the renewal that took it again. Such a lock is left to the task; the next renewal waits
//! for it like any other process's, and takes a lock of its own.

use std::sync::{Mutex, MutexGuard};

use tokio::time::Instant;

use crate::store::LockToken;

#[derive(Default)]
pub(super) struct Strays(Mutex<Inner>);

#[derive(Default)]
struct Inner {
    /// Each stray lock, and when it expires by itself at the latest.
    locks: Vec<(LockToken, Instant)>,
    /// How many of `locks`, from the first, had an unlock sent for them: left to the task.
    unlocked: usize,
    /// Whether a task is releasing them.
    releasing: bool,
}

impl Strays {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Every change under this lock is a push, pop or insert, and assignments: none can panic
        // half-way.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The owner under which to take the lock next: the newest stray's that no unlock was sent
    /// for, so that a lock the store took without the session knowing is taken again rather than
    /// waited out, or a new one. True with it if strays are left with no task releasing them (the
    /// last one was dropped, by a runtime shutting down): the caller starts one, or the attempt
    /// would wait for them until they expire.
    pub(super) fn owner(&self) -> (LockToken, bool) {
        let mut inner = self.inner();
        let now = Instant::now();
        let mut owner = None;
        while owner.is_none() && inner.locks.len() > inner.unlocked {
            // One that expired is no longer held: dropped.
            owner = inner.locks.pop().filter(|(_, expires)| *expires > now);
        }
        let orphaned = !inner.locks.is_empty() && !std::mem::replace(&mut inner.releasing, true);
        let owner = owner.map_or_else(LockToken::random, |(lock, _)| lock);
        (owner, orphaned)
    }

    /// Keep `lock`, which the store may hold until `expires`; `unlock_sent` if an unlock for it went
    /// unanswered. True if no task is releasing the strays: the caller starts one.
    #[must_use]
    pub(super) fn keep(&self, lock: LockToken, expires: Instant, unlock_sent: bool) -> bool {
        let mut inner = self.inner();
        if unlock_sent {
            let at = inner.unlocked;
            inner.locks.insert(at, (lock, expires));
            inner.unlocked += 1;
        } else {
            inner.locks.push((lock, expires));
        }
        !std::mem::replace(&mut inner.releasing, true)
    }

    /// For the releasing task: every stray that has not expired, taken out of the list; `None` when
    /// there is none left, and the task is to end (the next [`keep`](Strays::keep) starts another).
    pub(super) fn take(&self) -> Option<Vec<(LockToken, Instant)>> {
        let mut inner = self.inner();
        inner.unlocked = 0;
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

    /// For the releasing task: `lock` could not be released yet (its unlock went unanswered).
    pub(super) fn put_back(&self, lock: LockToken, expires: Instant) {
        let _ = self.keep(lock, expires, true);
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
        assert!(
            strays.keep(lost.clone(), later, false),
            "the first stray starts the task"
        );
        assert!(
            !strays.keep(LockToken::new("other"), later, false),
            "one task per session"
        );
        assert_eq!(strays.owner().0, LockToken::new("other"), "the newest is taken up");
        let left = strays.take().expect("one left for the task");
        assert_eq!(left, vec![(lost.clone(), later)]);
        assert_ne!(strays.owner().0, lost, "in the task's hand, not the next attempt's");
        strays.put_back(lost.clone(), later);
        assert_eq!(strays.take().unwrap().len(), 1);
        assert!(strays.take().is_none(), "none left: the task ends");
        assert!(strays.keep(lost, later, false), "the next stray starts a task again");
    }

    #[tokio::test]
    async fn a_lock_whose_unlock_went_unanswered_is_left_to_the_task() {
        let strays = Strays::default();
        let later = Instant::now() + Duration::from_secs(60);
        let _ = strays.keep(LockToken::new("lost"), later, false);
        let _ = strays.keep(LockToken::new("unlocked"), later, true);
        let _ = strays.keep(LockToken::new("unlocked too"), later, true);
        assert_eq!(strays.owner().0, LockToken::new("lost"), "no unlock sent: taken up");
        let (fresh, orphaned) = strays.owner();
        assert!(!orphaned, "a task is releasing them");
        assert!(
            ![LockToken::new("unlocked"), LockToken::new("unlocked too")].contains(&fresh),
            "an unlock sent may still be carried out: not taken up"
        );
        assert_eq!(strays.take().unwrap().len(), 2, "both left to the task");
        strays.put_back(LockToken::new("unlocked"), later);
        assert_ne!(
            strays.owner().0,
            LockToken::new("unlocked"),
            "put back by the task: its unlock was sent"
        );
        strays.ended();
        assert!(
            strays.owner().1,
            "the task was dropped: the next attempt starts another"
        );
        assert!(!strays.owner().1, "one task at a time");
    }

    #[tokio::test]
    async fn an_expired_stray_is_neither_taken_up_nor_released() {
        let strays = Strays::default();
        let _ = strays.keep(LockToken::new("old"), Instant::now(), false);
        assert_ne!(strays.owner().0, LockToken::new("old"));
        assert!(strays.take().is_none());
    }
}
