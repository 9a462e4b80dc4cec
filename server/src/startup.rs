//! Start-up: secrets, the database, the services, the bootstrap admin, the background tasks
//! (housekeeping, alerts, the audit chainer, SQLite's checkpoints and scheduled backups, plugin
//! reloads on `SIGHUP` and the plugins folder watch), then serving.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use cloudbase_schema::clock::{Clock, SystemClock};
use cloudbase_schema::db::{Backend, DbConfig, DbPool};
use cloudbase_schema::events::EventBus;
use cloudbase_schema::metrics::Metrics;
use cloudbase_schema::ports::PluginHost;
use cloudbase_schema::services::admission::Admission;
use cloudbase_schema::services::chat::interrupted;
use cloudbase_schema::services::sealing::reseal;
use cloudbase_schema::services::{App, AppParts, TokenSettings, auth, pricing, signing, users};
use cloudbase_schema::services::{alerts, audit, keys, logs, maintenance};
use tokio::net::TcpListener;
use tracing::Instrument as _;

use crate::config::{Config, Environment};
use crate::http;
use crate::plugin_host::{Host, triggers};
use crate::telemetry;

/// Resolves on SIGTERM (what Docker, systemd and Kubernetes send to stop a service) or Ctrl-C:
/// the shutdown `main` serves until, and test processes too.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// Serves until `shutdown` resolves. Tests and `main` start the server the same way.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with_clock(config, Arc::new(SystemClock), listener, shutdown).await
}

