//! The models Moonshot serves and what the plugin knows about each: context window, how its
//! sampling may be set, and its list price on each platform.
//!
//! The China platform (`api.moonshot.cn`) bills in CNY and the global one (`api.moonshot.ai`) in
//! USD, so a price belongs to a region, never to a model alone. Each price names its source and
//! the date of that source. A price that could not be confirmed on Moonshot's own pricing page
//! says so in its note; a price that was not found at all is left out (the call is then recorded
//! unpriced), never guessed.

use cloudbase_plugin_api::ListPrice;

/// How a model lets the caller set `temperature` and `top_p`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// Both are the caller's, within Kimi's range `[0, 1]`.
    Free,
    /// A thinking model: `temperature` is 1.0 (what Moonshot asks for), `top_p` is the caller's.
    Thinking,
    /// Both are fixed by Moonshot (`kimi-k2.5`), which rejects any other value: neither is sent.
    Fixed,
}

/// A list price: amounts per 1M tokens, in force from `from`, with where it was read.
#[derive(Debug, Clone, Copy)]
pub struct Price {
    /// Per 1M uncached input tokens.
    pub input: &'static str,
    /// Per 1M cached input tokens.
    pub cached_input: &'static str,
    /// Per 1M output tokens.
    pub output: &'static str,
    /// In force from (RFC 3339, UTC).
    pub from: &'static str,
    /// Source, its date, and any caveat.
    pub note: &'static str,
}

/// One model of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The id sent upstream.
    pub id: &'static str,
    /// Context window in tokens; input and output share it.
    pub context_window: u32,
    /// How sampling may be set.
    pub sampling: Sampling,
    /// Price on the China platform, in CNY.
    pub cny: Option<Price>,
    /// Price on the global platform, in USD.
    pub usd: Option<Price>,
}

/// The largest output the plugin asks for by default (and lets a caller ask for) on a model whose
/// context window is larger. Moonshot counts a request's `max_tokens` against the account's
/// tokens-per-minute limit, so asking for the whole 256K window by default would exhaust small
/// accounts' limits; 32K is the `max_tokens` Moonshot's own `kimi-k2.5` quickstart uses and twice
/// the 16K it advises as the least for thinking models.
pub const DEFAULT_OUTPUT_CAP: u32 = 32_768;

/// The largest output for a model with `context_window` tokens.
pub fn output_cap(context_window: u32) -> u32 {
    context_window.min(DEFAULT_OUTPUT_CAP)
}

/// Moonshot's global pricing page (`platform.moonshot.ai/docs/pricing/chat`), as archived by
/// megalodon.jp on 2026-03-26.
const GLOBAL_PAGE: &str =
    "Moonshot global pricing page (platform.moonshot.ai/docs/pricing/chat, archived 2026-03-26)";

/// The CNY rows this repository shipped in `schema/data/prices.toml` before the plugin published
/// its own prices (read from Moonshot's China pricing page in September 2025 by whoever wrote them).
const CN_SEPT_2025: &str =
    "Moonshot China list price, Sept 2025 (carried over from prices.toml; not re-checked in 2026)";

const fn price(
    input: &'static str,
    cached_input: &'static str,
    output: &'static str,
    from: &'static str,
    note: &'static str,
) -> Option<Price> {
    Some(Price {
        input,
        cached_input,
        output,
        from,
        note,
    })
}

