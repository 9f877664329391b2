//! Which providers can serve a model: the config's model table, prefix
//! aliases and `provider/model` names, and each provider's deployments.

use std::collections::HashMap;

use super::ProviderSort;
use crate::config::{Balance, Config, ProviderKind};
use crate::error::{Cause, GatewayError, LimitScope};
use crate::request::Target;

/// A configured model.
#[derive(Debug, Clone)]
struct ModelRoute {
    targets: Vec<Target>,
    fallbacks: Vec<String>,
    context_window: Option<u64>,
    sort: Option<ProviderSort>,
}

/// A provider's deployments, as the balancer needs them.
#[derive(Debug, Clone)]
pub struct ProviderRoute {
    /// Its kind, when it comes from the config (`None` for a provider a
    /// library user declared with [`Routes::with_provider`]): budgets
    /// read it to know which requests are translated to Anthropic.
    pub kind: Option<ProviderKind>,
    /// Each deployment's weight.
    pub weights: Vec<u32>,
    /// How load is shared.
    pub balance: Balance,
    /// What a 429 that does not say otherwise covers: see
    /// [`ProviderRoute::rate_limit_scope`].
    pub rate_limits: LimitScope,
    /// Which credentials of a request it takes (see
    /// [`credential`](super::credential)).
    pub credentials: CredentialPolicy,
    /// For each deployment, whether it has a configured credential (an
    /// `api_key` or a header [`is_credential_header`](crate::config::is_credential_header) names).
    pub keyed: Vec<bool>,
}

/// Which credentials besides its configured ones a provider takes: its
/// `pass_through`, `allow_byok` and `byok_fallback` settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CredentialPolicy {
    /// Send an Anthropic client's own credential (Anthropic kind only).
    pub pass_through: bool,
    /// Take keys the request brings (BYOK).
    pub allow_byok: bool,
    /// After the request's keys fail, go on with the configured ones.
    pub byok_fallback: bool,
}

impl ProviderRoute {
    /// What a rate limit of a provider of `kind` covers when its answer
    /// does not say. OpenAI, Anthropic and Gemini limit each model of an
    /// organization or project apart, so a 429 cools down that model on
    /// that key only. An OpenAI-compatible server's limits are unknown
    /// (a self-hosted server or a proxy usually limits the whole key or
    /// server), so a 429 there cools down every model of the key.
    pub fn rate_limit_scope(kind: ProviderKind) -> LimitScope {
        match kind {
            ProviderKind::OpenAi | ProviderKind::Anthropic | ProviderKind::Gemini => {
                LimitScope::Model
            }
            ProviderKind::OpenAiCompatible => LimitScope::Key,
        }
    }
}

/// The routing table: model names to candidate targets.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    models: HashMap<String, ModelRoute>,
    /// Prefix aliases (`"claude-*"`), longest prefix first; targets keep
    /// their `*`.
    prefixes: Vec<(String, ModelRoute)>,
    providers: HashMap<String, ProviderRoute>,
}

impl Routes {
    /// The routes of a checked config.
    pub fn from_config(config: &Config) -> Self {
        let mut routes = Routes::default();
        for (name, p) in &config.providers {
            routes.providers.insert(
                name.clone(),
                ProviderRoute {
                    kind: Some(p.kind),
                    weights: p.deployment_configs().iter().map(|(_, w)| *w).collect(),
                    balance: p.balance,
                    rate_limits: ProviderRoute::rate_limit_scope(p.kind),
                    credentials: CredentialPolicy {
                        pass_through: p.pass_through,
                        allow_byok: p.allow_byok,
                        byok_fallback: p.byok_fallback,
                    },
                    keyed: p
                        .deployment_configs()
                        .iter()
                        .map(|(d, _)| d.has_credentials())
                        .collect(),
                },
            );
        }
        for (name, m) in &config.models {
            let route = ModelRoute {
                targets: m
                    .targets()
                    .iter()
                    .filter_map(|t| t.split_once('/'))
                    .map(|(p, m)| Target {
                        provider: p.into(),
                        model: m.into(),
                    })
                    .collect(),
                fallbacks: m.fallbacks().to_vec(),
                context_window: m.context_window(),
                sort: m.sort(),
            };
            match name.strip_suffix('*') {
                Some(prefix) => routes.prefixes.push((prefix.to_string(), route)),
                None => {
                    routes.models.insert(name.clone(), route);
                }
            }
        }
        routes
            .prefixes
            .sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        routes
    }

