//! [`PriceTable`]: prices by configured provider and served model.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use super::builtin::Builtin;
use super::Price;
use crate::config::{Config, ProviderKind};

/// Prices by provider and model: the table shipped with tollgate, under
/// the config's overrides. Cheap to clone (shared).
///
/// [`PriceTable::lookup`] takes the configured provider's name and the
/// model name as the provider knows it (or answered with), and tries, in
/// order, the first that has a price:
///
/// 1. a price set for that model on that provider (`[prices."NAME/model"]`,
///    or [`PriceTable::with_price`] with a provider);
/// 2. a price set for that model on any provider (`[prices."model"]`);
/// 3. the provider's own price for every model (`[providers.NAME] price`);
/// 4. the shipped table of the provider's kind (OpenAI, Anthropic,
///    Gemini; none for `openai-compatible`).
///
/// At each step the model's name is tried as given, then without a
/// `models/` prefix (Gemini's resource names), without a fine-tune's
/// suffix (`ft:gpt-4o-2024-08-06:org::id` is `ft:gpt-4o-2024-08-06`), and
/// then without a date or version suffix: `-2024-08-06` (OpenAI),
/// `-20250929` or `@20250929` (Anthropic, Vertex), `-001` (Gemini), or
/// `-latest`. So a dated answer finds the undated entry when the table has
/// no entry of its own for that date.
///
/// A provider name that is not configured but is a kind's name
/// (`"openai"`, `"anthropic"`, `"gemini"`) reads that kind's prices.
#[derive(Clone, Default)]
pub struct PriceTable {
    inner: Arc<Inner>,
    unknown: Arc<Unknown>,
}

#[derive(Clone, Default)]
struct Inner {
    builtin: Option<Arc<Builtin>>,
    /// Configured provider names to their kind.
    kinds: HashMap<Box<str>, ProviderKind>,
    /// Overrides by provider, then model.
    exact: HashMap<Box<str>, HashMap<Box<str>, Arc<Price>>>,
    /// Overrides of a model on any provider.
    models: HashMap<Box<str>, Arc<Price>>,
    /// A provider's price for every model.
    providers: HashMap<Box<str>, Arc<Price>>,
}

/// Lookups that found no price: counted, and warned about once per
/// (provider, model), up to [`MAX_WARNED`] pairs so that a client sending
/// many model names cannot grow the set. A pair already warned about is
/// found under a shared lock without allocating, and once the set is
/// full no lock is taken at all: every request to an unpriced model
/// passes here.
#[derive(Default)]
struct Unknown {
    count: AtomicU64,
    /// Models warned about, by provider.
    warned: RwLock<HashMap<Box<str>, HashSet<Box<str>>>>,
    /// Pairs in `warned`.
    pairs: AtomicUsize,
    /// `warned` holds [`MAX_WARNED`] pairs: nothing more is warned about.
    full: AtomicBool,
}

const MAX_WARNED: usize = 1024;

/// Longest model name kept in the warned set and the log.
const MAX_NAME: usize = 200;

impl fmt::Debug for PriceTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PriceTable")
            .field("builtin", &self.inner.builtin.is_some())
            .field(
                "overrides",
                &(self.inner.exact.len() + self.inner.models.len()),
            )
            .field("provider_prices", &self.inner.providers.len())
            .field("unknown", &self.unknown_count())
            .finish()
    }
}

impl PriceTable {
    /// The prices shipped with tollgate, no override; the data is parsed
    /// once per process.
    ///
    /// They come from LiteLLM's `model_prices_and_context_window.json` (MIT
    /// licence), converted by `scripts/refresh_prices.py`, which says how
    /// to refresh them; `src/usage/price/prices.json` records the release
    /// and the date.
    pub fn builtin() -> Self {
        PriceTable {
            inner: Arc::new(Inner {
                builtin: Some(Builtin::get()),
                ..Inner::default()
            }),
            unknown: Arc::default(),
        }
    }

