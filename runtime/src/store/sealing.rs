//! Sealing the stored session (feature `encryption`): the token set encrypted and authenticated with
//! AES-256-GCM (aws-lc-rs) before a store writes it, under a key id written beside it, so that keys
//! can be rotated: a store seals with its current key and opens with any key it is given.
//!
//! The sealed form, in place of the token set's JSON:
//! `{"sealed": "A256GCM", "kid": KEY_ID, "nonce": BASE64URL, "data": BASE64URL}`, the data being the
//! ciphertext and its tag. The additional authenticated data binds the key id and the store's
//! context (the Redis session key, the file's name), so a sealed session copied to another session
//! does not open. It does not bind the version: someone who can write to the store can put back an
//! older sealed session of the same session (which the server refuses once its refresh token was
//! rotated), but cannot read one or forge one.
//!
//! A session that cannot be opened (a key id not given, a wrong key, an altered session, a session
//! left unsealed where sealing is required) is a lasting [`StoreError`] for which
//! [`StoreError::is_sealing`] is true; the stored session is left as it is.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::StoreError;
use crate::token::TokenSet;

/// The one algorithm, named in the sealed form.
#[cfg_attr(not(feature = "encryption"), allow(dead_code))]
const ALGORITHM: &str = "A256GCM";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(feature = "encryption"), allow(dead_code))]
struct Sealed {
    sealed: String,
    kid: String,
    nonce: String,
    data: String,
}

#[cfg(feature = "encryption")]
pub use self::keys::SealingKeys;

/// Without the feature there are no keys: stores read sealed sessions only to say so.
#[cfg(not(feature = "encryption"))]
#[derive(Debug, Clone)]
pub(crate) enum SealingKeys {}

/// The stored form of `tokens`: as they are, or sealed with `keys`' current key.
#[cfg_attr(not(feature = "encryption"), allow(unused_variables))]
pub(crate) fn encode(
    keys: Option<&SealingKeys>,
    tokens: &TokenSet,
    context: &str,
    store: &'static str,
) -> Result<Value, StoreError> {
    // The one place the session's secrets are written out.
    let plain = serde_json::to_value(tokens).map_err(|_| StoreError::new(store, "cannot serialise the session"))?;
    match keys {
        None => Ok(plain),
        #[cfg(feature = "encryption")]
        Some(keys) => keys.seal(&plain, context, store),
        #[cfg(not(feature = "encryption"))]
        Some(keys) => match *keys {},
    }
}

/// The tokens of a stored form, opened with `keys` if sealed.
#[cfg_attr(not(feature = "encryption"), allow(unused_variables))]
pub(crate) fn decode(
    keys: Option<&SealingKeys>,
    stored: Value,
    context: &str,
    store: &'static str,
) -> Result<TokenSet, StoreError> {
    let unreadable = |e: serde_json::Error| {
        StoreError::invalid(
            store,
            format!(
                "the stored session is not readable: {}",
                crate::error::describe_parse_error(&e)
            ),
        )
    };
    let is_sealed = stored.get("sealed").is_some();
    match (is_sealed, keys) {
        (false, None) => serde_json::from_value(stored).map_err(unreadable),
        (true, None) => {
            let kid = stored.get("kid").and_then(Value::as_str).unwrap_or("?");
            Err(StoreError::sealing(
                store,
                format!(
                    "the stored session is sealed (key `{kid}`), and no sealing keys are configured: give the \
                     store its SealingKeys (feature `encryption`)"
                ),
            ))
        }
        #[cfg(feature = "encryption")]
        (_, Some(keys)) => keys
            .open(stored, context, store)
            .and_then(|plain| serde_json::from_value(plain).map_err(unreadable)),
        #[cfg(not(feature = "encryption"))]
        (_, Some(keys)) => match *keys {},
    }
}

#[cfg(feature = "encryption")]
mod keys {
    use std::fmt;
    use std::sync::Arc;

    use aws_lc_rs::aead::{AES_256_GCM, Aad, Nonce, RandomizedNonceKey};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use secrecy::{ExposeSecret, SecretString};
    use serde_json::Value;

    use super::{ALGORITHM, Sealed};
    use crate::store::StoreError;

    /// The keys a store seals sessions with (AES-256-GCM): the current one seals every write; it and
    /// the previous ones open what is stored, so a key can be rotated without losing a session. Give
    /// them to [`FileStore::with_sealing`](crate::FileStore::with_sealing) or
    /// `RedisSessions::with_sealing`. `Debug` shows the key ids only.
    ///
    /// ```
    /// use oauth_sdk_runtime::SealingKeys;
    ///
    /// // 32 bytes each, from your secret manager; base64 (standard or URL-safe) here.
    /// let keys = SealingKeys::from_base64("2026-12", &"q83vEjRWeJASNFZ4kBI0VniQEjRWeJASNFZ4kBI0VnM=".into())?
    ///     .with_previous_base64("2026-06", &"ASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4mrze8=".into())?;
    /// # Ok::<(), oauth_sdk_runtime::StoreError>(())
    /// ```
    #[derive(Clone)]
    pub struct SealingKeys {
        current: Arc<Key>,
        previous: Vec<Arc<Key>>,
        read_unsealed: bool,
    }

    struct Key {
        id: String,
        key: RandomizedNonceKey,
    }

