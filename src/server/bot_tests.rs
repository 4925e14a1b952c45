//! Handler tests of the bot step: signed requests through `router(state).oneshot`, a real SQLite
//! file, and the fake bot served on loopback in the test's runtime.

use std::sync::Arc;

use axum::http::StatusCode;
use tokio_util::sync::CancellationToken;

use super::tests::{SID, TOKEN, now, reader, send, signed};
use crate::clock::FixedClock;
use crate::config::Secret;
use crate::shared::Shared;
use crate::simulator::fake_bot::{self, BotRequestLog, BotScript};
use crate::store::{Db, NewContact};

const OTHER_SID: &str = "CAffffffffffffffffffffffffffffffff";

struct BotFixture {
    _dir: tempfile::TempDir,
    state: Shared,
    /// Two attempts, on two contacts: `attempts[0]` has call `SID`, `attempts[1]` `OTHER_SID`.
    attempts: [i64; 2],
    bot_base: String,
    _stop: tokio_util::sync::DropGuard,
}

async fn bot_fixture(replies: &str) -> BotFixture {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let bot_base = format!("http://{}", listener.local_addr().expect("addr"));
    let script: BotScript =
        serde_json::from_str(&format!("{{\"replies\": [{replies}]}}")).expect("script");
    let stop = CancellationToken::new();
    tokio::spawn(fake_bot::serve(listener, script, stop.clone()));
    let campaign = format!(
        r#"{{"name": "b", "calling_hours_start": "00:00", "calling_hours_end": "24:00",
            "script": {{"start": "talk", "steps": {{
              "talk": {{"bot": {{"url": "{bot_base}/webhooks/rest/webhook", "greeting": "/greet",
                                 "fallback": "agent"}}}},
              "agent": {{"say": "Agent.", "dial": "+34600123456"}}
            }}}}}}"#
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(&dir.path().join("t.db")).expect("store");
    let attempts = db
        .write_blocking(move |tx| {
            let (cid, _) = tx.upsert_campaign("b", &campaign, false, now())?;
            let contact = |phone: &str| NewContact {
                phone: phone.into(),
                ext_id: None,
                name: Some("Ann".into()),
                zones: None,
                fields: r#"{"plan": "gold"}"#.into(),
            };
            tx.import_contacts(
                cid,
                "c.csv",
                &[contact("+12125550101"), contact("+12125550102")],
                now(),
            )?;
            let mut ids = [0; 2];
            for (i, (contact, sid)) in [(1, SID), (2, OTHER_SID)].into_iter().enumerate() {
                let a = tx.claim_attempt(contact, 0, now())?.expect("claimed");
                assert!(tx.bind_call_sid(a.id, sid)?);
                ids[i] = a.id;
            }
            Ok::<_, crate::store::StoreError>(ids)
        })
        .expect("fixture");
    let url = url::Url::parse("https://dialer.example.com").expect("url");
    let state = Shared::new(
        db,
        &url,
        Secret::new(TOKEN),
        chrono_tz::UTC,
        Arc::new(FixedClock(now())),
    );
    BotFixture {
        _dir: dir,
        state,
        attempts,
        bot_base,
        _stop: stop.drop_guard(),
    }
}

impl BotFixture {
    async fn bot_log(&self) -> Vec<BotRequestLog> {
        reqwest::get(format!("{}/fake-bot/requests", self.bot_base))
            .await
            .expect("log")
            .json()
            .await
            .expect("json")
    }

    fn count(&self, sql: &str) -> i64 {
        reader(&self.state)
            .conn()
            .query_row(sql, [], |r| r.get(0))
            .expect(sql)
    }
}

#[tokio::test]
async fn a_turn_speaks_the_escaped_reply_and_a_repeated_delivery_asks_the_bot_once() {
    let f = bot_fixture(r#"{"texts": ["Hola <cliente> & bienvenido"]}, {"texts": ["¿Algo más?"]}"#)
        .await;
    let a = f.attempts[0];
    let (status, twiml) = send(
        &f.state,
        signed(
            &format!("/twilio/voice?attempt={a}"),
            &[("CallSid", SID)],
            Some(TOKEN),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{twiml}");
    assert!(
        twiml.contains("<Say>Hola &lt;cliente&gt; &amp; bienvenido</Say></Gather>"),
        "{twiml}"
    );
    let action = format!("/twilio/bot?attempt={a}&session=1");
    assert!(
        twiml.contains(&format!(
            "action=\"https://dialer.example.com{}\"",
            action.replace('&', "&amp;")
        )),
        "{twiml}"
    );
    let said = [
        ("CallSid", SID),
        ("SpeechResult", "quiero ayuda"),
        ("Confidence", "0.91"),
    ];
    let turn = || {
        let mut req = signed(&action, &said, Some(TOKEN));
        req.headers_mut().insert(
            "i-twilio-idempotency-token",
            "tok-1".parse().expect("header"),
        );
        req
    };
    let (status, first) = send(&f.state, turn()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(first.contains("<Say>¿Algo más?</Say>"), "{first}");
    let (status, again) = send(&f.state, turn()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(again.contains("<Say>¿Algo más?</Say>"), "{again}");
    let log = f.bot_log().await;
    assert_eq!(
        log.iter().map(|r| r.message.as_str()).collect::<Vec<_>>(),
        ["/greet", "quiero ayuda"],
        "the repeated delivery did not reach the bot"
    );
    assert_eq!(log[0].sender, SID);
    assert_eq!(
        log[0].metadata,
        serde_json::json!({"name": "Ann", "phone": "+12125550101", "plan": "gold"})
    );
    assert_eq!(f.count("SELECT count(*) FROM bot_turns"), 2);
    assert_eq!(
        f.count("SELECT count(*) FROM bot_turns WHERE confidence = 0.91"),
        1
    );
}

#[tokio::test]
async fn a_session_of_another_call_or_unsigned_turn_is_refused_and_changes_nothing() {
    let f = bot_fixture(r#"{"texts": ["Hola"]}"#).await;
    let [a, b] = f.attempts;
    let (status, _) = send(
        &f.state,
        signed(
            &format!("/twilio/voice?attempt={a}"),
            &[("CallSid", SID)],
            Some(TOKEN),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let turns = f.count("SELECT count(*) FROM bot_turns");
    let said = |sid| vec![("CallSid", sid), ("SpeechResult", "hola")];
    // attempt b's call posting to attempt a's conversation, and an unknown conversation
    for (path, sid) in [
        (format!("/twilio/bot?attempt={b}&session=1"), OTHER_SID),
        (format!("/twilio/bot?attempt={a}&session=99"), SID),
        (format!("/twilio/bot?attempt={a}&session=1"), OTHER_SID),
    ] {
        let (status, _) = send(&f.state, signed(&path, &said(sid), Some(TOKEN))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path} {sid}");
    }
    let (status, _) = send(
        &f.state,
        signed(
            &format!("/twilio/bot?attempt={a}&session=1"),
            &said(SID),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(f.count("SELECT count(*) FROM bot_turns"), turns);
    assert_eq!(
        f.bot_log().await.len(),
        1,
        "only the greeting reached the bot"
    );
}
