//! When a credential was last used, and from where: `lastUsedAt` and `lastUsedIp` of API keys
//! and sessions, written off the request path at most once a minute per credential and address.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::Error;
use crate::db::{api_keys, sessions};
use crate::services::App;

/// A credential that authenticated a request.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// A session, by id (an access token's `sid`).
    Session(&'a str),
    /// An API key, by id.
    Key(&'a str),
}

impl Credential<'_> {
    fn id(&self) -> &str {
        match self {
            Credential::Session(id) | Credential::Key(id) => id,
        }
    }
}

/// When each credential's use was last written (ids are UUIDs: sessions' and keys' never
/// collide).
#[derive(Default)]
pub struct Uses(Mutex<HashMap<String, (Instant, Option<String>)>>);

impl Uses {
    const EVERY: Duration = Duration::from_secs(60);

    /// Whether a use of `id` from `ip` should be written now (and notes that it will be).
    fn due(&self, id: &str, ip: Option<&str>) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, last_ip)) = seen.get(id)
            && at.elapsed() < Self::EVERY
            && last_ip.as_deref() == ip
        {
            return false;
        }
        if seen.len() >= 100_000 {
            seen.retain(|_, (at, _)| at.elapsed() < Self::EVERY);
        }
        seen.insert(id.to_owned(), (Instant::now(), ip.map(str::to_owned)));
        true
    }
}

/// Records that `used` authenticated a request from `ip`, off the request path, at most once a
/// minute per credential and address.
pub fn note_use(app: &App, used: Credential<'_>, ip: Option<&str>) {
    if !app.uses.due(used.id(), ip) {
        return;
    }
    let (db, at) = (app.db.clone(), app.now());
    let ip = ip.map(str::to_owned);
    let (is_key, id) = (matches!(used, Credential::Key(_)), used.id().to_owned());
    tokio::spawn(async move {
        let written = async {
            let mut conn = db.get().await?;
            conn.write(async |c| {
                Ok(if is_key {
                    api_keys::touch(c, &id, at, ip.as_deref()).await?
                } else {
                    sessions::note_use(c, &id, at, ip.as_deref()).await?
                })
            })
            .await?;
            Ok::<_, Error>(())
        };
        if let Err(e) = written.await {
            tracing::warn!(credential = %id, error = %e, "recording a credential's use failed");
        }
    });
}
