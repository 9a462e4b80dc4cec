//! Benchmarks of the gateway's own overhead (see `bench/run.sh` and `bench/RESULTS.md`).
//!
//! - `mock_upstream`: a fast OpenAI-compatible upstream on loopback, plain and SSE.
//! - `floor`: the limit of this stack: bare async-graphql + axum whose `chat` forwards with
//!   reqwest and does one INSERT per call (and a `chatStream` subscription that forwards SSE).
//! - `plugin_calls`: the cost of one plugin call in-process against isolated in a runner process.
//! - `load`: the load driver: bounded in requests and time, latency percentiles, and time to
//!   first token over `graphql-transport-ws`.

/// The fixed reply the mock upstream streams, one word per chunk.
pub const REPLY_WORDS: [&str; 12] = [
    "The", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "again", "and", "again",
];

/// The `p`-th percentile (0–100) of sorted samples, in the samples' unit.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}
