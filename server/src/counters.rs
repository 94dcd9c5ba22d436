//! What the server counts, for tests and benchmarks to read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters (atomics: the API path updates them on every request).
pub struct Counters {
    pub(crate) password_grants: AtomicU64,
    pub(crate) client_credentials_grants: AtomicU64,
    pub(crate) refresh_grants: AtomicU64,
    pub(crate) refreshes_accepted: AtomicU64,
    pub(crate) refreshes_rejected: AtomicU64,
    pub(crate) reused_refresh_tokens: AtomicU64,
    pub(crate) families_revoked: AtomicU64,
    pub(crate) revocations: AtomicU64,
    pub(crate) redirected_token_requests: AtomicU64,
    pub(crate) authorization_code_grants: AtomicU64,
    pub(crate) codes_replayed: AtomicU64,
    pub(crate) device_code_grants: AtomicU64,
    pub(crate) device_slow_downs: AtomicU64,
    api_statuses: Box<[AtomicU64]>,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            password_grants: AtomicU64::new(0),
            client_credentials_grants: AtomicU64::new(0),
            refresh_grants: AtomicU64::new(0),
            refreshes_accepted: AtomicU64::new(0),
            refreshes_rejected: AtomicU64::new(0),
            reused_refresh_tokens: AtomicU64::new(0),
            families_revoked: AtomicU64::new(0),
            revocations: AtomicU64::new(0),
            redirected_token_requests: AtomicU64::new(0),
            authorization_code_grants: AtomicU64::new(0),
            codes_replayed: AtomicU64::new(0),
            device_code_grants: AtomicU64::new(0),
            device_slow_downs: AtomicU64::new(0),
            api_statuses: (0..600).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn api_status(&self, status: u16) {
        if let Some(counter) = self.api_statuses.get(usize::from(status)) {
            counter.fetch_add(1, Relaxed);
        }
    }

    /// A copy of every counter.
    pub fn snapshot(&self) -> CounterSnapshot {
        let api_statuses = self
            .api_statuses
            .iter()
            .enumerate()
            .filter_map(|(status, n)| {
                let n = n.load(Relaxed);
                (n > 0).then(|| (u16::try_from(status).unwrap_or(0), n))
            })
            .collect();
        CounterSnapshot {
            password_grants: self.password_grants.load(Relaxed),
            client_credentials_grants: self.client_credentials_grants.load(Relaxed),
            refresh_grants: self.refresh_grants.load(Relaxed),
            refreshes_accepted: self.refreshes_accepted.load(Relaxed),
            refreshes_rejected: self.refreshes_rejected.load(Relaxed),
            reused_refresh_tokens: self.reused_refresh_tokens.load(Relaxed),
            families_revoked: self.families_revoked.load(Relaxed),
            revocations: self.revocations.load(Relaxed),
            redirected_token_requests: self.redirected_token_requests.load(Relaxed),
            authorization_code_grants: self.authorization_code_grants.load(Relaxed),
            codes_replayed: self.codes_replayed.load(Relaxed),
            device_code_grants: self.device_code_grants.load(Relaxed),
            device_slow_downs: self.device_slow_downs.load(Relaxed),
            api_statuses,
        }
    }
}

/// The counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Token requests with the password grant.
    pub password_grants: u64,
    /// Token requests with the client-credentials grant.
    pub client_credentials_grants: u64,
    /// Token requests with the refresh-token grant.
    pub refresh_grants: u64,
    /// Refresh-token grants that issued a token.
    pub refreshes_accepted: u64,
    /// Refresh-token grants refused (`invalid_grant`).
    pub refreshes_rejected: u64,
    /// Refresh tokens presented after they had been rotated (each one revokes its family).
    pub reused_refresh_tokens: u64,
    /// Token families revoked (by reuse detection or revocation).
    pub families_revoked: u64,
    /// Calls to the revocation endpoint.
    pub revocations: u64,
    /// Token requests that followed a redirect of the token endpoint to `/oauth/elsewhere`.
    pub redirected_token_requests: u64,
    /// Token requests with the authorization-code grant.
    pub authorization_code_grants: u64,
    /// Authorization codes presented again after they were redeemed (each revokes the tokens issued for it).
    pub codes_replayed: u64,
    /// Token requests with the device-code grant (polls).
    pub device_code_grants: u64,
    /// Device-code polls answered `slow_down`.
    pub device_slow_downs: u64,
    /// API responses by status.
    pub api_statuses: BTreeMap<u16, u64>,
}

impl CounterSnapshot {
    /// API responses with this status.
    pub fn api(&self, status: u16) -> u64 {
        self.api_statuses.get(&status).copied().unwrap_or(0)
    }

    /// All API responses.
    pub fn api_total(&self) -> u64 {
        self.api_statuses.values().sum()
    }
}
