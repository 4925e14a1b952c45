//! The store's behaviour on both backends: each test runs the same calls through [`Store`] and
//! [`Tx`] on a SQLite file and on a fresh database of the throwaway PostgreSQL cluster
//! (`pg::cluster`), and checks the same answers. (The SQLite-only tests beside each query file
//! set up unusual rows through `conn()` and check SQLite's query plans.)

use std::time::Duration;

use super::pg::cluster::PgCluster;
use super::pg::{self, PgStore};
use super::*;
use crate::campaign::model::{CampaignRules, Reason};
use crate::schedule::ContactState;

const AT: i64 = 1_800_000_000;

/// A store of each backend, migrated and empty; the temp dir holds the SQLite file.
fn each_backend(test: &str) -> Vec<(&'static str, tempfile::TempDir, Store)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = Store::open(&dir.path().join("b.db")).expect("sqlite");
    let url = PgCluster::shared().database(test);
    let mut client = pg::connect(&url).expect("connect");
    pg::migrate(&mut client, AT).expect("migrate");
    let postgres = Store::from(PgStore::new(client, url.endpoint()));
    vec![
        ("sqlite", dir, sqlite),
        ("postgres", tempfile::tempdir().expect("tempdir"), postgres),
    ]
}

fn contact(phone: &str) -> NewContact {
    NewContact {
        phone: phone.to_owned(),
        ext_id: None,
        name: Some(format!("name {phone}")),
        zones: None,
        fields: r#"{"plan":"gold"}"#.to_owned(),
    }
}

/// One campaign with `phones` imported (finished and settled): its id.
fn seed(store: &Store, phones: &[&str]) -> i64 {
    let tx = store.tx();
    let (cid, existed) = tx
        .upsert_campaign("c", "{}", false, instant(AT))
        .expect("campaign");
    assert!(!existed);
    let rows: Vec<NewContact> = phones.iter().map(|p| contact(p)).collect();
    let counts = tx
        .import_contacts(cid, "seed.csv", &rows, instant(AT))
        .expect("import");
    assert_eq!(counts.imported, phones.len() as u64);
    cid
}

fn due_ids(store: &Store, cid: i64, scan: u32) -> Vec<i64> {
    let mut ids = Vec::new();
    store
        .visit_due(cid, instant(AT), scan, |id| {
            ids.push(id);
            Ok(std::ops::ControlFlow::Continue(()))
        })
        .expect("due");
    ids
}

fn due_phones(store: &Store, cid: i64) -> Vec<String> {
    due_ids(store, cid, 100)
        .into_iter()
        .map(|id| store.contact(id).expect("read").expect("row").phone)
        .collect()
}

