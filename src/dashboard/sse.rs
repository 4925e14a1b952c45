//! `GET /events`: the live stream (server-sent events). Every [`super::LIVE_POLL`] the cards of
//! every campaign are read again; when they changed, one `campaigns` event carries them all as
//! JSON (`live.js` updates the page). Readers only: the stream never writes.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;

use super::view::{self, CampaignCard};
use super::{AppState, PageError, Signed};
use crate::decision::load_campaigns;
use crate::store::StoreError;

/// Every campaign's card, now.
pub async fn cards(state: &AppState) -> Result<Vec<CampaignCard>, StoreError> {
    let tz = state.inner.default_timezone;
    let cap = state.inner.daily_cap;
    let now = state.inner.clock.now();
    state
        .inner
        .db
        .read(move |store| {
            load_campaigns(store, tz, None)?
                .iter()
                .map(|l| view::card(store, l, cap, now))
                .collect()
        })
        .await
}

pub async fn events(
    State(state): State<AppState>,
    _: Signed,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, PageError> {
    let first = cards(&state).await?;
    let stream = futures_util::stream::unfold(
        (state, Some(first), None::<Vec<CampaignCard>>),
        |(state, mut pending, mut last)| async move {
            loop {
                if let Some(now) = pending.take()
                    && last.as_ref() != Some(&now)
                {
                    let event = Event::default()
                        .event("campaigns")
                        .json_data(&now)
                        .unwrap_or_else(|_| Event::default().comment("unserializable"));
                    last = Some(now);
                    return Some((Ok(event), (state, None, last)));
                }
                tokio::time::sleep(state.inner.poll).await;
                match cards(&state).await {
                    Ok(c) => pending = Some(c),
                    Err(e) => tracing::warn!(error = %e, "dashboard: live stream read failed"),
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
