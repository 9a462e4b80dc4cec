//! Encryption at rest: the columns that hold what a database thief must not read are stored as
//! sealed envelopes, `cbx1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`, AES-256-GCM under a
//! master key that never enters the database.
//!
//! - A master key is 32 random bytes from the configuration (`CLOUDBASE_MASTER_KEY` or a key
//!   file). Its id is derived from the key itself (the first 8 bytes of a SHA-256, in hex), so
//!   an envelope names the only key that opens it and a wrong key is told apart from garbage.
//! - Several keys may be configured; `encryption_state` in the database names the one new values
//!   are sealed with, so every instance writes under the same key and a rotation is one update
//!   ([`reseal`] then moves the old rows over in small batches, while the server serves).
//! - Each envelope is bound to its column and row (the additional authenticated data): a sealed
//!   value copied into another row or column does not open.
//! - A value without the `cbx1:` prefix is one written before encryption existed: it reads as it
//!   is, and [`reseal`] seals it.
//!
//! - [`reseal`]: moving every sealed column onto the active key, in bounded batches.

pub mod reseal;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest as _, Sha256};

use super::tokens::random_bytes;

/// What every sealed value starts with.
pub const PREFIX: &str = "cbx1:";

/// A column whose values are sealed; its label goes into every envelope's authenticated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// `messages.content`.
    MessageContent,
    /// `messages.reasoning`.
    MessageReasoning,
    /// `ai_calls.prompt_log` (a JSON string holding the envelope).
    PromptLog,
    /// `mfa_secrets.secret`.
    MfaSecret,
    /// `signing_keys.private_key`.
    SigningKey,
    /// `alert_rules.targets` (users' and admins' addresses for alerts).
    AlertTargets,
    /// `alert_deliveries.recipient`.
    DeliveryRecipient,
}

impl Column {
    /// Every sealed column.
    /// Every sealed column, the small and most sensitive first (a re-seal pass takes them in
    /// this order).
    pub const ALL: [Column; 7] = [
        Column::SigningKey,
        Column::MfaSecret,
        Column::AlertTargets,
        Column::DeliveryRecipient,
        Column::MessageContent,
        Column::MessageReasoning,
        Column::PromptLog,
    ];

    /// `table.column`.
    pub fn label(self) -> &'static str {
        match self {
            Column::MessageContent => "messages.content",
            Column::MessageReasoning => "messages.reasoning",
            Column::PromptLog => "ai_calls.prompt_log",
            Column::MfaSecret => "mfa_secrets.secret",
            Column::SigningKey => "signing_keys.private_key",
            Column::AlertTargets => "alert_rules.targets",
            Column::DeliveryRecipient => "alert_deliveries.recipient",
        }
    }
}

/// Why a stored value did not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The envelope names a key this instance does not have.
    #[error("{column} of {row} is sealed under master key {key_id}, which is not configured")]
    UnknownKey {
        /// The column.
        column: &'static str,
        /// The row.
        row: String,
        /// The key it names.
        key_id: String,
    },
    /// The envelope is malformed, or its tag does not match: edited, moved, or not ours.
    #[error("{column} of {row} does not open: {reason}")]
    Corrupt {
        /// The column.
        column: &'static str,
        /// The row.
        row: String,
        /// What was wrong.
        reason: &'static str,
    },
}

/// A master key as the configuration gives it: 32 bytes.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    bytes: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    /// A key from its 32 bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        let mut h = Sha256::new();
        h.update(b"cloudbase master key id\0");
        h.update(bytes);
        let digest = h.finalize();
        let id = hex::encode(&digest[..8]);
        Self { id, bytes }
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        Self::new(random_bytes::<32>())
    }

    /// A key written as base64 (standard or URL-safe, padded or not).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .or_else(|_| STANDARD.decode(text))
            .map_err(|_| "a master key is 32 bytes written in base64".to_owned())?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!(
                "a master key is 32 bytes written in base64 (this one is {})",
                b.len()
            )
        })?;
        Ok(Self::new(bytes))
    }

    /// Several keys, separated by commas, spaces or new lines; the first is the newest. Lines
    /// starting with `#` are comments.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, String> {
        let keys = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .flat_map(|l| l.split([',', ' ', '\t']))
            .filter(|k| !k.trim().is_empty())
            .map(Self::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err("no master key given".into());
        }
        Ok(keys)
    }

    /// Its id (16 hex digits, derived from the key).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key as base64 (URL-safe, unpadded), as a key file holds it.
    pub fn to_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.bytes)
    }
}

struct Ring {
    keys: HashMap<String, LessSafeKey>,
    /// The key new values are sealed with.
    active: String,
}