    impl fmt::Debug for SealingKeys {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("SealingKeys")
                .field("current", &self.current.id)
                .field("previous", &self.previous.iter().map(|k| &k.id).collect::<Vec<_>>())
                .field("read_unsealed", &self.read_unsealed)
                .finish()
        }
    }

    fn key(id: impl Into<String>, bytes: &[u8]) -> Result<Arc<Key>, StoreError> {
        let id = id.into();
        if bytes.len() != 32 {
            return Err(StoreError::sealing(
                "sealing",
                format!("key `{id}` has {} bytes; AES-256-GCM takes 32", bytes.len()),
            ));
        }
        let key = RandomizedNonceKey::new(&AES_256_GCM, bytes)
            .map_err(|_| StoreError::sealing("sealing", format!("key `{id}` cannot be used")))?;
        Ok(Arc::new(Key { id, key }))
    }

    fn decode_base64(id: &str, encoded: &SecretString) -> Result<Vec<u8>, StoreError> {
        let text = encoded.expose_secret().trim();
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .map_err(|_| StoreError::sealing("sealing", format!("key `{id}` is not base64")))
    }

    impl SealingKeys {
        /// Seal with the 32-byte key `key`, known by `id` (written beside each sealed session).
        pub fn new(id: impl Into<String>, key: &[u8]) -> Result<Self, StoreError> {
            Ok(Self {
                current: self::key(id, key)?,
                previous: Vec::new(),
                read_unsealed: false,
            })
        }

        /// [`new`](Self::new), with the key in base64.
        pub fn from_base64(id: &str, key: &SecretString) -> Result<Self, StoreError> {
            Self::new(id, &decode_base64(id, key)?)
        }

        /// Also open sessions sealed with an earlier key, `id`; the next write seals them with the
        /// current key.
        pub fn with_previous(mut self, id: impl Into<String>, key: &[u8]) -> Result<Self, StoreError> {
            self.previous.push(self::key(id, key)?);
            Ok(self)
        }

        /// [`with_previous`](Self::with_previous), with the key in base64.
        pub fn with_previous_base64(self, id: &str, key: &SecretString) -> Result<Self, StoreError> {
            let bytes = decode_base64(id, key)?;
            self.with_previous(id, &bytes)
        }

        /// Read sessions stored before sealing was turned on (default: refused, so that a session
        /// written around the encryption cannot be slipped in). The next write seals them.
        pub fn reading_unsealed(mut self, allow: bool) -> Self {
            self.read_unsealed = allow;
            self
        }

        fn aad(id: &str, context: &str) -> String {
            format!("oauth-sdk stored session\n{id}\n{context}")
        }

        pub(crate) fn seal(&self, plain: &Value, context: &str, store: &'static str) -> Result<Value, StoreError> {
            let mut data =
                serde_json::to_vec(plain).map_err(|_| StoreError::new(store, "cannot serialise the session"))?;
            let key = &self.current;
            let nonce = key
                .key
                .seal_in_place_append_tag(Aad::from(Self::aad(&key.id, context)), &mut data)
                .map_err(|_| StoreError::new(store, "the session cannot be sealed"))?;
            let sealed = Sealed {
                sealed: ALGORITHM.to_owned(),
                kid: key.id.clone(),
                nonce: URL_SAFE_NO_PAD.encode(nonce.as_ref()),
                data: URL_SAFE_NO_PAD.encode(&data),
            };
            serde_json::to_value(sealed).map_err(|_| StoreError::new(store, "cannot serialise the session"))
        }

        pub(crate) fn open(&self, stored: Value, context: &str, store: &'static str) -> Result<Value, StoreError> {
            let refused = |why: String| StoreError::sealing(store, why);
            if stored.get("sealed").is_none() {
                if self.read_unsealed {
                    return Ok(stored);
                }
                return Err(refused(
                    "the stored session is not sealed, and this store requires sealed sessions (allow them for \
                     a migration with SealingKeys::reading_unsealed)"
                        .to_owned(),
                ));
            }
            let sealed: Sealed = serde_json::from_value(stored)
                .map_err(|_| refused("the sealed session is not in the sealed form".to_owned()))?;
            if sealed.sealed != ALGORITHM {
                return Err(refused(format!(
                    "the session is sealed with `{}`, not {ALGORITHM}",
                    sealed.sealed
                )));
            }
            let key = std::iter::once(&self.current)
                .chain(&self.previous)
                .find(|k| k.id == sealed.kid)
                .ok_or_else(|| {
                    let known: Vec<&str> = std::iter::once(&self.current)
                        .chain(&self.previous)
                        .map(|k| k.id.as_str())
                        .collect();
                    refused(format!(
                        "the session is sealed with key `{}`, which is not among the keys given ({})",
                        sealed.kid,
                        known.join(", ")
                    ))
                })?;
            let garbled = || refused("the sealed session is not valid base64".to_owned());
            let nonce = URL_SAFE_NO_PAD.decode(&sealed.nonce).map_err(|_| garbled())?;
            let mut data = URL_SAFE_NO_PAD.decode(&sealed.data).map_err(|_| garbled())?;
            let nonce = Nonce::try_assume_unique_for_key(&nonce).map_err(|_| garbled())?;
            let plain = key
                .key
                .open_in_place(nonce, Aad::from(Self::aad(&key.id, context)), &mut data)
                .map_err(|_| {
                    refused(format!(
                        "the session does not open with key `{}`: a wrong key, or the stored session was altered \
                         or copied from another session",
                        key.id
                    ))
                })?;
            serde_json::from_slice(plain).map_err(|_| refused("the opened session is not JSON".to_owned()))
        }
    }
}
