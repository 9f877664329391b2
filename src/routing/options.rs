//! Per-request routing options from the body.
//!
//! Two dialects are read:
//!
//! - Vercel AI Gateway: `providerOptions.gateway.{order, only, models,
//!   providerTimeouts, byok, sort}`, where `providerTimeouts` maps provider
//!   names to milliseconds, flat or under `byok`, `byok` maps provider
//!   names to the keys the request brings (see
//!   [`credential`](super::credential)), and `sort` is `"cost"` or
//!   `"ttft"` ([`ProviderSort`]).
//! - OpenRouter: a top-level `models` array (the fallback chain; the
//!   requested model may be its first entry) and `provider: {order, only,
//!   ignore, allow_fallbacks, sort}`, where `sort` is `"price"` or
//!   `"latency"`, or `{"by": ...}`.
//!
//! Provider names are the gateway's configured provider names. The fields
//! are never sent upstream (see [`GATEWAY_FIELDS`](crate::request::GATEWAY_FIELDS)).

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::credential::{parse_byok, Secret};
use crate::error::GatewayError;
use crate::json::RawObject;

/// How the client asked this request to be routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingOptions {
    /// Providers to try first, in this order; the others follow in their
    /// configured order.
    pub order: Vec<String>,
    /// When set, only these providers may serve.
    pub only: Option<Vec<String>>,
    /// Providers that may not serve.
    pub ignore: Vec<String>,
    /// Models to try, in order, after the requested one fails.
    pub models: Vec<String>,
    /// Per provider: time to first byte before moving on.
    pub provider_timeouts: Vec<(String, Duration)>,
    /// Whether providers after the first may be tried (OpenRouter's
    /// `allow_fallbacks`). Default true.
    pub allow_fallbacks: bool,
    /// Keys the request brings, per provider, in order
    /// (`providerOptions.gateway.byok`); their `Debug` is masked.
    pub byok: Vec<(String, Vec<Secret>)>,
    /// How to rank the model's providers before `order` applies; `None`:
    /// the model's configured `sort`, else the configured order.
    pub sort: Option<ProviderSort>,
    /// Where `only` / `ignore` came from, for error messages.
    only_field: &'static str,
    ignore_field: &'static str,
}

impl Default for RoutingOptions {
    fn default() -> Self {
        RoutingOptions {
            order: Vec::new(),
            only: None,
            ignore: Vec::new(),
            models: Vec::new(),
            provider_timeouts: Vec::new(),
            allow_fallbacks: true,
            byok: Vec::new(),
            sort: None,
            only_field: "only",
            ignore_field: "ignore",
        }
    }
}

impl RoutingOptions {
    /// Reads the options of a request body; a malformed option is a 400
    /// naming it.
    pub fn from_body(body: &RawObject) -> Result<Self, GatewayError> {
        let mut opts = RoutingOptions::default();
        if body.get("providerOptions").is_some() {
            if let Some(Value::Object(po)) = body.get_as::<Value>("providerOptions")? {
                match po.get("gateway") {
                    None | Some(Value::Null) => {}
                    Some(Value::Object(g)) => opts.read_gateway(g)?,
                    Some(_) => {
                        return Err(GatewayError::invalid_param(
                            "providerOptions.gateway",
                            "`providerOptions.gateway` must be an object",
                        ))
                    }
                }
            }
        }
        if body.get("models").is_some() {
            let models = body.get_as::<Value>("models")?;
            opts.models
                .extend(names(models.as_ref(), "models")?.unwrap_or_default());
        }
        if body.get("provider").is_some() {
            match body.get_as::<Value>("provider")? {
                None | Some(Value::Null) => {}
                Some(Value::Object(p)) => opts.read_openrouter(&p)?,
                Some(_) => {
                    return Err(GatewayError::invalid_param(
                        "provider",
                        "`provider` must be an object",
                    ))
                }
            }
        }
        Ok(opts)
    }

