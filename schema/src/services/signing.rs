//! Signing keys: made at first start, rotated (`cloudbase-ai keys rotate`, `rotateSigningKey`),
//! retired, and loaded into every instance's [`Keyring`].
//!
//! A new key is published (it verifies, and the JWKS lists it) `publish_ahead` before it signs,
//! so every instance and every outside verifier knows it before the first token it signs
//! arrives. The key it replaces keeps verifying until the last token it signed has expired
//! (`signs_from` of the new key + the access-token lifetime + leeway), then it is deleted with its
//! private half. A deployment from before rotation (one HS256 secret, tokens without `kid`) gets
//! an Ed25519 key at its first start, and its HS256 tokens keep working until they expire: nobody
//! is logged out (refresh tokens are not JWTs).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

use super::App;
use super::sealing::Column;
use super::tokens::{Keyring, LEEWAY_SECS, LEGACY_KID, Signer, Verifier, random_bytes};
use crate::Error;
use crate::db::keys as queries;
use crate::db::models::SigningKeyRow;
use crate::events::Event;

/// `EdDSA` in `signing_keys.algorithm`.
const EDDSA: &str = "EdDSA";
/// `HS256` in `signing_keys.algorithm`.
const HS256: &str = "HS256";

/// How long after a rotation the new key starts signing, unless told otherwise: every instance
/// reloads its keys at least this often.
pub const PUBLISH_AHEAD: std::time::Duration = std::time::Duration::from_secs(60);

/// A key as `keys list` and `signingKeys` show it.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// Its `kid`.
    pub kid: String,
    /// `EdDSA` or `HS256`.
    pub algorithm: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it signs (or signed) from.
    pub signs_from: DateTime<Utc>,
    /// When it stops verifying, if it was replaced.
    pub verifies_until: Option<DateTime<Utc>>,
    /// `next` (published, not signing yet), `signing`, or `verifying` (replaced).
    pub state: &'static str,
}

fn new_row(
    generation: i64,
    app: &App,
    now: NaiveDateTime,
    signs_from: NaiveDateTime,
) -> SigningKeyRow {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new());
    let (private, public) = match pkcs8 {
        Ok(doc) => {
            let public = Ed25519KeyPair::from_pkcs8(doc.as_ref())
                .map(|k| URL_SAFE_NO_PAD.encode(k.public_key().as_ref()))
                .ok();
            (Some(URL_SAFE_NO_PAD.encode(doc.as_ref())), public)
        }
        Err(_) => (None, None),
    };
    let suffix = hex::encode(random_bytes::<4>());
    let kid = format!("ed-{}-{suffix}", now.format("%Y%m%d"));
    SigningKeyRow {
        private_key: private.map(|p| app.sealer.seal(Column::SigningKey, &kid, &p)),
        kid,
        generation,
        algorithm: EDDSA.into(),
        public_key: public,
        created_at: now,
        signs_from,
        verifies_until: None,
    }
}

/// Makes the first signing key of a database that has none (and, when an HS256 secret is
/// configured, the row that lets its tokens run out), then loads the keys.
pub async fn bootstrap(app: &App) -> Result<(), Error> {
    let now = app.now();
    let mut conn = app.db.get().await?;
    if queries::last_generation(&mut conn).await?.is_none() {
        let first = new_row(1, app, now, now);
        if first.private_key.is_none() || first.public_key.is_none() {
            return Err(Error::Internal("generating an Ed25519 key failed".into()));
        }
        let legacy = app.tokens.legacy_secret().is_some().then(|| SigningKeyRow {
            kid: LEGACY_KID.into(),
            generation: 0,
            algorithm: HS256.into(),
            private_key: None,
            public_key: None,
            created_at: now,
            signs_from: now,
            verifies_until: Some(now + lifetime(app)),
        });
        let made = conn
            .transaction(async |tx| {
                if let Some(l) = &legacy {
                    queries::insert_signing_key(tx, l).await?;
                }
                queries::insert_signing_key(tx, &first).await?;
                Ok(())
            })
            .await;
        // Another instance starting at the same time made them first: theirs stand.
        if let Err(e) = made
            && queries::last_generation(&mut conn).await?.is_none()
        {
            return Err(e);
        }
        if legacy.is_some() {
            tracing::info!(
                signing_key.kid = %first.kid,
                "signing keys start: tokens signed with the HS256 secret keep working until they expire"
            );
        }
    }
    drop(conn);
    reload(app).await
}

