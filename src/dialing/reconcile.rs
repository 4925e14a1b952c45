//! Reconciliation (SPEC §5.5): attempts left open — by a crash, a lost callback or a create whose
//! answer never came — are settled from the carrier's own record: by SID with Calls fetch,
//! without one with Calls list by `To` and start date; else the attempt ends `failed` with
//! `dial interrupted`.

use chrono::{DateTime, Duration as ChronoDuration, Utc};

use crate::campaign::model::CampaignRules;
use crate::server::AppState;
use crate::store::{AttemptRow, EndedCall, is_final_status};
use crate::twilio::{Call, Client, Error as TwilioError, ListCalls};

/// Settles every open attempt; returns how many ended.
pub async fn reconcile_open(state: &AppState, client: &Client) -> usize {
    let s = state.clone();
    let open = tokio::task::spawn_blocking(move || s.db().open_attempts()).await;
    let Ok(Ok(open)) = open else { return 0 };
    let mut ended = 0;
    for a in open {
        let s = state.clone();
        let cid = a.campaign_id;
        let rules = tokio::task::spawn_blocking(move || {
            let db = s.db();
            s.campaign(&db, cid).map(|c| c.rules.clone()).ok()
        })
        .await
        .ok()
        .flatten();
        let Some(rules) = rules else { continue };
        if reconcile_one(state, client, a, &rules).await {
            ended += 1;
        }
    }
    ended
}

fn parse_rfc2822(s: Option<&str>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc2822(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

/// Settles one attempt; `true` if it ended.
pub async fn reconcile_one(
    state: &AppState,
    client: &Client,
    a: AttemptRow,
    rules: &CampaignRules,
) -> bool {
    let call: Result<Option<Call>, TwilioError> = match &a.call_sid {
        Some(sid) => match client.fetch_call(sid).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        },
        None => {
            let filter = ListCalls {
                to: Some(a.phone.clone()),
                start_time_on_or_after: Some(a.started_at.date_naive()),
            };
            client.list_calls(&filter).await.map(|calls| {
                let since = a.started_at - ChronoDuration::seconds(5);
                calls
                    .into_iter()
                    .find(|c| parse_rfc2822(c.date_created.as_deref()).is_some_and(|t| t >= since))
            })
        }
    };
    let call = match call {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(attempt = a.id, error = %e, "cannot reconcile now; will try again");
            return false;
        }
    };
    let state2 = state.clone();
    let rules = rules.clone();
    let id = a.id;
    tokio::task::spawn_blocking(move || {
        let now = state2.clock.now();
        let mut db = state2.db();
        match call {
            Some(call) => {
                if a.call_sid.is_none() && !db.bind_call_sid(id, &call.sid).unwrap_or(false) {
                    return false;
                }
                let status = call.status.as_deref().unwrap_or("queued");
                if !is_final_status(status) {
                    return false;
                }
                let end = EndedCall {
                    status,
                    answered_by: call.answered_by.as_deref(),
                    duration: call.duration.as_deref().and_then(|d| d.parse().ok()),
                    ..Default::default()
                };
                let ended = db
                    .end_attempt(id, &rules, &end, now)
                    .ok()
                    .flatten()
                    .is_some();
                if ended {
                    tracing::info!(attempt = id, status, "reconciled from the carrier");
                }
                ended
            }
            None => {
                let end = EndedCall {
                    status: "failed",
                    error_message: Some("dial interrupted"),
                    ..Default::default()
                };
                db.end_attempt(id, &rules, &end, now)
                    .ok()
                    .flatten()
                    .is_some()
            }
        }
    })
    .await
    .unwrap_or(false)
}