    fn read_gateway(&mut self, g: &serde_json::Map<String, Value>) -> Result<(), GatewayError> {
        const P: &str = "providerOptions.gateway";
        if let Some(order) = names(g.get("order"), &format!("{P}.order"))? {
            self.order = order;
        }
        if let Some(only) = names(g.get("only"), &format!("{P}.only"))? {
            self.only = Some(only);
            self.only_field = "providerOptions.gateway.only";
        }
        if let Some(models) = names(g.get("models"), &format!("{P}.models"))? {
            self.models = models;
        }
        if let Some(byok) = g.get("byok") {
            self.byok = parse_byok(byok)?;
        }
        if let Some(sort) = g.get("sort") {
            self.sort = ProviderSort::from_option(sort, "providerOptions.gateway.sort")?;
        }
        match g.get("providerTimeouts") {
            None | Some(Value::Null) => {}
            Some(Value::Object(t)) => {
                let field = format!("{P}.providerTimeouts");
                for (k, v) in t {
                    match v {
                        // `{byok: {provider: ms}}`, as Vercel documents it.
                        Value::Object(inner) => {
                            for (p, ms) in inner {
                                self.provider_timeouts
                                    .push((p.clone(), millis(ms, &format!("{field}.{k}.{p}"))?));
                            }
                        }
                        ms => self
                            .provider_timeouts
                            .push((k.clone(), millis(ms, &format!("{field}.{k}"))?)),
                    }
                }
            }
            Some(_) => {
                return Err(GatewayError::invalid_param(
                    "providerOptions.gateway.providerTimeouts",
                    "`providerOptions.gateway.providerTimeouts` must be an object of provider names to milliseconds",
                ))
            }
        }
        Ok(())
    }

    fn read_openrouter(&mut self, p: &serde_json::Map<String, Value>) -> Result<(), GatewayError> {
        if let Some(order) = names(p.get("order"), "provider.order")? {
            self.order = order;
        }
        if let Some(only) = names(p.get("only"), "provider.only")? {
            self.only = Some(only);
            self.only_field = "provider.only";
        }
        if let Some(ignore) = names(p.get("ignore"), "provider.ignore")? {
            self.ignore = ignore;
            self.ignore_field = "provider.ignore";
        }
        match p.get("sort") {
            // `{"by": "price", "partition": "model"}`: a model's providers
            // are the only thing ranked here, so no other partition.
            Some(Value::Object(o)) => {
                for (k, v) in o {
                    match (k.as_str(), v) {
                        ("by", by) => self.sort = ProviderSort::from_option(by, "provider.sort.by")?,
                        ("partition", Value::Null) => {}
                        ("partition", Value::String(p)) if p == "model" => {}
                        ("partition", _) => {
                            return Err(GatewayError::invalid_param(
                                "provider.sort.partition",
                                "`provider.sort.partition`: only \"model\" is supported (providers are ranked within each model)",
                            ))
                        }
                        (other, _) => {
                            let field = format!("provider.sort.{other}");
                            return Err(GatewayError::invalid_param(
                                &field,
                                format!("`{field}` is not a field of `provider.sort` (`by`, `partition`)"),
                            ));
                        }
                    }
                }
            }
            Some(sort) => self.sort = ProviderSort::from_option(sort, "provider.sort")?,
            None => {}
        }
        match p.get("allow_fallbacks") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => self.allow_fallbacks = *b,
            Some(_) => {
                return Err(GatewayError::invalid_param(
                    "provider.allow_fallbacks",
                    "`provider.allow_fallbacks` must be a boolean",
                ))
            }
        }
        Ok(())
    }

    /// The time-to-first-byte limit the client set for `provider`.
    pub fn provider_timeout(&self, provider: &str) -> Option<Duration> {
        self.provider_timeouts
            .iter()
            .find(|(p, _)| p == provider)
            .map(|(_, d)| *d)
    }

    /// The keys the request's body brings for `provider` (BYOK).
    pub fn byok(&self, provider: &str) -> &[Secret] {
        self.byok
            .iter()
            .find(|(p, _)| p == provider)
            .map_or(&[], |(_, k)| k.as_slice())
    }

    /// Whether `provider` may serve this request.
    pub fn allows(&self, provider: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|p| p == provider))
            && !self.ignore.iter().any(|p| p == provider)
    }

    /// The field that excluded providers, for an error message.
    pub(crate) fn exclusion_field(&self) -> &'static str {
        if self.only.is_some() {
            self.only_field
        } else {
            self.ignore_field
        }
    }
}

