//! The `[dashboard]` section of `dialer.toml` (SPEC §11): where the operators' web page listens
//! and who may sign in (argon2 password hashes in `users`, or a token).

use std::net::SocketAddr;

use serde::Deserialize;

use super::Secret;

/// The shortest token accepted: a guessable token would expose every contact's number.
pub const MIN_TOKEN_LEN: usize = 16;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDashboard {
    enabled: bool,
    listen: String,
    #[serde(deserialize_with = "super::auth_token")]
    token: String,
    users: Vec<RawUser>,
}

impl std::fmt::Debug for RawDashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawDashboard")
            .field("enabled", &self.enabled)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl Default for RawDashboard {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "127.0.0.1:8090".into(),
            token: String::new(),
            users: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: String,
    #[serde(deserialize_with = "super::auth_token")]
    password_hash: String,
}

/// One operator who signs in with a name and password.
#[derive(Debug, Clone)]
pub struct DashboardUser {
    pub name: String,
    /// The argon2 PHC string (`$argon2id$v=19$…`), checked when the config is loaded.
    pub password_hash: Secret,
}

/// The validated `[dashboard]` section.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// `false`: `run daemon` serves no dashboard.
    pub enabled: bool,
    pub listen: SocketAddr,
    /// For the sign-in form and `Authorization: Bearer` on `/api/`.
    pub token: Option<Secret>,
    pub users: Vec<DashboardUser>,
}

impl DashboardConfig {
    /// Whether anyone can sign in at all.
    pub fn has_credentials(&self) -> bool {
        self.token.is_some() || !self.users.is_empty()
    }
}

impl Default for DashboardConfig {
    fn default() -> Self {
        RawDashboard::default()
            .validate(None)
            .unwrap_or_else(|_| DashboardConfig {
                enabled: false,
                listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
                token: None,
                users: Vec::new(),
            })
    }
}

impl RawDashboard {
    /// `env_token` (`DIALER_DASHBOARD_TOKEN`) wins over the file's `token`.
    /// Errors are `(field, message)`.
    pub(super) fn validate(
        self,
        env_token: Option<&Secret>,
    ) -> Result<DashboardConfig, (&'static str, String)> {
        let listen = self.listen.parse::<SocketAddr>().map_err(|_| {
            (
                "dashboard.listen",
                format!("`{}` is not an address like `127.0.0.1:8090`", self.listen),
            )
        })?;
        let token = env_token
            .cloned()
            .or_else(|| (!self.token.is_empty()).then(|| Secret::new(self.token)));
        if let Some(t) = &token
            && t.expose().trim().chars().count() < MIN_TOKEN_LEN
        {
            return Err((
                "dashboard.token",
                format!(
                    "is shorter than {MIN_TOKEN_LEN} characters (from `DIALER_DASHBOARD_TOKEN` \
                     or the file): use a random one, e.g. `openssl rand -hex 16`"
                ),
            ));
        }
        let mut users: Vec<DashboardUser> = Vec::new();
        for u in self.users {
            let name = u.name.trim().to_owned();
            if name.is_empty() {
                return Err(("dashboard.users", "a user has an empty `name`".into()));
            }
            if users.iter().any(|x| x.name == name) {
                return Err(("dashboard.users", format!("user `{name}` is listed twice")));
            }
            if !is_argon2_hash(&u.password_hash) {
                return Err((
                    "dashboard.users",
                    format!(
                        "user `{name}`: `password_hash` is not an argon2 hash (`$argon2id$…`); \
                         make one with `dialer dashboard hash-password`"
                    ),
                ));
            }
            users.push(DashboardUser {
                name,
                password_hash: Secret::new(u.password_hash),
            });
        }
        Ok(DashboardConfig {
            enabled: self.enabled,
            listen,
            token,
            users,
        })
    }
}

fn is_argon2_hash(s: &str) -> bool {
    argon2::PasswordHash::new(s).is_ok_and(|h| h.algorithm.as_str().starts_with("argon2"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawDashboard {
        toml::from_str(text).expect("toml")
    }

    #[test]
    fn shipped_default_listens_on_loopback_with_no_credentials() {
        let d = RawDashboard::default().validate(None).expect("valid");
        assert!(d.enabled);
        assert_eq!(d.listen.to_string(), "127.0.0.1:8090");
        assert!(!d.has_credentials());
    }

    #[test]
    fn env_token_wins_and_short_tokens_are_refused() {
        let env = Secret::new("0123456789abcdef-env");
        let d = raw("token = \"0123456789abcdef-file\"")
            .validate(Some(&env))
            .expect("valid");
        assert_eq!(d.token.expect("token").expose(), "0123456789abcdef-env");
        let (field, msg) = raw("token = \"short\"").validate(None).unwrap_err();
        assert_eq!(field, "dashboard.token");
        assert!(msg.contains("shorter than 16"), "{msg}");
        assert!(!msg.contains("short\""), "{msg}");
    }

    #[test]
    fn users_need_argon2_hashes() {
        let (field, msg) = raw("users = [{ name = \"ops\", password_hash = \"hunter2\" }]")
            .validate(None)
            .unwrap_err();
        assert_eq!(field, "dashboard.users");
        assert!(
            msg.contains("`ops`") && msg.contains("hash-password"),
            "{msg}"
        );
        assert!(!msg.contains("hunter2"), "{msg}");
        let hash = crate::dashboard::auth::hash_password("correct horse").expect("hash");
        let d = raw(&format!(
            "users = [{{ name = \"ops\", password_hash = \"{hash}\" }}]"
        ))
        .validate(None)
        .expect("valid");
        assert_eq!(d.users[0].name, "ops");
        assert!(d.has_credentials());
    }
}
