//! The operators' web dashboard (SPEC §11), on its own address (`[dashboard] listen`), served by
//! `run daemon` and by `dialer dashboard` beside a daemon. Server-rendered pages (maud), charts
//! as SVG, live counters over server-sent events with a little plain JavaScript, actions (pause,
//! resume, DNC, CSV downloads) behind a signed session cookie and CSRF tokens, and a JSON API
//! under `/api/` for scripts (`Authorization: Bearer <token>`). Without valid credentials every
//! route but `/login` answers 401 (API) or redirects to `/login` (pages) and shows no data.

mod actions;
mod api;
pub mod auth;
mod charts;
mod pages;
mod sse;
pub mod view;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::cookie::Cookie;
use chrono_tz::Tz;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::campaign::phone::Region;
use crate::clock::Clock;
use crate::config::{Config, DashboardConfig};
use crate::store::{Db, StoreError};

use auth::{Auth, LOGIN_COOKIE, SESSION_COOKIE, Session};

/// How often the live stream looks for changes.
pub const LIVE_POLL: Duration = Duration::from_secs(1);
/// Form bodies are small.
const BODY_LIMIT: usize = 16 * 1024;

/// What every handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    clock: Arc<dyn Clock>,
    default_timezone: Tz,
    default_region: Region,
    daily_cap: Option<u32>,
    auth: Auth,
    poll: Duration,
}

impl AppState {
    /// `db` is the daemon's own (`run daemon`) or one opened beside it (`dialer dashboard`);
    /// `poll`: how often the live stream looks for changes ([`LIVE_POLL`]).
    pub fn new(config: &Config, db: Db, clock: Arc<dyn Clock>, poll: Duration) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                db,
                clock,
                default_timezone: config.dialer.default_timezone,
                default_region: config.dialer.default_region,
                daily_cap: config.dialer.max_calls_per_number_per_day,
                auth: Auth::new(&config.dashboard),
                poll,
            }),
        }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/static/live.js", get(live_js))
        .route("/events", get(sse::events))
        .route("/campaigns/{name}", get(actions::campaign_page))
        .route("/campaigns/{name}/pause", post(actions::pause))
        .route("/campaigns/{name}/resume", post(actions::resume))
        .route("/campaigns/{name}/attempts.csv", get(actions::attempts_csv))
        .route("/campaigns/{name}/contacts.csv", get(actions::contacts_csv))
        .route("/contacts/{id}", get(actions::contact_page))
        .route("/dnc", post(actions::dnc_add))
        .route("/api/campaigns", get(api::campaigns))
        .route("/api/campaigns/{name}/plan", get(api::plan))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Serves until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Binds `[dashboard] listen`, with the fix in the error.
pub async fn bind(config: &DashboardConfig) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} for the dashboard (change `[dashboard] listen` or free the port)",
                config.listen
            )
        })
}

/// The dashboard serving beside a daemon.
pub struct Running {
    /// `http://ADDR` it answers on.
    pub url: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    pub async fn stop(self) {
        self.stop.cancel();
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "dashboard server failed"),
            Err(e) => tracing::warn!(error = %e, "dashboard task failed"),
        }
    }
}

/// For `run daemon`: serves the dashboard on `[dashboard] listen` with the daemon's database,
/// or says once why it does not (off, or no credentials) and returns `None`.
pub async fn start(config: &Config, db: Db, clock: Arc<dyn Clock>) -> Result<Option<Running>> {
    if let Some(why) = not_served_because(&config.dashboard) {
        tracing::warn!("{why}");
        return Ok(None);
    }
    let listener = bind(&config.dashboard).await?;
    let url = format!("http://{}", listener.local_addr()?);
    tracing::info!(%url, "dashboard listening");
    let stop = CancellationToken::new();
    let state = AppState::new(config, db, clock, LIVE_POLL);
    let task = tokio::spawn(serve(listener, state, stop.clone()));
    Ok(Some(Running { url, stop, task }))
}

/// Why the dashboard is not served, when it is not: `None` when it can start.
pub fn not_served_because(config: &DashboardConfig) -> Option<&'static str> {
    if !config.enabled {
        Some("dashboard off (`[dashboard] enabled = false`)")
    } else if !config.has_credentials() {
        Some(
            "dashboard off: no credentials; set DIALER_DASHBOARD_TOKEN (e.g. `export \
             DIALER_DASHBOARD_TOKEN=$(openssl rand -hex 16)`) or `[dashboard] users` in dialer.toml",
        )
    } else {
        None
    }
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    res
}

