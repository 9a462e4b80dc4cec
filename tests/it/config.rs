//! Configuration: precedence (defaults < file < environment) and errors that name the key.

use cloudbase_server::config::{Config, Environment};
use figment::Jail;

fn load_error(toml: &str) -> String {
    let mut message = String::new();
    Jail::expect_with(|jail| {
        jail.create_file("cloudbase.toml", toml)?;
        message = Config::load(Some(std::path::Path::new("cloudbase.toml")))
            .expect_err("config should be rejected")
            .to_string();
        Ok(())
    });
    message
}

#[test]
fn file_then_environment_override_defaults() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "cloudbase.toml",
            r#"
                listen = "127.0.0.1:9000"
                data_dir = "/srv/cloudbase"
                [graphql]
                max_depth = 7
                [auth]
                access_token_ttl_secs = 600
            "#,
        )?;
        jail.set_env("CLOUDBASE_LISTEN", "127.0.0.1:9100");
        jail.set_env("CLOUDBASE_GRAPHQL__MAX_ALIASES", "5");
        jail.set_env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test");
        let config = Config::load(Some(std::path::Path::new("cloudbase.toml"))).unwrap();
        assert_eq!(config.listen.port(), 9100, "environment beats the file");
        assert_eq!(config.graphql.max_depth, 7, "the file beats defaults");
        assert_eq!(config.graphql.max_aliases, 5);
        assert_eq!(config.auth.access_token_ttl_secs, 600);
        assert_eq!(
            config.auth.refresh_token_ttl_secs,
            30 * 24 * 3600,
            "defaults fill the rest"
        );
        assert_eq!(
            config.database_url(),
            "postgres://postgres@127.0.0.1:5432/test"
        );
        assert_eq!(config.env, Environment::Dev);
        Ok(())
    });
}

#[test]
fn default_database_is_sqlite_in_the_data_dir() {
    Jail::expect_with(|_| {
        let config = Config::load(None).unwrap();
        assert_eq!(config.database_url(), "sqlite://data/cloudbase.db");
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        Ok(())
    });
}