#[test]
fn a_contact_is_claimed_once_and_an_unclaim_gives_it_back() {
    for (backend, _dir, store) in each_backend("claim_once") {
        let cid = seed(&store, &["+12125550101"]);
        let id = due_ids(&store, cid, 10)[0];
        let tx = store.tx();
        let attempt = tx
            .claim_attempt(id, 0, instant(AT))
            .expect("claim")
            .expect("claimed");
        assert_eq!(
            (attempt.attempt_no, attempt.status.as_str()),
            (1, "dialing"),
            "{backend}"
        );
        assert_eq!(attempt.contact_fields, r#"{"plan":"gold"}"#, "{backend}");
        // the contact has an open attempt now: a second claim (same count or the new one) loses
        assert!(
            tx.claim_attempt(id, 0, instant(AT))
                .expect("again")
                .is_none(),
            "{backend}"
        );
        assert!(
            tx.claim_attempt(id, 1, instant(AT))
                .expect("again")
                .is_none(),
            "{backend}"
        );
        assert_eq!(
            store.count_open_attempts(Some(cid)).expect("open"),
            1,
            "{backend}"
        );
        assert!(
            store.contact(id).expect("contact").expect("row").in_flight,
            "{backend}"
        );
        assert!(
            tx.unclaim_attempt(attempt.id).expect("unclaim"),
            "{backend}"
        );
        assert!(
            !tx.unclaim_attempt(attempt.id).expect("unclaim twice"),
            "{backend}"
        );
        let again = store.contact(id).expect("contact").expect("row");
        assert_eq!((again.attempts, again.in_flight), (0, false), "{backend}");
        assert!(
            tx.claim_attempt(id, 0, instant(AT))
                .expect("reclaim")
                .is_some(),
            "{backend}"
        );
    }
}

#[test]
fn a_dnc_number_is_never_claimed() {
    for (backend, _dir, store) in each_backend("claim_dnc") {
        let cid = seed(&store, &["+12125550102"]);
        let id = due_ids(&store, cid, 10)[0];
        let tx = store.tx();
        assert_eq!(
            tx.dnc_add(&["+12125550102".into()], "cli", instant(AT))
                .expect("add"),
            1
        );
        assert_eq!(
            tx.dnc_add(&["+12125550102".into()], "cli", instant(AT))
                .expect("add"),
            0
        );
        assert!(
            store.dnc_contains("+12125550102").expect("contains"),
            "{backend}"
        );
        assert!(
            tx.claim_attempt(id, 0, instant(AT))
                .expect("claim")
                .is_none(),
            "{backend}"
        );
        assert!(
            store.contact(id).expect("c").expect("row").on_dnc,
            "{backend}"
        );
        assert!(tx.dnc_remove("+12125550102").expect("remove"), "{backend}");
        assert!(
            tx.claim_attempt(id, 0, instant(AT))
                .expect("claim")
                .is_some(),
            "{backend}"
        );
        assert_eq!(store.dnc_list().expect("list").len(), 0, "{backend}");
    }
}

#[test]
fn status_callbacks_move_forward_once_and_the_final_one_applies_the_retry_policy() {
    for (backend, _dir, store) in each_backend("status_callbacks") {
        let cid = seed(&store, &["+12125550103"]);
        let id = due_ids(&store, cid, 10)[0];
        let tx = store.tx();
        let a = tx
            .claim_attempt(id, 0, instant(AT))
            .expect("claim")
            .expect("claimed");
        assert!(tx.bind_call_sid(a.id, "CA1").expect("bind"), "{backend}");
        assert!(
            !tx.bind_call_sid(a.id, "CA2").expect("bind other"),
            "{backend}"
        );
        assert!(store.call_sid_bound("CA1").expect("bound"), "{backend}");
        tx.set_created_status(a.id, "queued").expect("created");
        let rules = CampaignRules::default();
        let event = |status, sequence, token| StatusEvent {
            call_sid: "CA1",
            status,
            sequence: Some(sequence),
            token: Some(token),
            ..StatusEvent::default()
        };
        let ringing = event("ringing", 1, "t1");
        let apply = |ev: &StatusEvent<'_>| {
            tx.apply_status(a.id, &rules, "{}", ev, instant(AT + 5))
                .expect("apply")
        };
        assert_eq!(apply(&ringing), StatusApplied::Progress, "{backend}");
        assert_eq!(apply(&ringing), StatusApplied::Repeated, "{backend}");
        // an older event (lower sequence) is kept but changes nothing
        assert_eq!(
            apply(&event("initiated", 0, "t0")),
            StatusApplied::Ignored,
            "{backend}"
        );
        assert_eq!(
            store.attempt(a.id).expect("a").expect("row").status,
            "ringing"
        );
        let busy = StatusEvent {
            duration: Some(0),
            ..event("busy", 2, "t2")
        };
        assert_eq!(
            apply(&busy),
            StatusApplied::Final(Reason::Busy),
            "{backend}"
        );
        assert_eq!(
            apply(&event("completed", 3, "t3")),
            StatusApplied::Ignored,
            "{backend}"
        );
        let ended = store.attempt(a.id).expect("a").expect("row");
        assert_eq!(ended.ended_at, Some(instant(AT + 5)), "{backend}");
        assert_eq!(
            store.attempt_ends(&[a.id]).expect("ends"),
            vec![AttemptEnding::Ended(Some("busy".into()))],
            "{backend}"
        );
        let c = store.contact(id).expect("c").expect("row");
        assert_eq!(c.last_reason.as_deref(), Some("busy"), "{backend}");
        assert!(!c.in_flight, "{backend}");
        assert_eq!(
            store.count_open_attempts(None).expect("open"),
            0,
            "{backend}"
        );
    }
}

