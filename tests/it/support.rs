//! `TestApp`: the real server on `127.0.0.1:0` against a fresh database.
//!
//! SQLite (a new file in a temp dir) by default; with `TEST_DATABASE_URL` set, a fresh PostgreSQL
//! database created for the test and dropped after it. Under `CI=true` an unreachable Postgres
//! fails the test rather than skipping it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use cloudbase_schema::clock::{Clock, SystemClock};
use cloudbase_schema::services::sealing::MasterKey;
use cloudbase_server::config::{Config, PluginInstanceConfig, Secret};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub const ADMIN_EMAIL: &str = "admin@cloudbase.test";
pub const ADMIN_PASSWORD: &str = "admin-password-1";

enum TestDb {
    Sqlite,
    Postgres { admin_url: String, name: String },
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub config: Config,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    db: TestDb,
    _dir: tempfile::TempDir,
}

/// Replaces the database name in a Postgres URL.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let cut = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{}", &base[..cut], name);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

async fn create_pg_database(admin_url: &str) -> String {
    let name = format!("cbt_{}", uuid::Uuid::now_v7().simple());
    let mut conn = match AsyncPgConnection::establish(admin_url).await {
        Ok(c) => c,
        Err(e) => panic!(
            "TEST_DATABASE_URL is set but PostgreSQL is unreachable ({admin_url}): {e}. \
             Start PostgreSQL or unset TEST_DATABASE_URL to run on SQLite."
        ),
    };
    conn.batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    name
}

fn drop_pg_database(admin_url: String, name: String) {
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            if let Ok(mut conn) = AsyncPgConnection::establish(&admin_url).await {
                let _ = conn
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            }
        });
    })
    .join();
}

