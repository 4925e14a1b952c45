//! A campaign's page and a contact's page, and what an operator can do from them: pause or
//! resume a campaign, add a number to the DNC list (POST forms with the session's CSRF token,
//! through the same store writes as `dialer campaign pause` and `dialer dnc add`), and download
//! the CSV exports of SPEC §8 (streamed, cells neutralised as `report export csv` does).

use std::io::Write;

use axum::extract::{Form, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use bytes_channel::ChannelWriter;
use serde::Deserialize;

use super::pages::{self, CampaignPage};
use super::view::{self, PLAN_PAGE_ROWS};
use super::{AppState, CsrfForm, PageError, Signed, auth, csrf_refused};
use crate::campaign::model::Content;
use crate::campaign::phone;
use crate::decision::Loaded;
use crate::report::{self, Cells, ExportCampaign};
use crate::store::{AttemptFilter, StoreError};

#[derive(Deserialize)]
pub struct PlanFilter {
    reason: Option<String>,
}

pub async fn campaign_page(
    State(state): State<AppState>,
    Signed(session): Signed,
    Path(name): Path<String>,
    Query(filter): Query<PlanFilter>,
) -> Result<Response, PageError> {
    let i = state.inner.clone();
    let now = i.clock.now();
    let reason = filter.reason.filter(|r| !r.is_empty());
    let db = i.db.clone();
    let data = db
        .read(move |store| {
            let Some(row) = store.campaign(&name)? else {
                return Ok::<_, StoreError>(None);
            };
            let l = Loaded::load(row, i.default_timezone)?;
            let card = view::card(store, &l, i.daily_cap, now)?;
            let charts = view::charts(store, &l, i.daily_cap, now)?;
            let plan = view::plan(
                store,
                &l,
                i.daily_cap,
                now,
                reason.as_deref(),
                PLAN_PAGE_ROWS,
            )?;
            Ok(Some((l, card, charts, plan, reason)))
        })
        .await?;
    let Some((l, card, charts, plan, reason)) = data else {
        return Ok((
            StatusCode::NOT_FOUND,
            Html(pages::not_found(&session, "No such campaign.").into_string()),
        )
            .into_response());
    };
    let page = pages::campaign(
        &session,
        &CampaignPage {
            card: &card,
            paused: l.row.paused,
            tz: l.campaign.rules.timezone,
            charts: &charts,
            plan: &plan,
            reason: reason.as_deref(),
        },
    );
    Ok(Html(page.into_string()).into_response())
}

pub async fn contact_page(
    State(state): State<AppState>,
    Signed(session): Signed,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let Ok(id) = id.parse::<i64>() else {
        return Ok(not_found(&session, "No such contact."));
    };
    let data = state
        .inner
        .db
        .read(move |store| {
            let Some(row) = store.contact(id)? else {
                return Ok::<_, StoreError>(None);
            };
            let campaign = store
                .campaign_by_id(row.campaign_id)?
                .map(|c| c.name)
                .unwrap_or_default();
            let history = store.contact_history(id)?;
            Ok(Some((campaign, row, history)))
        })
        .await?;
    Ok(match data {
        Some((campaign, row, history)) => {
            Html(pages::contact(&session, &campaign, &row, &history).into_string()).into_response()
        }
        None => not_found(&session, "No such contact."),
    })
}

fn not_found(session: &auth::Session, what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(pages::not_found(session, what).into_string()),
    )
        .into_response()
}

pub async fn pause(
    state: State<AppState>,
    signed: Signed,
    name: Path<String>,
    form: Form<CsrfForm>,
) -> Result<Response, PageError> {
    set_paused(state, signed, name, form, true).await
}

pub async fn resume(
    state: State<AppState>,
    signed: Signed,
    name: Path<String>,
    form: Form<CsrfForm>,
) -> Result<Response, PageError> {
    set_paused(state, signed, name, form, false).await
}

async fn set_paused(
    State(state): State<AppState>,
    Signed(session): Signed,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
    paused: bool,
) -> Result<Response, PageError> {
    if !auth::csrf_matches(&session.csrf, &form.csrf) {
        return Ok(csrf_refused());
    }
    let now = state.inner.clock.now();
    let n = name.clone();
    let changed = state
        .inner
        .db
        .write(move |tx| match tx.set_paused(&n, paused, now) {
            Err(StoreError::NoCampaign(_)) => Ok(None),
            other => other.map(Some),
        })
        .await?;
    if changed.is_none() {
        return Ok(not_found(&session, "No such campaign."));
    }
    tracing::info!(campaign = %name, user = %session.user, paused, "dashboard: campaign {}", if paused { "paused" } else { "resumed" });
    Ok(Redirect::to(&format!("/campaigns/{}", pages::segment(&name))).into_response())
}

#[derive(Deserialize)]
pub struct DncForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    number: String,
}

