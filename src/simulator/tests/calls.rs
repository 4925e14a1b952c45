//! Call playback tests: callback sequences, the voice webhook, gathers, AMD, limits, determinism.

use std::time::Duration;

use serde_json::Value;

use super::*;

#[tokio::test]
async fn busy_number_sends_initiated_ringing_busy_in_sequence() {
    let mut c = config(1);
    c.rules = vec![rule("+1415555*", BehaviorKind::Busy, &[])];
    let w = world(c, &[]).await;
    let (_, body) = w.create("+14155550123", &[]).await;
    let sid = sid_of(&body);
    let hits = w.callbacks(&sid).await;
    let statuses: Vec<_> = hits
        .iter()
        .map(|h| h.get("CallStatus").unwrap_or(""))
        .collect();
    let sequence: Vec<_> = hits
        .iter()
        .map(|h| h.get("SequenceNumber").unwrap_or(""))
        .collect();
    assert_eq!(statuses, ["initiated", "ringing", "busy"]);
    assert_eq!(sequence, ["0", "1", "2"]);
    assert!(
        hits.iter().all(|h| h.signature_ok),
        "every callback is signed over its exact url: {hits:?}"
    );
    assert!(
        hits.iter()
            .all(|h| h.query == "attempt=1"
                && h.get("CallbackSource") == Some("call-progress-events"))
    );
    assert!(hits.iter().all(|h| {
        h.get("Timestamp")
            .is_some_and(|t| chrono::DateTime::parse_from_rfc2822(t).is_ok())
    }));
    let last = &hits[2];
    assert_eq!(
        (last.get("CallDuration"), last.get("SipResponseCode")),
        (Some("0"), Some("486"))
    );
    assert_eq!(
        last.get("Duration"),
        None,
        "Duration is only sent on completed"
    );
    assert_eq!(w.until_final(&sid).await["status"], "busy");
    assert!(
        w.hits(&sid, "/voice").is_empty(),
        "a busy call never fetches its Url"
    );
}

#[tokio::test]
async fn human_pressing_one_reaches_the_gather_action() {
    let mut c = config(1);
    c.rules = vec![rule("+14155550100", BehaviorKind::Human, &["1"])];
    let w = world(c, &[("/voice", GATHER_DOC), ("/gather", THANKS_DOC)]).await;
    let (_, body) = w.create("+14155550100", &[]).await;
    let sid = sid_of(&body);
    let hits = w.callbacks(&sid).await;
    let statuses: Vec<_> = hits
        .iter()
        .map(|h| h.get("CallStatus").unwrap_or(""))
        .collect();
    assert_eq!(
        statuses,
        ["initiated", "ringing", "in-progress", "completed"]
    );
    let voice = w.hits(&sid, "/voice");
    assert_eq!(voice.len(), 1);
    assert!(voice[0].signature_ok);
    assert_eq!(
        (voice[0].get("CallStatus"), voice[0].get("AnsweredBy")),
        (Some("in-progress"), None)
    );
    assert_eq!(voice[0].get("Direction"), Some("outbound-api"));
    let gather = w.hits(&sid, "/gather");
    assert_eq!(gather.len(), 1);
    assert_eq!(
        (gather[0].query.as_str(), gather[0].get("Digits")),
        ("step=confirm", Some("1"))
    );
    assert!(gather[0].signature_ok);
    let completed = &hits[3];
    let seconds: u64 = completed
        .get("CallDuration")
        .and_then(|d| d.parse().ok())
        .expect("CallDuration");
    // "Press one to confirm" (2 s) + pressing (1.3 s) + "Thank you, goodbye" (1.2 s).
    assert!((4..=6).contains(&seconds), "{seconds}");
    assert_eq!(completed.get("Duration"), Some("1"));
    let call = w.until_final(&sid).await;
    assert_eq!(call["status"], "completed");
    assert_eq!(call["duration"], seconds.to_string());
    assert!(call["end_time"].is_string() && call["start_time"].is_string());
}

#[tokio::test]
async fn machine_with_detect_message_end_is_announced_on_the_voice_request() {
    let mut c = config(1);
    c.rules = vec![rule("*", BehaviorKind::Machine, &[])];
    let w = world(c, &[("/voice", GATHER_DOC)]).await;
    let (_, body) = w
        .create(
            "+14155550100",
            &[("MachineDetection", "DetectMessageEnd"), ("Timeout", "60")],
        )
        .await;
    let sid = sid_of(&body);
    let voice = w.until_hit(&sid, "/voice", |_| true).await;
    assert_eq!(voice[0].get("AnsweredBy"), Some("machine_end_beep"));
    assert!(voice[0].signature_ok);
    let call = w.until_final(&sid).await;
    assert_eq!(
        (call["status"].as_str(), call["answered_by"].as_str()),
        (Some("completed"), Some("machine_end_beep"))
    );
    assert!(
        w.hits(&sid, "/gather").is_empty(),
        "a machine never answers a gather"
    );
}

