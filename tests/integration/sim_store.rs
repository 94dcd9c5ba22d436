//! A shared token store that behaves like Redis (compare-and-set on a version, a lock with a TTL,
//! change notifications) with faults the test switches on: an outage (at once, or after a number of
//! calls), latency, a write that lands but reports failure, a lock key lost, a lock owner that
//! stalls, notifications held back, and the loss of every key (a restart without persistence).
//!
//! Each simulated process gets its own handle; the handles share the data. A [`SimStore`]
//! ([`SimShared::handle`]) takes the lock with the read, and releases it with the write, in two calls
//! each: it leaves both to the trait's defaults, as a store written by an application would. A
//! [`OneStep`] ([`SimShared::one_step`]) makes each one atomic step, as Redis's scripts do.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use oauth_sdk::{
    Expect, LockAttempt, LockToken, Locked, StoreError, Swap, TokenSet, TokenStore, Version, Versioned, version_floor,
};
use tokio::sync::watch;
use tokio::time::Instant;

/// A small seeded generator (xorshift64*): one seed decides every choice of a schedule.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// In `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `percent`%.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The faults in force; the test changes them between (and during) steps.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Every call fails, as against a Redis that is down.
    pub down: bool,
    /// Every call that writes fails, reads still work (a read-only replica): the session's writes,
    /// and taking or releasing the lock.
    pub writes_fail: bool,
    /// This many more writes succeed, then every write fails (as `writes_fail`).
    pub writes_left: Option<u32>,
    /// This many more calls of any kind go through, then the store is down (as `down`): an outage
    /// that begins part-way through whatever the next caller is doing, a renewal most often.
    pub calls_left: Option<u32>,
    /// A write that fails is refused as invalid (a sealing key missing, data it cannot read), not
    /// as the store being unavailable.
    pub writes_invalid: bool,
    /// Added to every call.
    pub latency: Duration,
    /// `try_lock` never answers.
    pub lock_hangs: bool,
    /// Percent of writes that land but report a failure (a timeout after the server applied it):
    /// the session's writes, and taking or releasing the lock.
    pub lost_write_replies: u64,
    /// The next lock taken, and the next write stored, land but report a failure (once each).
    pub lose_next_lock_reply: bool,
    pub lose_next_write_reply: bool,
    /// A logout's tombstone is stored even while writes fail.
    pub clears_pass: bool,
    /// The next unlock fails without releasing the lock.
    pub fail_next_unlock: bool,
    /// Every unlock fails at once, and releases the lock this much later (an unlock the store
    /// carries out after its caller gave up on it).
    pub late_unlocks: Option<Duration>,
    /// The next lock taken is lost at once (a failover to a replica that never saw it).
    pub lose_next_lock: bool,
    /// The next lock owner stalls this long on its next call after taking it (a GC pause), and
    /// its lock expires meanwhile.
    pub stall_next_owner: Option<Duration>,
    /// Change notifications are held back (as over a broken subscription) until released.
    pub hold_notifications: bool,
}

#[derive(Default)]
struct Data {
    record: Option<Versioned>,
    counter: Option<Version>,
    lock: Option<(String, Instant)>,
    /// Each handle's notification feed, and whether one is held back for it.
    feeds: Vec<(watch::Sender<Version>, Option<Version>)>,
    faults: Faults,
    /// The handle that is to stall on its next call.
    stalled: Option<(usize, Duration)>,
    rng: Option<Rng>,
    /// Calls that failed by a fault, for the test's bookkeeping.
    pub failed_calls: u64,
    /// Calls begun, faulty or not.
    calls: u64,
    /// Late unlocks carried out.
    late_unlocks: u64,
}

impl Data {
    fn next_version(&mut self) -> Version {
        let next = match self.counter {
            Some(counter) => counter + 1,
            // The counter is gone: start above every version given before, as RedisStore does.
            None => version_floor().max(self.record.as_ref().map_or(0, |r| r.version + 1)),
        };
        self.counter = Some(next);
        next
    }

    fn publish(&mut self, version: Version) {
        let hold = self.faults.hold_notifications;
        for (feed, held) in &mut self.feeds {
            if hold {
                *held = Some(version);
            } else {
                feed.send_if_modified(|newest| {
                    let newer = version > *newest;
                    *newest = (*newest).max(version);
                    newer
                });
            }
        }
    }
}