    /// The shipped prices under the config's: each provider's kind, its
    /// `price` (every model it serves), and `[prices]`.
    pub fn from_config(config: &Config) -> Self {
        let mut table = Self::builtin();
        for (name, p) in &config.providers {
            table = table.with_provider_kind(name, p.kind);
            if let Some(price) = &p.price {
                table = table.with_provider_price(name, price.to_price());
            }
        }
        for (key, price) in &config.prices {
            let (provider, model) = config.price_key(key);
            table = table.with_price(provider, model, price.to_price());
        }
        table
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    /// This table with `price` for `model`, served by the configured
    /// provider `provider` (`None`: by any provider); it wins over what
    /// the table knew.
    pub fn with_price(mut self, provider: Option<&str>, model: &str, price: Price) -> Self {
        let price = Arc::new(price);
        let inner = self.inner_mut();
        match provider {
            Some(p) => {
                inner
                    .exact
                    .entry(p.into())
                    .or_default()
                    .insert(model.into(), price);
            }
            None => {
                inner.models.insert(model.into(), price);
            }
        }
        self
    }

    /// This table with `price` for every model of the configured provider
    /// `provider` (a self-hosted server, a reseller), below the prices set
    /// for a model.
    pub fn with_provider_price(mut self, provider: &str, price: Price) -> Self {
        self.inner_mut()
            .providers
            .insert(provider.into(), Arc::new(price));
        self
    }

    /// Declares that the configured provider `provider` is of `kind`, so
    /// that it reads that kind's shipped prices.
    pub fn with_provider_kind(mut self, provider: &str, kind: ProviderKind) -> Self {
        self.inner_mut().kinds.insert(provider.into(), kind);
        self
    }

    /// The price of `model` served by the configured provider `provider`
    /// (the rules are in the [type docs](PriceTable)); `None` when nothing
    /// is known, which is counted ([`PriceTable::unknown_count`]) and
    /// logged once per provider and model: the cost is unknown, never
    /// taken as zero.
    pub fn lookup(&self, provider: &str, model: &str) -> Option<Arc<Price>> {
        let found = self.find(provider, model);
        if found.is_none() {
            self.missed(provider, model);
        }
        found
    }

    /// [`PriceTable::lookup`] without counting a miss: for estimates, such
    /// as ranking providers by cost, that are not a request's cost.
    pub fn find(&self, provider: &str, model: &str) -> Option<Arc<Price>> {
        let inner = &*self.inner;
        let names = names(model);
        let names = || names.iter().flatten().copied();
        let hit = inner
            .exact
            .get(provider)
            .and_then(|models| names().find_map(|m| models.get(m)))
            .or_else(|| names().find_map(|m| inner.models.get(m)))
            .or_else(|| inner.providers.get(provider))
            .or_else(|| {
                let kind = inner
                    .kinds
                    .get(provider)
                    .copied()
                    .or_else(|| kind_named(provider))?;
                let models = inner.builtin.as_ref()?.kind(kind)?;
                names().find_map(|m| models.get(m))
            });
        hit.cloned()
    }

    /// How many lookups found no price, since the table was made (its
    /// clones share the count).
    pub fn unknown_count(&self) -> u64 {
        self.unknown.count.load(Ordering::Relaxed)
    }

    fn missed(&self, provider: &str, model: &str) {
        let u = &*self.unknown;
        u.count.fetch_add(1, Ordering::Relaxed);
        if u.full.load(Ordering::Relaxed) {
            return;
        }
        let model = truncate(model, MAX_NAME);
        let provider = truncate(provider, MAX_NAME);
        let known = |w: &HashMap<Box<str>, HashSet<Box<str>>>| {
            w.get(provider).is_some_and(|m| m.contains(model))
        };
        if known(&u.warned.read().unwrap_or_else(|e| e.into_inner())) {
            return;
        }
        let mut warned = u.warned.write().unwrap_or_else(|e| e.into_inner());
        if known(&warned) || u.pairs.load(Ordering::Relaxed) >= MAX_WARNED {
            return;
        }
        warned
            .entry(provider.into())
            .or_default()
            .insert(model.into());
        let pairs = u.pairs.fetch_add(1, Ordering::Relaxed) + 1;
        if pairs >= MAX_WARNED {
            u.full.store(true, Ordering::Relaxed);
        }
        drop(warned);
        tracing::warn!(
            provider,
            model,
            "no price is known for this model: its requests are costed as unknown; set one in the config's [prices]"
        );
    }
}

/// A provider kind by its config name, for a provider the table was not
/// told about.
fn kind_named(name: &str) -> Option<ProviderKind> {
    match name {
        "openai" => Some(ProviderKind::OpenAi),
        "anthropic" => Some(ProviderKind::Anthropic),
        "gemini" => Some(ProviderKind::Gemini),
        _ => None,
    }
}

/// The names a model is looked up by, most exact first, each at most
/// once; borrowed from `model`, so a lookup allocates nothing.
fn names(model: &str) -> [Option<&str>; 3] {
    let base = fine_tune_base(model.strip_prefix("models/").unwrap_or(model));
    let undated = undated(base);
    [
        Some(model),
        (base != model).then_some(base),
        (undated != base).then_some(undated),
    ]
}

/// `ft:BASE:org:name:id` -> `ft:BASE`, LiteLLM's key for a fine-tune.
fn fine_tune_base(model: &str) -> &str {
    let Some(rest) = model.strip_prefix("ft:") else {
        return model;
    };
    match rest.find(':') {
        Some(i) => &model[..3 + i],
        None => model,
    }
}

/// `model` without a date or version suffix: `-YYYY-MM-DD`, `-YYYYMMDD`,
/// `@YYYYMMDD`, `-NNN` or `-latest`; `model` itself when it has none.
fn undated(model: &str) -> &str {
    let b = model.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let n = b.len();
    // Each suffix starts with an ASCII `-` or `@`, so the cut is on a
    // character boundary.
    let cut = if n > 11
        && b[n - 11] == b'-'
        && b[n - 6] == b'-'
        && b[n - 3] == b'-'
        && digits(n - 10..n - 6)
        && digits(n - 5..n - 3)
        && digits(n - 2..n)
    {
        n - 11
    } else if n > 9 && (b[n - 9] == b'-' || b[n - 9] == b'@') && digits(n - 8..n) {
        n - 9
    } else if n > 4 && b[n - 4] == b'-' && digits(n - 3..n) {
        n - 4
    } else if n > 7 && model.ends_with("-latest") {
        n - 7
    } else {
        n
    };
    &model[..cut]
}

/// At most `max` bytes of `s`, on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::Nanos;

