//! A fault simulation of the promise the SDK stands on: a refresh token is presented once, nothing
//! is lost, and logout is final, whatever the store and the processes do.
//!
//! Each seed decides a schedule: a few simulated processes (each its own `Client` and session, on one
//! shared store and one clock), calls alone and in bursts, idle gaps, forced refreshes, restarts,
//! logins and logouts, and store faults (outages, at once or part-way through what a process is
//! doing, latency past the timeout, a read-only store that refuses the session's writes and the lock,
//! at once or after a few more writes, writes and locks that land but report failure, unlocks that
//! fail and are carried out later, lost and stalled lock owners, held-back notifications, loss of
//! every key) and a token endpoint that redirects. The reference server rotates refresh tokens
//! and revokes a token's whole family when one is presented twice. Even seeds run on a store that
//! takes the lock with the read, and releases it with the write, in one step each (as Redis does);
//! odd seeds on one that leaves both to the trait's defaults.
//!
//! After every schedule, from the server's point of view: no refresh token was presented twice, no
//! family was revoked, no credential followed a redirect; the store holds the newest session (or the
//! logout's tombstone); and every failed call has an error that the faults of the moment explain.
//!
//! ```sh
//! cargo test --test integration simulation                       # 100 seeds
//! SIM_SEEDS=10000 SIM_PARALLEL=12 cargo test --release --test integration simulation -- --nocapture
//! SIM_SEED=4242 cargo test --test integration simulation -- --nocapture   # replay one, with its schedule
//! SIM_SEED=4242 SIM_REPEAT=48 SIM_PARALLEL=12 cargo test --release --test integration simulation  # one, many times at once
//! ```
//!
//! The schedule is a function of the seed; the interleaving of the processes' tasks within a step is
//! the runtime's, so a replay takes the same steps with the same faults, not the same instructions.

use std::time::Duration;

use futures::StreamExt;
use futures::future::join_all;
use oauth_sdk::{Authenticated, Client, Error, ExposeSecret, ManualClock, SessionEnd, SessionState};
use taskboard_server::{Config, DEMO_CLIENT, DEMO_USER, Server};
use tokio::time::Instant;

use crate::sim_store::{OneStep, Rng, SimHandle, SimShared, SimStore};
use crate::support::t0;

const DEFAULT_SEEDS: u64 = 100;
const STEPS: usize = 40;
/// The access-token lifetime the server gives (the clients' clock decides when it is due).
const LIFETIME: Duration = Duration::from_secs(3600);
/// How long one store call may take before the session counts the store as unavailable.
const STORE_TIMEOUT: Duration = Duration::from_millis(250);
/// A store error is explained by a store fault in force within this long before it.
const FAULT_ECHO: Duration = Duration::from_secs(6);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulation() {
    let replay: Option<u64> = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok());
    let repeat: Option<u64> = std::env::var("SIM_REPEAT").ok().and_then(|s| s.parse().ok());
    if let (Some(seed), None) = (replay, repeat) {
        match run(seed, true).await {
            Ok(summary) => println!("seed {seed}: {summary}"),
            Err(failure) => panic!("seed {seed} failed: {failure}"),
        }
        return;
    }
    let seeds: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEEDS);
    let first: u64 = std::env::var("SIM_FIRST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    // Schedules run side by side; most of one is waiting on timers and sockets.
    let parallel: usize = std::env::var("SIM_PARALLEL")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let mut failures = Vec::new();
    let mut refreshes = 0;
    // `SIM_SEED` with `SIM_REPEAT`: the one schedule many times over, side by side, to find an
    // interleaving that only some runs of it take.
    let schedule: Vec<u64> = match (replay, repeat) {
        (Some(seed), Some(times)) => vec![seed; times as usize],
        _ => (first..first + seeds).collect(),
    };
    let seeds = schedule.len() as u64;
    let mut outcomes = futures::stream::iter(schedule)
        .map(|seed| async move {
            let started = Instant::now();
            let outcome = run(seed, false).await;
            if std::env::var_os("SIM_TIMES").is_some() {
                eprintln!("seed {seed}: {:?}", started.elapsed());
            }
            (seed, outcome)
        })
        .buffer_unordered(parallel);
    while let Some((seed, outcome)) = outcomes.next().await {
        match outcome {
            Ok(summary) => refreshes += summary.refreshes,
            Err(failure) => {
                eprintln!(
                    "seed {seed} failed: {failure}\n  replay: SIM_SEED={seed} cargo test --test integration simulation -- --nocapture"
                );
                failures.push(seed);
            }
        }
    }
    failures.sort_unstable();
    println!(
        "{seeds} seeds, {refreshes} refreshes accepted, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
    assert!(
        repeat.is_some() || refreshes > seeds,
        "the schedules renewed too little to test anything: {refreshes}"
    );
}

/// What a passing schedule did.
#[derive(Debug)]
struct Summary {
    refreshes: u64,
    failed_calls: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} refreshes, {} calls failed (each explained)",
            self.refreshes, self.failed_calls
        )
    }
}

