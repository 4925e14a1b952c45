//! Who may see the dashboard (SPEC §11): operators sign in with a name and password (argon2
//! hashes in `[dashboard] users`) or with the token (`DIALER_DASHBOARD_TOKEN`); a session is a
//! cookie signed with a key made at start (HMAC, `axum-extra`'s `SignedCookieJar`) holding the
//! user, its expiry and the session's CSRF token, which every POST form must send back. Scripts
//! use the JSON API with `Authorization: Bearer <token>`.

use std::num::NonZeroU32;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::http::HeaderMap;
use axum_extra::extract::cookie::{Cookie, Key, SameSite, SignedCookieJar};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::config::{DashboardConfig, DashboardUser, Secret};

/// The session cookie.
pub const SESSION_COOKIE: &str = "dialer_session";
/// The sign-in form's CSRF cookie (before there is a session).
pub const LOGIN_COOKIE: &str = "dialer_login";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::hours(12);
/// The user name shown for a token sign-in.
pub const TOKEN_USER: &str = "token";

/// Sign-in attempts accepted per minute (all clients together, with a burst of as many);
/// beyond, sign-in is refused until the budget refills, so a password or token cannot be
/// guessed at speed.
pub const SIGN_INS_PER_MINUTE: u32 = 30;

/// The credentials and the key that signs session cookies.
pub struct Auth {
    token: Option<Secret>,
    users: Vec<DashboardUser>,
    key: Key,
    attempts: governor::DefaultDirectRateLimiter,
}

/// A signed-in operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: String,
    pub expires: DateTime<Utc>,
    /// Sent back by every POST form.
    pub csrf: String,
}

impl Auth {
    /// A fresh signing key: sessions end when the process restarts.
    pub fn new(config: &DashboardConfig) -> Auth {
        let mut bytes = [0u8; 64];
        rand::rng().fill_bytes(&mut bytes);
        Auth {
            token: config.token.clone(),
            users: config.users.clone(),
            key: Key::from(&bytes),
            attempts: governor::RateLimiter::direct(governor::Quota::per_minute(
                NonZeroU32::new(SIGN_INS_PER_MINUTE).unwrap_or(NonZeroU32::MIN),
            )),
        }
    }

    /// Takes one sign-in attempt from the budget; `false` when it is spent for now.
    pub fn allow_attempt(&self) -> bool {
        self.attempts.check().is_ok()
    }

    /// `(users can sign in, the token can sign in)`.
    pub fn methods(&self) -> (bool, bool) {
        (!self.users.is_empty(), self.token.is_some())
    }

    /// Whether `user`/`password` may sign in: an empty user name means the token. Slow on
    /// purpose for users (argon2): call it off the async threads.
    pub fn check_login(&self, user: &str, password: &str) -> Option<String> {
        let user = user.trim();
        if user.is_empty() {
            return self.check_token(password).then(|| TOKEN_USER.to_owned());
        }
        let u = self.users.iter().find(|u| u.name == user)?;
        let hash = PasswordHash::new(u.password_hash.expose()).ok()?;
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
            .then(|| u.name.clone())
    }

    /// Constant-time comparison with the configured token (none configured: never).
    pub fn check_token(&self, given: &str) -> bool {
        self.token
            .as_ref()
            .is_some_and(|t| bool::from(t.expose().as_bytes().ct_eq(given.as_bytes())))
    }

    /// `Authorization: Bearer <token>`.
    pub fn check_bearer(&self, headers: &HeaderMap) -> bool {
        headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| self.check_token(t.trim()))
    }

    pub fn jar(&self, headers: &HeaderMap) -> SignedCookieJar {
        SignedCookieJar::from_headers(headers, self.key.clone())
    }

    /// The session the request carries, if valid and not expired at `now`.
    pub fn session(&self, headers: &HeaderMap, now: DateTime<Utc>) -> Option<Session> {
        let cookie = self.jar(headers).get(SESSION_COOKIE)?;
        let session = decode(cookie.value())?;
        (session.expires > now).then_some(session)
    }

    /// A new session for `user`, as a cookie.
    pub fn start_session(&self, user: &str, now: DateTime<Utc>) -> (Session, Cookie<'static>) {
        let session = Session {
            user: user.to_owned(),
            expires: now + SESSION_TTL,
            csrf: random_token(),
        };
        let cookie = cookie(SESSION_COOKIE, encode(&session));
        (session, cookie)
    }
}

