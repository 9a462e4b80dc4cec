//! The open WebSockets of this instance, by user, so that a change to a user's access closes them.
//!
//! Every authenticated socket registers here after `connection_init`. One watcher task follows the
//! event bus (which carries other instances' events too, through `LISTEN`): on
//! `AccessChanged { user_id }` (logout, revoked sessions, a password change, disable, a role
//! change) it checks each of that user's sockets' credentials again and closes those that no
//! longer grant what they granted when the socket opened, with 4401. A watcher that lagged behind
//! the bus may have missed such an event, so it then checks every socket. A signing key retired
//! (`SigningKeysChanged`) checks every socket too: those opened with its tokens close.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use cloudbase_schema::App;
use cloudbase_schema::events::Event;
use cloudbase_schema::graphql::socket_auth::SocketCloser;
use cloudbase_schema::services::{Viewer, auth, signing};
use tokio::sync::{Notify, broadcast};

/// The close code for a credential that stopped being good (expired, revoked, disabled, role
/// changed), as `graphql-transport-ws` uses 4401 for "Unauthorized".
pub const UNAUTHORIZED: u16 = 4401;

/// The close code for a server going away (RFC 6455, 1001): the client reconnects, to another
/// instance behind a load balancer.
pub const GOING_AWAY: u16 = 1001;

/// One open socket: why it must close, if it must, and what wakes its reader.
#[derive(Default)]
pub struct LiveSocket {
    state: Mutex<SocketState>,
    wake: Notify,
}

#[derive(Default)]
struct SocketState {
    /// The close frame to send; the first reason wins.
    closing: Option<(u16, String)>,
    /// The credential and who it was at `connection_init`.
    credential: Option<(String, Viewer)>,
}

impl LiveSocket {
    fn state(&self) -> std::sync::MutexGuard<'_, SocketState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the socket to close with `code`; a reason already given wins.
    pub fn close(&self, code: u16, reason: &str) {
        let mut state = self.state();
        if state.closing.is_none() {
            // A close frame's reason is at most 123 bytes.
            let mut reason = reason.to_owned();
            while reason.len() > 120 {
                reason.pop();
            }
            state.closing = Some((code, reason));
        }
        drop(state);
        self.wake.notify_one();
    }

    /// The close frame asked for, if any.
    pub fn closing(&self) -> Option<(u16, String)> {
        self.state().closing.clone()
    }

    /// When the socket's access token expires (`None`: anonymous, or not initialised yet).
    pub fn expires_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.state()
            .credential
            .as_ref()
            .and_then(|(_, v)| v.expires_at)
    }

    /// Resolves when something changed: a close was asked for, or the credential was set.
    pub async fn changed(&self) {
        self.wake.notified().await;
    }

    fn credential(&self) -> Option<(String, Viewer)> {
        self.state().credential.clone()
    }
}

impl SocketCloser for LiveSocket {
    fn close_unauthorized(&self, reason: &str) {
        self.close(UNAUTHORIZED, reason);
    }
}

/// The registry.
#[derive(Default)]
pub struct Sockets {
    by_user: Mutex<HashMap<String, Vec<Weak<LiveSocket>>>>,
}

impl Sockets {
    /// Records that `socket` was opened with `authorization`, which resolved to `viewer`, and
    /// wakes its reader (it now has an expiry to watch).
    pub fn register(&self, socket: &Arc<LiveSocket>, authorization: String, viewer: Viewer) {
        let user = viewer.user_id.clone();
        socket.state().credential = Some((authorization, viewer));
        socket.wake.notify_one();
        let mut by_user = self.by_user.lock().unwrap_or_else(|e| e.into_inner());
        let list = by_user.entry(user).or_default();
        list.retain(|s| s.strong_count() > 0);
        list.push(Arc::downgrade(socket));
    }

    /// The live sockets of `user`, or of everyone; forgets closed ones.
    fn live(&self, user: Option<&str>) -> Vec<Arc<LiveSocket>> {
        let mut by_user = self.by_user.lock().unwrap_or_else(|e| e.into_inner());
        by_user.retain(|_, list| {
            list.retain(|s| s.strong_count() > 0);
            !list.is_empty()
        });
        match user {
            Some(user) => by_user
                .get(user)
                .map(|list| list.iter().filter_map(Weak::upgrade).collect())
                .unwrap_or_default(),
            None => by_user
                .values()
                .flatten()
                .filter_map(Weak::upgrade)
                .collect(),
        }
    }

    /// Closes every socket with 1001 (the server is going away), and waits up to `patience` for
    /// them to have sent their close frame and ended. Returns how many were open.
    pub async fn close_all(&self, patience: std::time::Duration) -> usize {
        let open = self.live(None);
        for socket in &open {
            socket.close(GOING_AWAY, "server shutting down");
        }
        let count = open.len();
        drop(open);
        let _ = tokio::time::timeout(patience, async {
            while !self.live(None).is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await;
        count
    }

    /// Checks the credentials of `user`'s sockets (or everyone's) again and closes those that
    /// no longer hold.
    async fn recheck(&self, app: &App, user: Option<&str>) {
        for socket in self.live(user) {
            let Some((authorization, opened_as)) = socket.credential() else {
                continue;
            };
            match auth::authenticate(app, Some(&authorization), None).await {
                Ok(now) => {
                    if let Err(why) = auth::still_valid(&opened_as, &now) {
                        socket.close_unauthorized(&why);
                    }
                }
                // Refusing is the safe side: the client reconnects and is checked afresh.
                Err(e) => {
                    tracing::warn!(error = %e, "a socket's credential could not be checked again; closing it");
                    socket.close(4500, "credentials could not be checked");
                }
            }
        }
    }

    /// Follows the event bus until it closes; run once per instance.
    pub async fn watch(self: Arc<Self>, app: Arc<App>) {
        let mut events = app.events.subscribe();
        loop {
            match events.recv().await {
                Ok(event) => match event.as_ref() {
                    Event::AccessChanged { user_id } => self.recheck(&app, Some(user_id)).await,
                    // A retired key's tokens stop on open sockets too: take the keys first (the
                    // key watcher may not have yet), then check every socket.
                    Event::SigningKeysChanged => {
                        if let Err(e) = signing::reload(&app).await {
                            tracing::warn!(error = %e, "reloading the signing keys failed");
                        }
                        self.recheck(&app, None).await;
                    }
                    _ => {}
                },
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "the socket watcher fell behind the event bus; checking every socket"
                    );
                    self.recheck(&app, None).await;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}