/// A signed-in operator, or a redirect to `/login` (pages, the live stream, downloads).
pub struct Signed(pub Session);

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let now = state.inner.clock.now();
        state
            .inner
            .auth
            .session(&parts.headers, now)
            .map(Signed)
            .ok_or_else(|| Redirect::to("/login").into_response())
    }
}

/// A script with `Authorization: Bearer <token>`, or 401.
pub struct Bearer;

impl FromRequestParts<AppState> for Bearer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if state.inner.auth.check_bearer(&parts.headers) {
            Ok(Bearer)
        } else {
            Err((
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                axum::Json(serde_json::json!({
                    "error": "send `Authorization: Bearer <token>` with the dashboard token"
                })),
            )
                .into_response())
        }
    }
}

/// A page-level failure: details to the log, a terse page to the operator.
pub struct PageError(String);

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        PageError(e.to_string())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self.0, "dashboard request failed");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error: see the dialer's log\n",
        )
            .into_response()
    }
}

async fn overview(
    State(state): State<AppState>,
    Signed(session): Signed,
) -> Result<Response, PageError> {
    let cards = sse::cards(&state).await?;
    Ok(Html(pages::overview(&session, &cards).into_string()).into_response())
}

async fn live_js(_: Signed) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("live.js"),
    )
        .into_response()
}

#[derive(Deserialize)]
struct LoginQuery {
    error: Option<String>,
}

async fn login_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
) -> Response {
    let auth = &state.inner.auth;
    if auth.session(&headers, state.inner.clock.now()).is_some() {
        return Redirect::to("/").into_response();
    }
    // keep the nonce a browser already has: a second load of this page (a redirected favicon
    // request, another tab) must not invalidate the form shown first
    let jar = auth.jar(&headers);
    let nonce = jar
        .get(LOGIN_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(auth::random_token);
    let jar = jar.add(auth::cookie(LOGIN_COOKIE, nonce.clone()));
    let error = q.error.map(|e| match e.as_str() {
        "busy" => "Too many sign-in attempts: wait a minute and try again.",
        "csrf" => "The form expired: sign in again.",
        _ => "Wrong user, password or token.",
    });
    let (users, token) = auth.methods();
    (
        jar,
        Html(pages::login(&nonce, error, users, token).into_string()),
    )
        .into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Form(form): axum::extract::Form<LoginForm>,
) -> Response {
    let auth_state = state.clone();
    let jar = state.inner.auth.jar(&headers);
    let expected = jar
        .get(LOGIN_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    if !auth::csrf_matches(&expected, &form.csrf) {
        return Redirect::to("/login?error=csrf").into_response();
    }
    if !state.inner.auth.allow_attempt() {
        tracing::warn!("dashboard: sign-in refused, too many attempts this minute");
        return Redirect::to("/login?error=busy").into_response();
    }
    let LoginForm { user, password, .. } = form;
    let checked =
        tokio::task::spawn_blocking(move || auth_state.inner.auth.check_login(&user, &password))
            .await
            .ok()
            .flatten();
    let Some(user) = checked else {
        tracing::warn!("dashboard: failed sign-in");
        return Redirect::to("/login?error=1").into_response();
    };
    tracing::info!(%user, "dashboard: signed in");
    let (_, cookie) = state
        .inner
        .auth
        .start_session(&user, state.inner.clock.now());
    let jar = jar.remove(Cookie::from(LOGIN_COOKIE)).add(cookie);
    (jar, Redirect::to("/")).into_response()
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Signed(session): Signed,
    axum::extract::Form(form): axum::extract::Form<CsrfForm>,
) -> Response {
    if !auth::csrf_matches(&session.csrf, &form.csrf) {
        return csrf_refused();
    }
    let jar = state
        .inner
        .auth
        .jar(&headers)
        .remove(Cookie::build(SESSION_COOKIE).path("/"));
    (jar, Redirect::to("/login")).into_response()
}

/// A POST whose CSRF token is missing or wrong: refused, nothing changed.
pub fn csrf_refused() -> Response {
    (
        StatusCode::FORBIDDEN,
        "refused: the form's CSRF token is missing or wrong (reload the page and try again)\n",
    )
        .into_response()
}

async fn not_found(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match state.inner.auth.session(&headers, state.inner.clock.now()) {
        Some(s) => (
            StatusCode::NOT_FOUND,
            Html(pages::not_found(&s, "No such page.").into_string()),
        )
            .into_response(),
        None => Redirect::to("/login").into_response(),
    }
}

#[cfg(test)]
mod tests;