/// How a model's providers are ranked, before the client's `order`
/// moves the providers it names to the front.
///
/// Request: `providerOptions.gateway.sort` (Vercel: `"cost"`, `"ttft"`) or
/// `provider.sort` (OpenRouter: `"price"`, `"latency"`); either spelling
/// in either place. Config: `[models.NAME] sort`, the default for that
/// model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ProviderSort {
    /// Cheapest first, for this request's size: its input estimated from
    /// the body (bytes / 4) plus the output it asks for at most, at each
    /// provider's price for the model. Providers without a known price
    /// come last.
    #[serde(rename = "cost", alias = "price")]
    Cost,
    /// Fastest first, by each deployment's observed time to the first
    /// token (a moving average). A provider not yet measured comes first,
    /// so that it gets measured.
    #[serde(rename = "ttft", alias = "latency")]
    Ttft,
}

impl ProviderSort {
    /// A request's `sort` value; `null` is no sort. Throughput is not
    /// measured, so `"tps"` / `"throughput"` are refused rather than
    /// ignored.
    fn from_option(v: &Value, field: &str) -> Result<Option<Self>, GatewayError> {
        let s = match v {
            Value::Null => return Ok(None),
            Value::String(s) => s.as_str(),
            _ => "",
        };
        match s {
            "cost" | "price" => Ok(Some(ProviderSort::Cost)),
            "ttft" | "latency" => Ok(Some(ProviderSort::Ttft)),
            "tps" | "throughput" => Err(GatewayError::invalid_param(
                field,
                format!("`{field}`: sorting by throughput is not supported; use \"cost\" (or \"price\") or \"ttft\" (or \"latency\")"),
            )),
            _ => Err(GatewayError::invalid_param(
                field,
                format!("`{field}` must be \"cost\" (or \"price\") or \"ttft\" (or \"latency\")"),
            )),
        }
    }
}

fn names(v: Option<&Value>, field: &str) -> Result<Option<Vec<String>>, GatewayError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) if !s.is_empty() => Ok(s.clone()),
                _ => Err(GatewayError::invalid_param(
                    field,
                    format!("`{field}` must be an array of non-empty strings"),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(GatewayError::invalid_param(
            field,
            format!("`{field}` must be an array of non-empty strings"),
        )),
    }
}