#[test]
fn errors_name_the_key() {
    assert!(load_error(r#"listen = "not an address""#).contains("listen"));
    assert!(load_error("lissten = \"127.0.0.1:1\"").contains("lissten"));
    assert!(load_error("[graphql]\nmax_depth = 0").contains("graphql.max_depth"));
    assert!(load_error("[graphql]\nmax_depth = \"deep\"").contains("max_depth"));
    assert!(load_error(r#"database_url = "mysql://x""#).contains("database_url"));
    assert!(load_error(r#"env = "staging""#).contains("env"));
}

#[test]
fn prod_requires_a_master_key() {
    let message = load_error(r#"env = "prod""#);
    assert!(message.contains("master_key"), "{message}");
    let short = load_error("jwt_secret = \"short\"");
    assert!(short.contains("at least 32 bytes"), "{short}");
    let not_a_key = load_error("master_key = \"c2hvcnQ\"");
    assert!(
        not_a_key.contains("master_key") && not_a_key.contains("32 bytes"),
        "{not_a_key}"
    );
    let both = load_error(&format!(
        "master_key = \"{}\"\nmaster_key_file = \"/k\"",
        "A".repeat(43)
    ));
    assert!(both.contains("not both"), "{both}");
    let key = "0123456789abcdef0123456789abcdef0123456789A";
    Jail::expect_with(|jail| {
        jail.set_env("CLOUDBASE_ENV", "prod");
        jail.set_env("CLOUDBASE_MASTER_KEY", key);
        let config = Config::load(None).unwrap();
        assert_eq!(config.env, Environment::Prod);
        assert!(!format!("{config:?}").contains(key));
        assert!(!toml::to_string(&config).unwrap().contains(key));
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env("CLOUDBASE_ENV", "prod");
        jail.set_env("CLOUDBASE_MASTER_KEY", key);
        jail.set_env("CLOUDBASE_JWT_SECRET", "0123456789abcdef0123456789abcdef");
        let config = Config::load(None).unwrap();
        // Secrets never print.
        assert!(!format!("{config:?}").contains("0123456789abcdef"));
        assert!(
            !toml::to_string(&config)
                .unwrap()
                .contains("0123456789abcdef")
        );
        Ok(())
    });
}

#[test]
fn a_missing_config_file_is_an_error() {
    let err = Config::load(Some(std::path::Path::new("/nonexistent/cloudbase.toml"))).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/cloudbase.toml"));
}

#[test]
fn registration_and_login_settings_load_and_are_checked() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "cloudbase.toml",
            r#"
                [auth]
                registration = "invite"
                [budgets]
                new_user_limit_micros = 2000000
                new_user_period = "week"
                [rate_limits]
                login_failures_before_backoff = 5
            "#,
        )?;
        jail.set_env("CLOUDBASE_RATE_LIMITS__REGISTRATIONS_PER_ADDRESS", "4");
        jail.set_env("CLOUDBASE_AUTH__REGISTRATION", "closed");
        let config = Config::load(Some(std::path::Path::new("cloudbase.toml"))).unwrap();
        assert_eq!(
            config.auth.registration,
            cloudbase_server::config::RegistrationConfig::Closed,
            "the environment wins"
        );
        assert_eq!(config.rate_limits.registrations_per_address, 4);
        assert_eq!(config.rate_limits.login_failures_before_backoff, 5);
        assert_eq!(config.rate_limits.login_trusted_address_days, 30);
        assert_eq!(config.budgets.new_user_limit_micros, 2_000_000);
        assert_eq!(
            config.budgets.new_user_period,
            cloudbase_server::config::PeriodConfig::Week
        );
        assert_eq!(config.budgets.new_user_currency, "CNY");
        Ok(())
    });
    assert!(load_error("[auth]\nregistration = \"sometimes\"").contains("registration"));
    assert!(
        load_error("[budgets]\nnew_user_currency = \"yuan\"").contains("budgets.new_user_currency")
    );
    assert!(load_error("[budgets]\nnew_user_period = \"year\"").contains("new_user_period"));
    assert!(
        load_error("[rate_limits]\nlogin_window_secs = 100000")
            .contains("rate_limits.login_window_secs")
    );
    assert!(
        load_error("[rate_limits]\nlogin_trusted_address_days = 99999")
            .contains("rate_limits.login_trusted_address_days")
    );
}

#[test]
fn cors_origins_are_exact_origins() {
    for bad in [
        "*",
        "https://app.example/",
        "https://app.example/path",
        "app.example",
        "ftp://app.example",
        "https://",
    ] {
        let toml = format!("[http]\ncors_origins = [{bad:?}]");
        let message = load_error(&toml);
        assert!(message.contains("http.cors_origins"), "{bad}: {message}");
    }
}

#[test]
fn two_step_and_reset_settings_are_checked() {
    assert!(load_error("[auth]\nmfa_issuer = \"Acme:AI\"").contains("auth.mfa_issuer"));
    assert!(load_error("[auth]\nmfa_issuer = \"  \"").contains("auth.mfa_issuer"));
    assert!(
        load_error("[auth]\npassword_reset_channel = \"nowhere\"")
            .contains("auth.password_reset_channel")
    );
    let mail = "[plugins.mail]\nplugin = \"email\"\nsettings = { host = \"127.0.0.1\", from = \"a@b.c\", to = [\"a@b.c\"] }\n";
    assert!(
        load_error(&format!(
            "env = \"prod\"\nmaster_key = \"{}\"\n[auth]\npassword_reset_channel = \"mail\"\n{mail}",
            "A".repeat(43)
        ))
        .contains("auth.password_reset_url"),
        "prod needs the public link"
    );
    assert!(
        load_error(
            "[auth]\npassword_reset_channel = \"team\"\n[plugins.team]\nplugin = \"wecom\"\n"
        )
        .contains("auth.password_reset_channel"),
        "a group chat would post every reset link to everyone in it"
    );
    assert!(
        load_error(&format!(
            "env = \"prod\"\nmaster_key = \"{}\"\n[wechat]\ncode2session_url = \"http://wechat.example.com/x\"\n",
            "A".repeat(43)
        ))
        .contains("wechat.code2session_url"),
        "prod asks WeChat over https only"
    );
    assert!(
        load_error("[auth]\npassword_reset_url = \"https://ai.example.com/reset\"")
            .contains("auth.password_reset_url"),
        "the link needs {{token}}"
    );
    Jail::expect_with(|jail| {
        jail.create_file(
            "cloudbase.toml",
            &format!("listen = \"127.0.0.1:9000\"\n[auth]\npassword_reset_channel = \"mail\"\nrequire_mfa_for_admins = true\n{mail}"),
        )?;
        let config = Config::load(Some(std::path::Path::new("cloudbase.toml"))).unwrap();
        assert!(config.auth.require_mfa_for_admins);
        assert_eq!(
            config.password_reset_url(),
            "http://127.0.0.1:9000/console#/reset-password?token={token}",
            "dev: this server's own console"
        );
        Ok(())
    });
}

#[test]
fn backup_settings_load_and_are_checked() {
    let defaults = Config::default();
    assert_eq!(
        defaults.backup.interval(),
        None,
        "scheduled backups are off by default"
    );
    assert_eq!(defaults.backup.keep, 7);
    assert_eq!(
        defaults.backup_dir(),
        std::path::Path::new("data").join("backups")
    );
    Jail::expect_with(|jail| {
        jail.create_file(
            "cloudbase.toml",
            "data_dir = \"/srv/cloudbase\"\n[backup]\ninterval_secs = 3600\n",
        )?;
        jail.set_env("CLOUDBASE_BACKUP__KEEP", "3");
        let config = Config::load(Some(std::path::Path::new("cloudbase.toml"))).unwrap();
        assert_eq!(
            config.backup.interval(),
            Some(std::time::Duration::from_secs(3600))
        );
        assert_eq!(config.backup.keep, 3);
        assert_eq!(
            config.backup_dir(),
            std::path::Path::new("/srv/cloudbase/backups")
        );
        Ok(())
    });
    let error = load_error("[backup]\nkeep = 0\n");
    assert!(error.contains("backup.keep"), "{error}");
    let error = load_error("[backup]\ninterval_secs = 99999999999\n");
    assert!(error.contains("backup.interval_secs"), "{error}");
    let error = load_error("[backup]\ndir = \"\"\n");
    assert!(error.contains("backup.dir"), "{error}");
    let error = load_error("[backup]\nevery = 5\n");
    assert!(error.contains("every"), "{error}");
}