struct Process<S: SimHandle> {
    client: Client,
    store: S,
    api: Option<Authenticated<S>>,
    /// The step its session began at.
    since: usize,
}

/// The world of one schedule, whose processes hold stores of kind `S`.
struct World<S: SimHandle> {
    server: Server,
    clock: ManualClock,
    shared: SimShared,
    processes: Vec<Process<S>>,
    /// Sessions the processes let go of (a failed logout, a session replaced or ended): a renewal of
    /// theirs may still be writing back, as it would in a process that goes on running.
    retired: Vec<Authenticated<S>>,
    rng: Rng,
    log: Vec<String>,
    step: usize,
    /// The last moment a store fault was in force.
    store_fault_at: Option<Instant>,
    /// The last moment the token endpoint redirected, and whether it does now.
    redirect_at: Option<Instant>,
    server_redirects: bool,
    /// Store calls failed by a fault so far.
    store_failures: u64,
    /// The last step a logout happened at, and whether a login followed.
    logout_step: Option<usize>,
    logged_in_since_logout: bool,
    /// A login since the last logout failed at its store write, which may have landed all the same.
    login_may_have_landed: bool,
    /// The last step the store lost every key at.
    wipe_step: Option<usize>,
    failed_calls: usize,
    verbose: bool,
    started: Instant,
}

/// Even seeds: stores that take the lock with the read, and release it with the write, in one step
/// each (as Redis does); odd seeds: in two calls each (the trait's defaults).
async fn run(seed: u64, verbose: bool) -> Result<Summary, String> {
    match seed % 2 {
        0 => run_on::<OneStep>(seed, verbose).await,
        _ => run_on::<SimStore>(seed, verbose).await,
    }
}

async fn run_on<S: SimHandle>(seed: u64, verbose: bool) -> Result<Summary, String> {
    let mut world = World::<S>::new(seed, verbose).await;
    let outcome = world.play().await;
    let outcome = match outcome {
        Ok(()) => world.check().await,
        Err(e) => Err(e),
    };
    outcome
        .map(|()| Summary {
            refreshes: world.server.counters().refreshes_accepted,
            failed_calls: world.failed_calls,
        })
        .map_err(|e| format!("{e}\n  schedule:\n    {}", world.log.join("\n    ")))
}

impl<S: SimHandle> World<S> {
    async fn new(seed: u64, verbose: bool) -> Self {
        let server = taskboard_server::start(Config {
            access_token_lifetime: LIFETIME,
            ..Config::default()
        })
        .await
        .expect("the reference server starts");
        let clock = ManualClock::new(t0());
        let shared = SimShared::new(seed);
        let mut rng = Rng::new(seed);
        let count = 2 + rng.below(3) as usize;
        let processes = (0..count)
            .map(|_| {
                let client = Client::builder(server.base_url(), DEMO_CLIENT.0)
                    .client_secret(DEMO_CLIENT.1.into())
                    .clock(clock.clone())
                    .refresh_timeout(Duration::from_secs(3))
                    .refresh_retries(1, Duration::from_millis(10))
                    .store_timeout(STORE_TIMEOUT)
                    .build()
                    .expect("a valid configuration");
                Process {
                    client,
                    store: S::of(&shared),
                    api: None,
                    since: 0,
                }
            })
            .collect();
        Self {
            server,
            clock,
            shared,
            processes,
            retired: Vec::new(),
            rng,
            log: Vec::new(),
            step: 0,
            store_fault_at: None,
            redirect_at: None,
            server_redirects: false,
            store_failures: 0,
            logout_step: None,
            logged_in_since_logout: true,
            login_may_have_landed: false,
            wipe_step: None,
            failed_calls: 0,
            verbose,
            started: Instant::now(),
        }
    }

