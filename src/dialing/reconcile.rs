//! Reconciliation (SPEC §5.5): attempts left open — by a crash, a lost callback or a create whose
//! answer never came — are settled from the carrier's own record: by SID with Calls fetch,
//! without one with Calls list by `To` and start date; else the attempt ends `failed` with
//! `dial interrupted`.

use chrono::{DateTime, Duration as ChronoDuration, Utc};

use crate::campaign::model::CampaignRules;
use crate::shared::Shared;
use crate::store::{AttemptRow, EndedCall, StoreError, is_final_status};
use crate::twilio::{Call, Client, Error as TwilioError, ListCalls};

/// Settles every open attempt; returns how many ended. Attempts still open afterwards (their
/// call goes on, or the carrier could not answer) hold their in-flight slot until they end.
pub async fn reconcile_open(shared: &Shared, client: &Client) -> Result<usize, StoreError> {
    let open = shared.db.read(|db| db.open_attempts()).await?;
    let mut ended = 0;
    for a in open {
        shared.in_flight.adopt(a.id, a.campaign_id);
        let s = shared.clone();
        let cid = a.campaign_id;
        let rules = shared
            .db
            .read(move |db| s.campaign(db, cid).map(|c| c.rules.clone()))
            .await?;
        if reconcile_one(shared, client, a, &rules).await? {
            ended += 1;
        }
    }
    Ok(ended)
}

