//! The audit trail in GraphQL: the [`Audit`] extension records every executed mutation field
//! (so no resolver records anything by hand), and admins read it with `auditLog`.

use std::sync::{Arc, Mutex};

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextResolve,
    ResolveInfo,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{
    Context, ID, InputObject, Object, Request, ServerResult, SimpleObject, Value, Variables,
};
use chrono::{DateTime, Utc};

use super::errors::code_of;
use super::{ContextExt, running_operation};
use crate::Error;
use crate::db::audit::AuditRow;
use crate::services::audit::{self, AuditFilter, Entry};
use crate::services::{App, Auth, RequestMeta};

/// Records every root mutation field once it has run, with its outcome.
pub struct Audit;

impl ExtensionFactory for Audit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AuditExtension::default())
    }
}

/// One per request.
#[derive(Default)]
struct AuditExtension {
    /// The request's variables and operation name, for the arguments of the fields it runs.
    request: Mutex<(Variables, Option<String>)>,
}

#[async_graphql::async_trait::async_trait]
impl Extension for AuditExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        *self.request.lock().unwrap_or_else(|p| p.into_inner()) =
            (request.variables.clone(), request.operation_name.clone());
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let mut request = self.request.lock().unwrap_or_else(|p| p.into_inner());
        // The operation that runs (a lone named one runs without `operationName` in the
        // request); its variables' defaults count as sent values.
        let operation = running_operation(&document, request.1.as_deref());
        if let Some((name, _)) = &operation {
            request.1.clone_from(name);
        }
        let defaults: Vec<_> = operation
            .into_iter()
            .flat_map(|(_, op)| &op.variable_definitions)
            .filter_map(|d| {
                let value = d.node.default_value.as_ref()?;
                Some((d.node.name.node.clone(), value.node.clone()))
            })
            .collect();
        for (name, value) in defaults {
            request.0.entry(name).or_insert(value);
        }
        drop(request);
        Ok(document)
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let root_mutation = info.parent_type == "Mutation" && info.path_node.parent.is_none();
        if !root_mutation {
            return next.run(ctx, info).await;
        }
        let field = info.name.to_owned();
        let (arguments, operation_name) = {
            let request = self.request.lock().unwrap_or_else(|p| p.into_inner());
            let mut map = serde_json::Map::new();
            for (name, value) in &info.field.arguments {
                // An argument that uses a variable which was not sent (and has no default) was
                // not given at all: leave it out rather than record a null.
                let Ok(value) = value
                    .node
                    .clone()
                    .into_const_with(|v| request.0.get(&v).cloned().ok_or(()))
                else {
                    continue;
                };
                map.insert(
                    name.node.to_string(),
                    value.into_json().unwrap_or(serde_json::Value::Null),
                );
            }
            (serde_json::Value::Object(map), request.1.clone())
        };
        let result = next.run(ctx, info).await;
        let Some(app) = ctx.data_opt::<Arc<App>>() else {
            return result;
        };
        let meta = ctx.data_opt::<RequestMeta>();
        let entry = Entry {
            actor: match ctx.data_opt::<Auth>() {
                Some(Auth::User(v)) => Some((v.user_id.clone(), v.role.as_str().to_owned())),
                _ => None,
            },
            operation_name,
            field,
            arguments,
            // An error below the root field (in the selection the client asked for) does not
            // undo the mutation: only the field's own error is its outcome.
            outcome: match &result {
                Err(e) if e.path.len() <= 1 => code_of(e),
                _ => "OK".to_owned(),
            },
            client_ip: meta.and_then(|m| m.client_ip.clone()),
            user_agent: meta.and_then(|m| m.user_agent.clone()),
            request_id: meta.map(|m| m.request_id.clone()).unwrap_or_default(),
        };
        // The mutation has happened: a lost audit row is logged loudly, and the caller still
        // gets the mutation's own result.
        if let Err(e) = audit::record(app, entry).await {
            tracing::error!(error = %e, "writing the audit row failed");
        }
        result
    }
}

/// One row of the audit trail.
#[derive(SimpleObject)]
pub struct AuditEntry {
    /// Position in the chain (also the cursor).
    pub seq: ID,
    /// When the mutation ran.
    pub at: DateTime<Utc>,
    /// Who ran it; null when anonymous (register, login, refresh).
    pub actor_id: Option<ID>,
    /// Their role then.
    pub actor_role: Option<String>,
    /// The operation's name, if it had one.
    pub operation_name: Option<String>,
    /// The mutation field.
    pub field: String,
    /// Its arguments, secrets (and prompts, unless prompt logging is on) redacted.
    pub arguments: async_graphql::Json<serde_json::Value>,
    /// `OK` or the error code.
    pub outcome: String,
    /// Client address.
    pub client_ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// The request's id.
    pub request_id: String,
    /// This row's chain hash (SHA-256, hex).
    pub hash: String,
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> Self {
        Self {
            seq: ID(row.seq.to_string()),
            at: row.at.and_utc(),
            actor_id: row.actor_id.map(ID),
            actor_role: row.actor_role,
            operation_name: row.operation_name,
            field: row.field,
            arguments: async_graphql::Json(
                serde_json::from_str(&row.arguments).unwrap_or(serde_json::Value::Null),
            ),
            outcome: row.outcome,
            client_ip: row.client_ip,
            user_agent: row.user_agent,
            request_id: row.request_id,
            hash: row.hash,
        }
    }
}

/// What `auditLog` may filter on.
#[derive(InputObject, Default)]
pub struct AuditLogFilter {
    /// One actor's rows.
    pub actor_id: Option<ID>,
    /// One mutation field, e.g. `setUserRole`.
    pub field: Option<String>,
    /// `OK` or an error code.
    pub outcome: Option<String>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
}

/// Audit queries.
#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// The audit trail, newest first (admin only): every mutation run, by whom, with what
    /// arguments (secrets redacted) and how it ended.
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditLogFilter>,
        #[graphql(desc = "Page size, 1–100 (default 20).")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, AuditEntry, EmptyFields, EmptyFields>, Error> {
        let f = filter.unwrap_or_default();
        let filter = AuditFilter {
            actor_id: f.actor_id.map(|id| id.0),
            field: f.field,
            outcome: f.outcome,
            since: f.since,
            until: f.until,
        };
        let (rows, more) =
            audit::list(ctx.app()?, ctx.viewer()?, filter, first, after.as_deref()).await?;
        let mut connection = Connection::new(after.is_some(), more);
        connection.edges.extend(
            rows.into_iter()
                .map(|r| Edge::new(r.seq.to_string(), AuditEntry::from(r))),
        );
        Ok(connection)
    }
}