/// The built-in catalogue, newest family first. `kimi-thinking-preview` is gone: Moonshot
/// discontinued it in November 2025.
pub const MODELS: &[Spec] = &[
    Spec {
        id: "kimi-k2.5",
        context_window: 262_144,
        sampling: Sampling::Fixed,
        cny: None,
        usd: price("0.60", "0.10", "3.00", "2026-03-26T00:00:00Z", GLOBAL_PAGE),
    },
    Spec {
        id: "kimi-k2-thinking",
        context_window: 262_144,
        sampling: Sampling::Thinking,
        cny: None,
        usd: price(
            "0.60",
            "0.15",
            "2.50",
            "2026-03-26T00:00:00Z",
            "Lava gateway's Moonshot price list (lavapayments.com, undated page read 2026-12-01); not confirmed on Moonshot's page",
        ),
    },
    Spec {
        id: "kimi-k2-thinking-turbo",
        context_window: 262_144,
        sampling: Sampling::Thinking,
        cny: None,
        usd: price(
            "1.15",
            "1.15",
            "8.00",
            "2026-03-26T00:00:00Z",
            "input and output from Lava gateway's Moonshot price list (lava.so docs, undated page read 2026-12-01); not confirmed on Moonshot's page; no cache-hit price found, so cached input is billed at the uncached rate (an upper bound)",
        ),
    },
    Spec {
        id: "kimi-k2-0905-preview",
        context_window: 262_144,
        sampling: Sampling::Free,
        cny: price(
            "4.00",
            "1.00",
            "16.00",
            "2025-09-05T00:00:00Z",
            CN_SEPT_2025,
        ),
        usd: price("0.60", "0.15", "2.50", "2026-03-26T00:00:00Z", GLOBAL_PAGE),
    },
    Spec {
        id: "kimi-k2-turbo-preview",
        context_window: 262_144,
        sampling: Sampling::Free,
        cny: price(
            "8.00",
            "1.00",
            "58.00",
            "2025-09-05T00:00:00Z",
            CN_SEPT_2025,
        ),
        usd: price(
            "1.15",
            "0.15",
            "8.00",
            "2026-03-26T00:00:00Z",
            "Lava gateway's Moonshot price list and Vercel AI Gateway (undated pages read 2026-12-01) agree; Cline's table still has the launch price 2.40/0.60/10.00; not confirmed on Moonshot's page",
        ),
    },
    Spec {
        id: "kimi-k2-0711-preview",
        context_window: 131_072,
        sampling: Sampling::Free,
        cny: None,
        usd: price("0.60", "0.15", "2.50", "2026-03-26T00:00:00Z", GLOBAL_PAGE),
    },
    Spec {
        id: "kimi-latest",
        context_window: 131_072,
        sampling: Sampling::Free,
        cny: price(
            "10.00",
            "10.00",
            "30.00",
            "2024-08-02T00:00:00Z",
            "billed by tier (8k/32k/128k) like moonshot-v1; priced at the 128k tier (moonshot-v1-128k, Sept 2025 CNY row), an upper bound",
        ),
        usd: price(
            "2.00",
            "2.00",
            "5.00",
            "2026-03-26T00:00:00Z",
            "billed by tier (8k/32k/128k); priced at the 128k tier, an upper bound (tier prices from agentsapis.com, 2026-02-02, and Lava's moonshot-v1-128k row); not confirmed on Moonshot's page",
        ),
    },
    Spec {
        id: "moonshot-v1-auto",
        context_window: 131_072,
        sampling: Sampling::Free,
        cny: price(
            "10.00",
            "10.00",
            "30.00",
            "2024-08-02T00:00:00Z",
            "routes each request to the 8k/32k/128k model and bills that tier; priced at the 128k tier (Sept 2025 CNY row), an upper bound",
        ),
        usd: price(
            "2.00",
            "2.00",
            "5.00",
            "2026-03-26T00:00:00Z",
            "bills the 8k/32k/128k tier it routes to; priced at the 128k tier (Lava's moonshot-v1-128k row, undated page read 2026-12-01), an upper bound; not confirmed on Moonshot's page",
        ),
    },
    Spec {
        id: "moonshot-v1-8k",
        context_window: 8_192,
        sampling: Sampling::Free,
        cny: price(
            "2.00",
            "2.00",
            "10.00",
            "2024-08-02T00:00:00Z",
            CN_SEPT_2025,
        ),
        usd: None,
    },
    Spec {
        id: "moonshot-v1-32k",
        context_window: 32_768,
        sampling: Sampling::Free,
        cny: price(
            "5.00",
            "5.00",
            "20.00",
            "2024-08-02T00:00:00Z",
            CN_SEPT_2025,
        ),
        usd: price(
            "1.00",
            "1.00",
            "3.00",
            "2026-03-26T00:00:00Z",
            "Lava gateway's Moonshot price list (undated page read 2026-12-01); not confirmed on Moonshot's page",
        ),
    },
    Spec {
        id: "moonshot-v1-128k",
        context_window: 131_072,
        sampling: Sampling::Free,
        cny: price(
            "10.00",
            "10.00",
            "30.00",
            "2024-08-02T00:00:00Z",
            CN_SEPT_2025,
        ),
        usd: price(
            "2.00",
            "2.00",
            "5.00",
            "2026-03-26T00:00:00Z",
            "Lava gateway's Moonshot price list (undated page read 2026-12-01); not confirmed on Moonshot's page",
        ),
    },
    Spec {
        id: "moonshot-v1-8k-vision-preview",
        context_window: 8_192,
        sampling: Sampling::Free,
        cny: None,
        usd: None,
    },
    Spec {
        id: "moonshot-v1-32k-vision-preview",
        context_window: 32_768,
        sampling: Sampling::Free,
        cny: None,
        usd: price(
            "1.00",
            "1.00",
            "3.00",
            "2026-03-26T00:00:00Z",
            "Lava gateway's Moonshot price list (undated page read 2026-12-01); not confirmed on Moonshot's page",
        ),
    },
    Spec {
        id: "moonshot-v1-128k-vision-preview",
        context_window: 131_072,
        sampling: Sampling::Free,
        cny: None,
        usd: price(
            "2.00",
            "2.00",
            "5.00",
            "2026-03-26T00:00:00Z",
            "Lava gateway's Moonshot price list (undated page read 2026-12-01); not confirmed on Moonshot's page",
        ),
    },
];

/// The catalogue entry for `id`, if the plugin knows the model.
pub fn spec(id: &str) -> Option<&'static Spec> {
    MODELS.iter().find(|s| s.id == id)
}

/// `price` in `currency`, as the plugin API carries it.
pub fn list_price(price: &Price, currency: &str) -> ListPrice {
    ListPrice {
        input: price.input.to_owned(),
        cached_input: price.cached_input.to_owned(),
        output: price.output.to_owned(),
        currency: currency.to_owned(),
        effective_from: price.from.to_owned(),
        note: Some(price.note.to_owned()),
    }
}
