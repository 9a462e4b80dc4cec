//! Authorising every operation on a long-lived connection as an HTTP request would be.
//!
//! A WebSocket hands its credential over once, in `connection_init`. The connection keeps the
//! credential itself ([`SocketCredential`]), never the identity it resolved to then: for every
//! operation, [`Reauthorize`] checks it again (token unexpired, session live, user enabled, role
//! as stored now) and gives the operation the fresh [`Auth`]. When the credential no longer
//! grants what it granted at `connection_init`, the operation is refused and the socket is told
//! to close. The server also closes sockets when the event bus says a user's access changed, so
//! subscriptions that are already running end too.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
};
use async_graphql::{Request, ServerError, ServerResult};

use super::errors::IntrospectionDenied;
use crate::Error;
use crate::services::{App, Auth, Viewer, auth};

/// Closes a connection whose credential stopped being good.
pub trait SocketCloser: Send + Sync {
    /// Asks the connection to close; `reason` says why (sent in the close frame).
    fn close_unauthorized(&self, reason: &str);
}

/// Connection data of a WebSocket: the credential from `connection_init`, checked again for each
/// operation.
pub struct SocketCredential {
    /// The `Authorization` value (`Bearer …`); `None` for an anonymous connection.
    pub authorization: Option<String>,
    /// Who the credential was at `connection_init` (`None`: anonymous).
    pub opened_as: Option<Viewer>,
    /// Introspection only for admins (`prod`).
    pub restrict_introspection: bool,
    /// Closes the connection.
    pub closer: Arc<dyn SocketCloser>,
}

/// Installs the per-operation check of connection credentials.
pub struct Reauthorize;

impl ExtensionFactory for Reauthorize {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Reauthorize)
    }
}

fn refused(error: Error) -> ServerError {
    async_graphql::Error::from(error).into_server_error(Default::default())
}

#[async_graphql::async_trait::async_trait]
impl Extension for Reauthorize {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let Some(credential) = ctx.data_opt::<SocketCredential>() else {
            // HTTP: the handler authenticated this request.
            return next.run(ctx, request).await;
        };
        let auth = match (&credential.authorization, &credential.opened_as) {
            (Some(authorization), Some(opened_as)) => {
                let app = ctx
                    .data::<Arc<App>>()
                    .map_err(|_| refused(Error::Internal("schema built without App".into())))?;
                let now = auth::authenticate(app, Some(authorization), None)
                    .await
                    .map_err(refused)?;
                if let Err(why) = auth::still_valid(opened_as, &now) {
                    credential.closer.close_unauthorized(&why);
                    return Err(refused(Error::Unauthenticated(why)));
                }
                now
            }
            _ => Auth::Anonymous,
        };
        let admin = matches!(&auth, Auth::User(v) if v.is_admin());
        let mut request = request.data(auth);
        if credential.restrict_introspection && !admin {
            request = request.data(IntrospectionDenied);
        }
        next.run(ctx, request).await
    }
}
