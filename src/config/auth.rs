//! `[auth]` and `[store]`: who may use the gateway, and where its state
//! lives.

use std::path::PathBuf;

use serde::Deserialize;

/// `[auth]`: how clients prove who they are.
///
/// ```toml
/// [auth]
/// mode = "auto"                  # auto (default) | required | none
/// keys = [{ name = "ci", key = "${CI_GATEWAY_KEY}", team = "ci" }]
///
/// [auth.oidc]
/// issuer = "https://login.example.com"
/// audience = "tollgate"
/// # jwks_url = "https://login.example.com/keys"  # default: discovered from the issuer
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Whether a gateway key (or token) is required. Default `auto`.
    #[serde(default)]
    pub mode: AuthMode,
    /// Keys written in the config (hashed at load; the text is never kept).
    #[serde(default)]
    pub keys: Vec<StaticKeyConfig>,
    /// OpenID Connect / JWT bearer tokens.
    pub oidc: Option<OidcConfig>,
}

impl AuthConfig {
    /// Static keys long enough not to be guessed, with distinct names;
    /// OIDC URLs that are http(s).
    pub(crate) fn check(&self) -> Result<(), super::ConfigError> {
        let err = |m: String| Err(super::ConfigError(m));
        for (i, k) in self.keys.iter().enumerate() {
            if k.name.trim().is_empty() {
                return err(format!("auth.keys[{i}].name: must not be empty"));
            }
            if k.key.chars().count() < MIN_STATIC_KEY_CHARS {
                return err(format!(
                    "auth.keys[{i}].key: at least {MIN_STATIC_KEY_CHARS} characters (a short key can be guessed); `tollgate keys create` makes good ones"
                ));
            }
            if self.keys[..i].iter().any(|o| o.name == k.name) {
                return err(format!("auth.keys[{i}].name: `{}` is used twice", k.name));
            }
            // A blank pattern (`"${CI_MODELS:-}"` with the variable unset)
            // would be dropped, and no pattern at all means every model.
            if k.models.iter().any(|m| m.trim().is_empty()) {
                return err(format!(
                    "auth.keys[{i}].models: a pattern must not be empty"
                ));
            }
        }
        if let Some(o) = &self.oidc {
            for (field, url) in [
                ("issuer", Some(&o.issuer)),
                ("jwks_url", o.jwks_url.as_ref()),
            ] {
                let Some(url) = url else { continue };
                let ok = url.parse::<http::Uri>().is_ok_and(|u| {
                    matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
                });
                if !ok {
                    return err(format!("auth.oidc.{field}: `{url}` is not an http(s) URL"));
                }
            }
            if o.audience.trim().is_empty() {
                return err("auth.oidc.audience: must not be empty".into());
            }
        }
        Ok(())
    }
}

/// The shortest key `[auth] keys` accepts.
const MIN_STATIC_KEY_CHARS: usize = 16;

/// `[auth] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// A key or token is required as soon as any exists: a key in the
    /// config or the store, or `[auth.oidc]`. With none, the gateway
    /// serves openly on a loopback address and refuses to start on any
    /// other.
    #[default]
    Auto,
    /// Every request needs a valid key or token, even with none configured.
    Required,
    /// No authentication: anyone who can reach the gateway spends its
    /// provider keys. Must be set explicitly to serve off loopback
    /// without keys.
    None,
}

/// One entry of `[auth] keys`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticKeyConfig {
    /// A name for logs and usage (not secret).
    pub name: String,
    /// The key a client sends. Never logged; kept only as its hash.
    pub key: String,
    /// The user it belongs to.
    pub user: Option<String>,
    /// The team it belongs to.
    pub team: Option<String>,
    /// Tags for usage and budgets.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Models it may use (`*` matches any run of characters); empty: all.
    #[serde(default)]
    pub models: Vec<String>,
}

impl std::fmt::Debug for StaticKeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticKeyConfig")
            .field("name", &self.name)
            .field("key", &"[redacted]")
            .field("user", &self.user)
            .field("team", &self.team)
            .field("tags", &self.tags)
            .field("models", &self.models)
            .finish()
    }
}

/// `[auth.oidc]`: bearer JWTs from an OpenID Connect issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The `iss` every token must carry; also where discovery looks
    /// (`{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    /// The `aud` every token must carry.
    pub audience: String,
    /// The JWKS URL. Default: `jwks_uri` from the issuer's discovery document.
    pub jwks_url: Option<String>,
    /// Seconds of clock skew allowed on `exp` and `nbf`. Default 60.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// The claim that names the user. Default `sub`.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// The claim that names the team (a string). Unset: none.
    pub team_claim: Option<String>,
    /// The claim that lists tags (an array of strings, or one string).
    /// Unset: none.
    pub tags_claim: Option<String>,
    /// The claim that lists the models allowed (array of patterns).
    /// Unset: all models.
    pub models_claim: Option<String>,
}

fn default_leeway() -> u64 {
    60
}

fn default_user_claim() -> String {
    "sub".into()
}

/// `[store]`: the embedded database (SQLite) for keys, and later budgets,
/// the spend ledger and the request log.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The SQLite file; a relative path is relative to the config file's
    /// folder. Default: `tollgate.db` under the platform's data directory
    /// (`$XDG_DATA_HOME/tollgate`, `~/.local/share/tollgate`).
    pub path: Option<PathBuf>,
}

impl StoreConfig {
    /// The file to open: `path`, or the default under the data directory
    /// (`None` when the platform has none and no path is set).
    pub fn resolved_path(&self) -> Option<PathBuf> {
        self.path
            .clone()
            .or_else(|| dirs::data_dir().map(|d| d.join("tollgate").join("tollgate.db")))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn static_keys_are_checked_and_never_shown() {
        let parse = |t: &str| Config::parse(t, &|_| None);
        let e = parse("[auth]\nkeys = [{ name = \"ci\", key = \"short\" }]\n").unwrap_err();
        assert!(e.0.starts_with("auth.keys[0].key: at least 16"), "{}", e.0);
        let e = parse("[auth]\nkeys = [{ name = \"a\", key = \"0123456789abcdefX\" }, { name = \"a\", key = \"0123456789abcdefY\" }]\n").unwrap_err();
        assert!(e.0.contains("auth.keys[1].name"), "{}", e.0);
        let e = parse("[auth]\nkeys = [{ name = \"ci\", key = \"0123456789abcdefX\", models = [\"gpt-*\", \"${CI_MODELS:-}\"] }]\n").unwrap_err();
        assert_eq!(e.0, "auth.keys[0].models: a pattern must not be empty");
        let e = parse(
            "[auth]\nkeys = [{ name = \"ci\", key = \"0123456789abcdefX\", models = [\" \"] }]\n",
        )
        .unwrap_err();
        assert_eq!(e.0, "auth.keys[0].models: a pattern must not be empty");
        let e = parse("[auth]\nmode = \"open\"\n").unwrap_err();
        assert!(e.0.starts_with("auth.mode"), "{}", e.0);
        let e =
            parse("[auth.oidc]\nissuer = \"login.example.com\"\naudience = \"x\"\n").unwrap_err();
        assert!(e.0.starts_with("auth.oidc.issuer"), "{}", e.0);

        let c = parse("[auth]\nmode = \"required\"\nkeys = [{ name = \"ci\", key = \"sekrit-0123456789abcdef\" }]\n").unwrap();
        assert_eq!(c.auth.mode, super::AuthMode::Required);
        assert!(!format!("{c:?}").contains("sekrit"));
    }
}
