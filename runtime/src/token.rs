//! The session's tokens, in the form stores keep them.

use std::time::{Duration, SystemTime};

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// How a session was obtained, which decides how it is renewed.
///
/// A session with a refresh token is renewed with it, whatever its grant. Without one, a
/// client-credentials session asks for a new token with the client's credentials; any other session
/// cannot be renewed (the SDK keeps no password, code or device code) and ends at expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(description = "How the session was obtained: it decides how the session is renewed.")]
#[non_exhaustive]
pub enum Grant {
    /// Resource-owner password credentials (RFC 6749 section 4.3).
    Password,
    /// Client credentials (RFC 6749 section 4.4).
    ClientCredentials,
    /// Authorization code with PKCE (RFC 6749 section 4.1, RFC 7636): a user signed in at the
    /// authorization server in a browser.
    AuthorizationCode,
    /// Device authorization (RFC 8628): a user approved the login on another device.
    DeviceCode,
    /// Obtained by other means (an authorization-code login done by another library, a one-off
    /// script) and handed to the SDK with `Client::start_session`. Renewed with its refresh token at
    /// the configured `token_url`, else the token URL of the spec's authorization-code flow, else of
    /// another flow it declares; without a refresh token it ends at expiry.
    External,
}

/// An access token, its refresh token and what is known about them.
///
/// Tokens are [`SecretString`]s from the moment they are parsed; `Debug` shows `[REDACTED]`.
/// The serialised form (what [`TokenStore`](crate::TokenStore)s keep) is JSON with the schema
/// [`TokenSet::json_schema`] publishes; it is the one place the secrets are written out.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(
    title = "oauth-sdk stored session",
    description = "One OAuth session as a token store keeps it: the tokens are secrets.",
    deny_unknown_fields
)]
pub struct TokenSet {
    /// The bearer token sent to the API.
    #[serde(serialize_with = "expose::secret")]
    #[schemars(with = "String")]
    access_token: SecretString,
    /// Renews the session; absent when the server gave none.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "expose::optional_secret"
    )]
    #[schemars(with = "Option<String>")]
    refresh_token: Option<SecretString>,
    /// As the server named it; the SDK only accepts `Bearer` (any case).
    token_type: String,
    /// When the access token expires; absent when the server did not say.
    #[serde(default, with = "rfc3339::optional")]
    #[schemars(with = "Option<String>", extend("format" = "date-time"))]
    expires_at: Option<SystemTime>,
    /// When the client received the token (used to refresh ahead of short lifetimes).
    #[serde(with = "rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    issued_at: SystemTime,
    /// The scopes granted, when the server said (else those requested).
    #[serde(default)]
    scopes: Vec<String>,
    /// How the session was obtained.
    grant: Grant,
    /// The login this session descends from: an id drawn at login that every renewal keeps, so that
    /// a process can tell a renewal of its session from a new login.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    lineage: String,
    /// How many renewals since that login: of two token sets of one lineage, the higher is newer.
    #[serde(default)]
    generation: u64,
    /// The OAuth client the tokens were issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    /// The token endpoint that issued them (and that renews them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_endpoint: Option<String>,
    /// Set while a process is presenting this session's refresh token: written into the store with
    /// a compare-and-set before the refresh is sent, so that no other process presents it too, even
    /// if the store's renewal lock was lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    renewing: Option<Claim>,
}

/// A process's claim to renew a session: who, and until when (wall-clock time, so that processes on
/// other machines can tell when a claim whose owner died lapses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Claim {
    /// The claiming session's id, random per process and session.
    owner: String,
    /// When the claim lapses.
    #[serde(with = "rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    until: SystemTime,
}

impl TokenSet {
    /// A token set, e.g. to seed a store with a session obtained elsewhere.
    pub fn new(access_token: SecretString, grant: Grant, issued_at: SystemTime) -> Self {
        Self {
            access_token,
            refresh_token: None,
            token_type: "Bearer".to_owned(),
            expires_at: None,
            issued_at,
            scopes: Vec::new(),
            grant,
            lineage: String::new(),
            generation: 0,
            client_id: None,
            token_endpoint: None,
            renewing: None,
        }
    }

    /// With a refresh token.
    pub fn with_refresh_token(mut self, refresh_token: SecretString) -> Self {
        self.refresh_token = Some(refresh_token);
        self
    }

