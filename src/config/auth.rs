//! `[auth]` and `[store]`: who may use the gateway, and where its state
//! lives.

use std::path::PathBuf;

use http::Uri;
use serde::Deserialize;

use super::{http_url, ConfigError};

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
    /// Keys written in the config (hashed when the gateway is built;
    /// `Debug` never shows them).
    #[serde(default)]
    pub keys: Vec<StaticKeyConfig>,
    /// OpenID Connect / JWT bearer tokens.
    pub oidc: Option<OidcConfig>,
}

impl AuthConfig {
    /// Static keys long enough not to be guessed, with distinct names and
    /// distinct values and no blank model pattern; `[auth.oidc]` by
    /// [`OidcConfig::check`].
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
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
            // Two entries with one key: a client could not tell the gateway
            // which it is. The message names the entries, never the key.
            if let Some(j) = self.keys[..i].iter().position(|o| o.key == k.key) {
                return err(format!(
                    "auth.keys[{i}].key: the same key as auth.keys[{j}] (`{}`); each entry needs a key of its own",
                    self.keys[j].name
                ));
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
            o.check()?;
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
    /// The key a client sends. Never logged; `Debug` shows `[redacted]`,
    /// and the gateway compares only its hash.
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

/// Where an [`OidcConfig`]'s signing keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeysUrl {
    /// `jwks_url`: the JWKS itself.
    Jwks(Uri),
    /// The issuer's discovery document, which names the JWKS.
    Discovery(Uri),
}

impl OidcConfig {
    /// Checks what TOML types cannot: an issuer and `jwks_url` that are
    /// http(s) URLs, an audience, claim names that are not empty, a
    /// leeway of at most a day. `Config::check` runs it, and so does
    /// [`OidcVerifier::new`](crate::auth::OidcVerifier::new), for a
    /// config built in code. An error names the field, never a URL (one
    /// may carry user-info or a credential in its query).
    pub fn check(&self) -> Result<(), ConfigError> {
        let err = |field: &str, msg: &str| Err(ConfigError(format!("auth.oidc.{field}: {msg}")));
        if self.issuer.trim().is_empty() {
            return err("issuer", "must not be empty");
        }
        if let Err(e) = http_url(&self.issuer) {
            return err("issuer", &e);
        }
        self.keys_url()?;
        if self.audience.trim().is_empty() {
            return err("audience", "must not be empty");
        }
        // Also in `Config::check_durations`' list; checked here too for a
        // config that never went through `Config::check`, since a huge
        // leeway would overflow the timestamps it is added to.
        super::at_most_a_day("auth.oidc.leeway_secs", self.leeway_secs, 1)?;
        for (field, claim) in [
            ("user_claim", Some(&self.user_claim)),
            ("team_claim", self.team_claim.as_ref()),
            ("tags_claim", self.tags_claim.as_ref()),
            ("models_claim", self.models_claim.as_ref()),
        ] {
            if claim.is_some_and(|c| c.is_empty()) {
                return err(field, "must not be empty");
            }
        }
        Ok(())
    }

    /// Where the signing keys come from: `jwks_url`, else
    /// `{issuer}/.well-known/openid-configuration`. An error names the
    /// field, never the URL.
    pub(crate) fn keys_url(&self) -> Result<KeysUrl, ConfigError> {
        let err = |field: &str, msg: String| ConfigError(format!("auth.oidc.{field}: {msg}"));
        match &self.jwks_url {
            Some(url) => http_url(url)
                .map(KeysUrl::Jwks)
                .map_err(|e| err("jwks_url", e)),
            None => {
                let document = format!(
                    "{}/.well-known/openid-configuration",
                    self.issuer.trim_end_matches('/')
                );
                http_url(&document).map(KeysUrl::Discovery).map_err(|e| {
                    err(
                        "issuer",
                        format!(
                            "{e}: without jwks_url, the keys are discovered from the issuer's URL"
                        ),
                    )
                })
            }
        }
    }
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
        let e = parse("[auth]\nkeys = [{ name = \"a\", key = \"sekrit-0123456789abcdef\" }, { name = \"b\", key = \"sekrit-0123456789abcdef\" }]\n").unwrap_err();
        assert_eq!(
            e.0,
            "auth.keys[1].key: the same key as auth.keys[0] (`a`); each entry needs a key of its own"
        );

        let c = parse("[auth]\nmode = \"required\"\nkeys = [{ name = \"ci\", key = \"sekrit-0123456789abcdef\" }]\n").unwrap();
        assert_eq!(c.auth.mode, super::AuthMode::Required);
        assert!(!format!("{c:?}").contains("sekrit"));
    }

    /// What `serve` refuses when it builds the verifier, `check-config`
    /// refuses too, naming the field and never quoting a URL.
    #[test]
    fn oidc_is_checked_as_the_verifier_checks_it() {
        let parse = |t: &str| Config::parse(t, &|_| None);
        let head = "[auth.oidc]\nissuer = \"https://login.example.com\"\naudience = \"tollgate\"\n";
        for (extra, starts) in [
            (
                "leeway_secs = 86401\n",
                "auth.oidc.leeway_secs: at most 86400 (a day)",
            ),
            (
                "user_claim = \"\"\n",
                "auth.oidc.user_claim: must not be empty",
            ),
            (
                "team_claim = \"\"\n",
                "auth.oidc.team_claim: must not be empty",
            ),
            (
                "tags_claim = \"\"\n",
                "auth.oidc.tags_claim: must not be empty",
            ),
            (
                "models_claim = \"\"\n",
                "auth.oidc.models_claim: must not be empty",
            ),
            (
                "jwks_url = \"keys?token=hunter2\"\n",
                "auth.oidc.jwks_url: ",
            ),
        ] {
            let e = parse(&format!("{head}{extra}")).unwrap_err();
            assert!(e.0.starts_with(starts), "{extra}: {}", e.0);
            assert!(!e.0.contains("hunter2"), "{}", e.0);
        }
        let e = parse(
            "[auth.oidc]\nissuer = \"ftp://ana:hunter2@login.example.com\"\naudience = \"x\"\n",
        )
        .unwrap_err();
        assert!(e.0.starts_with("auth.oidc.issuer: "), "{}", e.0);
        assert!(!e.0.contains("hunter2"), "{}", e.0);
        let e = parse("[auth.oidc]\nissuer = \"https://login.example.com\"\naudience = \" \"\n")
            .unwrap_err();
        assert_eq!(e.0, "auth.oidc.audience: must not be empty");
        parse(&format!("{head}leeway_secs = 86400\n")).unwrap();
    }
}
