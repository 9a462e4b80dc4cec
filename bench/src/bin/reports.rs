//! Report timings at scale: seeds call records (1,000 users, 10 models, 90 days) in stages,
//! rebuilds the daily rollups from them, and times the reports the server runs, which read only
//! the rollups. Usage: `reports DATABASE_URL STAGE...` (record counts, e.g. `100000 1000000`).
//! Prints one JSON line per measurement.

use std::time::Instant;

use cloudbase_bench::percentile;
use cloudbase_schema::db::usage::{self, Dimensions, UsageFilter};
use cloudbase_schema::db::{DbConfig, DbConn, DbPool, ai_calls, db_run};
use cloudbase_schema::domain::{CallStatus, UsageSource};
use serde_json::json;

const USERS: usize = 1_000;
const MODELS: usize = 10;
const DAYS: i64 = 90;
const BATCH: usize = 500;

/// A small deterministic generator (SplitMix64), so runs are repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

async fn exec(conn: &mut DbConn, sql: &str) -> anyhow::Result<()> {
    use diesel_async::SimpleAsyncConnection;
    db_run!(conn, |c| c.batch_execute(sql).await)?;
    Ok(())
}

fn user_id(i: usize) -> String {
    format!("00000000-0000-7000-8000-{i:012}")
}

async fn seed_users(conn: &mut DbConn, pg: bool) -> anyhow::Result<()> {
    let settings = if pg { "'{}'" } else { "jsonb('{}')" };
    for chunk in (0..USERS).collect::<Vec<_>>().chunks(BATCH) {
        let values: Vec<String> = chunk
            .iter()
            .map(|i| format!("('{}', 'bench{i}@example.com', 'x', 'Bench {i}', {settings}, 'USER', '2026-01-01 00:00:00', '2026-01-01 00:00:00')", user_id(*i)))
            .collect();
        exec(conn, &format!("INSERT INTO users (id, email, password_hash, display_name, settings, role, created_at, updated_at) VALUES {} ON CONFLICT DO NOTHING", values.join(","))).await?;
    }
    Ok(())
}

async fn seed_calls(
    conn: &mut DbConn,
    pg: bool,
    rng: &mut Rng,
    from: usize,
    to: usize,
) -> anyhow::Result<()> {
    let attempts = if pg { "'[]'" } else { "jsonb('[]')" };
    let reported = UsageSource::Reported.as_str();
    let start = chrono::NaiveDate::from_ymd_opt(2026, 8, 1)
        .unwrap_or_default()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default();
    let mut i = from;
    while i < to {
        let n = BATCH.min(to - i);
        let values: Vec<String> = (0..n)
            .map(|k| {
                let user = rng.below(USERS as u64) as usize;
                let model = rng.below(MODELS as u64);
                let at = start + chrono::Duration::seconds(rng.below((DAYS * 86_400) as u64) as i64);
                let (prompt, completion) = (50 + rng.below(2_000) as i64, 20 + rng.below(800) as i64);
                let cost = prompt * 4 + completion * 16;
                // One call in 50 failed, so the calls page has failures to filter for.
                let status = match (i + k) % 50 {
                    0 => CallStatus::Failed,
                    _ => CallStatus::Succeeded,
                }
                .as_str();
                format!(
                    "('{:08x}-0000-7000-8000-{:012}', '{}', 'bench', 'model-{model}', FALSE, '{status}', {prompt}, 0, {completion}, '{reported}', '{}', {cost}, 'CNY', TRUE, FALSE, {attempts})",
                    i + k,
                    i + k,
                    user_id(user),
                    at.format("%Y-%m-%d %H:%M:%S")
                )
            })
            .collect();
        exec(conn, &format!("INSERT INTO ai_calls (id, user_id, provider, model, stream, status, prompt_tokens, cached_prompt_tokens, completion_tokens, usage_source, started_at, cost_micros, currency, priced, cached, attempts) VALUES {}", values.join(","))).await?;
        i += n;
    }
    Ok(())
}