fn parse_rfc2822(s: Option<&str>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc2822(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

/// The calls to `phone` the carrier created since `since` (5 s of clock skew allowed), oldest
/// first: `GET /Calls.json?To=…` (newest first, one page of 1,000), filtered by `DateCreated`.
/// No `StartTime>=` filter: a call still `queued` has no start time yet, Twilio leaves it out of
/// such a list, and an attempt whose call is about to ring would be ended "dial interrupted" —
/// and its contact dialed again.
pub(crate) async fn calls_since(
    client: &Client,
    phone: &str,
    since: DateTime<Utc>,
) -> Result<Vec<Call>, TwilioError> {
    let filter = ListCalls {
        to: Some(phone.to_owned()),
        start_time_on_or_after: None,
    };
    let calls = client.list_calls(&filter).await?;
    let since = since - ChronoDuration::seconds(5);
    let mut calls: Vec<Call> = calls
        .into_iter()
        .filter(|c| parse_rfc2822(c.date_created.as_deref()).is_some_and(|t| t >= since))
        .collect();
    calls.sort_by_key(|c| parse_rfc2822(c.date_created.as_deref()));
    Ok(calls)
}

/// Settles one attempt; `true` if it ended. A carrier that cannot answer now is not an error
/// (the next round tries again); a store failure is.
pub async fn reconcile_one(
    shared: &Shared,
    client: &Client,
    a: AttemptRow,
    rules: &CampaignRules,
) -> Result<bool, StoreError> {
    // candidates: the call itself (by SID), or the calls to the number created since the attempt
    let call: Result<Vec<Call>, TwilioError> = match &a.call_sid {
        Some(sid) => match client.fetch_call(sid).await {
            Ok(c) => Ok(vec![c]),
            Err(e) if e.status() == Some(404) => Ok(Vec::new()),
            Err(e) => Err(e),
        },
        None => calls_since(client, &a.phone, a.started_at).await,
    };
    let call = match call {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(attempt = a.id, error = %e, "cannot reconcile now; will try again");
            return Ok(false);
        }
    };
    let rules = rules.clone();
    let id = a.id;
    let now = shared.clock.now();
    let ended = shared
        .db
        .write(move |db| {
            // a listed call already bound to another attempt is not this attempt's call
            let call = match a.call_sid {
                Some(_) => call.into_iter().next(),
                None => {
                    let mut free = None;
                    for c in call {
                        if !db.call_sid_bound(&c.sid)? {
                            free = Some(c);
                            break;
                        }
                    }
                    free
                }
            };
            reconcile_with(db, id, a.call_sid.is_none(), call, &rules, now)
        })
        .await?;
    if ended {
        shared.in_flight.ended(id);
    }
    Ok(ended)
}

/// Ends (or binds) the attempt from the carrier's record of its call; none = never created.
fn reconcile_with(
    db: &crate::store::Tx<'_>,
    id: i64,
    unbound: bool,
    call: Option<Call>,
    rules: &CampaignRules,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    match call {
        Some(call) => {
            if unbound && !db.bind_call_sid(id, &call.sid)? {
                return Ok(false);
            }
            let status = call.status.as_deref().unwrap_or("queued");
            if !is_final_status(status) {
                return Ok(false);
            }
            let end = EndedCall {
                status,
                answered_by: call.answered_by.as_deref(),
                duration: call.duration.as_deref().and_then(|d| d.parse().ok()),
                ..Default::default()
            };
            let ended = db.end_attempt(id, rules, &end, now)?.is_some();
            if ended {
                tracing::info!(attempt = id, status, "reconciled from the carrier");
            }
            Ok(ended)
        }
        None => {
            let end = EndedCall {
                status: "failed",
                error_message: Some("dial interrupted"),
                ..Default::default()
            };
            Ok(db.end_attempt(id, rules, &end, now)?.is_some())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::clock::{Clock, SystemClock};
    use crate::config::Secret;
    use crate::simulator::{BehaviorKind, Rule, SimConfig, Simulator};
    use crate::store::{Db, NewContact, Store};
    use crate::twilio::{ClientOptions, CreateCall};

    const CAMPAIGN: &str =
        r#"{"name": "r", "message": "hi", "max_retries": 3, "retry_delays": {"default": "1h"}}"#;

    fn contact(phone: &str) -> NewContact {
        NewContact {
            phone: phone.into(),
            ext_id: None,
            name: None,
            zones: None,
            fields: "{}".into(),
        }
    }

    /// A simulator in this process and a client for it (the simulator must outlive the test).
    async fn carrier(config: SimConfig) -> (Simulator, Client) {
        let sim = Simulator::start(config, Arc::new(SystemClock))
            .await
            .expect("simulator");
        let client = Client::new(
            sim.base_url(),
            sim.account_sid(),
            sim.auth_token(),
            ClientOptions::default(),
        )
        .expect("client");
        (sim, client)
    }

    async fn create(client: &Client, to: &str) -> String {
        let req = CreateCall {
            to: to.into(),
            from: "+15005550006".into(),
            url: "http://127.0.0.1:1/voice".into(),
            status_callback: "http://127.0.0.1:1/status".into(),
            timeout_secs: 30,
            time_limit_secs: 60,
            machine_detection: None,
        };
        client.create_call(&req).await.expect("create").sid
    }

    #[tokio::test]
    async fn open_attempts_are_settled_from_the_carrier_record() {
        let busy = "+12125550101";
        let (_sim, client) = carrier(SimConfig {
            time_scale: 0.001,
            rules: vec![Rule {
                pattern: "*".into(),
                behavior: BehaviorKind::Busy,
                digits: vec![],
                speech: vec![],
                replies: vec![],
            }],
            ..SimConfig::default()
        })
        .await;
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = SystemClock;
        let db = Db::open(&dir.path().join("r.db")).expect("store");
        let now = clock.now();
        db.write_blocking(move |tx| {
            let (cid, _) = tx.upsert_campaign("r", CAMPAIGN, false, now)?;
            tx.import_contacts(cid, "r.csv", &[contact(busy), contact("+12125550102")], now)
        })
        .expect("contacts");
        let rules = crate::campaign::json::parse(
            CAMPAIGN,
            crate::campaign::json::Defaults {
                timezone: chrono_tz::UTC,
            },
        )
        .expect("valid")
        .campaign
        .rules;

        // attempt 1 to the number: its call is known and already ended
        let now = clock.now();
        let first = db
            .write(move |tx| tx.claim_attempt(1, 0, now))
            .await
            .expect("claim")
            .expect("claimed");
        let first_sid = create(&client, busy).await;
        let (sid, r) = (first_sid.clone(), rules.clone());
        db.write(move |tx| {
            assert!(tx.bind_call_sid(first.id, &sid)?);
            let end = EndedCall {
                status: "busy",
                ..Default::default()
            };
            tx.end_attempt(first.id, &r, &end, now)
        })
        .await
        .expect("end");
        // a second later (dates have whole seconds), attempt 2 to the same number "died
        // mid-request": the call exists, its SID was never stored
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let now = clock.now();
        let second = db
            .write(move |tx| {
                tx.conn()
                    .execute("UPDATE contacts SET next_attempt_at = 0 WHERE id = 1", [])?;
                tx.claim_attempt(1, 1, now)
            })
            .await
            .expect("claim")
            .expect("claimed");
        let second_sid = create(&client, busy).await;
        // attempt 3 to another number: no call was ever created
        let third = db
            .write(move |tx| tx.claim_attempt(2, 0, now))
            .await
            .expect("claim")
            .expect("claimed");

        // the busy call of attempt 2 ends on the carrier's side first
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !client
            .fetch_call(&second_sid)
            .await
            .expect("fetch")
            .status
            .is_some_and(|s| is_final_status(&s))
        {
            assert!(std::time::Instant::now() < deadline, "call never ended");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let url = url::Url::parse("http://127.0.0.1:1").expect("url");
        let state = Shared::new(
            db,
            &url,
            Secret::new("x"),
            chrono_tz::UTC,
            Arc::new(SystemClock),
        );
        assert_eq!(reconcile_open(&state, &client).await.expect("reconcile"), 2);
        assert_eq!(state.in_flight.total(), 0, "every slot freed");
        let db = Store::open_reader(state.db.path().expect("a SQLite database")).expect("reader");
        let a2 = db.attempt(second.id).expect("read").expect("attempt 2");
        assert_eq!(
            a2.call_sid.as_deref(),
            Some(second_sid.as_str()),
            "the unbound call, not attempt 1's"
        );
        assert_eq!(a2.status, "busy");
        let (status, error): (String, String) = db
            .conn()
            .query_row(
                "SELECT status, error_message FROM attempts WHERE id = ?1",
                [third.id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("attempt 3");
        assert_eq!(
            (status.as_str(), error.as_str()),
            ("failed", "dial interrupted")
        );
        assert_eq!(db.count_open_attempts(None).expect("count"), 0);
    }

    /// A call still `queued` has no start time: a `StartTime>=` list left it out, so the restart
    /// ended its attempt "dial interrupted" while the call went on to ring (and the contact could
    /// be dialed again). Found by the crash test.
    #[tokio::test]
    async fn a_queued_call_without_a_start_time_is_linked_not_interrupted() {
        let (_sim, client) = carrier(SimConfig {
            // ten real seconds per simulated one: the call stays queued for seconds
            time_scale: 10.0,
            ..SimConfig::default()
        })
        .await;
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("q.db")).expect("store");
        let now = SystemClock.now();
        let attempt = db
            .write(move |tx| {
                let (cid, _) = tx.upsert_campaign("r", CAMPAIGN, false, now)?;
                tx.import_contacts(cid, "r.csv", &[contact("+12125550109")], now)?;
                tx.claim_attempt(1, 0, now)
            })
            .await
            .expect("claim")
            .expect("claimed");
        // the create went out, the process died before the SID was stored
        let sid = create(&client, "+12125550109").await;
        let queued = client.fetch_call(&sid).await.expect("fetch");
        assert_eq!(queued.status.as_deref(), Some("queued"));

        let url = url::Url::parse("http://127.0.0.1:1").expect("url");
        let state = Shared::new(
            db,
            &url,
            Secret::new("x"),
            chrono_tz::UTC,
            Arc::new(SystemClock),
        );
        assert_eq!(reconcile_open(&state, &client).await.expect("reconcile"), 0);
        let row = Store::open_reader(state.db.path().expect("a SQLite database"))
            .expect("reader")
            .attempt(attempt.id)
            .expect("read")
            .expect("attempt");
        assert_eq!(
            row.call_sid.as_deref(),
            Some(sid.as_str()),
            "linked to its call"
        );
        assert!(row.ended_at.is_none(), "still open: the call goes on");
    }
}