/// [`run`] with an injected clock (tests move time).
pub async fn run_with_clock(
    config: Config,
    clock: Arc<dyn Clock>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let plugins = Arc::new(Host::load(&config).await);
    let addr = listener
        .local_addr()
        .context("reading the listen address")?;
    // Metrics turned off: nothing is recorded (a recorder nobody renders would only grow).
    let (metrics, metrics_handle) = if config.metrics.enabled {
        let (metrics, handle) = http::metrics::recorder();
        (metrics, Some(handle))
    } else {
        (cloudbase_schema::metrics::Metrics::default(), None)
    };
    let host =
        hostname::get().map_or_else(|_| "localhost".into(), |h| h.to_string_lossy().into_owned());
    let node = Node {
        name: format!("{host}:{}", addr.port()),
        metrics,
    };
    let app = Arc::new(build_app_for(&config, clock, plugins, node).await?);
    // From here on this instance's warnings and business events are stored.
    let _logs = telemetry::register(app.events.origin(), &app.logs);
    let span = telemetry::instance_span(app.events.origin());
    let log_writer = tokio::spawn(logs::run_writer(app.clone()));
    span.in_scope(|| log_failed_plugins(&app));
    bootstrap_admin(&config, &app)
        .instrument(span.clone())
        .await?;
    let housekeeping = tokio::spawn(
        maintenance::run(
            app.clone(),
            config.budgets.sweep_interval(),
            (&config.retention).into(),
        )
        .instrument(span.clone()),
    );
    let evaluator = tokio::spawn(alerts::run(app.clone()).instrument(span.clone()));
    let hangups = triggers::on_hangup(app.clone())
        .map(|reloads| tokio::spawn(reloads.instrument(span.clone())));
    let folder_watch = (config.plugins_watch_secs > 0).then(|| {
        tokio::spawn(
            triggers::watch_folder(
                app.clone(),
                config.plugins_dir(),
                std::time::Duration::from_secs(config.plugins_watch_secs),
            )
            .instrument(span.clone()),
        )
    });
    let key_watcher = crate::keys::KeySource::of(&config).map(|source| {
        let reader = source.reader(&config);
        let app = app.clone();
        tokio::spawn(
            async move {
                // Values from before sealing, or under a key rotated away from, move over first.
                if let Err(e) = reseal::at_start(&app).await {
                    tracing::error!(error = %e, "sealing stored values under the master key failed");
                }
                keys::watch(app, reader).await;
            }
            .instrument(span.clone()),
        )
    });
    let chainer = tokio::spawn(
        audit::chainer::run(app.clone(), config.chain_settings()).instrument(span.clone()),
    );
    let checkpointer = app.db.write_gate().map(|gate| {
        let path = cloudbase_schema::db::sqlite_path(&config.database_url()).to_owned();
        tokio::spawn(cloudbase_schema::db::checkpoint::run(path, gate).instrument(span.clone()))
    });
    let backups = scheduled_backups(&config, app.db.backend()).map(|schedule| {
        tokio::spawn(crate::backup::schedule::run(schedule).instrument(span.clone()))
    });
    let listener_task = (app.db.backend() == Backend::Postgres).then(|| {
        tokio::spawn(
            crate::events::listen(config.database_url(), app.clone()).instrument(span.clone()),
        )
    });
    let metrics_upkeep = metrics_handle.clone().map(|handle| {
        tokio::spawn(http::metrics::upkeep(
            handle,
            http::metrics::UPKEEP_INTERVAL,
        ))
    });
    let sockets = Arc::new(http::sockets::Sockets::default());
    let socket_watcher = tokio::spawn(
        Arc::clone(&sockets)
            .watch(app.clone())
            .instrument(span.clone()),
    );
    let router = http::router(app.clone(), &config, metrics_handle, Arc::clone(&sockets))?;
    tracing::info!(%addr, env = ?config.env, backend = ?config_backend(&config), "serving");
    if config.http.proxy_hops() > 0
        && config.http.proxy_networks.is_empty()
        && !addr.ip().is_loopback()
    {
        tracing::warn!(
            %addr,
            "X-Forwarded-For is believed from any peer ([http] trusted_proxies without \
             proxy_networks): a client that reaches this address directly chooses its own \
             recorded address; set [http] proxy_networks or listen on loopback behind the proxy"
        );
    }
    let admission = app.admission.clone();
    let signalled = async move {
        shutdown.await;
        // From here on new AI calls get UNAVAILABLE with Retry-After, and /readyz says 503.
        admission.close();
        tracing::info!("shutting down: no longer accepting; letting calls in flight finish");
    };
    let unfinished = http::listen::serve(
        listener,
        router,
        config.http.header_read_timeout(),
        signalled,
        config.http.shutdown_grace(),
    )
    .await;
    drain(&app, &sockets, unfinished)
        .instrument(span.clone())
        .await;
    housekeeping.abort();
    evaluator.abort();
    chainer.abort();
    // Stopped (a batch cut short rolls back) before the lease goes. Rows not linked yet stay in
    // the table for the next chainer: hand it the lease now rather than when it expires.
    let _ = chainer.await;
    if let Err(e) = audit::chainer::release(&app).instrument(span.clone()).await {
        tracing::warn!(error = %e, "releasing the audit chain lease failed");
    }
    socket_watcher.abort();
    for task in [
        listener_task,
        checkpointer,
        key_watcher,
        backups,
        hangups,
        folder_watch,
        metrics_upkeep,
    ]
    .into_iter()
    .flatten()
    {
        task.abort();
    }
    // Write what is queued before stopping.
    app.logs.close();
    if tokio::time::timeout(std::time::Duration::from_secs(2), log_writer)
        .await
        .is_err()
    {
        tracing::warn!("system logs still queued at shutdown were not written");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The rest of a graceful shutdown, once the listener is closed and HTTP connections had their
/// grace period: calls streaming over WebSockets get what is left of it, then every socket is
/// closed with 1001, and the calls still running are recorded as interrupted (their budget
/// reservations released) rather than left `PENDING` for the sweeper.
async fn drain(app: &App, sockets: &http::sockets::Sockets, unfinished: http::listen::Unfinished) {
    let left = unfinished
        .deadline
        .saturating_duration_since(tokio::time::Instant::now());
    let all_ended = app.admission.drained(left).await;
    let running = app.admission.calls();
    let connections = unfinished.len();
    // Dropping them drops the requests they were serving: by the server, so those calls are
    // recorded as interrupted below, not as cancelled by their clients.
    app.admission.cut_off();
    drop(unfinished);
    let closed = sockets.close_all(std::time::Duration::from_secs(1)).await;
    if !all_ended || connections > 0 {
        tracing::warn!(
            calls = running.len(),
            connections,
            "calls and connections still running at the end of the shutdown grace period were cut off"
        );
    }
    if !running.is_empty()
        && let Err(e) = interrupted::interrupt(app, &running).await
    {
        tracing::error!(error = %e, "recording the calls cut off by shutdown failed; the sweeper will");
    }
    tracing::info!(sockets = closed, "drained");
}

/// Stores each plugin that failed to load as a business event (loading ran before the log store
/// existed).
fn log_failed_plugins(app: &App) {
    for row in app.plugins.plugins() {
        if row.status == cloudbase_schema::ports::PluginStatus::Failed {
            tracing::warn!(
                target: "cloudbase::event::plugin",
                plugin = %row.name, instance = ?row.instance, file = %row.file,
                reason = row.reason.as_deref().unwrap_or(""), "plugin failed"
            );
        }
    }
}

/// SQLite's scheduled backups, when `[backup] interval_secs` asks for them. PostgreSQL is backed
/// up from outside (`cloudbase-ai backup create` from cron, once for all instances).
fn scheduled_backups(
    config: &Config,
    backend: Backend,
) -> Option<crate::backup::schedule::Schedule> {
    let every = config.backup.interval()?;
    if backend == Backend::Postgres {
        tracing::warn!(
            "[backup] interval_secs is for SQLite; on PostgreSQL run `cloudbase-ai backup create` \
             from a scheduler instead (no backup is scheduled)"
        );
        return None;
    }
    Some(crate::backup::schedule::Schedule {
        url: config.database_url(),
        dir: config.backup_dir(),
        every,
        keep: config.backup.keep,
    })
}

fn config_backend(config: &Config) -> Option<Backend> {
    Backend::of_url(&config.database_url()).ok()
}

/// Who an instance is: its name among the instances and the recorder behind its `/metrics`.
pub struct Node {
    /// Where it runs (`host:port`): names its own subjects in per-instance alerts.
    pub name: String,
    /// Its metrics.
    pub metrics: Metrics,
}

impl Node {
    /// An instance that does not serve (CLI commands): named `local`, recording nothing.
    pub fn offline() -> Self {
        Self {
            name: "local".into(),
            metrics: Metrics::default(),
        }
    }
}

/// Opens (and migrates) the database and wires the services, for a command that does not serve
/// ([`Node::offline`]).
pub async fn build_app(
    config: &Config,
    clock: Arc<dyn Clock>,
    plugins: Arc<dyn PluginHost>,
) -> anyhow::Result<App> {
    build_app_for(config, clock, plugins, Node::offline()).await
}

/// Opens (and migrates) the database and wires the services of `node`, then seeds the prices.
pub async fn build_app_for(
    config: &Config,
    clock: Arc<dyn Clock>,
    plugins: Arc<dyn PluginHost>,
    node: Node,
) -> anyhow::Result<App> {
    let db = connect(config).await?;
    let (sealer, _) = crate::keys::sealer(config, &db).await?;
    let legacy = legacy_jwt_secret(config);
    let tokens = TokenSettings::new(
        legacy.as_deref().map(str::as_bytes),
        config.auth.access_token_ttl(),
        config.auth.refresh_token_ttl(),
    );
    let postgres = (db.backend() == Backend::Postgres).then(|| config.database_url());
    let session_cache = config.auth.session_cache();
    let app = App::new(AppParts {
        db,
        tokens,
        sealer: Arc::new(sealer),
        account: auth::AccountSettings {
            mfa_issuer: config.auth.mfa_issuer.trim().to_owned(),
            mfa_required_for_admins: config.auth.require_mfa_for_admins,
            reset_channel: config.auth.password_reset_channel.clone(),
            reset_url: config.password_reset_url(),
        },
        clock: clock.clone(),
        plugins,
        wechat: crate::wechat::Code2Session::from_config(&config.wechat)?
            .map(|c| Arc::new(c) as Arc<dyn cloudbase_schema::ports::WeChat>),
        chat: (&config.chat).into(),
        admission: Admission::new(config.max_calls_in_flight()),
        budgets: (&config.budgets).try_into()?,
        rate_limits: (&config.rate_limits).into(),
        registration: config.into(),
        events: EventBus::new(1024, postgres).with_session_cache(session_cache),
        logs: Arc::new(logs::LogSink::new(config.logs.queue_capacity, clock)),
        metrics: node.metrics,
        alert_settings: (&config.alerts).into(),
        node: node.name,
    });
    seed_prices(config, &app).await?;
    signing::bootstrap(&app)
        .await
        .map_err(|e| anyhow::anyhow!("loading the signing keys: {e}"))?;
    Ok(app)
}

/// Adds the shipped prices, the list prices provider plugins publish for their instances, and
/// those of `prices_file`, that are not in the database yet.
async fn seed_prices(config: &Config, app: &App) -> anyhow::Result<()> {
    let added = pricing::seed(app, pricing::SEED)
        .await
        .map_err(|e| anyhow::anyhow!("seeding prices: {e}"))?
        + pricing::seed_from_plugins(app)
            .await
            .map_err(|e| anyhow::anyhow!("seeding the prices plugins publish: {e}"))?;
    let mut extra = 0;
    if let Some(path) = &config.prices_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("prices_file: cannot read {}", path.display()))?;
        extra = pricing::seed(app, &text)
            .await
            .map_err(|e| anyhow::anyhow!("prices_file {}: {e}", path.display()))?;
    }
    if added + extra > 0 {
        tracing::info!(added = added + extra, "price rows seeded");
    }
    Ok(())
}