/// Rebuilds the three rollups from the raw records (what settling every call would have produced).
async fn rebuild_rollups(conn: &mut DbConn, pg: bool) -> anyhow::Result<()> {
    let day = if pg {
        "to_char(started_at, 'YYYY-MM-DD')"
    } else {
        "substr(started_at, 1, 10)"
    };
    let sums = "CAST(COUNT(*) AS BIGINT), CAST(SUM(prompt_tokens) AS BIGINT), CAST(SUM(cached_prompt_tokens) AS BIGINT), CAST(SUM(completion_tokens) AS BIGINT), CAST(SUM(cost_micros) AS BIGINT)";
    exec(
        conn,
        "DELETE FROM usage_daily; DELETE FROM usage_daily_users; DELETE FROM usage_daily_models;",
    )
    .await?;
    exec(conn, &format!("INSERT INTO usage_daily (day, user_id, provider, model, currency, requests, prompt_tokens, cached_prompt_tokens, completion_tokens, cost_micros) SELECT {day}, user_id, provider, model, currency, {sums} FROM ai_calls GROUP BY 1, 2, 3, 4, 5")).await?;
    exec(conn, &format!("INSERT INTO usage_daily_users (day, user_id, currency, requests, prompt_tokens, cached_prompt_tokens, completion_tokens, cost_micros) SELECT {day}, user_id, currency, {sums} FROM ai_calls GROUP BY 1, 2, 3")).await?;
    exec(conn, &format!("INSERT INTO usage_daily_models (day, provider, model, currency, requests, prompt_tokens, cached_prompt_tokens, completion_tokens, cost_micros) SELECT {day}, provider, model, currency, {sums} FROM ai_calls GROUP BY 1, 2, 3, 4")).await?;
    if !pg {
        exec(conn, "ANALYZE").await?;
    } else {
        // What autovacuum does after a bulk load; without it the planner judges `ai_calls` by the
        // statistics of an almost empty table (one provider filter then scanned 1M rows).
        exec(
            conn,
            "ANALYZE ai_calls; ANALYZE usage_daily; ANALYZE usage_daily_users; ANALYZE usage_daily_models",
        )
        .await?;
    }
    Ok(())
}

async fn count(conn: &mut DbConn, table: &str) -> anyhow::Result<i64> {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM {table}");
    let rows: Vec<N> = db_run!(conn, |c| {
        use diesel_async::RunQueryDsl;
        diesel::sql_query(&sql).load(c).await
    })?;
    Ok(rows.into_iter().next().map_or(0, |r| r.n))
}