    fn say(&mut self, what: String) {
        if self.verbose {
            println!(
                "step {:>2} ({:>5} ms): {what}",
                self.step,
                self.started.elapsed().as_millis()
            );
        }
        // The server's count of accepted refreshes and logins so far, to place a lost renewal.
        let counted = self.server.counters();
        self.log.push(format!(
            "{:>2} [r{} l{} {:>5} ms]: {what}",
            self.step,
            counted.refreshes_accepted,
            counted.password_grants,
            self.started.elapsed().as_millis()
        ));
    }

    async fn play(&mut self) -> Result<(), String> {
        self.login(0).await?;
        for p in 1..self.processes.len() {
            self.resume(p).await?;
        }
        for step in 1..=STEPS {
            self.step = step;
            self.note_faults();
            let p = self.rng.below(self.processes.len() as u64) as usize;
            match self.rng.below(100) {
                0..30 => self.burst().await?,
                30..45 => {
                    self.say(format!("p{p} calls"));
                    self.call(p).await?;
                }
                45..60 => {
                    let by = Duration::from_secs(self.rng.below(LIFETIME.as_secs() * 3 / 2));
                    self.say(format!("the clock moves {} s", by.as_secs()));
                    self.clock.advance(by);
                }
                60..65 => self.force(p).await?,
                65..70 => self.restart(p).await?,
                70..72 => self.logout(p).await?,
                72..75 => self.login(p).await?,
                _ => self.fault().await?,
            }
            self.note_faults();
        }
        Ok(())
    }

    /// Remember when store faults or redirects were last in force.
    fn note_faults(&mut self) {
        let faults = self.shared.current_faults();
        let now = Instant::now();
        let store_faulty = faults.down
            || faults.writes_fail
            || !faults.latency.is_zero()
            || faults.lost_write_replies > 0
            || faults.lose_next_lock
            || faults.stall_next_owner.is_some()
            || faults.late_unlocks.is_some()
            || self.shared.failed_calls() > self.store_failures;
        self.store_failures = self.shared.failed_calls();
        if store_faulty {
            self.store_fault_at = Some(now);
        }
        if self.server_redirects {
            self.redirect_at = Some(now);
        }
    }