fn millis(v: &Value, field: &str) -> Result<Duration, GatewayError> {
    match v.as_u64() {
        Some(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(GatewayError::invalid_param(
            field,
            format!("`{field}` must be a positive number of milliseconds"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<RoutingOptions, GatewayError> {
        RoutingOptions::from_body(&RawObject::parse(body.as_bytes()).unwrap())
    }

    #[test]
    fn reads_vercel_gateway_options() {
        let o = parse(
            r#"{"model":"m","providerOptions":{"gateway":{"order":["b","a"],"only":["a","b"],
                "models":["x","y"],"providerTimeouts":{"byok":{"a":300}, "b": 1500}},
                "anthropic":{"thinking":{}}}}"#,
        )
        .unwrap();
        assert_eq!(o.order, ["b", "a"]);
        assert_eq!(o.only.as_deref(), Some(&["a".to_string(), "b".into()][..]));
        assert_eq!(o.models, ["x", "y"]);
        assert_eq!(o.provider_timeout("a"), Some(Duration::from_millis(300)));
        assert_eq!(o.provider_timeout("b"), Some(Duration::from_millis(1500)));
        assert_eq!(o.provider_timeout("c"), None);
        assert!(o.allows("a") && !o.allows("c"));
    }

    #[test]
    fn byok_keys_are_read_and_never_shown() {
        let o = parse(
            r#"{"model":"m","providerOptions":{"gateway":{"byok":{"a":[{"apiKey":"k-SECRET-1"}]}}}}"#,
        )
        .unwrap();
        assert_eq!(o.byok("a").len(), 1);
        assert_eq!(o.byok("a")[0].expose(), "k-SECRET-1");
        assert!(o.byok("b").is_empty());
        assert!(!format!("{o:?}").contains("SECRET"), "{o:?}");
    }

    #[test]
    fn reads_openrouter_options() {
        let o = parse(
            r#"{"model":"m","models":["m","n"],"provider":{"order":["b"],"ignore":["c"],"allow_fallbacks":false}}"#,
        )
        .unwrap();
        assert_eq!(o.models, ["m", "n"]);
        assert_eq!(o.order, ["b"]);
        assert!(o.allows("a") && !o.allows("c"));
        assert!(!o.allow_fallbacks);
        assert_eq!(
            parse(r#"{"model":"m"}"#).unwrap(),
            RoutingOptions::default()
        );
    }

    #[test]
    fn reads_sort_in_both_dialects() {
        for (body, want) in [
            (
                r#"{"providerOptions":{"gateway":{"sort":"cost"}}}"#,
                Some(ProviderSort::Cost),
            ),
            (
                r#"{"providerOptions":{"gateway":{"sort":"ttft"}}}"#,
                Some(ProviderSort::Ttft),
            ),
            (r#"{"provider":{"sort":"price"}}"#, Some(ProviderSort::Cost)),
            (
                r#"{"provider":{"sort":"latency"}}"#,
                Some(ProviderSort::Ttft),
            ),
            (
                r#"{"provider":{"sort":{"by":"price","partition":"model"}}}"#,
                Some(ProviderSort::Cost),
            ),
            (r#"{"provider":{"sort":null}}"#, None),
            (r#"{"model":"m"}"#, None),
        ] {
            assert_eq!(parse(body).unwrap().sort, want, "{body}");
        }
    }

    #[test]
    fn malformed_options_name_the_field() {
        for (body, field) in [
            (
                r#"{"providerOptions":{"gateway":{"order":"a"}}}"#,
                "providerOptions.gateway.order",
            ),
            (
                r#"{"providerOptions":{"gateway":{"only":[1]}}}"#,
                "providerOptions.gateway.only",
            ),
            (
                r#"{"providerOptions":{"gateway":{"providerTimeouts":{"a":-5}}}}"#,
                "providerOptions.gateway.providerTimeouts.a",
            ),
            (
                r#"{"providerOptions":{"gateway":[]}}"#,
                "providerOptions.gateway",
            ),
            (r#"{"models":"x"}"#, "models"),
            (
                r#"{"provider":{"allow_fallbacks":"no"}}"#,
                "provider.allow_fallbacks",
            ),
            (r#"{"provider":3}"#, "provider"),
            (
                r#"{"providerOptions":{"gateway":{"sort":"tps"}}}"#,
                "providerOptions.gateway.sort",
            ),
            (r#"{"provider":{"sort":"cheapest"}}"#, "provider.sort"),
            (r#"{"provider":{"sort":{"by":1}}}"#, "provider.sort.by"),
            (
                r#"{"provider":{"sort":{"by":"price","partition":"none"}}}"#,
                "provider.sort.partition",
            ),
            (
                r#"{"provider":{"sort":{"order":"x"}}}"#,
                "provider.sort.order",
            ),
        ] {
            let e = parse(body).unwrap_err();
            assert_eq!(e.status(), 400, "{body}");
            assert_eq!(e.param(), Some(field), "{body}");
        }
    }
}
