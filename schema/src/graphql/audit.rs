//! The audit trail in GraphQL: the [`Audit`] extension records every executed mutation field
//! (so no resolver records anything by hand), and admins read it with `auditLog` and see how far
//! its hash chain is linked with `auditChain`, and re-check it in bounded steps with
//! `verifyAuditChain`.

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
use crate::db::models::AuditRow;
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
        let Some(app) = ctx.data_opt::<Arc<App>>() else {
            return next.run(ctx, info).await;
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
            outcome: String::new(),
            client_ip: meta.and_then(|m| m.client_ip.clone()),
            user_agent: meta.and_then(|m| m.user_agent.clone()),
            request_id: meta.map(|m| m.request_id.clone()).unwrap_or_default(),
        };
        // An AI call writes the entry in its finish transaction; otherwise it is written here.
        let (result, entry) = audit::running(entry, next.run(ctx, info)).await;
        let Some(mut entry) = entry else {
            return result;
        };
        // An error below the root field (in the selection the client asked for) does not undo
        // the mutation: only the field's own error is its outcome.
        entry.outcome = match &result {
            Err(e) if e.path.len() <= 1 => code_of(e),
            _ => "OK".to_owned(),
        };
        // Refused for overload (`UNAVAILABLE`: no slot, no free connection): it changed nothing,
        // and its row would wait for the very capacity that is short, turning a fast refusal
        // into a queue (DESIGN §9). The operation metrics count it.
        if entry.outcome == "UNAVAILABLE" {
            return result;
        }
        // The mutation has happened: a lost audit row is logged loudly, and the caller still
        // gets the mutation's own result.
        if let Err(e) = audit::record(app, entry).await {
            tracing::error!(error = %e, "writing the audit row failed");
        }
        result
    }
}

/// One row of the audit trail. A row is written with the mutation and linked into the hash
/// chain moments later; until then `seq`, `prevHash` and `hash` are null.
#[derive(SimpleObject)]
pub struct AuditEntry {
    /// The row's id: rows are numbered as they are written (also the cursor).
    pub id: ID,
    /// Position in the hash chain; null until the row is linked.
    pub seq: Option<ID>,
    /// Whether the row is linked into the hash chain yet.
    pub chained: bool,
    /// When the mutation ran.
    pub at: DateTime<Utc>,
    /// Who ran it; null when anonymous (register, login, refresh), or for the server itself (a
    /// plugin reload on `SIGHUP` or the folder watch, named by `operationName`).
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
    /// The hash of the row before it in the chain (empty for the first); null until linked.
    pub prev_hash: Option<String>,
    /// This row's chain hash (SHA-256, hex); null until linked.
    pub hash: Option<String>,
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> Self {
        Self {
            id: ID(row.id.to_string()),
            seq: row.seq.map(|s| ID(s.to_string())),
            chained: row.seq.is_some(),
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
            prev_hash: row.prev_hash,
            hash: row.hash,
        }
    }
}

/// How far the audit hash chain is linked.
#[derive(SimpleObject)]
pub struct AuditChain {
    /// Rows linked into the chain (the last one's position).
    pub chained_rows: i64,
    /// The last linked row's hash; empty while none is.
    pub head_hash: String,
    /// Rows written but not linked yet (normally under a second's worth).
    pub unchained_rows: i64,
    /// When the oldest of them was written.
    pub oldest_unchained_at: Option<DateTime<Utc>>,
    /// How long the oldest of them has waited, in milliseconds (0 with none). A growing age
    /// means no instance is chaining.
    pub oldest_unchained_age_ms: i64,
}

/// One bounded step of checking the audit hash chain.
#[derive(SimpleObject)]
pub struct AuditVerification {
    /// The step started after this position (trusting that row's stored hash; 0 trusts nothing).
    pub after_seq: i64,
    /// The last position that checked out: the next step's `afterSeq`.
    pub last_seq: i64,
    /// Rows this step checked and found sound.
    pub checked_rows: i64,
    /// No break found in this step.
    pub intact: bool,
    /// The first position that does not check out.
    pub broken_at_seq: Option<i64>,
    /// Why it does not.
    pub reason: Option<String>,
    /// The chain head's position when the step began.
    pub head_seq: i64,
    /// Nothing is left to check: the head was reached, or a break was found.
    pub done: bool,
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
    /// arguments (secrets redacted) and how it ended; rows not yet linked into the hash chain
    /// included.
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
                .map(|r| Edge::new(r.id.to_string(), AuditEntry::from(r))),
        );
        Ok(connection)
    }

    /// How far the audit hash chain is linked, and what waits (admin only). It does not
    /// re-check the hashes: `cloudbase-ai audit verify` does.
    async fn audit_chain(&self, ctx: &Context<'_>) -> Result<AuditChain, Error> {
        let app = ctx.app()?;
        let status = audit::status(app, ctx.viewer()?).await?;
        Ok(AuditChain {
            chained_rows: status.chained_rows,
            head_hash: status.head_hash,
            unchained_rows: status.tail.rows,
            oldest_unchained_at: status.tail.oldest_at.map(|t| t.and_utc()),
            oldest_unchained_age_ms: status.tail.oldest_age_ms(app.now()),
        })
    }

    /// Re-checks the audit hash chain in bounded steps (admin only): at most `limit` (1–10000)
    /// linked rows after position `afterSeq`, each linking to the one before and hashing to its
    /// stored hash, and the head agreeing once it is reached. Call again with `afterSeq` =
    /// `lastSeq` until `done`. `cloudbase-ai audit verify` checks the whole chain at once.
    async fn verify_audit_chain(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 0)] after_seq: i64,
        #[graphql(default = 5000)] limit: i64,
    ) -> Result<AuditVerification, Error> {
        let report = audit::verify_range(ctx.app()?, ctx.viewer()?, after_seq, limit).await?;
        Ok(AuditVerification {
            after_seq: report.after_seq,
            last_seq: report.last_seq,
            checked_rows: report.last_seq - report.after_seq,
            intact: report.broken.is_none(),
            broken_at_seq: report.broken.as_ref().map(|(seq, _)| *seq),
            done: report.broken.is_some() || report.last_seq >= report.head_seq,
            reason: report.broken.map(|(_, reason)| reason),
            head_seq: report.head_seq,
        })
    }
}