/// The data every handle shares.
#[derive(Clone, Default)]
pub struct SimShared(Arc<Mutex<Data>>);

impl SimShared {
    /// A store whose random faults (lost write replies) draw from `seed`.
    pub fn new(seed: u64) -> Self {
        let shared = Self::default();
        shared.data().rng = Some(Rng::new(seed ^ 0x5EED));
        shared
    }

    fn data(&self) -> MutexGuard<'_, Data> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A handle for one simulated process.
    pub fn handle(&self) -> SimStore {
        let mut data = self.data();
        let newest = data.counter.unwrap_or(0);
        let (feed, versions) = watch::channel(newest);
        data.feeds.push((feed, None));
        SimStore {
            shared: self.clone(),
            index: data.feeds.len() - 1,
            versions,
        }
    }

    /// A handle for one simulated process that takes the lock with the read, and releases it with
    /// the write, in one atomic step each, as Redis does.
    pub fn one_step(&self) -> OneStep {
        OneStep(self.handle())
    }

    /// Change the faults in force.
    pub fn faults(&self, change: impl FnOnce(&mut Faults)) {
        let mut data = self.data();
        change(&mut data.faults);
        if !data.faults.hold_notifications {
            // A subscription that comes back reads the current version (as RedisStore's does).
            for (feed, held) in &mut data.feeds {
                if let Some(version) = held.take() {
                    feed.send_if_modified(|newest| {
                        let newer = version > *newest;
                        *newest = (*newest).max(version);
                        newer
                    });
                }
            }
        }
    }

    /// The faults in force.
    pub fn current_faults(&self) -> Faults {
        self.data().faults.clone()
    }

    /// Lose every key: the session, the counter, the lock (a Redis restarted without persistence).
    pub fn wipe(&self) {
        let mut data = self.data();
        data.record = None;
        data.counter = None;
        data.lock = None;
    }

    /// Lose every key, and start the version counter again at 1: a store that, unlike those of this
    /// crate, does not keep its versions above the ones it gave before.
    pub fn wipe_to_version_one(&self) {
        self.wipe();
        self.data().counter = Some(0);
    }

    /// Tell every handle of a version it has not seen, with nothing stored (a notification that
    /// only makes the sessions look).
    pub fn notify_only(&self) {
        let mut data = self.data();
        let version = data.next_version();
        data.publish(version);
    }

    /// What the store holds now, without faults.
    pub fn peek(&self) -> Option<Versioned> {
        self.data().record.clone()
    }

    /// How many calls have begun.
    pub fn calls(&self) -> u64 {
        self.data().calls
    }

    /// How many calls have failed by a fault.
    pub fn failed_calls(&self) -> u64 {
        self.data().failed_calls
    }

    /// How many late unlocks ([`Faults::late_unlocks`]) have been carried out.
    pub fn late_unlocks(&self) -> u64 {
        self.data().late_unlocks
    }

    /// Who holds the lock, if anyone does and it has not expired.
    pub fn lock_owner(&self) -> Option<String> {
        let data = self.data();
        data.lock
            .as_ref()
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(owner, _)| owner.clone())
    }
}

/// One process's handle on the shared store.
#[derive(Clone)]
pub struct SimStore {
    shared: SimShared,
    index: usize,
    versions: watch::Receiver<Version>,
}

impl std::fmt::Debug for SimStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimStore")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

fn unavailable(what: &str) -> StoreError {
    StoreError::new("sim", what)
}

/// What a call does to the store, for the faults.
#[derive(Clone, Copy, PartialEq)]
enum Call {
    Read,
    /// Writes the session.
    Write,
    /// Writes a logout's tombstone.
    Clear,
    /// Takes or releases the lock.
    Lock,
}