#[test]
fn an_opt_out_answer_lists_the_number_and_closes_the_contact() {
    for (backend, _dir, store) in each_backend("opt_out") {
        let cid = seed(&store, &["+12125550104"]);
        let id = due_ids(&store, cid, 10)[0];
        let tx = store.tx();
        let a = tx
            .claim_attempt(id, 0, instant(AT))
            .expect("claim")
            .expect("claimed");
        let answer = Answer {
            step: "menu",
            digits: Some("9"),
            matched: true,
            next_step: Some("bye"),
            token: Some("g1"),
            ..Answer::default()
        };
        assert!(
            tx.record_answer(a.id, &answer, instant(AT))
                .expect("answer"),
            "{backend}"
        );
        assert!(
            !tx.record_answer(a.id, &answer, instant(AT)).expect("again"),
            "{backend}"
        );
        assert_eq!(
            store.answered_step(a.id, "g1").expect("step"),
            Some(Some("bye".to_owned())),
            "{backend}"
        );
        let miss = Answer {
            step: "menu",
            token: Some("g2"),
            ..Answer::default()
        };
        tx.record_answer(a.id, &miss, instant(AT)).expect("miss");
        assert_eq!(
            store.unmatched_answers(a.id, "menu").expect("unmatched"),
            1,
            "{backend}"
        );
        tx.apply_option(a.id, Some("opted_out"), None, true, instant(AT))
            .expect("option");
        assert_eq!(
            store.dnc_source("+12125550104").expect("src").as_deref(),
            Some("opt-out")
        );
        let c = store.contact(id).expect("c").expect("row");
        assert_eq!(c.state, ContactState::OptedOut, "{backend}");
        let end = EndedCall {
            status: "completed",
            duration: Some(30),
            ..EndedCall::default()
        };
        let rules = CampaignRules::default();
        assert_eq!(
            tx.end_attempt(a.id, &rules, &end, instant(AT + 40))
                .expect("end"),
            Some(Reason::Completed),
            "{backend}"
        );
        assert_eq!(
            tx.end_attempt(a.id, &rules, &end, instant(AT + 41))
                .expect("end"),
            None
        );
        let c = store.contact(id).expect("c").expect("row");
        assert_eq!(c.state, ContactState::OptedOut, "{backend}");
        assert_eq!(c.last_reason.as_deref(), Some("completed"), "{backend}");
    }
}

#[test]
fn rows_of_an_unfinished_import_become_due_when_it_finishes_and_settle_in_steps() {
    for (backend, _dir, store) in each_backend("import_runs") {
        let cid = seed(&store, &["+12125550100"]);
        let tx = store.tx();
        let run = tx.begin_import(cid, "big.csv", instant(AT)).expect("begin");
        let phones: Vec<String> = (0..600)
            .map(|i| format!("+1212555{:04}", 1000 + i))
            .collect();
        let mut rows: Vec<NewContact> = phones.iter().map(|p| contact(p)).collect();
        // a number twice, and one already stored but changed
        rows.push(contact("+12125551000"));
        rows.push(NewContact {
            name: Some("renamed".into()),
            ..contact("+12125550100")
        });
        let out = tx.import_chunk(&run, &rows, Duration::MAX).expect("chunk");
        assert_eq!(out.done, rows.len(), "{backend}");
        assert_eq!(
            (
                out.counts.imported,
                out.counts.duplicates,
                out.counts.updated
            ),
            (600, 1, 1),
            "{backend}"
        );
        assert_eq!(out.duplicates, vec![600], "{backend}");
        assert_eq!(due_phones(&store, cid), vec!["+12125550100"], "{backend}");
        tx.finish_import(&run, instant(AT)).expect("finish");
        assert_eq!(
            store.unsettled_imports(cid).expect("unsettled"),
            vec![run.import_id]
        );
        assert_eq!(
            due_phones(&store, cid).len(),
            100,
            "{backend}: due before settling"
        );
        assert_eq!(
            store.ready_contacts(cid, instant(AT)).expect("ready"),
            601,
            "{backend}"
        );
        while !tx
            .settle_import(run.import_id, Duration::ZERO, instant(AT))
            .expect("settle")
        {}
        assert!(
            store.unsettled_import_ids().expect("ids").is_empty(),
            "{backend}"
        );
        assert_eq!(
            store.ready_contacts(cid, instant(AT)).expect("ready"),
            601,
            "{backend}"
        );
        let names = store.contact_field_names(cid).expect("names");
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            vec!["name".to_owned(), "plan".to_owned()],
            "{backend}"
        );
        let stats = store.campaign_stats(cid).expect("stats");
        assert_eq!((stats.contacts, stats.open), (601, 601), "{backend}");
        let mut seen = 0;
        store
            .for_each_contact(cid, |_| {
                seen += 1;
                Ok::<_, StoreError>(())
            })
            .expect("each");
        assert_eq!(seen, 601, "{backend}");
        // a dry run of the same file: all known now, nothing written
        let mut dry = store.dry_run(cid).expect("dry");
        let counted = dry.chunk(&rows).expect("chunk");
        assert_eq!(
            (
                counted.counts.unchanged,
                counted.counts.duplicates,
                counted.counts.updated
            ),
            (601, 1, 0),
            "{backend}"
        );
    }
}