    async fn fault(&mut self) -> Result<(), String> {
        let which = self.rng.below(13);
        let percent = 10 + self.rng.below(40);
        let stall = Duration::from_millis(100 + self.rng.below(120));
        let mut said = String::new();
        match which {
            0 => self.shared.faults(|f| {
                f.down = !f.down;
                said = format!("store down: {}", f.down);
            }),
            1 => self.shared.faults(|f| {
                f.latency = if f.latency.is_zero() {
                    // Past the timeout even of a call the session allows two (the lock with the
                    // read, the write with the unlock).
                    STORE_TIMEOUT * 3
                } else {
                    Duration::ZERO
                };
                said = format!("store latency: {:?}", f.latency);
            }),
            2 => self.shared.faults(|f| {
                f.writes_fail = !f.writes_fail;
                said = format!("store writes (and locks) fail: {}", f.writes_fail);
            }),
            3 => self.shared.faults(|f| {
                f.lost_write_replies = if f.lost_write_replies == 0 { percent } else { 0 };
                said = format!("lost write (and lock) replies: {}%", f.lost_write_replies);
            }),
            4 => self.shared.faults(|f| {
                f.lose_next_lock = true;
                said = "the next lock is lost".into();
            }),
            5 => self.shared.faults(|f| {
                f.stall_next_owner = Some(stall);
                said = format!("the next lock owner stalls {} ms", stall.as_millis());
            }),
            6 => self.shared.faults(|f| {
                f.hold_notifications = !f.hold_notifications;
                said = format!("notifications held back: {}", f.hold_notifications);
            }),
            7 => {
                // Held-back notifications reach every process first, as RedisStore's subscription
                // reads the current version when it reconnects; the loss comes at once after.
                self.shared.faults(|f| f.hold_notifications = false);
                self.shared.wipe();
                self.wipe_step = Some(self.step);
                said = "the store loses every key".into();
            }
            8 => self.shared.faults(|f| {
                f.late_unlocks = match f.late_unlocks {
                    None => Some(stall),
                    Some(_) => None,
                };
                said = format!("unlocks fail, and are carried out later: {:?}", f.late_unlocks);
            }),
            9 => {
                // Part-way through a renewal, which a process starts at once: the lock, the read, the
                // claim, the result and the unlock are three calls to a store that takes the lock with
                // the read and releases it with the write, five to one that does not.
                let left = self.rng.below(5) as u32;
                self.shared.faults(|f| f.calls_left = Some(left));
                self.store_fault_at = Some(Instant::now());
                self.say(format!("the store goes down after {left} more calls"));
                let p = self.rng.below(self.processes.len() as u64) as usize;
                return self.force(p).await;
            }
            10 => self.shared.faults(|f| {
                let left = self.rng.below(3) as u32;
                f.writes_left = Some(left);
                said = format!("store writes (and locks) fail after {left} more writes");
            }),
            _ => {
                self.server_redirects = !self.server_redirects;
                self.server.redirect_token_requests(self.server_redirects);
                said = format!("the token endpoint redirects: {}", self.server_redirects);
            }
        }
        if which != 6 {
            self.store_fault_at = Some(Instant::now());
        }
        self.say(said);
        Ok(())
    }
}

impl<S: SimHandle> World<S> {
    /// Whether the faults of the moment explain `error` in process `p`.
    fn explains<E: std::fmt::Debug>(&self, p: usize, error: &Error<E>) -> bool {
        let recent = |at: Option<Instant>| at.is_some_and(|at| at.elapsed() < FAULT_ECHO);
        match error {
            Error::Store(e) => e.is_unavailable() && recent(self.store_fault_at),
            Error::InvalidTokenResponse(e) => e.status() == 307 && recent(self.redirect_at),
            Error::SessionEnded(SessionEnd::LoggedOut) => {
                self.logout_step.is_some_and(|at| at >= self.processes[p].since)
            }
            Error::SessionEnded(SessionEnd::StoreLost) => self.wipe_step.is_some(),
            _ => false,
        }
    }

    /// Record a failed operation, or fail the schedule if nothing explains it.
    fn failed<E: std::fmt::Debug>(&mut self, p: usize, what: &str, error: &Error<E>) -> Result<(), String> {
        self.failed_calls += 1;
        self.note_faults();
        if self.explains(p, error) {
            self.say(format!("p{p} {what} failed, as the faults explain: {error}"));
            if matches!(error, Error::SessionEnded(_)) {
                self.let_go(p);
            }
            Ok(())
        } else {
            Err(format!(
                "step {}: p{p} {what} failed, and nothing explains it: {error:?}",
                self.step
            ))
        }
    }

    async fn call(&mut self, p: usize) -> Result<(), String> {
        let Some(api) = self.processes[p].api.clone() else {
            return Ok(());
        };
        match api.get_me().await {
            Ok(_) => Ok(()),
            Err(error) => self.failed(p, "a call", &error),
        }
    }

    /// Every process with a session sends a few calls at once.
    async fn burst(&mut self) -> Result<(), String> {
        let mut calls = Vec::new();
        for (p, process) in self.processes.iter().enumerate() {
            if let Some(api) = &process.api {
                for _ in 0..1 + self.rng.below(3) {
                    let api = api.clone();
                    calls.push(async move { (p, api.get_me().await.map(drop)) });
                }
            }
        }
        self.say(format!("a burst of {} calls", calls.len()));
        for (p, outcome) in join_all(calls).await {
            if let Err(error) = outcome {
                self.failed(p, "a call in a burst", &error)?;
            }
        }
        Ok(())
    }