    /// Expiring `lifetime` after it was issued.
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.expires_at = self.issued_at.checked_add(lifetime);
        self
    }

    /// With the scopes granted.
    pub fn with_scopes(mut self, scopes: Vec<String>) -> Self {
        self.scopes = scopes;
        self
    }

    pub(crate) fn with_token_type(mut self, token_type: String) -> Self {
        self.token_type = token_type;
        self
    }

    /// The access token. Expose it only where it is written to the wire.
    pub fn access_token(&self) -> &SecretString {
        &self.access_token
    }

    /// The refresh token, if the server gave one.
    pub fn refresh_token(&self) -> Option<&SecretString> {
        self.refresh_token.as_ref()
    }

    /// The token type the server named (`Bearer`).
    pub fn token_type(&self) -> &str {
        &self.token_type
    }

    /// When the access token expires, if the server said.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// When the client received the token.
    pub fn issued_at(&self) -> SystemTime {
        self.issued_at
    }

    /// The scopes granted.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// How the session was obtained.
    pub fn grant(&self) -> Grant {
        self.grant
    }

    /// The login this session descends from (empty for a token set made by hand).
    pub fn lineage(&self) -> &str {
        &self.lineage
    }

    /// Renewals since that login.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The OAuth client the tokens were issued to, if recorded.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// The token endpoint that issued them, if recorded.
    pub fn token_endpoint(&self) -> Option<&str> {
        self.token_endpoint.as_deref()
    }

    /// Issued to `client_id` by `token_endpoint`, as the first of a new lineage.
    pub(crate) fn first_of_lineage(mut self, client_id: &str, token_endpoint: &str) -> Self {
        self.lineage = uuid::Uuid::new_v4().simple().to_string();
        self.generation = 0;
        self.client_id = Some(client_id.to_owned());
        self.token_endpoint = Some(token_endpoint.to_owned());
        self
    }

    /// The renewal of `previous`: its lineage, one generation on.
    pub(crate) fn succeeding(mut self, previous: &TokenSet) -> Self {
        self.lineage = previous.lineage.clone();
        self.generation = previous.generation + 1;
        self.client_id = previous.client_id.clone();
        self.token_endpoint = previous.token_endpoint.clone();
        self.renewing = None;
        self
    }

    /// These tokens, claimed for renewal by `owner` until `until`.
    /// A session stored before lineages existed, or made by hand, gets one here: the claim is a
    /// compare-and-set, so one process draws it and every renewal after keeps it.
    pub(crate) fn claimed(&self, owner: &str, until: SystemTime) -> Self {
        let mut claimed = self.clone();
        if claimed.lineage.is_empty() {
            claimed.lineage = uuid::Uuid::new_v4().simple().to_string();
        }
        claimed.renewing = Some(Claim {
            owner: owner.to_owned(),
            until,
        });
        claimed
    }

    /// These tokens, with no claim.
    pub(crate) fn unclaimed(&self) -> Self {
        let mut unclaimed = self.clone();
        unclaimed.renewing = None;
        unclaimed
    }

    /// Whether these are `claimed` as it was written: the same tokens under the same claim (its
    /// owner, and when it lapses, to the millisecond a store keeps).
    pub(crate) fn is_claim(&self, claimed: &TokenSet) -> bool {
        fn millis(claim: &Claim) -> u128 {
            claim
                .until
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis()
        }
        match (&self.renewing, &claimed.renewing) {
            (Some(ours), Some(theirs)) => {
                ours.owner == theirs.owner && millis(ours) == millis(theirs) && self.is_same(claimed)
            }
            _ => false,
        }
    }

    /// Whether a process other than `owner` has a claim on these tokens that has not lapsed.
    pub(crate) fn claimed_by_other(&self, owner: &str, now: SystemTime) -> bool {
        self.renewing
            .as_ref()
            .is_some_and(|claim| claim.owner != owner && now < claim.until)
    }

    /// The same tokens (compared in memory, never printed).
    pub(crate) fn is_same(&self, other: &TokenSet) -> bool {
        use secrecy::ExposeSecret;
        fn refresh(tokens: &TokenSet) -> Option<&str> {
            tokens.refresh_token.as_ref().map(|t| t.expose_secret())
        }
        self.access_token.expose_secret() == other.access_token.expose_secret() && refresh(self) == refresh(other)
    }

    /// Whether `self` is a later renewal of the same login than `other`.
    pub(crate) fn succeeds(&self, other: &TokenSet) -> bool {
        !self.lineage.is_empty() && self.lineage == other.lineage && self.generation > other.generation
    }

    /// The JSON Schema of the stored form, for stores written in other languages and for migrations.
    pub fn json_schema() -> schemars::Schema {
        schemars::schema_for!(TokenSet)
    }
}

/// The one place secrets are written out: into a store's serialised form.
pub(crate) mod expose {
    use secrecy::{ExposeSecret, SecretString};
    use serde::Serializer;

    pub fn secret<S: Serializer>(secret: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(secret.expose_secret())
    }

    pub fn optional_secret<S: Serializer>(secret: &Option<SecretString>, serializer: S) -> Result<S::Ok, S::Error> {
        match secret {
            Some(secret) => serializer.serialize_some(secret.expose_secret()),
            None => serializer.serialize_none(),
        }
    }
}

/// Instants as RFC 3339 strings with millisecond precision, readable in `redis-cli` or a file.
mod rfc3339 {
    use std::time::SystemTime;

    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
        let time: DateTime<Utc> = (*time).into();
        serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(SystemTime::from)
            .map_err(serde::de::Error::custom)
    }

    pub mod optional {
        use super::*;

        pub fn serialize<S: Serializer>(time: &Option<SystemTime>, serializer: S) -> Result<S::Ok, S::Error> {
            match time {
                Some(time) => super::serialize(time, serializer),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<SystemTime>, D::Error> {
            Option::<String>::deserialize(deserializer)?
                .map(|text| DateTime::parse_from_rfc3339(&text).map(SystemTime::from))
                .transpose()
                .map_err(serde::de::Error::custom)
        }
    }
}
