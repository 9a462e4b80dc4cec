//! The hardened edges.
//!
//! - [`proxies`]: the client address behind trusted proxies (login limits, audit trail).
//! - [`webhooks`]: users' webhooks that answer with a redirect.
//! - [`suggestions`]: no schema hints in validation errors in production.
//! - [`playground`]: the playground's headers, its switch, and where it keeps the token.
//! - [`console`]: the console's headers, `/` leading to it, and its folder in `dev`.

mod console;
mod playground;
mod proxies;
mod suggestions;
mod webhooks;

use cloudbase_server::Config;

/// The error `Config::load` gives for a file holding `toml`.
pub fn load_error(toml: &str) -> String {
    let mut message = String::new();
    figment::Jail::expect_with(|jail| {
        jail.create_file("cloudbase.toml", toml)?;
        message = Config::load(Some(std::path::Path::new("cloudbase.toml")))
            .expect_err("config should be rejected")
            .to_string();
        Ok(())
    });
    message
}