#[tokio::test]
async fn a_short_timeout_turns_a_slow_human_into_no_answer() {
    let mut c = config(1);
    c.rules = vec![rule("*", BehaviorKind::Human, &["1"])];
    let w = world(c, &[("/voice", THANKS_DOC)]).await;
    // Humans pick up after 3 s at the earliest.
    let (_, body) = w.create("+14155550100", &[("Timeout", "2")]).await;
    let sid = sid_of(&body);
    let hits = w.callbacks(&sid).await;
    let last = hits.last().expect("final callback");
    assert_eq!(
        (last.get("CallStatus"), last.get("SipResponseCode")),
        (Some("no-answer"), Some("487"))
    );
    assert_eq!(w.until_final(&sid).await["duration"], Value::Null);
}

#[tokio::test]
async fn time_limit_cuts_the_call() {
    let mut c = config(1);
    c.rules = vec![rule("*", BehaviorKind::Human, &[])];
    let w = world(
        c,
        &[("/voice", r#"<Response><Pause length="600"/></Response>"#)],
    )
    .await;
    let (_, body) = w.create("+14155550100", &[("TimeLimit", "7")]).await;
    let sid = sid_of(&body);
    let hits = w.callbacks(&sid).await;
    assert_eq!(hits.last().and_then(|h| h.get("CallDuration")), Some("7"));
}

#[tokio::test]
async fn dropped_callbacks_are_not_sent_but_the_call_still_ends() {
    let mut c = config(1);
    c.rules = vec![rule("*", BehaviorKind::Busy, &[])];
    c.faults.drop_callback_rate = 1.0;
    let w = world(c, &[]).await;
    let (_, body) = w.create("+14155550100", &[]).await;
    let sid = sid_of(&body);
    assert_eq!(w.until_final(&sid).await["status"], "busy");
    // every event was dropped when it was due (initiated, ringing, busy), so none was sent
    for _ in 0..500 {
        if w.sim.state().dropped_callbacks(&sid) == Some(3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(w.sim.state().dropped_callbacks(&sid), Some(3));
    assert!(w.hits(&sid, "/status").is_empty());
}

/// The status callbacks a call got, in arrival order, once `n` arrived.
async fn arrivals(w: &World, sid: &str, n: usize) -> Vec<String> {
    for _ in 0..500 {
        let hits = w.hits(sid, "/status");
        if hits.len() >= n {
            return hits
                .iter()
                .map(|h| h.get("SequenceNumber").unwrap_or("").to_owned())
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "fewer than {n} callbacks: {:?}",
        w.hits(sid, "/status").len()
    );
}

#[tokio::test]
async fn duplicated_callbacks_are_sent_twice_each() {
    let mut c = config(1);
    c.rules = vec![rule("*", BehaviorKind::Busy, &[])];
    c.faults.duplicate_callback_rate = 1.0;
    let w = world(c, &[]).await;
    let (_, body) = w.create("+14155550100", &[]).await;
    let sid = sid_of(&body);
    assert_eq!(w.until_final(&sid).await["status"], "busy");
    assert_eq!(arrivals(&w, &sid, 6).await, ["0", "0", "1", "1", "2", "2"]);
    let record = w.sim.state().records().pop().expect("the call");
    assert_eq!(record.duplicated_callbacks, 3);
}

#[tokio::test]
async fn reordered_progress_callbacks_arrive_after_the_next_one() {
    let mut c = config(1);
    c.rules = vec![rule("*", BehaviorKind::Busy, &[])];
    c.faults.reorder_callback_rate = 1.0;
    let w = world(c, &[]).await;
    let (_, body) = w.create("+14155550100", &[]).await;
    let sid = sid_of(&body);
    assert_eq!(w.until_final(&sid).await["status"], "busy");
    // initiated is held until ringing went; ringing (late too) is not held behind it; the
    // final event is never held back
    assert_eq!(arrivals(&w, &sid, 3).await, ["1", "0", "2"]);
    let record = w.sim.state().records().pop().expect("the call");
    assert_eq!(record.reordered_callbacks, 2);
}

/// Creates the same calls on a fresh simulator and returns each call's final status.
async fn outcomes(seed: u64) -> Vec<String> {
    let mut c = config(seed);
    c.mix.busy = 20.0;
    c.mix.no_answer = 20.0;
    c.mix.failed = 20.0;
    c.mix.machine = 20.0;
    c.mix.silent = 0.0;
    let w = world(c, &[("/voice", THANKS_DOC)]).await;
    let numbers = [
        "+14155550001",
        "+14155550002",
        "+14155550003",
        "+14155550004",
        "+14155550005",
        "+14155550006",
    ];
    let mut sids = Vec::new();
    for to in numbers.iter().chain(numbers.iter()) {
        let (_, body) = w.create(to, &[("MachineDetection", "Enable")]).await;
        sids.push(sid_of(&body));
    }
    let mut result = Vec::new();
    for sid in &sids {
        let call = w.until_final(sid).await;
        result.push(format!(
            "{}/{}",
            call["status"].as_str().unwrap_or(""),
            call["answered_by"].as_str().unwrap_or("")
        ));
    }
    result
}

#[tokio::test]
async fn the_same_seed_gives_the_same_outcomes() {
    let first = outcomes(7).await;
    assert_eq!(first, outcomes(7).await);
    let distinct: std::collections::HashSet<_> = first.iter().collect();
    assert!(
        distinct.len() >= 3,
        "the mix should vary outcomes: {first:?}"
    );
    assert_ne!(
        first,
        outcomes(8).await,
        "another seed draws other outcomes"
    );
}

#[tokio::test]
async fn speech_answers_follow_a_get_redirect() {
    let mut c = config(1);
    c.rules = vec![Rule {
        speech: vec!["yes please".to_owned()],
        ..rule("*", BehaviorKind::Human, &[])
    }];
    let step2 = r#"<Response><Gather input="speech" action="/gather"><Say>Say yes</Say></Gather></Response>"#;
    let voice = r#"<Response><Redirect method="GET">step2?x=1</Redirect></Response>"#;
    let w = world(
        c,
        &[
            ("/voice", voice),
            ("/step2", step2),
            ("/gather", THANKS_DOC),
        ],
    )
    .await;
    let (_, body) = w.create("+14155550100", &[]).await;
    let sid = sid_of(&body);
    let gather = w.until_hit(&sid, "/gather", |_| true).await;
    let redirected = w.hits(&sid, "/step2");
    assert_eq!(redirected.len(), 1);
    assert!(
        redirected[0].signature_ok,
        "a GET is signed over its full url"
    );
    assert!(
        redirected[0].query.starts_with("x=1&CallSid="),
        "{}",
        redirected[0].query
    );
    assert_eq!(gather[0].get("SpeechResult"), Some("yes please"));
    let confidence: f64 = gather[0]
        .get("Confidence")
        .and_then(|c| c.parse().ok())
        .expect("Confidence");
    assert!((0.0..=1.0).contains(&confidence));
    assert_eq!(gather[0].get("Digits"), None);
    assert_eq!(w.until_final(&sid).await["status"], "completed");
}

#[tokio::test]
async fn an_unreachable_voice_url_ends_the_call_as_completed() {
    let mut c = config(1);
    c.rules = vec![rule("*", BehaviorKind::Human, &["1"])];
    let w = world(c, &[]).await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let dead = format!("http://{}/voice", closed.local_addr().expect("addr"));
    drop(closed);
    let (_, body) = w.create("+14155550100", &[("Url", dead.as_str())]).await;
    let sid = sid_of(&body);
    let call = w.until_final(&sid).await;
    assert!(
        w.hits(&sid, "/voice").is_empty(),
        "the dead url replaced the stub's"
    );
    assert_eq!(call["status"], "completed");
    assert!(
        call["duration"]
            .as_str()
            .is_some_and(|d| d.parse::<u64>().is_ok_and(|d| d >= 1))
    );
    assert_eq!(
        w.callbacks(&sid)
            .await
            .last()
            .and_then(|h| h.get("CallStatus")),
        Some("completed")
    );
}

#[tokio::test]
async fn serve_answers_until_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        config(1),
        Arc::new(crate::clock::SystemClock),
        shutdown.clone(),
    ));
    let log: Value = reqwest::get(format!("http://{addr}/simulator/requests"))
        .await
        .expect("request log")
        .json()
        .await
        .expect("json");
    assert_eq!(log, serde_json::json!([]));
    shutdown.cancel();
    server.await.expect("join").expect("serve ends cleanly");
}