impl TestApp {
    /// A server with the defaults and a bootstrap admin.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// A server whose config `tweak` may change.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let (config, db, dir) = Self::prepare(tweak).await;
        Self::start(config, db, dir, Arc::new(SystemClock)).await
    }

    /// A server whose time comes from `clock` (for periods and expiry).
    pub async fn spawn_with_clock(clock: Arc<dyn Clock>, tweak: impl FnOnce(&mut Config)) -> Self {
        let (config, db, dir) = Self::prepare(tweak).await;
        Self::start(config, db, dir, clock).await
    }

    /// `n` servers started at the same moment on one fresh database (PostgreSQL only: SQLite is
    /// single-instance by design). The first owns the database; the others are peers.
    pub async fn spawn_cluster(n: usize) -> (Self, Vec<Peer>) {
        Self::spawn_cluster_with(n, Arc::new(SystemClock), |_| {}).await
    }

    /// Like [`TestApp::spawn_cluster`], every instance reading the time from `clock`.
    pub async fn spawn_cluster_with(
        n: usize,
        clock: Arc<dyn Clock>,
        tweak: impl FnOnce(&mut Config),
    ) -> (Self, Vec<Peer>) {
        let (config, db, dir) = Self::prepare(tweak).await;
        assert!(
            matches!(db, TestDb::Postgres { .. }),
            "clusters need TEST_DATABASE_URL"
        );
        let peers = (1..n).map(|_| Peer::start(config.clone(), Arc::clone(&clock)));
        let (first, peers) = tokio::join!(
            Self::start(config.clone(), db, dir, Arc::clone(&clock)),
            futures_util::future::join_all(peers)
        );
        (first, peers)
    }

    async fn prepare(tweak: impl FnOnce(&mut Config)) -> (Config, TestDb, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let (db, database_url) = match std::env::var("TEST_DATABASE_URL") {
            Ok(admin_url) if !admin_url.is_empty() => {
                let name = create_pg_database(&admin_url).await;
                let url = with_database(&admin_url, &name);
                (TestDb::Postgres { admin_url, name }, url)
            }
            _ => (
                TestDb::Sqlite,
                format!("sqlite://{}", dir.path().join("test.db").display()),
            ),
        };
        let plugins = dir.path().join("plugins");
        link_first_party_plugins(&plugins);
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            plugins_dir: Some(plugins),
            database_url: Some(database_url),
            master_key: Some(Secret::new(MasterKey::generate().to_base64())),
            bootstrap_admin_email: Some(ADMIN_EMAIL.into()),
            bootstrap_admin_password: Some(Secret::new(ADMIN_PASSWORD)),
            ..Config::default()
        };
        config.database.max_connections = 8;
        config.plugin_runner = Some(plugin_runner());
        tweak(&mut config);
        (config, db, dir)
    }

    async fn start(
        config: Config,
        db: TestDb,
        dir: tempfile::TempDir,
        clock: Arc<dyn Clock>,
    ) -> Self {
        cloudbase_server::telemetry::init_for_tests();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(cloudbase_server::run_with_clock(
            config.clone(),
            clock,
            listener,
            async move {
                let _ = rx.await;
            },
        ));
        let app = TestApp {
            addr,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            config,
            shutdown: Some(tx),
            server: Some(server),
            db,
            _dir: dir,
        };
        app.wait_ready().await;
        app
    }

    async fn wait_ready(&self) {
        let server = self.server.as_ref();
        wait_ready(&self.client, self.addr, || {
            !server.is_some_and(tokio::task::JoinHandle::is_finished)
        })
        .await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.db, TestDb::Postgres { .. })
    }

    /// Stops the server and waits for it (for restart tests).
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    /// Stops the server and starts it again on the same database and data dir, with `tweak`
    /// applied to the config.
    pub async fn restart_with(&mut self, tweak: impl FnOnce(&mut Config)) {
        self.stop().await;
        tweak(&mut self.config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        self.addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        self.server = Some(tokio::spawn(cloudbase_server::run(
            self.config.clone(),
            listener,
            async move {
                let _ = rx.await;
            },
        )));
        self.shutdown = Some(tx);
        self.wait_ready().await;
    }

    /// POSTs a GraphQL request and returns the JSON body (asserting a 200).
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .client
            .post(self.url("/graphql"))
            .header("accept", "application/json")
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("POST /graphql");
        assert_eq!(response.status(), 200, "POST /graphql status");
        response.json().await.expect("JSON body")
    }

    /// Like [`gql`], and asserts there are no errors; returns `data`.
    pub async fn gql_ok(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let body = self.gql(token, query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// Registers a user; returns (access token, refresh token, user id).
    pub async fn register(&self, email: &str, password: &str) -> (String, String, String) {
        let data = self
            .gql_ok(
                None,
                "mutation($input: RegisterInput!) { register(input: $input) { accessToken refreshToken user { id } } }",
                json!({ "input": { "email": email, "password": password, "displayName": "Test User" } }),
            )
            .await;
        let r = &data["register"];
        (
            r["accessToken"].as_str().unwrap().to_owned(),
            r["refreshToken"].as_str().unwrap().to_owned(),
            r["user"]["id"].as_str().unwrap().to_owned(),
        )
    }

    /// Logs in; returns the raw response body.
    pub async fn login(&self, email: &str, password: &str) -> Value {
        self.gql(
            None,
            "mutation($input: LoginInput!) { login(input: $input) { accessToken refreshToken user { id role } } }",
            json!({ "input": { "email": email, "password": password } }),
        )
        .await
    }

    /// The bootstrap admin's access token.
    pub async fn admin_token(&self) -> String {
        let body = self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        body["data"]["login"]["accessToken"]
            .as_str()
            .unwrap_or_else(|| panic!("admin login failed: {body}"))
            .to_owned()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let TestDb::Postgres { admin_url, name } = &self.db {
            drop_pg_database(admin_url.clone(), name.clone());
        }
    }
}

/// The first-party plugins, by crate name suffix.
pub const FIRST_PARTY: [&str; 8] = [
    "kimi",
    "openai_compatible",
    "mock",
    "webhook",
    "email",
    "wecom",
    "dingtalk",
    "feishu",
];

/// Where cargo put this test binary, and the plugin cdylibs built for it (dev-dependencies).
fn artifact_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent().expect("test binary folder").to_path_buf()
}

