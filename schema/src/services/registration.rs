//! Who may create an account, and what a new account starts with.
//!
//! `[auth] registration` is `open` (anyone), `invite` (only with a code an admin created; see
//! [`super::invites`]) or `closed` (`FORBIDDEN`; admins create accounts with the CLI). Every
//! registration that passes the input checks counts against its address
//! ([`rate_limits::take_registration`]), and with `[budgets] new_user_limit_micros` set, the new
//! user's budget is created in the transaction that creates the user, so no account exists
//! without it even for a moment.

use super::auth::Role;
use super::budgets::{self, Period};
use super::{App, rate_limits, tokens, users};
use crate::Error;
use crate::db::models::User;
use crate::db::{DbConn, budgets as budget_queries, invites};

/// Who may register.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationMode {
    /// Anyone may register.
    Open,
    /// Only with an invite code from an admin.
    Invite,
    /// Nobody may register; admins create accounts.
    Closed,
}

/// The budget every self-registered user starts with.
#[derive(Debug, Clone)]
pub struct NewUserBudget {
    /// How often it starts over.
    pub period: Period,
    /// ISO 4217 code.
    pub currency: String,
    /// The spend limit, in micro-units.
    pub limit_micros: i64,
}

/// Registration settings, from config.
#[derive(Debug, Clone)]
pub struct RegistrationSettings {
    /// Who may register.
    pub mode: RegistrationMode,
    /// The budget new users get, if any.
    pub new_user_budget: Option<NewUserBudget>,
}

/// What someone registering sends.
#[derive(Debug, Clone, Copy)]
pub struct Registration<'a> {
    /// Their email (normalised here).
    pub email: &'a str,
    /// Their password (checked for strength here).
    pub password: &'a str,
    /// Their display name.
    pub display_name: &'a str,
    /// Needed in `invite` mode; ignored otherwise.
    pub invite_code: Option<&'a str>,
}

/// What every new account gets, in the transaction that makes it: the new-user budget, when
/// `[budgets] new_user_limit_micros` is set.
pub async fn provision(app: &App, tx: &mut DbConn, user: &User) -> Result<(), Error> {
    if let Some(budget) = &app.registration.new_user_budget {
        let row = budgets::new_user_budget(app, &user.id, budget);
        budget_queries::insert(tx, &row).await?;
    }
    Ok(())
}

/// Creates an account with the `USER` role from `address`, if the mode, the input, the invite and
/// the address's registration limit allow it.
pub async fn register(
    app: &App,
    address: Option<&str>,
    input: Registration<'_>,
) -> Result<User, Error> {
    let code = input
        .invite_code
        .map(str::trim)
        .filter(|code| !code.is_empty());
    let code_hash = match (app.registration.mode, code) {
        (RegistrationMode::Closed, _) => {
            return Err(Error::Forbidden(
                "registration is closed; ask an administrator for an account".into(),
            ));
        }
        (RegistrationMode::Invite, None) => {
            return Err(Error::bad_input(
                "input.inviteCode",
                "registration is by invitation; enter the invite code you were given",
            ));
        }
        (RegistrationMode::Invite, Some(code)) => Some(tokens::hash_invite_code(code)),
        (RegistrationMode::Open, _) => None,
    };
    let (email, display_name) = users::check_new(input.email, input.password, input.display_name)?;
    rate_limits::take_registration(app, address).await?;
    let now = app.now();
    let bad_code = || {
        Error::bad_input(
            "input.inviteCode",
            "this invite code cannot be used: it is unknown, used, revoked or expired",
        )
    };
    if let Some(hash) = &code_hash {
        let mut conn = app.db.get().await?;
        if !invites::usable(&mut conn, hash, now).await? {
            return Err(bad_code());
        }
    }
    let account = users::NewAccount {
        email,
        display_name,
        password_hash: app.passwords.hash(input.password).await?,
    };
    let mut conn = app.db.get().await?;
    let user = conn
        .transaction(async |tx| {
            let user = users::insert(tx, &account, Role::User, now).await?;
            if let Some(hash) = &code_hash
                && !invites::claim(tx, hash, &user.id, now).await?
            {
                return Err(bad_code());
            }
            provision(app, tx, &user).await?;
            Ok(user)
        })
        .await?;
    tracing::info!(user.id = %user.id, invited = code_hash.is_some(), "user registered");
    Ok(user)
}