/// Times `runs` executions of `query` (which returns how many rows it read); returns the p50 and
/// the max in milliseconds, and the rows of the last run.
async fn time<F>(runs: usize, mut query: F) -> anyhow::Result<(f64, f64, usize)>
where
    F: AsyncFnMut() -> anyhow::Result<usize>,
{
    let mut samples = Vec::with_capacity(runs);
    let mut rows = 0;
    for _ in 0..runs {
        let started = Instant::now();
        rows = query().await?;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    samples.sort_by(f64::total_cmp);
    Ok((
        percentile(&samples, 50.0),
        percentile(&samples, 100.0),
        rows,
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_default();
    let stages: Vec<usize> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    let db = DbPool::connect_and_migrate(&DbConfig {
        url: url.clone(),
        max_connections: 2,
        acquire_timeout: std::time::Duration::from_secs(30),
    })
    .await?;
    let mut conn = db.get().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let pg = matches!(conn, DbConn::Pg(_));
    seed_users(&mut conn, pg).await?;
    let mut rng = Rng(42);
    let mut seeded = 0;
    for stage in stages {
        let t = Instant::now();
        seed_calls(&mut conn, pg, &mut rng, seeded, stage).await?;
        seeded = stage;
        rebuild_rollups(&mut conn, pg).await?;
        let seed_s = t.elapsed().as_secs_f64();
        let (user_rows, user_total_rows, model_rows) = (
            count(&mut conn, "usage_daily").await?,
            count(&mut conn, "usage_daily_users").await?,
            count(&mut conn, "usage_daily_models").await?,
        );
        let everyone = UsageFilter::default();
        let one_user = UsageFilter {
            user_id: Some(user_id(7)),
            ..UsageFilter::default()
        };
        let by_day = Dimensions {
            day: true,
            ..Dimensions::default()
        };
        let by_model = Dimensions {
            model: true,
            ..Dimensions::default()
        };
        let lines = Dimensions {
            provider: true,
            model: true,
            ..Dimensions::default()
        };
        let reports = [
            (
                "usage 30 days by day",
                "2026-09-01",
                "2026-09-30",
                by_day,
                &everyone,
            ),
            (
                "usage 30 days by model",
                "2026-09-01",
                "2026-09-30",
                by_model,
                &everyone,
            ),
            (
                "usage 30 days by provider",
                "2026-09-01",
                "2026-09-30",
                Dimensions {
                    provider: true,
                    ..Dimensions::default()
                },
                &everyone,
            ),
            (
                "statement lines (one user, one month)",
                "2026-09-01",
                "2026-09-30",
                lines,
                &one_user,
            ),
            (
                "statement totals (one user, one month)",
                "2026-09-01",
                "2026-09-30",
                Dimensions::default(),
                &one_user,
            ),
            (
                "usage 30 days by user",
                "2026-09-01",
                "2026-09-30",
                Dimensions {
                    user: true,
                    ..Dimensions::default()
                },
                &everyone,
            ),
        ];
        for (name, from, to, dims, filter) in reports {
            let (p50, max, rows) = time(20, async || {
                Ok(usage::report(&mut conn, from, to, dims, filter)
                    .await?
                    .len())
            })
            .await?;
            println!(
                "{}",
                json!({"backend": if pg { "postgres" } else { "sqlite" }, "records": stage, "rollup_rows_per_user": user_rows, "rollup_rows_users": user_total_rows, "rollup_rows_team": model_rows, "report": name, "rows": rows, "p50_ms": (p50 * 1000.0).round() / 1000.0, "max_ms": (max * 1000.0).round() / 1000.0, "seed_seconds": (seed_s * 10.0).round() / 10.0})
            );
        }
        // The calls explorer: the first page, filtered pages, and a page deep in the history.
        let day = |d: u32| {
            chrono::NaiveDate::from_ymd_opt(2026, 9, d)
                .unwrap_or_default()
                .and_hms_opt(0, 0, 0)
        };
        let middle = format!("{:08x}-0000-7000-8000-{:012}", stage / 2, stage / 2);
        let pages = [
            ("calls: first page", ai_calls::Filter::default(), None),
            (
                "calls: one user",
                ai_calls::Filter {
                    user_id: Some(user_id(7)),
                    ..ai_calls::Filter::default()
                },
                None,
            ),
            (
                "calls: one provider and model",
                ai_calls::Filter {
                    provider: Some("bench".into()),
                    model: Some("model-3".into()),
                    ..ai_calls::Filter::default()
                },
                None,
            ),
            (
                "calls: failed only (2%)",
                ai_calls::Filter {
                    status: Some(CallStatus::Failed),
                    ..ai_calls::Filter::default()
                },
                None,
            ),
            (
                "calls: one day",
                ai_calls::Filter {
                    from: day(10),
                    to: day(11),
                    ..ai_calls::Filter::default()
                },
                None,
            ),
            (
                "calls: page in the middle of the history",
                ai_calls::Filter::default(),
                Some(middle.as_str()),
            ),
        ];
        for (name, filter, before) in pages {
            // One page of the explorer: 51 rows, 50 and whether there are more.
            let (p50, max, rows) = time(20, async || {
                Ok(ai_calls::page(&mut conn, &filter, before, 51).await?.len())
            })
            .await?;
            println!(
                "{}",
                json!({"backend": if pg { "postgres" } else { "sqlite" }, "records": stage, "report": name, "rows": rows, "p50_ms": (p50 * 1000.0).round() / 1000.0, "max_ms": (max * 1000.0).round() / 1000.0})
            );
        }
    }
    Ok(())
}