pub async fn dnc_add(
    State(state): State<AppState>,
    Signed(session): Signed,
    Form(form): Form<DncForm>,
) -> Result<Response, PageError> {
    if !auth::csrf_matches(&session.csrf, &form.csrf) {
        return Ok(csrf_refused());
    }
    let region = state.inner.default_region;
    let number = match phone::normalize(&form.number, &region) {
        Ok(n) => n,
        Err(e) => {
            let page = pages::message(&session, "Not added", &e.to_string(), "/");
            return Ok((StatusCode::BAD_REQUEST, Html(page.into_string())).into_response());
        }
    };
    let now = state.inner.clock.now();
    let n = number.clone();
    let added = state
        .inner
        .db
        .write(move |tx| tx.dnc_add(&[n], "dashboard", now))
        .await?;
    tracing::info!(user = %session.user, "dashboard: number added to the DNC list");
    let text = if added > 0 {
        format!("{number} added to the do-not-call list: it is never called again.")
    } else {
        format!("{number} was already on the do-not-call list.")
    };
    Ok(
        Html(pages::message(&session, "Do-not-call list", &text, "/").into_string())
            .into_response(),
    )
}

pub async fn attempts_csv(
    State(state): State<AppState>,
    _: Signed,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let id = match campaign_id(&state, &name).await? {
        Some(id) => id,
        None => return Ok((StatusCode::NOT_FOUND, "no such campaign\n").into_response()),
    };
    let filter = AttemptFilter {
        campaign_id: Some(id),
        since: None,
        until: None,
    };
    Ok(stream_csv(&state, &name, "attempts", move |store, w| {
        report::write_attempts_as(store, &filter, Cells::Neutralised, w, |_| {})
    }))
}

pub async fn contacts_csv(
    State(state): State<AppState>,
    _: Signed,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let tz = state.inner.default_timezone;
    let n = name.clone();
    let campaign = state
        .inner
        .db
        .read(move |store| {
            let Some(row) = store.campaign(&n)? else {
                return Ok::<_, StoreError>(None);
            };
            let l = Loaded::load(row, tz)?;
            Ok(Some(ExportCampaign {
                id: l.row.id,
                name: l.row.name.clone(),
                timezone: l.campaign.rules.timezone.name().to_owned(),
                gather_steps: match &l.campaign.content {
                    Content::Script(s) => s.gather_steps().into_iter().map(str::to_owned).collect(),
                    Content::Draft | Content::Message(_) => Vec::new(),
                },
            }))
        })
        .await?;
    let Some(campaign) = campaign else {
        return Ok((StatusCode::NOT_FOUND, "no such campaign\n").into_response());
    };
    Ok(stream_csv(&state, &name, "contacts", move |store, w| {
        report::write_contacts(
            store,
            std::slice::from_ref(&campaign),
            None,
            None,
            Cells::Neutralised,
            w,
            |_| {},
        )
    }))
}

async fn campaign_id(state: &AppState, name: &str) -> Result<Option<i64>, StoreError> {
    let name = name.to_owned();
    state
        .inner
        .db
        .read(move |store| Ok(store.campaign(&name)?.map(|c| c.id)))
        .await
}

/// Streams a CSV export written on a read connection (blocking pool) to the response body.
fn stream_csv(
    state: &AppState,
    name: &str,
    what: &str,
    export: impl FnOnce(&crate::store::Store, &mut dyn Write) -> Result<u64, report::ReportError>
    + Send
    + 'static,
) -> Response {
    let (writer, body) = ChannelWriter::new();
    let db = state.inner.db.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = writer;
        let result = db.read_blocking(|store| {
            export(store, &mut w).map_err(|e| StoreError::Task(e.to_string()))
        });
        match result.and_then(|_| w.flush().map_err(|e| StoreError::Task(e.to_string()))) {
            Ok(()) => {}
            Err(e) => {
                tracing::error!(error = %e, "dashboard: CSV export failed");
                w.fail();
            }
        }
    });
    let file = format!("{}-{what}.csv", file_stem(name));
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// A file name made of the campaign name's safe characters.
fn file_stem(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.trim_matches('-').is_empty() {
        "campaign".into()
    } else {
        s
    }
}

/// A `Write` whose bytes become a streamed response body.
mod bytes_channel {
    use std::io::Write;

    use axum::body::Body;
    use tokio::sync::mpsc;

    const CHUNK: usize = 64 * 1024;

    type Chunk = Result<Vec<u8>, std::io::Error>;

    pub struct ChannelWriter {
        tx: mpsc::Sender<Chunk>,
        buf: Vec<u8>,
    }

    impl ChannelWriter {
        pub fn new() -> (ChannelWriter, Body) {
            let (tx, rx) = mpsc::channel::<Chunk>(4);
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|chunk| (chunk, rx))
            });
            (
                ChannelWriter {
                    tx,
                    buf: Vec::with_capacity(CHUNK),
                },
                Body::from_stream(stream),
            )
        }

        /// Ends the body with an error (the client sees a cut download, not a short file).
        pub fn fail(self) {
            let _ = self
                .tx
                .blocking_send(Err(std::io::Error::other("export failed")));
        }
    }

    impl Write for ChannelWriter {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.buf.extend_from_slice(data);
            if self.buf.len() >= CHUNK {
                self.flush()?;
            }
            Ok(data.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            if self.buf.is_empty() {
                return Ok(());
            }
            let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
            self.tx
                .blocking_send(Ok(chunk))
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
        }
    }
}
