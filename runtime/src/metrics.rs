//! What a session tells the application: its state as it changes, and counters.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::error::SessionEnd;
use crate::token::TokenSet;

/// The session as the application sees it; published on every change through
/// [`Authenticated::session_changes`](crate::Authenticated::session_changes).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SessionState {
    /// The session is live with these tokens (renewed by this process or adopted from the store).
    Active(TokenSet),
    /// The session is over.
    Ended(SessionEnd),
}

/// Counters since the session was logged in or resumed in this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Requests sent with the access token (resends included).
    pub requests: u64,
    /// Requests sent again after their token was rejected and renewed.
    pub resent: u64,
    /// Renewals started because the token was within the skew of its expiry, and not yet expired.
    pub renewals_ahead_of_expiry: u64,
    /// Renewals started because the token had expired: a process idle across the expiry, or a call
    /// that took longer than the rest of the renewal window. In a busy steady state, 0.
    pub renewals_after_expiry: u64,
    /// Renewals started because the API rejected the token.
    pub renewals_after_rejection: u64,
    /// Renewals the application asked for ([`Authenticated::refresh`](crate::Authenticated::refresh)).
    pub renewals_forced: u64,
    /// Sessions another process renewed, adopted from the store without a refresh.
    pub adopted_from_store: u64,
    /// Tokens this process obtained from the token endpoint by renewing (refresh grant or client
    /// credentials).
    pub refreshes: u64,
    /// Renewals the token endpoint refused (the session ended).
    pub refresh_refused: u64,
    /// Renewals that failed for a passing reason (network, timeout, 429, 5xx).
    pub refresh_transient: u64,
    /// Renewals whose answer was not a usable token response.
    pub refresh_invalid_response: u64,
    /// Renewals the token store failed.
    pub refresh_store_failed: u64,
}

/// The live counters behind [`Metrics`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub requests: AtomicU64,
    pub resent: AtomicU64,
    pub renewals_ahead_of_expiry: AtomicU64,
    pub renewals_after_expiry: AtomicU64,
    pub renewals_after_rejection: AtomicU64,
    pub renewals_forced: AtomicU64,
    pub adopted_from_store: AtomicU64,
    pub refreshes: AtomicU64,
    pub refresh_refused: AtomicU64,
    pub refresh_transient: AtomicU64,
    pub refresh_invalid_response: AtomicU64,
    pub refresh_store_failed: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> Metrics {
        Metrics {
            requests: self.requests.load(Relaxed),
            resent: self.resent.load(Relaxed),
            renewals_ahead_of_expiry: self.renewals_ahead_of_expiry.load(Relaxed),
            renewals_after_expiry: self.renewals_after_expiry.load(Relaxed),
            renewals_after_rejection: self.renewals_after_rejection.load(Relaxed),
            renewals_forced: self.renewals_forced.load(Relaxed),
            adopted_from_store: self.adopted_from_store.load(Relaxed),
            refreshes: self.refreshes.load(Relaxed),
            refresh_refused: self.refresh_refused.load(Relaxed),
            refresh_transient: self.refresh_transient.load(Relaxed),
            refresh_invalid_response: self.refresh_invalid_response.load(Relaxed),
            refresh_store_failed: self.refresh_store_failed.load(Relaxed),
        }
    }
}