#[test]
fn campaigns_are_paused_and_replaced_and_the_change_counter_moves() {
    for (backend, _dir, store) in each_backend("campaigns") {
        let before = store.change_version().expect("version");
        let cid = seed(&store, &[]);
        let tx = store.tx();
        assert!(
            tx.set_paused("c", true, instant(AT)).expect("pause"),
            "{backend}"
        );
        assert!(
            !tx.set_paused("c", true, instant(AT)).expect("pause again"),
            "{backend}"
        );
        assert!(store.require_campaign("c").expect("c").paused, "{backend}");
        assert_eq!(
            tx.upsert_campaign("c", "{\"v\":2}", true, instant(AT))
                .expect("replace"),
            (cid, true),
            "{backend}"
        );
        assert_eq!(
            store.campaign_by_id(cid).expect("c").expect("row").config,
            "{\"v\":2}"
        );
        assert_eq!(store.campaigns().expect("all").len(), 1, "{backend}");
        assert!(
            store.change_version().expect("version") > before,
            "{backend}"
        );
        assert!(matches!(
            store.require_campaign("missing"),
            Err(StoreError::NoCampaign(_))
        ));
    }
}

#[test]
fn a_follow_up_is_claimed_once_and_never_for_a_dnc_number() {
    for (backend, _dir, store) in each_backend("follow_up") {
        let cid = seed(&store, &["+12125550105", "+12125550106"]);
        let due: Vec<_> = due_ids(&store, cid, 10)
            .into_iter()
            .map(|id| store.contact(id).expect("read").expect("row"))
            .collect();
        let tx = store.tx();
        let rules = CampaignRules::default();
        let mut attempts = Vec::new();
        for c in &due {
            let a = tx
                .claim_attempt(c.id, 0, instant(AT))
                .expect("claim")
                .expect("claimed");
            let end = EndedCall {
                status: "no-answer",
                ..EndedCall::default()
            };
            tx.end_attempt(a.id, &rules, &end, instant(AT + 30))
                .expect("end");
            attempts.push(a);
        }
        let query = FollowUpQuery {
            campaign_id: cid,
            rule: "sorry",
            reason: Some("no-answer"),
            outcome: None,
            exhausted: false,
        };
        assert_eq!(
            store.follow_up_candidates(&query, 10).expect("c").len(),
            2,
            "{backend}"
        );
        tx.dnc_add(&["+12125550106".into()], "cli", instant(AT))
            .expect("dnc");
        let candidates = store.follow_up_candidates(&query, 10).expect("candidates");
        assert_eq!(candidates.len(), 1, "{backend}");
        let follow_up = |contact: &ContactRow, attempt: &AttemptRow| NewFollowUp {
            campaign_id: cid,
            contact_id: contact.id,
            rule: "sorry".into(),
            attempt_id: attempt.id,
            channel: "sms",
            from: "+15005550006".into(),
            to: contact.phone.clone(),
            body: "Sorry we missed you".into(),
        };
        let first = follow_up(&due[0], &attempts[0]);
        let id = tx
            .claim_follow_up(&first, instant(AT))
            .expect("claim")
            .expect("claimed");
        assert!(
            tx.claim_follow_up(&first, instant(AT))
                .expect("again")
                .is_none(),
            "{backend}"
        );
        let listed = follow_up(&due[1], &attempts[1]);
        assert!(
            tx.claim_follow_up(&listed, instant(AT))
                .expect("dnc")
                .is_none(),
            "{backend}"
        );
        assert_eq!(
            store.messages_on_their_way(&[id]).expect("way"),
            1,
            "{backend}"
        );
        tx.follow_up_created(id, "SM1", "queued", instant(AT))
            .expect("created");
        assert!(
            tx.apply_message_status(id, "SM1", "delivered", None, Some("m1"), "{}", instant(AT))
                .expect("status"),
            "{backend}"
        );
        // older and repeated deliveries change nothing
        tx.apply_message_status(id, "SM1", "sent", None, Some("m2"), "{}", instant(AT))
            .expect("older");
        assert!(
            !tx.apply_message_status(id, "SM9", "sent", None, None, "{}", instant(AT))
                .expect("other sid")
        );
        assert_eq!(
            store.messages_on_their_way(&[id]).expect("way"),
            0,
            "{backend}"
        );
        let records = store
            .message_records(Some(cid), None, None)
            .expect("records");
        assert_eq!(records.len(), 1, "{backend}");
        assert_eq!(records[0].status, "delivered", "{backend}");
        assert!(
            store
                .follow_up_candidates(&query, 10)
                .expect("c")
                .is_empty(),
            "{backend}"
        );
    }
}

