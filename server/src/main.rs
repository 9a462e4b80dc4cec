//! `cloudbase-ai`: the CloudBase AI server and its admin commands.
//!
//! `allocator` makes mimalloc the allocator of the server and of SQLite, with the options that
//! keep an idle server's memory low.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use cloudbase_schema::clock::SystemClock;
use cloudbase_schema::services::audit::Verdict;
use cloudbase_schema::services::{Role, users};
use cloudbase_server::config::Config;
use cloudbase_server::plugin_host::Host;
use cloudbase_server::{backup, keys, startup, telemetry};

mod allocator;

#[derive(Parser)]
#[command(
    name = "cloudbase-ai",
    version,
    about = "One GraphQL API in front of your team's LLM use"
)]
struct Cli {
    /// A TOML config file (env: CLOUDBASE_CONFIG).
    #[arg(long, global = true, env = "CLOUDBASE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print the GraphQL schema (SDL).
    Schema,
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Signing keys and master keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Back up, check and restore the database.
    Backup {
        #[command(subcommand)]
        command: BackupCommand,
    },
    /// Ask a running instance's `/readyz` (for container health checks); exits 1 unless ready.
    Healthcheck {
        /// The URL to ask (default: `/readyz` on the configured listen address, over loopback
        /// when it listens on all addresses).
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user. The password comes from CLOUDBASE_USER_PASSWORD, from stdin
    /// (`--password-stdin`), or from a prompt; never from a flag.
    Create {
        /// Login email.
        #[arg(long)]
        email: String,
        /// `user` or `admin`.
        #[arg(long, value_enum, default_value_t = RoleArg::User)]
        role: RoleArg,
        /// Shown in the UI (default: the part of the email before @).
        #[arg(long)]
        display_name: Option<String>,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a signing key. It is published at once and signs after `--publish-ahead-secs`; the
    /// key it replaces verifies until the last token it signed has expired. Every running
    /// instance takes it without a restart.
    Rotate {
        /// Seconds between publishing the key and signing with it (0: now).
        #[arg(long, default_value_t = 60)]
        publish_ahead_secs: u64,
    },
    /// List the signing keys, and how many sealed values each master key holds.
    List,
    /// Stop a replaced signing key from verifying now (a key thought stolen).
    Retire {
        /// The key's `kid`.
        kid: String,
    },
    /// Seal new values under a new master key and move every sealed value to it, online. With a
    /// key file a new key is generated into it; with CLOUDBASE_MASTER_KEY, put the new key
    /// first (every instance must have it before this runs).
    RotateMaster {
        /// With a key file: how long to give running servers to read the new key before it is
        /// used (they re-read the file every 20 s; 0 when none runs).
        #[arg(long, default_value_t = 25)]
        wait_secs: u64,
    },
    /// Print a new random master key (for CLOUDBASE_MASTER_KEY).
    GenerateMaster,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the audit trail's hash chain and report the rows not linked yet; exits 1 at the
    /// first chained row edited, removed or reordered.
    Verify {
        /// Also exit 1 when a row has waited longer than this to be linked (no instance is
        /// chaining).
        #[arg(long)]
        max_unchained_age_secs: Option<u64>,
    },
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Back the database up while the server runs: SQLite's online backup API, or `pg_dump
    /// --format=custom` on PostgreSQL; a manifest beside the copy records what it holds.
    Create {
        /// Write here instead of a new `cloudbase-<time>` file in `[backup] dir`.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check a backup without changing it: its bytes against its manifest, SQLite's integrity
    /// check, the rows per table, and the audit chain (a PostgreSQL dump is restored into a
    /// scratch database, dropped after).
    Verify {
        /// The copy (its manifest is `<FILE>.manifest.json`).
        file: PathBuf,
    },
    /// Verify a backup, then put it in place of the configured database (no server may be
    /// using it).
    Restore {
        /// The copy (its manifest is `<FILE>.manifest.json`).
        file: PathBuf,
        /// PostgreSQL: restore into a database that already has tables (the dump's objects are
        /// dropped and made again).
        #[arg(long)]
        force: bool,
        /// SQLite: delete the replaced database instead of keeping it as
        /// `<database>.before-restore-<time>`.
        #[arg(long)]
        discard_previous: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Load and validate the configuration, then print it with secrets redacted.
    Check,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    User,
    Admin,
}

/// `audit verify`: the chain's verdict, then the unchained tail.
async fn audit_verify(config: &Config, max_age_secs: Option<u64>) -> anyhow::Result<()> {
    let app = startup::build_app(config, Arc::new(SystemClock), Arc::new(Host::empty())).await?;
    let report = cloudbase_schema::services::audit::verify(&app).await?;
    match report.verdict {
        Verdict::Intact { rows } => println!("the audit trail is intact ({rows} rows chained)"),
        Verdict::Broken { seq, reason } => {
            anyhow::bail!("the audit trail is broken at row {seq}: {reason}")
        }
    }
    let age_ms = report.tail.oldest_age_ms(app.now());
    if report.tail.rows == 0 {
        println!("no rows wait to be chained");
    } else {
        println!(
            "{} rows wait to be chained; the oldest was written {:.1} s ago",
            report.tail.rows,
            age_ms as f64 / 1000.0
        );
    }
    if let Some(max) = max_age_secs
        && age_ms > i64::try_from(max.saturating_mul(1000)).unwrap_or(i64::MAX)
    {
        anyhow::bail!("rows have waited more than {max} s to be chained: is any instance running?");
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    // `cloudbase-ai plugin-runner <library>`: a plugin with `isolation = "process"`, started by
    // a server. Not a clap subcommand: it must not read config or start a runtime.
    if let Some(code) = cloudbase_plugin_runner::run_if_asked(std::env::args_os().skip(1)) {
        return code;
    }
    if let Err(e) = allocator::init() {
        eprintln!("warning: {e}");
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // A plugin call still stuck on a blocking thread (it ignored its deadline) must not hold the
    // exit: the server has finished everything of its own by now.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    telemetry::finish();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::Keys {
        command: KeysCommand::GenerateMaster,
    }) = &cli.command
    {
        keys::generate_master();
        return Ok(());
    }
    let config = Config::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            telemetry::init(config.log_format);
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("listen: cannot bind {}", config.listen))?;
            startup::run(config, listener, cloudbase_server::shutdown_signal()).await
        }
        Command::Healthcheck { url } => {
            let url = url.unwrap_or_else(|| readyz_url(config.listen));
            let response = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(3))
                .build()?
                .get(&url)
                .send()
                .await
                .with_context(|| format!("healthcheck: {url} did not answer"))?;
            anyhow::ensure!(
                response.status().is_success(),
                "healthcheck: {url} answered {}",
                response.status()
            );
            println!("ready ({url})");
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify {
                max_unchained_age_secs,
            },
        } => audit_verify(&config, max_unchained_age_secs).await,
        Command::Keys { command } => {
            telemetry::init(config.log_format);
            match command {
                KeysCommand::Rotate { publish_ahead_secs } => {
                    keys::rotate(&config, std::time::Duration::from_secs(publish_ahead_secs)).await
                }
                KeysCommand::List => keys::list(&config).await,
                KeysCommand::Retire { kid } => keys::retire(&config, &kid).await,
                KeysCommand::RotateMaster { wait_secs } => {
                    keys::rotate_master(&config, std::time::Duration::from_secs(wait_secs)).await
                }
                KeysCommand::GenerateMaster => {
                    keys::generate_master();
                    Ok(())
                }
            }
        }
        Command::Backup { command } => run_backup(&config, command).await,
        Command::Migrate => {
            telemetry::init(config.log_format);
            startup::connect(&config).await?;
            println!(
                "migrations are up to date ({})",
                redact_url(&config.database_url())
            );
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Create {
                    email,
                    role,
                    display_name,
                    password_stdin,
                },
        } => {
            let password = read_password(password_stdin)?;
            let app =
                startup::build_app(&config, Arc::new(SystemClock), Arc::new(Host::empty())).await?;
            let role = match role {
                RoleArg::User => Role::User,
                RoleArg::Admin => Role::Admin,
            };
            let name = display_name
                .unwrap_or_else(|| email.split('@').next().unwrap_or("user").to_owned());
            let user = users::create(&app, &email, &password, &name, role)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "created {} ({}) with role {}",
                user.email, user.id, user.role
            );
            Ok(())
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            let rendered = toml::to_string_pretty(&config).context("rendering the config")?;
            println!(
                "# configuration is valid\n# database: {}\n{rendered}",
                redact_url(&config.database_url())
            );
            Ok(())
        }
        Command::Schema => {
            print!("{}", cloudbase_schema::sdl());
            Ok(())
        }
    }
}