impl SimStore {
    /// Wait out the latency, then fail if the store is down, or for a call that writes, if writes
    /// fail.
    async fn enter(&self, call: Call) -> Result<(), StoreError> {
        let latency = {
            let mut data = self.shared.data();
            data.calls += 1;
            data.faults.latency
        };
        if latency.is_zero() {
            // A real store's call waits on a socket: other tasks run meanwhile (a task the caller
            // just spawned, say, which a call that never yields would keep waiting until after it).
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(latency).await;
        }
        let mut data = self.shared.data();
        if let Some(left) = data.faults.calls_left {
            data.faults.calls_left = left.checked_sub(1);
            data.faults.down |= left == 0;
        }
        let writes = call != Call::Read && !(call == Call::Clear && data.faults.clears_pass);
        if matches!(call, Call::Write | Call::Clear)
            && let Some(left) = data.faults.writes_left
        {
            data.faults.writes_left = left.checked_sub(1);
            data.faults.writes_fail |= left == 0;
        }
        if matches!(call, Call::Write | Call::Clear) && writes && data.faults.writes_fail && data.faults.writes_invalid
        {
            data.failed_calls += 1;
            return Err(StoreError::invalid("sim", "the simulated store refuses the write"));
        }
        if data.faults.down || (writes && data.faults.writes_fail) {
            data.failed_calls += 1;
            return Err(unavailable("the simulated store is down"));
        }
        Ok(())
    }

    /// Take the lock unless another owner holds it (the data's lock held), with the faults about
    /// locks; whether the owner is to stall once it has read.
    fn take_lock(&self, data: &mut Data, lock: &LockToken, ttl: Duration) -> Option<Option<Duration>> {
        let now = Instant::now();
        let owner = lock.as_str().to_owned();
        // Another owner's lock that has not expired; this owner's is taken again.
        if data
            .lock
            .as_ref()
            .is_some_and(|(held, expires)| *held != owner && *expires > now)
        {
            return None;
        }
        let mut stall = None;
        if std::mem::take(&mut data.faults.lose_next_lock) {
            // Granted, but the key is gone at once: the next process gets it too.
            data.lock = None;
        } else if let Some(stalled) = data.faults.stall_next_owner.take() {
            // The owner stalls past its lock's TTL.
            data.lock = None;
            stall = Some(stalled);
        } else {
            data.lock = Some((owner, now + ttl));
        }
        Some(stall)
    }

    /// Whether the reply to a write (or, `lock`, a lock) that landed is lost.
    fn reply_lost(&self, lock: bool) -> bool {
        let mut data = self.shared.data();
        let percent = data.faults.lost_write_replies;
        let next = if lock {
            &mut data.faults.lose_next_lock_reply
        } else {
            &mut data.faults.lose_next_write_reply
        };
        let lost = std::mem::take(next) || (percent > 0 && data.rng.as_mut().is_some_and(|rng| rng.chance(percent)));
        if lost {
            data.failed_calls += 1;
        }
        lost
    }
}

/// The compare-and-set write (the data's lock held).
fn write(data: &mut Data, expect: Expect, tokens: &TokenSet) -> Swap {
    if expect.matches(data.record.as_ref()) {
        let version = data.next_version();
        data.record = Some(Versioned::live(version, tokens.clone()));
        data.publish(version);
        Swap::Stored(version)
    } else {
        Swap::Conflict(data.record.clone())
    }
}

impl TokenStore for SimStore {
    async fn load(&self) -> Result<Option<Versioned>, StoreError> {
        self.enter(Call::Read).await?;
        let (record, stall) = {
            let mut data = self.shared.data();
            let stall = match data.stalled {
                Some((index, stall)) if index == self.index => data.stalled.take().map(|_| stall),
                _ => None,
            };
            (data.record.clone(), stall)
        };
        if let Some(stall) = stall {
            // Read, then stalled: the process goes on with what it read, now old.
            tokio::time::sleep(stall).await;
        }
        Ok(record)
    }

    async fn store(&self, expect: Expect, tokens: &TokenSet) -> Result<Swap, StoreError> {
        self.enter(Call::Write).await?;
        let swap = {
            let mut data = self.shared.data();
            write(&mut data, expect, tokens)
        };
        if matches!(swap, Swap::Stored(_)) && self.reply_lost(false) {
            return Err(unavailable("the reply to a write was lost"));
        }
        Ok(swap)
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.enter(Call::Clear).await?;
        let mut data = self.shared.data();
        let version = data.next_version();
        data.record = Some(Versioned { version, tokens: None });
        data.publish(version);
        Ok(())
    }

    async fn try_lock(&self, lock: &LockToken, ttl: Duration) -> Result<LockAttempt, StoreError> {
        if self.shared.data().faults.lock_hangs {
            std::future::pending::<()>().await;
        }
        self.enter(Call::Lock).await?;
        let taken = self.take_lock(&mut self.shared.data(), lock, ttl);
        let Some(stall) = taken else {
            return Ok(LockAttempt::Busy);
        };
        if self.reply_lost(true) {
            // Taken all the same: the session releases it in the background.
            return Err(unavailable("the reply to a lock was lost"));
        }
        if let Some(stall) = stall {
            // On its next call, the read.
            self.shared.data().stalled = Some((self.index, stall));
        }
        Ok(LockAttempt::Acquired)
    }

