//! Client authentication with a signed JWT instead of a secret sent along (RFC 7523 section 2.2;
//! OpenID Connect Core section 9): `private_key_jwt`, signed with a private key whose public half the
//! authorization server knows, and `client_secret_jwt`, an HMAC with the client secret. Feature `jwt`.
//!
//! Each token request gets a new assertion: issuer and subject the client id, audience the endpoint
//! it is sent to, a random `jti`, and a lifetime of one minute.

use std::fmt;
use std::time::{Duration, SystemTime};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::error::{ConfigError, Error};

/// How long an assertion is valid: long enough for a slow request, short enough to be useless if
/// captured.
const LIFETIME: Duration = Duration::from_secs(60);

/// The signature algorithm of a [`ClientAssertionKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwtAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (an RSA key).
    RS256,
    /// RSASSA-PSS with SHA-256 (an RSA key).
    PS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

/// The private key that signs `private_key_jwt` client assertions
/// ([`ClientBuilder::client_assertion_key`](crate::ClientBuilder::client_assertion_key)). `Debug`
/// does not show it.
#[derive(Clone)]
pub struct ClientAssertionKey {
    key: EncodingKey,
    algorithm: JwtAlgorithm,
    key_id: Option<String>,
}

impl fmt::Debug for ClientAssertionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAssertionKey")
            .field("algorithm", &self.algorithm)
            .field("key_id", &self.key_id)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

impl ClientAssertionKey {
    /// A private key in PEM (PKCS#8, or PKCS#1 for RSA), for `algorithm`. Fails with
    /// [`ConfigError::ClientAssertion`] if it is not a key of that kind.
    pub fn from_pem(algorithm: JwtAlgorithm, pem: &SecretString) -> Result<Self, Error> {
        let pem = pem.expose_secret().as_bytes();
        let (key, kind) = match algorithm {
            JwtAlgorithm::RS256 | JwtAlgorithm::PS256 => (EncodingKey::from_rsa_pem(pem), "an RSA"),
            JwtAlgorithm::ES256 | JwtAlgorithm::ES384 => (EncodingKey::from_ec_pem(pem), "an EC"),
            JwtAlgorithm::EdDSA => (EncodingKey::from_ed_pem(pem), "an Ed25519"),
        };
        let key = key.map_err(|_| {
            ConfigError::ClientAssertion(format!("the client assertion key is not {kind} private key in PEM"))
        })?;
        let key = Self {
            key,
            algorithm,
            key_id: None,
        };
        // Sign once now, so that a key that cannot sign (an EC key of the other curve) is a
        // configuration error, not a failed login.
        key.sign("check", "https://example.com/token", SystemTime::now())
            .map_err(ConfigError::ClientAssertion)?;
        Ok(key)
    }

    /// With the key id (`kid`) the authorization server knows the key by.
    pub fn with_key_id(mut self, key_id: impl Into<String>) -> Self {
        self.key_id = Some(key_id.into());
        self
    }

    fn sign(&self, client_id: &str, audience: &str, now: SystemTime) -> Result<SecretString, String> {
        let algorithm = match self.algorithm {
            JwtAlgorithm::RS256 => Algorithm::RS256,
            JwtAlgorithm::PS256 => Algorithm::PS256,
            JwtAlgorithm::ES256 => Algorithm::ES256,
            JwtAlgorithm::ES384 => Algorithm::ES384,
            JwtAlgorithm::EdDSA => Algorithm::EdDSA,
        };
        let mut header = Header::new(algorithm);
        header.kid.clone_from(&self.key_id);
        sign(&header, &self.key, client_id, audience, now)
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    jti: String,
    iat: u64,
    exp: u64,
}

fn sign(
    header: &Header,
    key: &EncodingKey,
    client_id: &str,
    audience: &str,
    now: SystemTime,
) -> Result<SecretString, String> {
    let iat = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
    let claims = Claims {
        iss: client_id,
        sub: client_id,
        aud: audience,
        jti: uuid::Uuid::new_v4().to_string(),
        iat,
        exp: iat + LIFETIME.as_secs(),
    };
    // jsonwebtoken's errors name the failure, never the key.
    jsonwebtoken::encode(header, &claims, key)
        .map(SecretString::from)
        .map_err(|e| format!("the client assertion cannot be signed: {e}"))
}

/// How the token client signs its assertions.
#[derive(Debug, Clone)]
pub(crate) enum Signer {
    PrivateKey(ClientAssertionKey),
    /// `client_secret_jwt`: HS256 with the client secret.
    Secret(SecretString),
}

impl Signer {
    /// A new assertion for a request to `audience`.
    pub fn assertion(&self, client_id: &str, audience: &str, now: SystemTime) -> Result<SecretString, String> {
        match self {
            Signer::PrivateKey(key) => key.sign(client_id, audience, now),
            Signer::Secret(secret) => {
                let key = EncodingKey::from_secret(secret.expose_secret().as_bytes())
                    .map_err(|e| format!("the client secret cannot sign a client assertion: {e}"))?;
                sign(&Header::new(Algorithm::HS256), &key, client_id, audience, now)
            }
        }
    }
}