#[test]
fn an_inbound_call_completes_the_contact_once() {
    for (backend, _dir, store) in each_backend("inbound_call") {
        let cid = seed(&store, &["+12125550107"]);
        let contact = store.contacts_with_phone("+12125550107").expect("match");
        assert_eq!(contact.len(), 1, "{backend}");
        let call = NewInboundCall {
            call_sid: "CAin",
            from: "+12125550107",
            to: "+15005550006",
            matched: "contact",
            campaign_id: Some(cid),
            contact_id: Some(contact[0].contact_id),
            outcome: "called_back",
            params: "{}",
        };
        let tx = store.tx();
        let attempt = tx.record_inbound_call(&call, instant(AT)).expect("record");
        assert!(attempt.is_some(), "{backend}");
        assert_eq!(
            tx.record_inbound_call(&call, instant(AT)).expect("again"),
            attempt
        );
        assert!(
            tx.inbound_call_status("CAin", "completed", Some(12), instant(AT + 12))
                .expect("s")
        );
        let c = store
            .contact(contact[0].contact_id)
            .expect("c")
            .expect("row");
        assert_eq!(c.state, ContactState::Completed, "{backend}");
        assert_eq!(
            c.attempts, 0,
            "{backend}: an inbound call is no dial attempt"
        );
        assert_eq!(
            store
                .inbound_call_records(None, None, None)
                .expect("r")
                .len(),
            1
        );
    }
}

#[test]
fn bot_turns_are_numbered_and_stored_once() {
    for (backend, _dir, store) in each_backend("bot_turns") {
        let cid = seed(&store, &["+12125550108"]);
        let id = due_ids(&store, cid, 10)[0];
        let tx = store.tx();
        let a = tx
            .claim_attempt(id, 0, instant(AT))
            .expect("claim")
            .expect("claimed");
        let session = tx
            .open_bot_session(a.id, "talk", instant(AT))
            .expect("open");
        let turn = |kind, token| NewTurn {
            kind,
            caller_text: None,
            confidence: Some(0.5),
            bot_text: Some("hello"),
            latency_ms: Some(20),
            error: None,
            token,
        };
        assert!(
            tx.record_bot_turn(session, &turn("greeting", None), instant(AT))
                .expect("t")
        );
        assert!(
            tx.record_bot_turn(session, &turn("speech", Some("b1")), instant(AT))
                .expect("t")
        );
        assert!(
            !tx.record_bot_turn(session, &turn("speech", Some("b1")), instant(AT))
                .expect("t")
        );
        assert!(store.bot_turn_seen("b1").expect("seen"), "{backend}");
        let turns: Vec<i64> = store
            .bot_turns(session)
            .expect("turns")
            .iter()
            .map(|t| t.turn)
            .collect();
        assert_eq!(turns, vec![0, 1], "{backend}");
        assert!(
            tx.end_bot_session(
                session,
                SessionEnd::Completed,
                Some("ok"),
                None,
                instant(AT)
            )
            .expect("end")
        );
        assert_eq!(
            store
                .bot_session(session)
                .expect("s")
                .expect("row")
                .ending
                .as_deref(),
            Some("completed")
        );
        let counts = store.bot_counts(cid).expect("counts");
        assert_eq!((counts.sessions, counts.completed), (1, 1), "{backend}");
        let mut rows = 0;
        store
            .for_each_transcript_record(&AttemptFilter::default(), |r| {
                assert_eq!(r.campaign, "c");
                rows += 1;
                Ok::<_, StoreError>(())
            })
            .expect("transcripts");
        assert_eq!(rows, 2, "{backend}");
    }
}