/// How long a replaced key must keep verifying after it stops signing.
fn lifetime(app: &App) -> Duration {
    app.tokens.access_ttl + Duration::seconds(LEEWAY_SECS as i64 + 1)
}

/// Adds a key that signs from `publish_ahead` on; the key it replaces verifies until the tokens
/// it signed have expired. Every instance hears of it.
pub async fn rotate(app: &App, publish_ahead: std::time::Duration) -> Result<KeyInfo, Error> {
    let now = app.now();
    let ahead = Duration::from_std(publish_ahead)
        .map_err(|_| Error::bad_input("publishAheadSecs", "too far ahead"))?;
    if ahead > Duration::days(1) {
        return Err(Error::bad_input(
            "publishAheadSecs",
            "publish a key at most a day before it signs",
        ));
    }
    let mut conn = app.db.get().await?;
    let next = queries::last_generation(&mut conn).await?.unwrap_or(0) + 1;
    let row = new_row(next, app, now, now + ahead);
    if row.private_key.is_none() {
        return Err(Error::Internal("generating an Ed25519 key failed".into()));
    }
    let until = row.signs_from + lifetime(app);
    conn.transaction(async |tx| {
        queries::insert_signing_key(tx, &row).await.map_err(|e| {
            if is_unique_violation(&e) {
                Error::Conflict("another rotation ran at the same time; try again".into())
            } else {
                e.into()
            }
        })?;
        queries::end_older(tx, next, until).await?;
        app.events
            .tell_others_in(tx, &Event::SigningKeysChanged)
            .await
    })
    .await?;
    drop(conn);
    reload(app).await?;
    app.events.told(Event::SigningKeysChanged).await;
    tracing::info!(signing_key.kid = %row.kid, signs_from = %row.signs_from, "signing key rotated");
    Ok(info(&row, now))
}

fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

/// Stops key `kid` from verifying now (a key thought stolen), published or replaced. The key
/// that signs cannot be retired: rotate first. The keys left then verify as they would have had
/// `kid` never been made: each until the key after it has signed for a token's lifetime, the
/// newest without end (retiring the next key leaves the signer signing, without an end).
pub async fn retire(app: &App, kid: &str) -> Result<(), Error> {
    let now = app.now();
    let mut conn = app.db.get().await?;
    let live = queries::live_signing_keys(&mut conn, now).await?;
    let Some(key) = live.iter().find(|k| k.kid == kid) else {
        return Err(Error::NotFound("signing key"));
    };
    if state(key, &live, now) == "signing" {
        return Err(Error::bad_input(
            "kid",
            "this key is signing; rotate (with no publish delay) first, then retire it",
        ));
    }
    let left: Vec<&SigningKeyRow> = live
        .iter()
        .filter(|k| k.kid != kid && k.algorithm == EDDSA)
        .collect();
    let ends: Vec<(String, Option<NaiveDateTime>)> = left
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let until = left.get(i + 1).map(|next| next.signs_from + lifetime(app));
            (k.kid.clone(), until)
        })
        .collect();
    conn.transaction(async |tx| {
        queries::retire_now(tx, kid, now).await?;
        for (k, until) in &ends {
            queries::set_until(tx, k, *until).await?;
        }
        app.events
            .tell_others_in(tx, &Event::SigningKeysChanged)
            .await
    })
    .await?;
    drop(conn);
    reload(app).await?;
    app.events.told(Event::SigningKeysChanged).await;
    Ok(())
}

/// The keys that verify now or will sign, oldest first.
pub async fn list(app: &App) -> Result<Vec<KeyInfo>, Error> {
    let now = app.now();
    let mut conn = app.db.get().await?;
    let live = queries::live_signing_keys(&mut conn, now).await?;
    Ok(live
        .iter()
        .map(|k| KeyInfo {
            state: state(k, &live, now),
            ..info(k, now)
        })
        .collect())
}

