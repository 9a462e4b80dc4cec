//! PostgreSQL: `pg_dump --format=custom` in the snapshot the row counts are read in, a check that
//! restores the dump into a scratch database (`cloudbase_verify_<random>`, dropped after), and
//! `pg_restore` into the configured database.
//!
//! The tools are found on `PATH`. The password never goes on a command line: it is taken out of
//! the URL and handed over in `PGPASSWORD`.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Context as _;
use cloudbase_schema::db::inventory::{self, Census, PgSnapshot};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, SimpleAsyncConnection as _};

use super::manifest::{partial_path, rename_synced};

/// A database URL split for the PostgreSQL tools: the URL without its password, and the password.
struct Target {
    url: String,
    password: Option<String>,
}

impl Target {
    fn parse(url: &str) -> anyhow::Result<Self> {
        let mut parsed =
            reqwest::Url::parse(url).context("database_url is not a valid PostgreSQL URL")?;
        let password = parsed.password().map(percent_decode);
        let _ = parsed.set_password(None);
        Ok(Self {
            url: parsed.to_string(),
            password,
        })
    }

    /// `program` with this target's password in its environment.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env_remove("PGPASSWORD")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(password) = &self.password {
            command.env("PGPASSWORD", password);
        }
        command
    }
}

/// `url` naming database `name` instead.
fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let mut parsed =
        reqwest::Url::parse(url).context("database_url is not a valid PostgreSQL URL")?;
    parsed.set_path(&format!("/{name}"));
    Ok(parsed.to_string())
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Runs a PostgreSQL tool to the end (on the blocking pool); its first lines of stderr make the
/// error.
async fn run(mut command: Command, program: &'static str) -> anyhow::Result<String> {
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .context("the PostgreSQL tool's task failed")?;
    let output = match output {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "{program} not found on PATH: install the PostgreSQL client tools (postgresql-client, \
             the server's major version or newer)"
        ),
        Err(e) => return Err(e).with_context(|| format!("running {program}")),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(3)
            .collect();
        anyhow::bail!(
            "{program} failed ({}): {}",
            output.status,
            first.join(" / ")
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Dumps the database at `url` into `dest` (under a temporary name, then renamed), in the
/// snapshot whose rows it counts.
pub async fn create(url: &str, dest: &Path) -> anyhow::Result<Census> {
    let target = Target::parse(url)?;
    let mut snapshot = PgSnapshot::begin(url)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let census = snapshot
        .census()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let partial = partial_path(dest);
    let mut dump = target.command("pg_dump");
    dump.arg("--format=custom")
        .arg("--no-password")
        .arg(format!("--snapshot={}", snapshot.id))
        .arg(format!("--file={}", partial.display()))
        .arg(format!("--dbname={}", target.url));
    let dumped = run(dump, "pg_dump").await;
    let _ = snapshot.finish().await;
    let synced = dumped.and_then(|_| {
        std::fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("syncing {}", partial.display()))
    });
    if let Err(e) = synced {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    rename_synced(&partial, dest)?;
    Ok(census)
}

/// Restores the dump at `file` into a scratch database beside the one `url` names, then hands
/// its URL to `check`, and drops it whatever happened.
pub async fn with_scratch<T>(
    url: &str,
    file: &Path,
    check: impl AsyncFnOnce(&str) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    list(url, file).await?;
    let name = format!("cloudbase_verify_{}", uuid::Uuid::now_v7().simple());
    let mut admin = connect(url).await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .with_context(|| format!("creating the scratch database {name} to check the dump in"))?;
    let scratch_url = with_database(url, &name)?;
    let result = async {
        pg_restore(&scratch_url, file, false).await?;
        check(&scratch_url).await
    }
    .await;
    if let Err(e) = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
    {
        tracing::warn!(database = %name, error = %e, "dropping the scratch database failed");
    }
    result
}

/// Checks `file` is a `pg_dump` archive at all (`pg_restore --list`).
async fn list(url: &str, file: &Path) -> anyhow::Result<()> {
    let mut command = Target::parse(url)?.command("pg_restore");
    command.arg("--list").arg(file);
    run(command, "pg_restore")
        .await
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("not a pg_dump custom-format archive: {e:#}"))
}

/// The rows of the database at `url`.
pub async fn census(url: &str) -> anyhow::Result<Census> {
    let mut conn = connect(url).await?;
    inventory::census(&mut conn)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

async fn connect(url: &str) -> anyhow::Result<AsyncPgConnection> {
    AsyncPgConnection::establish(url)
        .await
        .context("cannot connect to the database")
}

/// `pg_restore` of `file` into the database at `url`, in one transaction: all of it or nothing.
/// `clean` drops the objects the dump holds first.
async fn pg_restore(url: &str, file: &Path, clean: bool) -> anyhow::Result<()> {
    let target = Target::parse(url)?;
    let mut command = target.command("pg_restore");
    command
        .arg("--no-password")
        .arg("--no-owner")
        .arg("--no-privileges")
        .arg("--exit-on-error")
        .arg("--single-transaction")
        .arg(format!("--dbname={}", target.url));
    if clean {
        command.arg("--clean").arg("--if-exists");
    }
    command.arg(file);
    run(command, "pg_restore").await.map(|_| ())
}

/// Restores `file` into the database at `url`. Refuses while other sessions use it (a running
/// server), and, unless `force`, when it already holds tables.
pub async fn restore(url: &str, file: &Path, force: bool) -> anyhow::Result<()> {
    let mut conn = connect(url).await?;
    // Sessions that just closed (the check's own, a server just stopped) take a moment to go.
    let mut others = 0;
    for _ in 0..10 {
        others = inventory::other_sessions(&mut conn)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if others == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    anyhow::ensure!(
        others == 0,
        "the database is in use ({others} other sessions: a running server?): stop them before restoring"
    );
    let tables = inventory::census(&mut conn)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .tables
        .len();
    drop(conn);
    anyhow::ensure!(
        tables == 0 || force,
        "the database is not empty ({tables} tables): restore into an empty database, or pass \
         --force to replace the objects the dump holds"
    );
    pg_restore(url, file, tables > 0).await
}

#[cfg(test)]
mod tests {
    use super::{Target, with_database};

    #[test]
    fn the_password_leaves_the_url_for_the_environment() {
        let target =
            Target::parse("postgres://app:p%40ss%3Aw0rd@db.internal:5433/prod?sslmode=require")
                .unwrap();
        assert_eq!(
            target.url,
            "postgres://app@db.internal:5433/prod?sslmode=require"
        );
        assert_eq!(target.password.as_deref(), Some("p@ss:w0rd"));
        let bare = Target::parse("postgres://postgres@127.0.0.1:5432/test").unwrap();
        assert_eq!(bare.password, None);
        assert_eq!(
            with_database(
                "postgres://app:x@h/prod?sslmode=require",
                "cloudbase_verify_1"
            )
            .unwrap(),
            "postgres://app:x@h/cloudbase_verify_1?sslmode=require"
        );
    }
}