#[test]
fn reports_and_dashboard_aggregates_agree_across_backends() {
    let mut seen = Vec::new();
    for (backend, _dir, store) in each_backend("reports") {
        let cid = seed(&store, &["+12125550109", "+12125550110", "+12125550111"]);
        let due: Vec<_> = due_ids(&store, cid, 10)
            .into_iter()
            .map(|id| store.contact(id).expect("read").expect("row"))
            .collect();
        let tx = store.tx();
        let rules = CampaignRules::default();
        for (i, c) in due.iter().enumerate() {
            let a = tx
                .claim_attempt(c.id, 0, instant(AT))
                .expect("claim")
                .expect("claimed");
            let answer = Answer {
                step: "menu",
                digits: Some(if i == 0 { "1" } else { "2" }),
                matched: true,
                token: None,
                ..Answer::default()
            };
            tx.record_answer(a.id, &answer, instant(AT + 10))
                .expect("answer");
            if i < 2 {
                let end = EndedCall {
                    status: "completed",
                    duration: Some(61),
                    ..EndedCall::default()
                };
                tx.end_attempt(a.id, &rules, &end, instant(AT + 70))
                    .expect("end");
            }
        }
        let summary = store.summary_counts(cid).expect("summary");
        let mut exported = Vec::new();
        store
            .for_each_attempt_record(&AttemptFilter::default(), |r| {
                exported.push((r.phone.to_owned(), r.status.to_owned(), r.duration_seconds));
                Ok::<_, StoreError>(())
            })
            .expect("attempts");
        let mut contacts = Vec::new();
        store
            .for_each_contact_record(cid, None, None, |r| {
                contacts.push((r.phone.to_owned(), r.state.to_owned(), r.answers.to_vec()));
                Ok::<_, StoreError>(())
            })
            .expect("contacts");
        let filter = AttemptFilter {
            campaign_id: Some(cid),
            since: Some(instant(AT)),
            until: Some(instant(AT + 1)),
        };
        let counted = store.count_attempt_records(&filter).expect("count");
        let dashboard = (
            store.hourly_attempts(cid, instant(AT), 2).expect("hourly"),
            store
                .in_flight_at(
                    cid,
                    &[instant(AT + 1), instant(AT + 100)],
                    Duration::from_secs(3600),
                )
                .expect("in flight"),
            store.attempts_since(cid, instant(AT)).expect("since"),
            store.funnel(cid).expect("funnel"),
            store.open_by_zones(cid).expect("zones"),
            store.contact_history(due[0].id).expect("history").len(),
            store.earliest_retry(cid, instant(AT)).expect("retry"),
            store.open_zone_lists(cid).expect("zone lists"),
            store
                .recent_attempts("+12125550109", instant(AT - 1))
                .expect("recent"),
        );
        assert_eq!(summary.attempts, 3, "{backend}");
        assert_eq!(
            (summary.reached, summary.billed_minutes),
            (2, 4),
            "{backend}"
        );
        assert_eq!(counted, 3, "{backend}");
        assert_eq!(
            contacts[0].2,
            vec![("menu".to_owned(), "1".to_owned())],
            "{backend}"
        );
        seen.push(format!(
            "{summary:?} {exported:?} {contacts:?} {dashboard:?}"
        ));
    }
    assert_eq!(seen[0], seen[1], "SQLite and PostgreSQL disagree");
}

#[test]
fn the_writer_commits_groups_and_undoes_only_a_failing_job_on_postgres() {
    let url = PgCluster::shared().database("writer_groups");
    let db = Db::open_postgres(&url, AT).expect("open");
    let failing = db.write_blocking(|tx| {
        tx.dnc_add(&["+12125550199".to_owned()], "cli", instant(AT))?;
        Err::<(), _>(StoreError::NoCampaign("x".into()))
    });
    assert!(matches!(failing, Err(StoreError::NoCampaign(_))));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..100 {
            let db = db.clone();
            tasks.spawn(async move {
                db.write(move |tx| tx.dnc_add(&[format!("+1212555{i:04}")], "cli", instant(AT)))
                    .await
            });
        }
        while let Some(done) = tasks.join_next().await {
            assert_eq!(done.expect("task").expect("write"), 1);
        }
        let listed = db.read(|s| s.dnc_list()).await.expect("read");
        assert_eq!(
            listed.len(),
            100,
            "the failing job's number is not among them"
        );
        // a durable write (a claim's batch) commits too
        let added = db
            .write_durable(|tx| tx.dnc_add(&["+12125550200".to_owned()], "cli", instant(AT)))
            .await
            .expect("durable");
        assert_eq!(added, 1);
    });
    assert!(
        db.read_blocking(|s| s.dnc_contains("+12125550200"))
            .expect("read")
    );
}