/// `backup create | verify | restore`: the work is in [`cloudbase_server::backup`].
async fn run_backup(config: &Config, command: BackupCommand) -> anyhow::Result<()> {
    match command {
        BackupCommand::Create { out } => {
            let created = backup::create(config, out.as_deref()).await?;
            let rows: i64 = created.manifest.tables.values().sum();
            println!(
                "backup written: {} ({} bytes, {rows} rows in {} tables)",
                created.file.display(),
                created.manifest.bytes,
                created.manifest.tables.len()
            );
        }
        BackupCommand::Verify { file } => {
            let verified = backup::verify(config, &file).await?;
            print_verified(&file, &verified);
        }
        BackupCommand::Restore {
            file,
            force,
            discard_previous,
        } => {
            let options = backup::RestoreOptions {
                force,
                discard_previous,
            };
            let restored = backup::restore(config, &file, options).await?;
            print_verified(&file, &restored.verified);
            println!("restored into {}", redact_url(&config.database_url()));
            if let Some(previous) = restored.previous {
                println!("the previous database is kept as {}", previous.display());
            }
        }
    }
    Ok(())
}

fn print_verified(file: &std::path::Path, verified: &backup::Verified) {
    let rows: i64 = verified.manifest.tables.values().sum();
    println!(
        "{} is a good backup, taken {}: {rows} rows in {} tables as recorded; the audit chain \
         is intact ({} rows chained, {} not linked yet)",
        file.display(),
        verified.manifest.created_at,
        verified.manifest.tables.len(),
        verified.chain_rows,
        verified.unchained_rows
    );
    for note in &verified.notes {
        println!("note: {note}");
    }
}

/// Hides a password in a database URL.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}://{user}:[redacted]{}", &url[..scheme], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("CLOUDBASE_USER_PASSWORD") {
        return Ok(p);
    }
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        anyhow::ensure!(!password.is_empty(), "no password on stdin");
        return Ok(password);
    }
    let first = rpassword::prompt_password("Password: ").context("reading the password")?;
    let second = rpassword::prompt_password("Repeat password: ").context("reading the password")?;
    anyhow::ensure!(first == second, "the passwords do not match");
    Ok(first)
}

/// `/readyz` on `listen`; an unspecified address (`0.0.0.0`, `::`) is asked over loopback.
fn readyz_url(listen: std::net::SocketAddr) -> String {
    let ip = match listen.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!(
        "http://{}/readyz",
        std::net::SocketAddr::new(ip, listen.port())
    )
}
