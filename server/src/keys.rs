//! Where the master keys come from (`CLOUDBASE_MASTER_KEY`, a key file, or in `dev` a file
//! generated into the data folder), and the `cloudbase-ai keys` commands.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use cloudbase_schema::clock::SystemClock;
use cloudbase_schema::services::keys::{self as key_service, MasterKeySource};
use cloudbase_schema::services::sealing::{MasterKey, Sealer, reseal};
use cloudbase_schema::services::{App, signing};

use crate::config::{Config, Environment, Secret};
use crate::plugin_host::Host;
use crate::startup;

/// Where this configuration's master keys are read from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// `CLOUDBASE_MASTER_KEY` (or `master_key` in the file); never printed.
    Config(Secret),
    /// A key file: `master_key_file`, or `<data_dir>/master-key` in `dev`.
    File(PathBuf),
}

impl KeySource {
    /// The source of `config`; `None` in `prod` with no key given (validation refuses that).
    pub fn of(config: &Config) -> Option<Self> {
        if let Some(keys) = &config.master_key {
            return Some(Self::Config(keys.clone()));
        }
        if let Some(path) = &config.master_key_file {
            return Some(Self::File(path.clone()));
        }
        (config.env == Environment::Dev).then(|| Self::File(config.data_dir.join("master-key")))
    }

    /// The keys, newest first. A dev key file that does not exist yet is made with one new key.
    pub fn read(&self, config: &Config) -> anyhow::Result<Vec<MasterKey>> {
        match self {
            Self::Config(text) => MasterKey::parse_list(text.expose())
                .map_err(|e| anyhow::anyhow!("master_key (CLOUDBASE_MASTER_KEY): {e}")),
            Self::File(path) => {
                let generated = config.master_key_file.is_none();
                if generated && !path.exists() {
                    std::fs::create_dir_all(&config.data_dir)
                        .with_context(|| format!("creating {}", config.data_dir.display()))?;
                    let key = MasterKey::generate();
                    write_private(path, &format!("{}\n", key.to_base64()))
                        .with_context(|| format!("writing {}", path.display()))?;
                    tracing::info!(path = %path.display(), master_key.id = %key.id(), "generated a development master key");
                }
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("master key file {}", path.display()))?;
                MasterKey::parse_list(&text)
                    .map_err(|e| anyhow::anyhow!("master key file {}: {e}", path.display()))
            }
        }
    }

    /// The reader every instance uses to take a new master key while it runs.
    pub fn reader(&self, config: &Config) -> MasterKeySource {
        let source = self.clone();
        let config = config.clone();
        Arc::new(move || source.read(&config).map_err(|e| format!("{e:#}")))
    }
}

/// Writes `contents` to `path`, readable by its owner only.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// The sealer of a database: its keys from `config`, writing under the master key the database
/// names (or, for a database that names none yet, the newest configured key). A database sealed
/// under a key that is not configured stops here, loudly.
pub async fn sealer(
    config: &Config,
    db: &cloudbase_schema::db::DbPool,
) -> anyhow::Result<(Sealer, MasterKeySource)> {
    let source = KeySource::of(config).ok_or_else(|| {
        anyhow::anyhow!(
            "master_key: required when env = \"prod\" (set CLOUDBASE_MASTER_KEY or master_key_file)"
        )
    })?;
    let keys = source.read(config)?;
    let now = chrono::Utc::now().naive_utc();
    let mut conn = db.get().await.context("opening the database")?;
    let active = conn
        .write(async |c| Ok(cloudbase_schema::db::keys::init_master(c, keys[0].id(), now).await?))
        .await
        .map_err(|e| anyhow::anyhow!("reading the master key in use: {e}"))?;
    drop(conn);
    let sealer = Sealer::new(&keys, &active).map_err(|e| {
        anyhow::anyhow!(
            "{e}. Refusing to start: a wrong master key would make every sealed value unreadable. \
             Configure the key this database was sealed with (keep older keys after the newest)."
        )
    })?;
    if keys[0].id() != active {
        tracing::warn!(
            master_key.newest = %keys[0].id(), master_key.active = %active,
            "the newest configured master key is not in use yet: run `cloudbase-ai keys rotate-master`"
        );
    }
    Ok((sealer, source.reader(config)))
}