    /// The targets that can serve `model`, in configured order: an alias's
    /// targets, a prefix alias with `*` replaced by `model`, or
    /// `provider/model` with a configured provider. Anything else is a 404.
    pub fn candidates(&self, model: &str) -> Result<Vec<Target>, GatewayError> {
        if let Some(r) = self.models.get(model) {
            return Ok(r.targets.clone());
        }
        for (prefix, r) in &self.prefixes {
            if model.starts_with(prefix.as_str()) {
                return Ok(r
                    .targets
                    .iter()
                    .map(|t| Target {
                        provider: t.provider.clone(),
                        model: t.model.replace('*', model).into(),
                    })
                    .collect());
            }
        }
        if let Some((provider, rest)) = model.split_once('/') {
            if !rest.is_empty() && self.providers.contains_key(provider) {
                return Ok(vec![Target {
                    provider: provider.into(),
                    model: rest.into(),
                }]);
            }
        }
        Err(GatewayError::not_found(format!(
            "model `{model}` is not configured: use `provider/model` with a configured provider, or a model alias"
        ))
        .with_code("model_not_found")
        .with_cause(Cause::UnknownModel)
        .with_param("model"))
    }

    /// The configured fallback models of `model`.
    pub fn fallbacks(&self, model: &str) -> &[String] {
        self.models.get(model).map_or(&[], |r| &r.fallbacks)
    }

    /// How the targets of `model` are ranked when a request does not say:
    /// its `[models.NAME] sort`, or a prefix alias's that matches it.
    pub fn default_sort(&self, model: &str) -> Option<ProviderSort> {
        match self.models.get(model) {
            Some(r) => r.sort,
            None => self
                .prefixes
                .iter()
                .find(|(p, _)| model.starts_with(p.as_str()))
                .and_then(|(_, r)| r.sort),
        }
    }

    /// Every configured provider, by name.
    pub fn providers(&self) -> impl Iterator<Item = (&str, &ProviderRoute)> {
        self.providers.iter().map(|(n, r)| (n.as_str(), r))
    }

    /// The configured context window of `model`.
    pub fn context_window(&self, model: &str) -> Option<u64> {
        self.models.get(model).and_then(|r| r.context_window)
    }

    /// A provider's deployments.
    pub fn provider(&self, name: &str) -> Option<&ProviderRoute> {
        self.providers.get(name)
    }

    /// A provider's deployments, its name matched regardless of case (as
    /// a header name, which is lower case, names it).
    pub fn provider_ignore_case(&self, name: &str) -> Option<&ProviderRoute> {
        self.providers
            .iter()
            .find(|(p, _)| p.eq_ignore_ascii_case(name))
            .map(|(_, r)| r)
    }

    /// Whether a provider is configured.
    pub fn has_provider(&self, name: &str) -> bool {
        self.providers.contains_key(name)
    }

    /// Declares a provider (for library users who add their own), with
    /// one deployment; its rate limits are taken to cover the whole key,
    /// as nothing is known of them.
    pub fn with_provider(mut self, name: &str) -> Self {
        self.providers
            .entry(name.to_string())
            .or_insert(ProviderRoute {
                kind: None,
                weights: vec![1],
                balance: Balance::Weighted,
                rate_limits: LimitScope::Key,
                credentials: CredentialPolicy::default(),
                keyed: vec![true],
            });
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Routes {
        let c = Config::parse(
            r#"
[providers.a]
kind = "anthropic"
[providers.o]
kind = "openai"
deployments = [{ api_key = "k1", weight = 3 }, { api_key = "k2" }]
[models]
fast = "o/gpt-4o-mini"
big = { targets = ["a/claude", "o/gpt-4o"], fallbacks = ["fast"], context_window = 200000 }
"claude-*" = { targets = ["a/*", "o/*"] }
"#,
            &|_| None,
        )
        .unwrap();
        Routes::from_config(&c)
    }

    fn names(ts: &[Target]) -> Vec<String> {
        ts.iter()
            .map(|t| format!("{}/{}", t.provider, t.model))
            .collect()
    }

    #[test]
    fn candidates_for_each_kind_of_name() {
        let r = routes();
        assert_eq!(
            names(&r.candidates("big").unwrap()),
            ["a/claude", "o/gpt-4o"]
        );
        assert_eq!(names(&r.candidates("fast").unwrap()), ["o/gpt-4o-mini"]);
        assert_eq!(
            names(&r.candidates("claude-x").unwrap()),
            ["a/claude-x", "o/claude-x"]
        );
        assert_eq!(
            names(&r.candidates("a/m/with/slash").unwrap()),
            ["a/m/with/slash"]
        );
        let e = r.candidates("nope/m").unwrap_err();
        assert_eq!(e.status(), 404);
        assert_eq!(e.param(), Some("model"));
        assert_eq!(r.fallbacks("big"), ["fast"]);
        assert_eq!(r.context_window("big"), Some(200000));
        assert_eq!(r.provider("o").unwrap().weights, [3, 1]);
        assert_eq!(r.provider("a").unwrap().weights, [1]);
    }
}