    fn usd(s: &str) -> Nanos {
        Nanos::parse_usd(s).unwrap()
    }

    fn price(input: &str, output: &str) -> Price {
        Price::new(usd(input), usd(output))
    }

    #[test]
    fn names_providers_answer_with_find_the_entry() {
        assert_eq!(undated("gpt-4o-2024-08-06"), "gpt-4o");
        assert_eq!(undated("claude-sonnet-4-5-20250929"), "claude-sonnet-4-5");
        assert_eq!(undated("claude-sonnet-4-5@20250929"), "claude-sonnet-4-5");
        assert_eq!(undated("gemini-2.0-flash-001"), "gemini-2.0-flash");
        assert_eq!(undated("claude-3-7-sonnet-latest"), "claude-3-7-sonnet");
        // Version numbers that are part of the name stay.
        for keep in [
            "gpt-4o",
            "o3",
            "gpt-4.1",
            "claude-opus-4-5",
            "gemini-2.5-pro",
            "-001",
            "é-2024-08-06x",
        ] {
            assert_eq!(undated(keep), keep);
        }
        assert_eq!(
            fine_tune_base("ft:gpt-4o-2024-08-06:acme::abc123"),
            "ft:gpt-4o-2024-08-06"
        );
        assert_eq!(fine_tune_base("ft:gpt-4o"), "ft:gpt-4o");
        assert_eq!(
            names("models/gemini-2.5-pro-001"),
            [
                Some("models/gemini-2.5-pro-001"),
                Some("gemini-2.5-pro-001"),
                Some("gemini-2.5-pro")
            ]
        );
        assert_eq!(names("gpt-4o"), [Some("gpt-4o"), None, None]);

        let t = PriceTable::builtin();
        let gpt4o = t.lookup("openai", "gpt-4o").unwrap();
        // A dated name with its own entry gets it; one without, the undated.
        assert_eq!(
            t.lookup("openai", "gpt-4o-2024-08-06").unwrap().input,
            gpt4o.input
        );
        assert_eq!(t.lookup("openai", "gpt-4o-2099-01-01").unwrap(), gpt4o);
        let sonnet = t.lookup("anthropic", "claude-sonnet-4-5").unwrap();
        assert_eq!(
            t.lookup("anthropic", "claude-sonnet-4-5-20990101").unwrap(),
            sonnet
        );
        let pro = t.lookup("gemini", "gemini-2.5-pro").unwrap();
        assert_eq!(t.lookup("gemini", "models/gemini-2.5-pro").unwrap(), pro);
        assert!(t
            .lookup("openai", "ft:gpt-4o-2024-08-06:acme::abc")
            .is_some());
        // A model of one kind is not priced under another.
        assert!(t.find("anthropic", "gpt-4o").is_none());
    }

