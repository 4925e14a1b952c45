//! The JSON API for scripts (`Authorization: Bearer <token>`): `GET /api/campaigns` (every
//! campaign's card) and `GET /api/campaigns/{name}/plan[?reason=R]` (the rows of `dialer plan
//! --format json`, SPEC §5.4).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::view::{self, CampaignCard};
use super::{AppState, Bearer, sse};
use crate::decision::{Loaded, PlanRow};
use crate::store::StoreError;

fn failure(e: StoreError) -> Response {
    match e {
        StoreError::NoCampaign(_) => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": e.to_string()})),
        )
            .into_response(),
        other => {
            tracing::error!(error = %other, "dashboard API request failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(serde_json::json!({"error": "internal error"})),
            )
                .into_response()
        }
    }
}

pub async fn campaigns(State(state): State<AppState>, _: Bearer) -> Response {
    match sse::cards(&state).await {
        Ok(cards) => Json::<Vec<CampaignCard>>(cards).into_response(),
        Err(e) => failure(e),
    }
}

#[derive(Deserialize)]
pub struct PlanQuery {
    reason: Option<String>,
}

pub async fn plan(
    State(state): State<AppState>,
    _: Bearer,
    Path(name): Path<String>,
    Query(q): Query<PlanQuery>,
) -> Response {
    let i = state.inner.clone();
    let now = i.clock.now();
    let db = i.db.clone();
    let rows = db
        .read(move |store| {
            let l = Loaded::load(store.require_campaign(&name)?, i.default_timezone)?;
            let reason = q.reason.as_deref().filter(|r| !r.is_empty());
            Ok::<_, StoreError>(view::plan(store, &l, i.daily_cap, now, reason, usize::MAX)?.rows)
        })
        .await;
    match rows {
        Ok(rows) => Json::<Vec<PlanRow>>(rows).into_response(),
        Err(e) => failure(e),
    }
}