    async fn unlock(&self, lock: &LockToken) -> Result<(), StoreError> {
        self.enter(Call::Lock).await?;
        {
            let mut data = self.shared.data();
            if std::mem::take(&mut data.faults.fail_next_unlock) {
                data.failed_calls += 1;
                return Err(unavailable("the unlock failed"));
            }
            if let Some(delay) = data.faults.late_unlocks {
                data.failed_calls += 1;
                let (shared, owner) = (self.shared.clone(), lock.as_str().to_owned());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let mut data = shared.data();
                    if data.lock.as_ref().is_some_and(|(held, _)| *held == owner) {
                        data.lock = None;
                    }
                    data.late_unlocks += 1;
                });
                return Err(unavailable("the unlock timed out"));
            }
            if data.lock.as_ref().is_some_and(|(owner, _)| owner == lock.as_str()) {
                data.lock = None;
            }
        }
        if self.reply_lost(true) {
            return Err(unavailable("the reply to an unlock was lost"));
        }
        Ok(())
    }

    fn versions(&self) -> Option<watch::Receiver<Version>> {
        Some(self.versions.clone())
    }
}

/// One process's handle on the shared store that takes the lock with the read, and releases it with
/// the write that stores, in one atomic step each, as `RedisStore`'s scripts do.
#[derive(Clone, Debug)]
pub struct OneStep(SimStore);

impl TokenStore for OneStep {
    async fn load(&self) -> Result<Option<Versioned>, StoreError> {
        self.0.load().await
    }

    async fn store(&self, expect: Expect, tokens: &TokenSet) -> Result<Swap, StoreError> {
        self.0.store(expect, tokens).await
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.0.clear().await
    }

    async fn try_lock(&self, lock: &LockToken, ttl: Duration) -> Result<LockAttempt, StoreError> {
        self.0.try_lock(lock, ttl).await
    }

    async fn unlock(&self, lock: &LockToken) -> Result<(), StoreError> {
        self.0.unlock(lock).await
    }

    async fn try_lock_and_load(&self, lock: &LockToken, ttl: Duration) -> Result<Locked, StoreError> {
        let store = &self.0;
        if store.shared.data().faults.lock_hangs {
            std::future::pending::<()>().await;
        }
        store.enter(Call::Lock).await?;
        let (taken, record) = {
            let mut data = store.shared.data();
            (store.take_lock(&mut data, lock, ttl), data.record.clone())
        };
        let Some(stall) = taken else {
            return Ok(Locked::Busy);
        };
        if store.reply_lost(true) {
            // Taken all the same: the session releases it in the background.
            return Err(unavailable("the reply to a lock was lost"));
        }
        if let Some(stall) = stall {
            // Read, then stalled: the process goes on with what it read, now old.
            tokio::time::sleep(stall).await;
        }
        Ok(Locked::Taken(Ok(record)))
    }

    async fn store_and_unlock(&self, expect: Expect, tokens: &TokenSet, lock: &LockToken) -> Result<Swap, StoreError> {
        let store = &self.0;
        store.enter(Call::Write).await?;
        let swap = {
            let mut data = store.shared.data();
            let swap = write(&mut data, expect, tokens);
            if matches!(swap, Swap::Stored(_)) && data.lock.as_ref().is_some_and(|(owner, _)| owner == lock.as_str()) {
                data.lock = None;
            }
            swap
        };
        if matches!(swap, Swap::Stored(_)) && store.reply_lost(false) {
            return Err(unavailable("the reply to a write was lost"));
        }
        Ok(swap)
    }

    fn versions(&self) -> Option<watch::Receiver<Version>> {
        self.0.versions()
    }
}

/// A handle of either kind, made for each simulated process.
pub trait SimHandle: TokenStore + Clone + std::fmt::Debug {
    fn of(shared: &SimShared) -> Self;
}

impl SimHandle for SimStore {
    fn of(shared: &SimShared) -> Self {
        shared.handle()
    }
}

impl SimHandle for OneStep {
    fn of(shared: &SimShared) -> Self {
        shared.one_step()
    }
}