    async fn force(&mut self, p: usize) -> Result<(), String> {
        let Some(api) = self.processes[p].api.clone() else {
            return Ok(());
        };
        self.say(format!("p{p} forces a refresh"));
        match api.refresh().await {
            Ok(()) => Ok(()),
            Err(error) => self.failed(p, "a forced refresh", &error),
        }
    }

    async fn login(&mut self, p: usize) -> Result<(), String> {
        self.say(format!("p{p} logs in"));
        let client = self.processes[p].client.clone();
        let store = self.processes[p].store.clone();
        match client.login_password(store, DEMO_USER.0, DEMO_USER.1.into()).await {
            Ok(api) => {
                self.let_go(p);
                self.processes[p].api = Some(api);
                self.processes[p].since = self.step;
                self.logged_in_since_logout = true;
                Ok(())
            }
            Err(error) => {
                // A write whose reply was lost may have landed: the store may hold this login.
                if matches!(&error, Error::Store(_)) {
                    self.login_may_have_landed = true;
                }
                self.failed(p, "a login", &error)
            }
        }
    }

    /// Process `p` lets go of its session.
    fn let_go(&mut self, p: usize) {
        self.retired.extend(self.processes[p].api.take());
    }

    async fn resume(&mut self, p: usize) -> Result<(), String> {
        let client = self.processes[p].client.clone();
        let store = self.processes[p].store.clone();
        match client.resume(store).await {
            Ok(api) => {
                self.let_go(p);
                self.processes[p].api = Some(api);
                self.processes[p].since = self.step;
                Ok(())
            }
            // Nothing to resume after a logout, or after the store lost every key.
            Err(Error::NoSession) => {
                self.say(format!("p{p} finds no session to resume"));
                self.let_go(p);
                Ok(())
            }
            Err(error) => self.failed(p, "a resume", &error),
        }
    }

    /// A graceful restart: the process waits for its write-back, exits, and resumes from the store.
    async fn restart(&mut self, p: usize) -> Result<(), String> {
        if let Some(api) = &self.processes[p].api
            && api.flush(Duration::from_millis(500)).await.is_err()
        {
            self.say(format!(
                "p{p} postpones its restart: a renewal or a write-back is pending"
            ));
            return Ok(());
        }
        self.say(format!("p{p} restarts"));
        self.let_go(p);
        self.resume(p).await
    }

    async fn logout(&mut self, p: usize) -> Result<(), String> {
        let Some(api) = self.processes[p].api.clone() else {
            return Ok(());
        };
        self.let_go(p);
        self.say(format!("p{p} logs out"));
        match api.logout().await {
            Ok(()) => {
                self.logout_step = Some(self.step);
                self.logged_in_since_logout = false;
                self.login_may_have_landed = false;
                Ok(())
            }
            // The local session ended; the store could not be told, so the others go on.
            Err(error) => self.failed(p, "a logout", &error),
        }
    }