async fn offline_app(config: &Config) -> anyhow::Result<App> {
    startup::build_app(config, Arc::new(SystemClock), Arc::new(Host::empty())).await
}

/// `keys rotate`: a new signing key, signing after `publish_ahead`.
pub async fn rotate(config: &Config, publish_ahead: std::time::Duration) -> anyhow::Result<()> {
    let app = offline_app(config).await?;
    let key = signing::rotate(&app, publish_ahead).await?;
    println!(
        "signing key {} added; it signs from {} (the key it replaces verifies until its tokens expire)",
        key.kid,
        key.signs_from.to_rfc3339()
    );
    Ok(())
}

/// `keys list`: the signing keys, and the master keys with the values each one seals.
pub async fn list(config: &Config) -> anyhow::Result<()> {
    let app = offline_app(config).await?;
    println!("signing keys:");
    for k in signing::list(&app).await? {
        println!(
            "  {:<28} {:<6} {:<9} signs from {}{}",
            k.kid,
            k.algorithm,
            k.state,
            k.signs_from.to_rfc3339(),
            k.verifies_until
                .map(|u| format!(", verifies until {}", u.to_rfc3339()))
                .unwrap_or_default()
        );
    }
    println!("master key sealing new values: {}", app.sealer.active_id());
    println!("sealed values by master key:");
    for (column, key, n) in reseal::census(&app).await? {
        let key = key.unwrap_or_else(|| "(not sealed yet)".into());
        println!("  {:<28} {key:<18} {n}", column.label());
    }
    Ok(())
}

/// `keys retire KID`.
pub async fn retire(config: &Config, kid: &str) -> anyhow::Result<()> {
    let app = offline_app(config).await?;
    signing::retire(&app, kid).await?;
    println!("signing key {kid} no longer verifies");
    Ok(())
}

/// `keys rotate-master`: with a key file, a new key is generated into it first, and running
/// servers are given `wait` to read it (they re-read the file every
/// [`key_service::RELOAD_EVERY`]); with `CLOUDBASE_MASTER_KEY`, the first key given must be the
/// new one, and every instance must have it already. Then new values are sealed under it
/// everywhere, and every sealed value is moved to it.
pub async fn rotate_master(config: &Config, wait: std::time::Duration) -> anyhow::Result<()> {
    let source =
        KeySource::of(config).ok_or_else(|| anyhow::anyhow!("no master key configured"))?;
    let app = offline_app(config).await?;
    let mut keys = source.read(config)?;
    if let KeySource::File(path) = &source
        && keys[0].id() == app.sealer.active_id()
    {
        let new = MasterKey::generate();
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let tmp = path.with_extension("new");
        write_private(&tmp, &format!("{}\n{text}", new.to_base64()))
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
        println!("generated master key {} into {}", new.id(), path.display());
        keys.insert(0, new);
        if !wait.is_zero() {
            println!(
                "waiting {} s for running servers to read it from the file",
                wait.as_secs()
            );
            tokio::time::sleep(wait).await;
        }
    }
    let from = app.sealer.active_id();
    let done = key_service::rotate_master(&app, &keys).await?;
    println!(
        "master key {} now seals new values (was {from}); {} values moved to it",
        keys[0].id(),
        done.rewritten,
    );
    if done.skipped + done.failed > 0 {
        println!(
            "{} values changed while being moved and {} did not open (see the log): they stay \
             under their old key until a server's next start moves them",
            done.skipped, done.failed
        );
    }
    println!(
        "keep {from} configured until `cloudbase-ai keys list` shows no value sealed under it"
    );
    Ok(())
}

/// `keys generate-master`: prints a new master key (for `CLOUDBASE_MASTER_KEY`).
pub fn generate_master() {
    let key = MasterKey::generate();
    println!("{}", key.to_base64());
    eprintln!("master key id {}", key.id());
}