/// Seals and opens column values; the keys can change while the server runs.
pub struct Sealer {
    ring: RwLock<Arc<Ring>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer(active {})", self.active_id())
    }
}

fn ring(keys: &[MasterKey], active: &str) -> Result<Ring, String> {
    let mut map = HashMap::new();
    for k in keys {
        let unbound = UnboundKey::new(&AES_256_GCM, &k.bytes)
            .map_err(|_| "the master key was refused by AES-256-GCM".to_owned())?;
        map.insert(k.id.clone(), LessSafeKey::new(unbound));
    }
    if !map.contains_key(active) {
        return Err(format!(
            "the database is sealed under master key {active}, which is not configured \
             (configured: {})",
            keys.iter()
                .map(MasterKey::id)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(Ring {
        keys: map,
        active: active.to_owned(),
    })
}

impl Sealer {
    /// A sealer with `keys`, writing under `active` (which must be one of them).
    pub fn new(keys: &[MasterKey], active: &str) -> Result<Self, String> {
        Ok(Self {
            ring: RwLock::new(Arc::new(ring(keys, active)?)),
        })
    }

    /// Takes new keys and a new active key (a rotation); refused, and nothing changed, unless
    /// `active` is among `keys`.
    pub fn replace(&self, keys: &[MasterKey], active: &str) -> Result<(), String> {
        let next = Arc::new(ring(keys, active)?);
        match self.ring.write() {
            Ok(mut g) => *g = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        Ok(())
    }

    fn current(&self) -> Arc<Ring> {
        match self.ring.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The id of the key new values are sealed with.
    pub fn active_id(&self) -> String {
        self.current().active.clone()
    }

    /// Whether this instance holds the key `id`.
    pub fn has(&self, id: &str) -> bool {
        self.current().keys.contains_key(id)
    }

    /// Seals `plain` as the value of `column` in row `row`.
    #[expect(
        clippy::expect_used,
        reason = "AES-256-GCM refuses only inputs of 64 GiB or more; a request body is capped far below"
    )]
    pub fn seal(&self, column: Column, row: &str, plain: &str) -> String {
        let ring = self.current();
        let key = &ring.keys[&ring.active];
        let nonce = random_bytes::<NONCE_LEN>();
        let mut body = plain.as_bytes().to_vec();
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(column, row)),
                &mut body,
            )
            .expect("a value under 64 GiB seals");
        let mut data = Vec::with_capacity(NONCE_LEN + body.len() + tag.as_ref().len());
        data.extend_from_slice(&nonce);
        data.extend_from_slice(&body);
        data.extend_from_slice(tag.as_ref());
        format!("{PREFIX}{}:{}", ring.active, URL_SAFE_NO_PAD.encode(&data))
    }

    /// Opens a stored value of `column` in row `row`: an envelope, or a value written before
    /// sealing (anything not shaped as an envelope), which reads as it is; except a signing key,
    /// which was never stored unsealed.
    pub fn open(&self, column: Column, row: &str, stored: String) -> Result<String, OpenError> {
        let corrupt = |reason| OpenError::Corrupt {
            column: column.label(),
            row: row.to_owned(),
            reason,
        };
        let Some((key_id, body)) = envelope(&stored) else {
            if column == Column::SigningKey {
                return Err(corrupt("not sealed"));
            }
            return Ok(stored);
        };
        let ring = self.current();
        let key = ring.keys.get(key_id).ok_or_else(|| OpenError::UnknownKey {
            column: column.label(),
            row: row.to_owned(),
            key_id: key_id.to_owned(),
        })?;
        let mut data = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| corrupt("not base64"))?;
        if data.len() < NONCE_LEN + 16 {
            return Err(corrupt("too short"));
        }
        let (nonce, sealed) = data.split_at_mut(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| corrupt("bad nonce"))?;
        let plain = key
            .open_in_place(nonce, Aad::from(aad(column, row)), sealed)
            .map_err(|_| {
                corrupt("the tag does not match (edited, moved to another row, or not sealed here)")
            })?;
        String::from_utf8(plain.to_vec()).map_err(|_| corrupt("not UTF-8"))
    }

    /// The key id an envelope names, or `None` for a value written before sealing.
    pub fn key_of(stored: &str) -> Option<&str> {
        envelope(stored).map(|(id, _)| id)
    }
}

/// The key id and body of an envelope: `cbx1:`, 16 lowercase hex digits, `:`, and at least a
/// nonce and a tag in base64url. Anything else is not one.
fn envelope(stored: &str) -> Option<(&str, &str)> {
    let rest = stored.strip_prefix(PREFIX)?;
    let (key_id, body) = rest.split_once(':')?;
    let hex = key_id.len() == 16
        && key_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let base64url = body.len() >= 38
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (hex && base64url).then_some((key_id, body))
}