    /// Wait until no write-back is pending and every process holds what the store holds (or has
    /// ended, if the store holds a tombstone).
    async fn settle(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        for process in &self.processes {
            if let Some(api) = &process.api {
                let _ = api.flush(deadline.saturating_duration_since(Instant::now())).await;
            }
        }
        while Instant::now() < deadline {
            let stored = self.shared.peek();
            let in_step = self.processes.iter().filter_map(|p| p.api.as_ref()).all(|api| {
                match (
                    &*api.session_changes().borrow(),
                    stored.as_ref().map(|r| r.tokens.as_ref()),
                ) {
                    (SessionState::Active(mine), Some(Some(stored))) => {
                        mine.access_token().expose_secret() == stored.access_token().expose_secret()
                    }
                    (SessionState::Active(_), Some(None)) => false,
                    _ => true,
                }
            });
            if in_step {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The invariants, from the server's point of view, once the faults are healed.
    async fn check(&mut self) -> Result<(), String> {
        self.step = STEPS + 1;
        self.shared.faults(|f| *f = Default::default());
        if self.server_redirects {
            self.server_redirects = false;
            self.server.redirect_token_requests(false);
        }
        let held = self.processes.iter().filter_map(|p| p.api.as_ref());
        for api in held.chain(&self.retired) {
            let _ = api.flush(Duration::from_secs(10)).await;
        }
        // Every live process renews once more: a spent refresh token anywhere shows now.
        self.clock.advance(LIFETIME);
        self.say("healed; the clock moves past expiry and every process calls".into());
        // What each process and the store hold, in the schedule's log.
        let short =
            |t: &oauth_sdk::TokenSet| format!("{}#{}", &t.lineage()[..6.min(t.lineage().len())], t.generation());
        let mut holdings: Vec<String> = self
            .processes
            .iter()
            .enumerate()
            .map(|(p, process)| {
                let holds = process.api.as_ref().map(|api| match &*api.session_changes().borrow() {
                    SessionState::Active(tokens) => short(tokens),
                    SessionState::Ended(end) => format!("ended: {end}"),
                    other => format!("{other:?}"),
                });
                format!("p{p} holds {holds:?}")
            })
            .collect();
        let stored = self.shared.peek().map(|r| r.tokens.as_ref().map(short));
        holdings.push(format!("the store holds {stored:?}"));
        for holding in holdings {
            self.say(holding);
        }
        // A call may still fail by a fault of before the healing: a renewal it joined had begun
        // under it (seed 9887). Once healed, each process goes on calling until one gets through.
        for p in 0..self.processes.len() {
            for _ in 0..3 {
                let failed = self.failed_calls;
                self.call(p).await?;
                if self.failed_calls == failed {
                    break;
                }
            }
        }
        self.settle().await;

        let counted = self.server.counters();
        if counted.reused_refresh_tokens != 0 || counted.families_revoked != 0 {
            return Err(format!("a refresh token was presented twice: {counted:?}"));
        }
        if counted.redirected_token_requests != 0 {
            return Err(format!("a token request followed a redirect: {counted:?}"));
        }
        let stored = self.shared.peek();
        let logged_out = self.logout_step.is_some() && !self.logged_in_since_logout && !self.login_may_have_landed;
        // What the loss of every key explains: a logout's tombstone lost before every process saw
        // it (they put the session back), or a session lost with no process left holding it.
        let wiped_after = |step: Option<usize>| self.wipe_step.is_some_and(|wipe| step.is_none_or(|s| wipe >= s));
        let anyone_live = self.processes.iter().any(|p| p.api.is_some());
        let unsure_login = self.login_may_have_landed && !self.logged_in_since_logout;
        match stored.as_ref().map(|record| record.tokens.as_ref()) {
            Some(None) if logged_out || unsure_login => {}
            None if logged_out => {}
            // Lost with every key, and no process holds a copy it can vouch for.
            None if wiped_after(None) && !anyone_live => {}
            Some(Some(_)) if logged_out && wiped_after(self.logout_step) => {
                self.say("the logout's tombstone was lost with every key, before every process saw it".into());
            }
            Some(Some(tokens)) if !logged_out => {
                let refresh = tokens.refresh_token().map(|t| t.expose_secret().to_owned());
                if !refresh.is_some_and(|t| self.server.refresh_token_is_current(&t)) {
                    return Err("the store does not hold the newest session: its refresh token is spent".into());
                }
                for (p, process) in self.processes.iter().enumerate() {
                    if let Some(api) = &process.api
                        && let SessionState::Active(mine) = &*api.session_changes().borrow()
                        && mine.access_token().expose_secret() != tokens.access_token().expose_secret()
                    {
                        return Err(format!("p{p} holds a session other than the store's"));
                    }
                }
            }
            other => {
                return Err(format!(
                    "the store holds {}, but the last word was {}",
                    match other {
                        None => "nothing",
                        Some(None) => "a tombstone",
                        Some(Some(_)) => "a session",
                    },
                    if logged_out { "a logout" } else { "a login" }
                ));
            }
        }
        Ok(())
    }
}
