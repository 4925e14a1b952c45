//! Router tests: `router(state).oneshot(request)` against a real SQLite file. The browser
//! tests (tests/integration/browser.rs) drive the same pages in Chromium.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;
use crate::clock::FixedClock;
use crate::config::{Config, Env, Secret};
use crate::store::{NewContact, StoreError};

const TOKEN: &str = "dashboard-test-token-0123";

const CAMPAIGN: &str = r#"{"name": "Campaña Optimizada", "message": "Hello {{name}}",
  "calling_hours_start": "00:00", "calling_hours_end": "24:00"}"#;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T15:00:00Z")
        .expect("instant")
        .with_timezone(&Utc)
}

struct Fixture {
    _dir: tempfile::TempDir,
    app: Router,
    db: Db,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = Env {
        dashboard_token: Some(Secret::new(TOKEN)),
        ..Env::default()
    };
    let config = Config::parse(&dir.path().join("dialer.toml"), "", &env).expect("config");
    let db = Db::open(config.database.sqlite_path().expect("sqlite")).expect("db");
    db.write_blocking(|tx| {
        let (cid, _) = tx.upsert_campaign("Campaña Optimizada", CAMPAIGN, false, now())?;
        let contact = NewContact {
            phone: "+12125550101".into(),
            ext_id: Some("ann-1".into()),
            name: Some("Ann".into()),
            zones: None,
            fields: "{}".into(),
        };
        tx.import_contacts(cid, "c.csv", &[contact], now())?;
        Ok::<_, StoreError>(())
    })
    .expect("seed");
    let state = AppState::new(
        &config,
        db.clone(),
        Arc::new(FixedClock(now())),
        Duration::from_millis(20),
    );
    Fixture {
        _dir: dir,
        app: router(state),
        db,
    }
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let res = app.clone().oneshot(req).await.expect("response");
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut r = Request::get(path);
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, c);
    }
    r.body(Body::empty()).expect("request")
}

fn post(path: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Request<Body> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut r =
        Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, c);
    }
    r.body(Body::from(body)).expect("request")
}

/// The `name=value` pairs of every Set-Cookie header.
fn cookies(headers: &axum::http::HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::to_owned)
        .collect()
}

fn hidden_csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
    html[at..].split('"').next().expect("value").to_owned()
}