/// A cookie only this site's own pages send (`SameSite=Strict`), unreadable by scripts.
pub fn cookie(name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .build()
}

/// 128 random bits, URL-safe.
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Constant-time equality of a form's CSRF field with the expected one.
pub fn csrf_matches(expected: &str, given: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

fn encode(s: &Session) -> String {
    format!(
        "{}.{}.{}",
        s.expires.timestamp(),
        s.csrf,
        URL_SAFE_NO_PAD.encode(s.user.as_bytes())
    )
}

fn decode(value: &str) -> Option<Session> {
    let mut parts = value.splitn(3, '.');
    let expires = DateTime::from_timestamp(parts.next()?.parse().ok()?, 0)?;
    let csrf = parts.next()?.to_owned();
    let user = String::from_utf8(URL_SAFE_NO_PAD.decode(parts.next()?).ok()?).ok()?;
    Some(Session {
        user,
        expires,
        csrf,
    })
}

/// An argon2id hash (PHC string) of `password` with a random salt, for `[dashboard] users`.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DashboardConfig;

    fn auth(token: Option<&str>, users: &[(&str, &str)]) -> Auth {
        Auth::new(&DashboardConfig {
            enabled: true,
            listen: "127.0.0.1:0".parse().expect("addr"),
            token: token.map(Secret::new),
            users: users
                .iter()
                .map(|(n, p)| DashboardUser {
                    name: (*n).to_owned(),
                    password_hash: Secret::new(hash_password(p).expect("hash")),
                })
                .collect(),
        })
    }

    #[test]
    fn users_sign_in_with_their_password_and_the_token_with_no_name() {
        let a = auth(Some("0123456789abcdef"), &[("ops", "correct horse")]);
        assert_eq!(
            a.check_login("ops", "correct horse").as_deref(),
            Some("ops")
        );
        assert_eq!(a.check_login("ops", "wrong"), None);
        assert_eq!(a.check_login("nobody", "correct horse"), None);
        assert_eq!(
            a.check_login("", "0123456789abcdef").as_deref(),
            Some(TOKEN_USER)
        );
        assert_eq!(a.check_login("", "0123456789abcdeX"), None);
        assert_eq!(a.check_login("", ""), None);
        let no_token = auth(None, &[]);
        assert_eq!(no_token.check_login("", ""), None);
        assert!(!no_token.check_token(""));
    }

    #[test]
    fn a_session_cookie_round_trips_and_a_forged_or_expired_one_is_refused() {
        let a = auth(Some("0123456789abcdef"), &[]);
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("instant");
        let (session, cookie) = a.start_session("ops", now);
        let signed = a.jar(&HeaderMap::new()).add(cookie);
        let value = signed.get(SESSION_COOKIE).expect("cookie");
        // the jar hands back the verified value; the header carries the signed one
        let (_, header) = axum::response::IntoResponse::into_response((signed, ()))
            .into_parts()
            .0
            .headers
            .iter()
            .find(|(k, _)| *k == axum::http::header::SET_COOKIE)
            .map(|(k, v)| (k.clone(), v.clone()))
            .expect("set-cookie");
        let raw = header
            .to_str()
            .expect("ascii")
            .split(';')
            .next()
            .expect("pair")
            .to_owned();
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::header::COOKIE, raw.parse().expect("header"));
        assert_eq!(a.session(&headers, now), Some(session.clone()));
        assert_eq!(value.value(), encode(&session));
        assert_eq!(a.session(&headers, now + SESSION_TTL), None, "expired");
        // another process's key, or an unsigned value, is refused
        let other = auth(Some("0123456789abcdef"), &[]);
        assert_eq!(other.session(&headers, now), None);
        let mut forged = HeaderMap::new();
        forged.insert(
            axum::http::header::COOKIE,
            format!("{SESSION_COOKIE}={}", encode(&session))
                .parse()
                .expect("header"),
        );
        assert_eq!(a.session(&forged, now), None);
    }

    #[test]
    fn sign_in_attempts_run_out_at_the_budget() {
        let a = auth(Some("0123456789abcdef"), &[]);
        let allowed = (0..SIGN_INS_PER_MINUTE * 2)
            .filter(|_| a.allow_attempt())
            .count();
        assert_eq!(allowed, SIGN_INS_PER_MINUTE as usize);
    }

    #[test]
    fn csrf_needs_an_exact_match() {
        assert!(csrf_matches("abc", "abc"));
        assert!(!csrf_matches("abc", "abd"));
        assert!(!csrf_matches("", ""));
    }
}