/// Makes `dir` a plugins folder holding the first-party plugins (as symlinks).
pub fn link_first_party_plugins(dir: &Path) {
    std::fs::create_dir_all(dir).expect("plugins dir");
    for name in FIRST_PARTY {
        let file = format!(
            "{}cloudbase_plugin_{name}{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        );
        let source = artifact_dir().join(&file);
        assert!(
            source.exists(),
            "{} was not built (it is a dev-dependency of the tests)",
            source.display()
        );
        std::os::unix::fs::symlink(&source, dir.join(&file)).expect("link plugin");
    }
}

/// Compiles the C test plugin (`fixtures/c_provider.c`) with `defines` into `out`.
pub fn build_c_plugin(out: &Path, defines: &[&str]) {
    build_c_fixture("c_provider.c", out, defines);
}

/// Compiles the C plugin `fixtures/<source>` with `defines` (`NAME` or `NAME=value`) into `out`.
pub fn build_c_fixture(source: &str, out: &Path, defines: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(out)
        .arg(root.join("it/fixtures").join(source))
        .arg("-I")
        .arg(root.join("../plugins/api/include"))
        .args(defines.iter().map(|d| format!("-D{d}")))
        .status()
        .expect("a C compiler (cc) is needed for the plugin ABI tests");
    assert!(status.success(), "compiling the C plugin failed");
}

/// The plugin runner built with this test binary (the server inside a test cannot run plugins
/// with its own executable, which is the test binary).
pub fn plugin_runner() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cloudbase-plugin-runner"))
}

/// Builds the Rust test plugin `fixtures/abort_plugin.rs` with `panic = "abort"` (a crate of its
/// own under `target/`, outside the workspace, its build kept between runs) and copies it to
/// `out`.
pub fn build_abort_plugin(out: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo = root.parent().expect("the repository");
    let work = artifact_dir().join("../../fixture-abort-plugin");
    std::fs::create_dir_all(work.join("src")).expect("fixture folder");
    let manifest = format!(
        "[package]\nname = \"aborter\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
         [lib]\ncrate-type = [\"cdylib\"]\npath = \"{}\"\n\n\
         [dependencies]\ncloudbase-plugin-api = {{ path = \"{}\" }}\nserde_json = \"1\"\n\n\
         [profile.dev]\npanic = \"abort\"\ndebug = false\n\n[workspace]\n",
        root.join("it/fixtures/abort_plugin.rs").display(),
        repo.join("plugins/api").display(),
    );
    std::fs::write(work.join("Cargo.toml"), manifest).expect("fixture manifest");
    // The workspace's lock file: the same dependency versions, nothing to resolve online.
    std::fs::copy(repo.join("Cargo.lock"), work.join("Cargo.lock")).expect("fixture lock file");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--quiet", "--offline", "--manifest-path"])
        .arg(work.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(work.join("target"))
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .status()
        .expect("cargo, to build the panic = \"abort\" test plugin");
    assert!(
        status.success(),
        "building the panic = \"abort\" test plugin failed"
    );
    std::fs::copy(work.join("target/debug/libaborter.so"), out).expect("copy the test plugin");
}

/// A `[plugins.<instance>]` entry.
pub fn instance(plugin: &str, settings: Value, secrets: &[(&str, &str)]) -> PluginInstanceConfig {
    PluginInstanceConfig {
        settings,
        secrets: secrets
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..PluginInstanceConfig::new(plugin)
    }
}

/// Another server on the same database as a [`TestApp`]; stopped when dropped.
pub struct Peer {
    pub addr: SocketAddr,
    _shutdown: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Peer {
    async fn start(config: Config, clock: Arc<dyn Clock>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(cloudbase_server::run_with_clock(
            config,
            clock,
            listener,
            async move {
                let _ = rx.await;
            },
        ));
        wait_ready(&reqwest::Client::new(), addr, || !server.is_finished()).await;
        Peer {
            addr,
            _shutdown: tx,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// Whether `test` must skip: it needs PostgreSQL and `TEST_DATABASE_URL` is not set (the
/// SQLite run of the suite; `.ci/run` runs the suite again on PostgreSQL). Says so on stderr.
pub fn skip_without_postgres(test: &str) -> bool {
    let skip = std::env::var("TEST_DATABASE_URL").is_err();
    if skip {
        eprintln!("{test}: PostgreSQL only (set TEST_DATABASE_URL); .ci/run does");
    }
    skip
}

/// Installs a harness folder's npm lockfile with `npm ci` the first time (when
/// `node_modules/<package>` is missing).
pub async fn npm_install(dir: &Path, package: &str) {
    if dir.join("node_modules").join(package).exists() {
        return;
    }
    let install = dir.to_path_buf();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&install)
            .status()
    })
    .await
    .unwrap()
    .expect("npm is needed for the Node harnesses (install Node.js)");
    assert!(status.success(), "npm ci in {} failed", dir.display());
}

/// The Python of a harness folder's virtual environment (`.venv`), made the first time from its
/// `requirements.txt` (every package pinned), from PyPI.
pub async fn python_venv(dir: &Path) -> PathBuf {
    let python = dir.join(".venv/bin/python");
    if python.exists() {
        return python;
    }
    let folder = dir.to_path_buf();
    let status = tokio::task::spawn_blocking(move || {
        let venv = std::process::Command::new("python3")
            .args(["-m", "venv", ".venv"])
            .current_dir(&folder)
            .status()?;
        if !venv.success() {
            return Ok(venv);
        }
        std::process::Command::new(".venv/bin/pip")
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
                "requirements.txt",
            ])
            .current_dir(&folder)
            .status()
    })
    .await
    .unwrap()
    .expect("python3 (with venv) is needed for the Python harnesses");
    assert!(status.success(), "making {}/.venv failed", dir.display());
    python
}

/// Runs `program args` in `dir` and returns its stdout, after checking it exited 0 and its last
/// line reports ` 0 failed`.
pub async fn run_harness(dir: &Path, program: PathBuf, args: Vec<String>) -> String {
    let dir = dir.to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&program)
            .args(args)
            .current_dir(&dir)
            .output()
    })
    .await
    .unwrap()
    .expect("the harness could not start");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(summary.ends_with(" 0 failed"), "{stdout}");
    stdout
}

