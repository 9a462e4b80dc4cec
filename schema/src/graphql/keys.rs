//! Signing keys: the admin's list, rotation and retirement (the same as `cloudbase-ai keys`).

use async_graphql::{Context, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::ContextExt;
use crate::Error;
use crate::services::signing::{self, KeyInfo};

/// A key that signs or verifies access tokens. Its public half is in `/.well-known/jwks.json`.
#[derive(SimpleObject)]
pub struct SigningKey {
    /// The `kid` its tokens carry.
    pub kid: String,
    /// `EdDSA` (Ed25519), or `HS256` for the secret from before rotation.
    pub algorithm: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it signs from.
    pub signs_from: DateTime<Utc>,
    /// When it stops verifying (it was replaced); null while it is or will be the signer.
    pub verifies_until: Option<DateTime<Utc>>,
    /// `next` (published, not signing yet), `signing`, or `verifying` (replaced; runs out).
    pub state: String,
}

impl From<KeyInfo> for SigningKey {
    fn from(k: KeyInfo) -> Self {
        Self {
            kid: k.kid,
            algorithm: k.algorithm,
            created_at: k.created_at,
            signs_from: k.signs_from,
            verifies_until: k.verifies_until,
            state: k.state.to_owned(),
        }
    }
}

/// Signing-key queries.
#[derive(Default)]
pub struct KeysQuery;

#[Object]
impl KeysQuery {
    /// The keys that sign or verify access tokens, oldest first. Admins only.
    async fn signing_keys(&self, ctx: &Context<'_>) -> Result<Vec<SigningKey>, Error> {
        ctx.viewer()?.require_admin()?;
        Ok(signing::list(ctx.app()?)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

/// Signing-key mutations.
#[derive(Default)]
pub struct KeysMutation;

#[Object]
impl KeysMutation {
    /// Adds a signing key that signs from `publishAheadSecs` on (default 60, at most a day; 0
    /// for now). The key it replaces verifies until its last token has expired; nobody is
    /// logged out. Every instance takes it. Admins only.
    async fn rotate_signing_key(
        &self,
        ctx: &Context<'_>,
        publish_ahead_secs: Option<i32>,
    ) -> Result<SigningKey, Error> {
        ctx.viewer()?.require_admin()?;
        let secs = publish_ahead_secs.map_or(signing::PUBLISH_AHEAD.as_secs(), |s| {
            u64::try_from(s).unwrap_or(u64::MAX)
        });
        if publish_ahead_secs.is_some_and(|s| s < 0) {
            return Err(Error::bad_input(
                "publishAheadSecs",
                "give 0 or more seconds",
            ));
        }
        signing::rotate(ctx.app()?, std::time::Duration::from_secs(secs))
            .await
            .map(Into::into)
    }

    /// Stops a replaced key from verifying now (a key thought stolen): the tokens it signed stop
    /// working, their sessions go on with a refresh. The signing key cannot be retired; rotate
    /// with `publishAheadSecs: 0` first. Admins only.
    async fn retire_signing_key(&self, ctx: &Context<'_>, kid: String) -> Result<bool, Error> {
        ctx.viewer()?.require_admin()?;
        signing::retire(ctx.app()?, kid.trim()).await?;
        Ok(true)
    }
}