/// Signs in with the token; returns the session cookie and the session's CSRF token.
async fn sign_in(app: &Router) -> (String, String) {
    let (_, headers, html) = send(app, get("/login", None)).await;
    let login_cookie = cookies(&headers).join("; ");
    let csrf = hidden_csrf(&html);
    let (status, headers, _) = send(
        app,
        post(
            "/login",
            Some(&login_cookie),
            &[("user", ""), ("password", TOKEN), ("csrf", &csrf)],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers.get(header::LOCATION).expect("location"), "/");
    let session = cookies(&headers)
        .into_iter()
        .find(|c| c.starts_with(auth::SESSION_COOKIE))
        .expect("session cookie");
    let (_, _, page) = send(app, get("/", Some(&session))).await;
    (session.clone(), hidden_csrf(&page))
}

const PAGES: &[&str] = &[
    "/",
    "/events",
    "/static/live.js",
    "/campaigns/Campa%C3%B1a%20Optimizada",
    "/campaigns/Campa%C3%B1a%20Optimizada/attempts.csv",
    "/campaigns/Campa%C3%B1a%20Optimizada/contacts.csv",
    "/contacts/1",
    "/no/such/page",
];

#[tokio::test]
async fn without_a_session_every_page_redirects_to_login_and_shows_no_data() {
    let f = fixture();
    for path in PAGES {
        for cookie in [None, Some("dialer_session=1999999999.x.b3Bz")] {
            let (status, headers, body) = send(&f.app, get(path, cookie)).await;
            assert_eq!(status, StatusCode::SEE_OTHER, "{path}");
            assert_eq!(
                headers.get(header::LOCATION).expect("location"),
                "/login",
                "{path}"
            );
            assert!(
                !body.contains("Campa") && !body.contains("+1212"),
                "{path}: {body}"
            );
        }
    }
    for path in [
        "/campaigns/Campa%C3%B1a%20Optimizada/pause",
        "/dnc",
        "/logout",
    ] {
        let (status, _, _) = send(&f.app, post(path, None, &[("number", "+12125550199")])).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{path}");
    }
    let (_, _, login) = send(&f.app, get("/login", None)).await;
    assert!(!login.contains("Campa"), "{login}");
    // nothing changed
    let paused =
        f.db.read_blocking(|s| s.require_campaign("Campaña Optimizada").map(|c| c.paused))
            .expect("read");
    assert!(!paused);
    assert!(
        f.db.read_blocking(|s| s.dnc_list())
            .expect("dnc")
            .is_empty()
    );
}

#[tokio::test]
async fn the_api_wants_the_bearer_token() {
    let f = fixture();
    for path in [
        "/api/campaigns",
        "/api/campaigns/Campa%C3%B1a%20Optimizada/plan",
    ] {
        for auth in [None, Some("Bearer wrong-token-0123456789"), Some(TOKEN)] {
            let mut r = Request::get(path);
            if let Some(a) = auth {
                r = r.header(header::AUTHORIZATION, a);
            }
            let (status, _, body) = send(&f.app, r.body(Body::empty()).expect("req")).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {auth:?}");
            assert!(!body.contains("Campa"), "{body}");
        }
        // a session cookie is not an API credential
        let (session, _) = sign_in(&f.app).await;
        let (status, _, _) = send(&f.app, get(path, Some(&session))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let r = Request::get("/api/campaigns/Campa%C3%B1a%20Optimizada/plan")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .expect("req");
    let (status, _, body) = send(&f.app, r).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rows: serde_json::Value = serde_json::from_str(&body).expect("json");
    let row = &rows[0];
    let keys: Vec<&str> = row
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 9, "the SPEC §5.4 keys exactly: {keys:?}");
    assert_eq!(row["contact"], "ann-1");
    assert_eq!(row["reason"], "due");
    let r = Request::get("/api/campaigns/nope/plan")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .expect("req");
    assert_eq!(send(&f.app, r).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_wrong_password_or_a_missing_login_csrf_signs_nobody_in() {
    let f = fixture();
    let (_, headers, html) = send(&f.app, get("/login", None)).await;
    let login_cookie = cookies(&headers).join("; ");
    let csrf = hidden_csrf(&html);
    for (cookie, form) in [
        (
            Some(login_cookie.as_str()),
            vec![("password", "wrong"), ("csrf", csrf.as_str())],
        ),
        (None, vec![("password", TOKEN), ("csrf", csrf.as_str())]),
        (
            Some(login_cookie.as_str()),
            vec![("password", TOKEN), ("csrf", "forged")],
        ),
    ] {
        let (status, headers, _) = send(&f.app, post("/login", cookie, &form)).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let to = headers
            .get(header::LOCATION)
            .expect("location")
            .to_str()
            .expect("ascii");
        assert!(to.starts_with("/login?error"), "{to}");
        assert!(
            cookies(&headers)
                .iter()
                .all(|c| !c.starts_with(auth::SESSION_COOKIE))
        );
    }
}

#[tokio::test]
async fn signed_in_pages_show_the_campaign_its_plan_and_a_contact() {
    let f = fixture();
    let (session, _) = sign_in(&f.app).await;
    let (status, headers, overview) = send(&f.app, get("/", Some(&session))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(overview.contains("Campaña Optimizada"), "{overview}");
    assert!(
        headers
            .get(header::CONTENT_SECURITY_POLICY)
            .is_some_and(|v| v.to_str().is_ok_and(|v| v.contains("script-src 'self'")))
    );
    let (status, _, page) = send(
        &f.app,
        get(
            "/campaigns/Campa%C3%B1a%20Optimizada?reason=due",
            Some(&session),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for part in [
        "ann-1",
        "Attempts and answers per hour",
        "Outcome funnel",
        "America/New_York",
        "<svg",
    ] {
        assert!(page.contains(part), "{part}");
    }
    let (status, _, contact) = send(&f.app, get("/contacts/1", Some(&session))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        contact.contains("+12125550101") && contact.contains("Not called yet"),
        "{contact}"
    );
    let (status, headers, csv) = send(
        &f.app,
        get(
            "/campaigns/Campa%C3%B1a%20Optimizada/contacts.csv",
            Some(&session),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_DISPOSITION]
            .to_str()
            .expect("ascii")
            .contains("attachment")
    );
    assert!(
        csv.starts_with("campaign,contact,name,phone,timezone,state"),
        "{csv}"
    );
    assert!(csv.contains("ann-1,Ann,+12125550101"), "{csv}");
    let (status, _, _) = send(&f.app, get("/campaigns/nope", Some(&session))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn actions_need_the_session_csrf_token() {
    let f = fixture();
    let (session, csrf) = sign_in(&f.app).await;
    let pause = "/campaigns/Campa%C3%B1a%20Optimizada/pause";
    for bad in ["", "forged"] {
        let (status, _, _) = send(&f.app, post(pause, Some(&session), &[("csrf", bad)])).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _, _) = send(
            &f.app,
            post(
                "/dnc",
                Some(&session),
                &[("csrf", bad), ("number", "+12125550101")],
            ),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let paused = |db: &Db| {
        db.read_blocking(|s| s.require_campaign("Campaña Optimizada").map(|c| c.paused))
            .expect("read")
    };
    assert!(!paused(&f.db));
    assert!(
        f.db.read_blocking(|s| s.dnc_list())
            .expect("dnc")
            .is_empty()
    );

    let (status, _, _) = send(&f.app, post(pause, Some(&session), &[("csrf", &csrf)])).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(paused(&f.db));
    let resume = "/campaigns/Campa%C3%B1a%20Optimizada/resume";
    send(&f.app, post(resume, Some(&session), &[("csrf", &csrf)])).await;
    assert!(!paused(&f.db));

    let (status, _, body) = send(
        &f.app,
        post(
            "/dnc",
            Some(&session),
            &[("csrf", &csrf), ("number", "(212) 555-0101")],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("+12125550101 added"), "{body}");
    let dnc = f.db.read_blocking(|s| s.dnc_list()).expect("dnc");
    assert_eq!(dnc[0].0, "+12125550101");
    assert_eq!(dnc[0].1, "dashboard");
    let (status, _, body) = send(
        &f.app,
        post(
            "/dnc",
            Some(&session),
            &[("csrf", &csrf), ("number", "(212) 555-O1O1")],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // signing out ends the session's cookie
    let (status, headers, _) =
        send(&f.app, post("/logout", Some(&session), &[("csrf", &csrf)])).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        cookies(&headers)
            .iter()
            .any(|c| c == &format!("{}=", auth::SESSION_COOKIE))
    );
}

#[tokio::test]
async fn the_live_stream_sends_the_cards_again_when_they_change() {
    let f = fixture();
    let (session, _) = sign_in(&f.app).await;
    let res = f
        .app
        .clone()
        .oneshot(get("/events", Some(&session)))
        .await
        .expect("response");
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    let mut seen = String::new();
    let mut next_event = async || loop {
        let frame = body.frame().await.expect("stream open").expect("frame");
        if let Some(data) = frame.data_ref() {
            seen.push_str(&String::from_utf8_lossy(data));
            if let Some(end) = seen.find("\n\n") {
                let event: String = seen.drain(..end + 2).collect();
                if event.contains("event: campaigns") {
                    return event;
                }
            }
        }
    };
    let first = next_event().await;
    assert!(first.contains("\"open\":1"), "{first}");
    f.db.write_blocking(|tx| tx.set_paused("Campaña Optimizada", true, now()))
        .expect("pause");
    let second = next_event().await;
    assert!(second.contains("\"state\":\"paused\""), "{second}");
}

#[test]
fn a_config_with_no_credentials_serves_no_dashboard() {
    let config = Config::parse(Path::new("d.toml"), "", &Env::default()).expect("config");
    assert!(
        not_served_because(&config.dashboard).is_some_and(|w| w.contains("DIALER_DASHBOARD_TOKEN"))
    );
    let off = Config::parse(
        Path::new("d.toml"),
        "[dashboard]\nenabled = false\ntoken = \"0123456789abcdef\"\n",
        &Env::default(),
    )
    .expect("config");
    assert!(not_served_because(&off.dashboard).is_some_and(|w| w.contains("enabled = false")));
}