/// The folder `tests/<dir>`.
pub fn harness_dir(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)
}

/// Runs a Node harness from `tests/<dir>` (installing its lockfile the first time) against the
/// server; see [`run_harness`].
pub async fn run_node_harness(dir: &str, package: &str, script: &str, args: Vec<String>) -> String {
    let dir = harness_dir(dir);
    npm_install(&dir, package).await;
    let mut all = vec![script.to_owned()];
    all.extend(args);
    run_harness(&dir, PathBuf::from("node"), all).await
}

/// Waits until `addr` answers `/readyz`, failing if `alive` turns false or 30 s pass.
async fn wait_ready(client: &reqwest::Client, addr: SocketAddr, alive: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            alive(),
            "the server at {addr} stopped during start-up (see the log above)"
        );
        if let Ok(r) = client.get(format!("http://{addr}/readyz")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server at {addr} was not ready within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Set in the environment of a [`PeerProcess`]: the one run in which `support::peer_process`
/// serves instead of returning at once.
const PEER_PROCESS_ENV: &str = "CB_TEST_PEER_PROCESS";

/// Another instance in its own OS process: this test binary run again with only
/// `support::peer_process` selected, on `config`'s database, secret and plugins. It serves until
/// it is dropped or the parent dies (its stdin closes).
pub struct PeerProcess {
    pub addr: SocketAddr,
    child: std::process::Child,
}

impl PeerProcess {
    pub async fn start(config: &Config) -> Self {
        Self::start_with(config, &[]).await
    }

    /// [`PeerProcess::start`] with more environment (`CLOUDBASE_…` settings of its own).
    pub async fn start_with(config: &Config, env: &[(&str, &str)]) -> Self {
        use std::io::BufRead;
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut child = std::process::Command::new(exe)
            .args([
                "--exact",
                "support::peer_process",
                "--ignored",
                "--nocapture",
            ])
            .env(PEER_PROCESS_ENV, "1")
            .env("DATABASE_URL", config.database_url())
            .env(
                "CLOUDBASE_MASTER_KEY",
                config
                    .master_key
                    .as_ref()
                    .expect("a test master key")
                    .expose(),
            )
            .env("CLOUDBASE_DATA_DIR", &config.data_dir)
            .env(
                "CLOUDBASE_PLUGINS_DIR",
                config.plugins_dir.as_ref().expect("a plugins folder"),
            )
            .env("CLOUDBASE_DATABASE__MAX_CONNECTIONS", "8")
            .env("CLOUDBASE_PLUGIN_RUNNER", plugin_runner())
            .envs(env.iter().copied())
            .env_remove("CLOUDBASE_CONFIG")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the peer process");
        // Read the address it bound, then keep draining its stdout so it never blocks on it.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(addr) = line.strip_prefix("PEER_ADDR=") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
            .await
            .unwrap()
            .expect("the peer process did not report its address within 60 s")
            .parse()
            .expect("a socket address");
        let mut peer = PeerProcess { addr, child };
        let alive = std::sync::Mutex::new(&mut peer.child);
        wait_ready(&reqwest::Client::new(), addr, || {
            matches!(alive.lock().unwrap().try_wait(), Ok(None))
        })
        .await;
        peer
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl PeerProcess {
    /// Sends it signal `name` (`HUP`, `STOP`, ...) with `kill`.
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name} {}", self.child.id());
    }

    /// Kills it at once (SIGKILL), as a crash or `kill -9` would, and waits for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks it to stop (SIGTERM), as Docker, systemd or Kubernetes would.
    pub fn terminate(&mut self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits up to `limit` for it to exit; its exit status, or `None` if it still runs.
    pub async fn exited_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let until = std::time::Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() > until {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server half of [`PeerProcess`]; a plain test run skips it (ignored), and it does nothing
/// unless started by `PeerProcess::start`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "the server half of PeerProcess, started by it"]
async fn peer_process() {
    if std::env::var_os(PEER_PROCESS_ENV).is_none() {
        return;
    }
    let config = Config::load(None).expect("the peer's configuration");
    cloudbase_server::telemetry::init_for_tests();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    println!("PEER_ADDR={}", listener.local_addr().expect("local addr"));
    let parent_gone = async {
        let _ = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
                line.clear();
            }
        })
        .await;
    };
    // Like `main`: SIGTERM starts a graceful shutdown.
    let stop = async {
        tokio::select! {
            () = parent_gone => {}
            () = cloudbase_server::shutdown_signal() => {}
        }
    };
    cloudbase_server::run(config, listener, stop)
        .await
        .expect("the peer server");
    // As `main` does, do not wait for plugin calls stuck on blocking threads (a test runtime
    // would, for as long as they take): everything of the server's own is done.
    std::process::exit(0);
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The access token of a `login` answer.
pub fn access_token(login: &Value) -> String {
    login["data"]["login"]["accessToken"]
        .as_str()
        .unwrap_or_else(|| panic!("login failed: {login}"))
        .to_owned()
}

/// The `extensions.code` of the first error.
pub fn error_code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

#[derive(diesel::QueryableByName)]
struct Number {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// A connection of its own to the SQLite database at `url`, waiting (like the server's) for a
/// lock another connection holds, such as the checkpoint of a server that just stopped.
pub async fn sqlite_connection(
    url: &str,
) -> diesel_async::sync_connection_wrapper::SyncConnectionWrapper<diesel::SqliteConnection> {
    let path = cloudbase_schema::db::sqlite_path(url).to_owned();
    let mut conn = diesel_async::sync_connection_wrapper::SyncConnectionWrapper::<
        diesel::SqliteConnection,
    >::establish(&path)
    .await
    .unwrap();
    conn.batch_execute("PRAGMA busy_timeout = 5000")
        .await
        .unwrap();
    conn
}

impl TestApp {
    /// Runs a statement directly against this app's database (to inspect rollups, or to simulate
    /// what a crashed process leaves behind).
    pub async fn sql(&self, statement: &str) {
        use diesel_async::RunQueryDsl;
        let url = self.config.database_url.clone().unwrap();
        if self.is_postgres() {
            let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
            diesel::sql_query(statement)
                .execute(&mut conn)
                .await
                .unwrap();
        } else {
            let mut conn = sqlite_connection(&url).await;
            diesel::sql_query(statement)
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }

    /// A query returning one text column named `t`: every row's value.
    pub async fn sql_texts(&self, query: &str) -> Vec<String> {
        use diesel_async::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Text {
            #[diesel(sql_type = diesel::sql_types::Text)]
            t: String,
        }
        let url = self.config.database_url.clone().unwrap();
        let rows: Vec<Text> = if self.is_postgres() {
            let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
            diesel::sql_query(query).load(&mut conn).await.unwrap()
        } else {
            let mut conn = sqlite_connection(&url).await;
            diesel::sql_query(query).load(&mut conn).await.unwrap()
        };
        rows.into_iter().map(|r| r.t).collect()
    }

    /// A pool of one connection on this app's database (to drive the database layer directly),
    /// and the id of a user to own the calls made through it.
    pub async fn pool_of_one(&self) -> (cloudbase_schema::db::DbPool, String) {
        use cloudbase_schema::db::{DbConfig, DbPool};
        let pool = DbPool::connect_existing(&DbConfig {
            url: self.config.database_url.clone().unwrap(),
            max_connections: 1,
            acquire_timeout: Duration::from_secs(5),
        })
        .await
        .unwrap();
        let user_id = self.sql_texts("SELECT id AS t FROM users").await.remove(0);
        (pool, user_id)
    }

    /// Every call is settled: no budget reservation is left, and the budgets have spent exactly
    /// what the call records cost (for tests whose every call is under one budget).
    pub async fn assert_budgets_settled(&self) {
        let sum = |q: &'static str| self.sql_number(q);
        assert_eq!(
            sum("SELECT COUNT(*) AS n FROM budget_reservations").await,
            0
        );
        assert_eq!(
            sum("SELECT CAST(COALESCE(SUM(reserved_micros), 0) AS BIGINT) AS n FROM budgets").await,
            0
        );
        assert_eq!(
            sum("SELECT CAST(COALESCE(SUM(spent_micros), 0) AS BIGINT) AS n FROM budgets").await,
            sum("SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS n FROM ai_calls").await
        );
    }

    /// A query returning one BIGINT column named `n`.
    pub async fn sql_number(&self, query: &str) -> i64 {
        use diesel_async::RunQueryDsl;
        let url = self.config.database_url.clone().unwrap();
        let rows: Vec<Number> = if self.is_postgres() {
            let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
            diesel::sql_query(query).load(&mut conn).await.unwrap()
        } else {
            let mut conn = sqlite_connection(&url).await;
            diesel::sql_query(query).load(&mut conn).await.unwrap()
        };
        rows.into_iter().next().map_or(0, |r| r.n)
    }
}

/// A new `PENDING` call of `user_id` on the mock provider, started now.
pub fn pending_call(user_id: &str) -> cloudbase_schema::db::models::AiCall {
    cloudbase_schema::db::models::AiCall::pending(
        user_id.to_owned(),
        None,
        None,
        ("mock".into(), "mock-echo".into()),
        false,
        chrono::Utc::now().naive_utc(),
    )
}

/// A query returning one text column named `t`, on a PostgreSQL connection of the pool.
pub async fn pg_text(conn: &mut cloudbase_schema::db::DbConn, query: &str) -> String {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Text {
        #[diesel(sql_type = diesel::sql_types::Text)]
        t: String,
    }
    let cloudbase_schema::db::DbConn::Pg(c) = conn else {
        unreachable!("PostgreSQL only")
    };
    let rows: Vec<Text> = diesel::sql_query(query).load(&mut **c).await.unwrap();
    rows.into_iter().next().unwrap().t
}