fn aad(column: Column, row: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(column.label().len() + 1 + row.len());
    aad.extend_from_slice(column.label().as_bytes());
    aad.push(0);
    aad.extend_from_slice(row.as_bytes());
    aad
}

/// An open failure, as the database layer reports it (the service layer turns it into an
/// opaque `INTERNAL`, logged once).
pub fn db_error(e: OpenError) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(keys: &[MasterKey]) -> Sealer {
        Sealer::new(keys, keys[0].id()).expect("a sealer")
    }

    #[test]
    fn seals_opens_and_binds_to_its_row_and_column() {
        let k = MasterKey::generate();
        let s = sealer(std::slice::from_ref(&k));
        let sealed = s.seal(Column::MessageContent, "row-1", "hello 你好");
        assert!(sealed.starts_with(&format!("cbx1:{}:", k.id())), "{sealed}");
        assert!(!sealed.contains("hello"));
        let again = s.seal(Column::MessageContent, "row-1", "hello 你好");
        assert_ne!(sealed, again, "a fresh nonce each time");
        assert_eq!(
            s.open(Column::MessageContent, "row-1", sealed.clone())
                .expect("opens"),
            "hello 你好"
        );
        assert!(matches!(
            s.open(Column::MessageContent, "row-2", sealed.clone()),
            Err(OpenError::Corrupt { .. })
        ));
        assert!(matches!(
            s.open(Column::MessageReasoning, "row-1", sealed.clone()),
            Err(OpenError::Corrupt { .. })
        ));
        let mut edited = sealed.into_bytes();
        let last = edited.len() - 3;
        edited[last] = if edited[last] == b'A' { b'B' } else { b'A' };
        let edited = String::from_utf8(edited).expect("ascii");
        assert!(s.open(Column::MessageContent, "row-1", edited).is_err());
    }

    #[test]
    fn old_keys_open_after_a_rotation_and_unknown_keys_say_so() {
        let old = MasterKey::generate();
        let new = MasterKey::generate();
        let s = sealer(std::slice::from_ref(&old));
        let under_old = s.seal(Column::MfaSecret, "u", "JBSWY3DP");
        s.replace(&[new.clone(), old.clone()], new.id())
            .expect("rotate");
        let under_new = s.seal(Column::MfaSecret, "u", "JBSWY3DP");
        assert_eq!(Sealer::key_of(&under_new), Some(new.id()));
        assert_eq!(
            s.open(Column::MfaSecret, "u", under_old.clone())
                .expect("old"),
            "JBSWY3DP"
        );
        let only_new = sealer(std::slice::from_ref(&new));
        assert!(matches!(
            only_new.open(Column::MfaSecret, "u", under_old),
            Err(OpenError::UnknownKey { .. })
        ));
        assert!(s.replace(std::slice::from_ref(&old), new.id()).is_err());
        assert_eq!(s.active_id(), new.id(), "a refused change changes nothing");
    }

    #[test]
    fn values_from_before_sealing_read_as_they_are() {
        let s = sealer(&[MasterKey::generate()]);
        assert_eq!(
            s.open(Column::MessageContent, "r", "plain".into())
                .expect("plain"),
            "plain"
        );
        // Shaped like no envelope: a message someone wrote before sealing existed.
        for written in ["cbx1:nokey", "cbx1:hi", "cbx1:0123456789abcdef:short"] {
            assert_eq!(
                s.open(Column::MessageContent, "r", written.into())
                    .expect("plain"),
                written
            );
        }
        assert!(
            s.open(Column::SigningKey, "k", "plain".into()).is_err(),
            "a signing key is always sealed"
        );
        let stranger = format!("cbx1:0123456789abcdef:{}", "A".repeat(40));
        assert!(matches!(
            s.open(Column::MessageContent, "r", stranger),
            Err(OpenError::UnknownKey { .. })
        ));
    }

    #[test]
    fn keys_parse_from_base64_lists() {
        let a = MasterKey::generate();
        let b = MasterKey::generate();
        let text = format!("# newest first\n{}\n{}=\n", a.to_base64(), b.to_base64());
        let parsed = MasterKey::parse_list(&text).expect("two keys");
        assert_eq!(
            parsed.iter().map(MasterKey::id).collect::<Vec<_>>(),
            [a.id(), b.id()]
        );
        let standard = STANDARD.encode([7u8; 32]);
        assert_eq!(
            MasterKey::parse(&standard).expect("standard").id(),
            MasterKey::new([7u8; 32]).id()
        );
        assert!(MasterKey::parse("c2hvcnQ").is_err());
        assert!(MasterKey::parse_list(" \n# none\n").is_err());
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id().len(), 16);
    }
}