fn info(row: &SigningKeyRow, now: NaiveDateTime) -> KeyInfo {
    KeyInfo {
        kid: row.kid.clone(),
        algorithm: row.algorithm.clone(),
        created_at: row.created_at.and_utc(),
        signs_from: row.signs_from.and_utc(),
        verifies_until: row.verifies_until.map(|t| t.and_utc()),
        state: if row.signs_from > now {
            "next"
        } else {
            "signing"
        },
    }
}

/// `next`, `signing` or `verifying`: the signer is the newest key whose time has come.
fn state(row: &SigningKeyRow, live: &[SigningKeyRow], now: NaiveDateTime) -> &'static str {
    if row.signs_from > now {
        return "next";
    }
    let signer = live
        .iter()
        .filter(|k| k.signs_from <= now && k.algorithm == EDDSA)
        .max_by_key(|k| k.generation);
    if signer.is_some_and(|s| s.kid == row.kid) {
        "signing"
    } else {
        "verifying"
    }
}

/// Loads the keys that verify now (or will sign) into this instance's keyring, and deletes the
/// ones whose time is over.
pub async fn reload(app: &App) -> Result<(), Error> {
    let now = app.now();
    let mut conn = app.db.get().await?;
    let rows = queries::live_signing_keys(&mut conn, now).await?;
    drop(conn);
    let mut ring = Keyring::default();
    for row in rows {
        let until = row.verifies_until.map(|t| t.and_utc());
        match row.algorithm.as_str() {
            EDDSA => {
                let (Some(sealed), Some(public)) = (row.private_key, row.public_key) else {
                    return Err(Error::Internal(format!(
                        "signing key {} is incomplete",
                        row.kid
                    )));
                };
                let raw = URL_SAFE_NO_PAD.decode(&public).map_err(|_| {
                    Error::Internal(format!("signing key {}: bad public key", row.kid))
                })?;
                ring.verifiers.insert(
                    row.kid.clone(),
                    Verifier {
                        key: DecodingKey::from_ed_der(&raw),
                        algorithm: Algorithm::EdDSA,
                        until,
                        public_x: Some(public),
                    },
                );
                // Verifying needs only the public half; a private half that does not open (this
                // instance lacks the master key it was sealed under) only keeps it from signing.
                let der = app
                    .sealer
                    .open(Column::SigningKey, &row.kid, sealed)
                    .map_err(|e| e.to_string())
                    .and_then(|pkcs8| {
                        URL_SAFE_NO_PAD
                            .decode(pkcs8)
                            .map_err(|_| "not base64".to_owned())
                    });
                match der {
                    Ok(der) => ring.signers.push(Signer {
                        kid: row.kid,
                        signs_from: row.signs_from.and_utc(),
                        key: EncodingKey::from_ed_der(&der),
                    }),
                    Err(e) => tracing::error!(
                        signing_key.kid = %row.kid, error = %e,
                        "a signing key's private half does not open; it verifies but cannot sign here"
                    ),
                }
            }
            HS256 => {
                if let Some(secret) = app.tokens.legacy_secret() {
                    ring.verifiers.insert(
                        row.kid,
                        Verifier {
                            key: DecodingKey::from_secret(secret),
                            algorithm: Algorithm::HS256,
                            until,
                            public_x: None,
                        },
                    );
                }
            }
            other => {
                tracing::warn!(signing_key.kid = %row.kid, algorithm = other, "unknown signing key algorithm skipped");
            }
        }
    }
    if ring.signers.is_empty() {
        return Err(Error::Internal("no signing key in the database".into()));
    }
    app.tokens.replace(ring);
    Ok(())
}

/// Deletes the keys that stopped verifying (their private halves with them).
pub async fn delete_retired(app: &App) -> Result<usize, Error> {
    let now = app.now();
    let mut conn = app.db.get().await?;
    conn.write(async |c| Ok(queries::delete_retired(c, now).await?))
        .await
}