/// Opens the pool and runs pending migrations.
pub async fn connect(config: &Config) -> anyhow::Result<DbPool> {
    let db_config = DbConfig {
        url: config.database_url(),
        max_connections: config.database.max_connections,
        acquire_timeout: config.database.acquire_timeout(),
    };
    DbPool::connect_and_migrate(&db_config)
        .await
        .context("opening the database")
}

/// The HS256 secret of a deployment from before signing keys rotated: from config, or in `dev`
/// the one an older version generated into `<data_dir>/jwt-secret`. New deployments have none.
fn legacy_jwt_secret(config: &Config) -> Option<String> {
    if let Some(secret) = &config.jwt_secret {
        return Some(secret.expose().to_owned());
    }
    if config.env == Environment::Prod {
        return None;
    }
    let existing = std::fs::read_to_string(config.data_dir.join("jwt-secret")).ok()?;
    let existing = existing.trim();
    (existing.len() >= 32).then(|| existing.to_owned())
}

async fn bootstrap_admin(config: &Config, app: &App) -> anyhow::Result<()> {
    if let (Some(email), Some(password)) = (
        &config.bootstrap_admin_email,
        &config.bootstrap_admin_password,
    ) {
        users::ensure_bootstrap_admin(app, email, password.expose())
            .await
            .map_err(|e| anyhow::anyhow!("bootstrap_admin_email: {e}"))?;
    }
    Ok(())
}