    #[test]
    fn configured_names_map_to_their_kind() {
        let t = PriceTable::builtin()
            .with_provider_kind("work", ProviderKind::Anthropic)
            .with_provider_kind("local", ProviderKind::OpenAiCompatible)
            .with_provider_kind("openai", ProviderKind::OpenAiCompatible);
        assert!(t.find("work", "claude-sonnet-4-5").is_some());
        // No shipped prices for an OpenAI-compatible server, even one
        // named like a kind.
        assert!(t.find("local", "gpt-4o").is_none());
        assert!(t.find("openai", "gpt-4o").is_none());
        assert!(t.find("unconfigured", "gpt-4o").is_none());
    }

    #[test]
    fn overrides_win_most_specific_first() {
        let t = PriceTable::builtin()
            .with_provider_kind("oa", ProviderKind::OpenAi)
            .with_provider_kind("self", ProviderKind::OpenAiCompatible)
            .with_provider_price("self", price("0.1", "0.2"))
            .with_price(None, "gpt-4o", price("1", "2"))
            .with_price(Some("oa"), "gpt-4o", price("3", "4"))
            .with_price(None, "llama", price("5", "6"));
        // Provider + model, then model, then provider, then shipped.
        assert_eq!(t.find("oa", "gpt-4o").unwrap().input, usd("3"));
        assert_eq!(t.find("oa", "gpt-4o-2024-08-06").unwrap().input, usd("3"));
        assert_eq!(t.find("other", "gpt-4o").unwrap().input, usd("1"));
        assert_eq!(t.find("self", "llama").unwrap().input, usd("5"));
        assert_eq!(t.find("self", "anything").unwrap().input, usd("0.1"));
        assert_eq!(t.find("oa", "gpt-4.1").unwrap().input, usd("2"), "shipped");
        // The skeleton's contract: with_price on an empty table.
        let t = PriceTable::default().with_price(Some("p"), "m", price("1", "1"));
        assert!(t.lookup("p", "m").is_some());
        assert!(t.find("q", "m").is_none());
    }

    #[test]
    fn unknown_models_are_counted_never_zero() {
        let t = PriceTable::builtin();
        let clone = t.clone();
        assert_eq!(t.unknown_count(), 0);
        assert!(t.lookup("openai", "no-such-model").is_none());
        assert!(t.lookup("openai", "no-such-model").is_none());
        assert!(clone.lookup("local", "llama").is_none());
        assert_eq!(t.unknown_count(), 3, "clones share the count");
        // A quiet find counts nothing; a hit counts nothing.
        assert!(t.find("openai", "no-such-model").is_none());
        assert!(t.lookup("openai", "gpt-4o").is_some());
        assert_eq!(t.unknown_count(), 3);
        // Warned once per pair, and the set is bounded.
        let pairs = |t: &PriceTable| -> usize {
            t.unknown
                .warned
                .read()
                .unwrap()
                .values()
                .map(HashSet::len)
                .sum()
        };
        assert_eq!(pairs(&t), 2);
        assert!(!t.unknown.full.load(Ordering::Relaxed));
        for i in 0..2 * MAX_WARNED {
            t.lookup("openai", &format!("m{i}{}", "x".repeat(500)));
        }
        assert_eq!(pairs(&t), MAX_WARNED);
        assert!(
            t.unknown.full.load(Ordering::Relaxed),
            "no lock from now on"
        );
        let warned = t.unknown.warned.read().unwrap();
        assert!(warned.values().flatten().all(|m| m.len() <= MAX_NAME));
        assert_eq!(t.unknown_count(), 3 + 2 * MAX_WARNED as u64);
    }
}
