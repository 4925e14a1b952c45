//! One call's life on the simulated network: the create parameters it honours, its progress
//! (queued, initiated, ringing, answered, final), its status callbacks and its clock.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use tokio::sync::mpsc;

use super::Shared;
use super::api::new_sid;
use super::behavior::{self, Callee};
use super::config::Behavior;
use super::params::{Amd, CreateParams};
use super::play;
use super::record::{CallStatus, billed_minutes, rfc2822};

/// Everything a call task needs, decided when the call was created.
pub struct CallPlan {
    pub sid: String,
    pub params: CreateParams,
    pub behavior: Behavior,
    pub rng: StdRng,
    /// Cancelled by a `Status=canceled|completed` update.
    pub hangup: tokio_util::sync::CancellationToken,
}

/// Why a call stopped playing TwiML (each ends it as `completed`).
#[derive(Debug)]
pub enum Stop {
    TimeLimit,
    Hangup,
    /// The webhook failed or answered something unplayable (Twilio's 11200 / 12100).
    Webhook(String),
}

/// A running call.
pub struct Call {
    pub shared: Arc<Shared>,
    pub sid: String,
    pub p: CreateParams,
    pub behavior: Behavior,
    pub rng: StdRng,
    pub callee: Callee,
    /// Simulated seconds since the call was answered.
    pub talk: f64,
    answered: bool,
    /// `outbound-api`, or `inbound` for a call made to the product's number.
    direction: &'static str,
    sequence: u32,
    callbacks: mpsc::UnboundedSender<Delivery>,
}

/// One status callback to deliver, with the faults drawn for it.
pub struct Delivery {
    params: Vec<(String, String)>,
    /// Sent a second time, with the same idempotency token.
    twice: bool,
    /// Held back until the call's next callback has been sent.
    late: bool,
}

/// Plays a call from `queued` to its final status; returns early when the simulator stops.
pub async fn run(shared: Arc<Shared>, plan: CallPlan) {
    let stop = shared.stop.clone();
    let (tx, rx) = mpsc::unbounded_channel();
    let delivery = tokio::spawn(deliver(shared.clone(), plan.params.clone(), rx));
    let mut call = Call {
        shared,
        sid: plan.sid,
        callee: Callee::new(&plan.behavior),
        p: plan.params,
        behavior: plan.behavior,
        rng: plan.rng,
        talk: 0.0,
        answered: false,
        direction: "outbound-api",
        sequence: 0,
        callbacks: tx,
    };
    let hangup = plan.hangup;
    tokio::select! {
        () = call.progress() => {}
        () = hangup.cancelled() => call.hung_up(),
        () = stop.cancelled() => {}
    }
    drop(call);
    tokio::select! {
        _ = delivery => {}
        () = stop.cancelled() => {}
    }
}

/// Plays a call someone makes to the product's number: it is answered at once by the voice
/// webhook (`params.url`) and ends `completed` with a status callback if one was configured.
pub async fn run_inbound(shared: Arc<Shared>, plan: CallPlan) {
    let stop = shared.stop.clone();
    let (tx, rx) = mpsc::unbounded_channel();
    let delivery = tokio::spawn(deliver(shared.clone(), plan.params.clone(), rx));
    let mut call = Call {
        shared,
        sid: plan.sid,
        callee: Callee::new(&plan.behavior),
        p: plan.params,
        behavior: plan.behavior,
        rng: plan.rng,
        talk: 0.0,
        answered: false,
        direction: "inbound",
        sequence: 0,
        callbacks: tx,
    };
    let hangup = plan.hangup;
    tokio::select! {
        () = call.answer() => {}
        () = hangup.cancelled() => call.hung_up(),
        () = stop.cancelled() => {}
    }
    drop(call);
    tokio::select! {
        _ = delivery => {}
        () = stop.cancelled() => {}
    }
}

/// Sends the call's status callbacks in order, each once (plus one retry on a failed connect),
/// except those the fault injection sends twice or holds back until after the next one.
async fn deliver(shared: Arc<Shared>, p: CreateParams, mut rx: mpsc::UnboundedReceiver<Delivery>) {
    let Some(url) = p.status_callback else { return };
    let method = p.status_callback_method.clone();
    let send = |d: Delivery| {
        let (shared, url, method) = (shared.clone(), url.clone(), method.clone());
        async move {
            let token = new_sid("");
            for _ in 0..if d.twice { 2 } else { 1 } {
                if let Err(e) =
                    play::send_with_token(&shared, &url, &method, &d.params, &token).await
                {
                    tracing::debug!(url = %url, error = %e, "simulator: status callback not delivered");
                }
            }
        }
    };
    let mut held: Option<Delivery> = None;
    while let Some(d) = rx.recv().await {
        if d.late && held.is_none() {
            held = Some(d);
            continue;
        }
        send(d).await;
        if let Some(late) = held.take() {
            send(late).await;
        }
    }
    if let Some(late) = held {
        send(late).await;
    }
}

impl Call {
    /// Lets `secs` simulated seconds pass; once answered they count toward `TimeLimit`.
    pub async fn pass(&mut self, secs: f64) -> Result<(), Stop> {
        let mut secs = secs.max(0.0);
        let mut limited = false;
        if self.answered && self.talk + secs > self.p.time_limit {
            secs = (self.p.time_limit - self.talk).max(0.0);
            limited = true;
        }
        let real = secs * self.shared.config.time_scale;
        if real > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(real)).await;
        }
        if self.answered {
            self.talk += secs;
        }
        if limited {
            Err(Stop::TimeLimit)
        } else {
            Ok(())
        }
    }

    /// The parameters of every request about this call (Twilio's base set).
    pub fn base_params(&self, status: &str) -> Vec<(String, String)> {
        let c = &self.shared.config;
        [
            ("CallSid", self.sid.as_str()),
            ("AccountSid", c.account_sid.as_str()),
            ("From", self.p.from.as_str()),
            ("To", self.p.to.as_str()),
            ("CallStatus", status),
            ("ApiVersion", "2010-04-01"),
            ("Direction", self.direction),
            ("Caller", self.p.from.as_str()),
            ("Called", self.p.to.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Queues a status callback for `status` if it was requested (terminal events always are).
    fn emit(&mut self, requested: bool, status: &str, extra: Vec<(String, String)>) {
        if !requested || self.p.status_callback.is_none() {
            return;
        }
        let sequence = self.sequence;
        self.sequence += 1;
        let faults = &self.shared.config.faults;
        if self.rng.random::<f64>() < faults.drop_callback_rate {
            self.shared.update(&self.sid, |r| r.dropped_callbacks += 1);
            return;
        }
        // further draws only when configured, so older seeds keep their outcomes
        let twice = faults.duplicate_callback_rate > 0.0
            && self.rng.random::<f64>() < faults.duplicate_callback_rate;
        let progress = !super::record::is_final(status);
        let late = progress
            && faults.reorder_callback_rate > 0.0
            && self.rng.random::<f64>() < faults.reorder_callback_rate;
        if twice || late {
            self.shared.update(&self.sid, |r| {
                r.duplicated_callbacks += u32::from(twice);
                r.reordered_callbacks += u32::from(late);
            });
        }
        let mut params = self.base_params(status);
        params.push(("Timestamp".to_owned(), rfc2822(self.shared.clock.now())));
        params.push((
            "CallbackSource".to_owned(),
            "call-progress-events".to_owned(),
        ));
        params.push(("SequenceNumber".to_owned(), sequence.to_string()));
        params.extend(extra);
        // The receiver only goes away when the simulator stops.
        let _ = self.callbacks.send(Delivery {
            params,
            twice,
            late,
        });
    }

    async fn progress(&mut self) {
        let queued = self.rng.random_range(0.2..1.0);
        if self.pass(queued).await.is_err() {
            return;
        }
        let now = self.shared.clock.now();
        self.shared.update(&self.sid, |r| r.start_time = Some(now));
        self.emit(self.p.on_initiated, "initiated", Vec::new());
        let dialing = self.rng.random_range(0.5..1.5);
        let _ = self.pass(dialing).await;
        if self.behavior == Behavior::Failed {
            return self.finish(CallStatus::Failed, Some(404));
        }
        self.shared
            .update(&self.sid, |r| r.status = CallStatus::Ringing);
        self.emit(self.p.on_ringing, "ringing", Vec::new());
        let ring = behavior::ring_seconds(&self.behavior, &mut self.rng);
        match self.behavior {
            Behavior::Busy => {
                let _ = self.pass(ring).await;
                self.finish(CallStatus::Busy, Some(486));
            }
            _ if self.behavior == Behavior::NoAnswer || ring >= self.p.timeout => {
                let _ = self.pass(self.p.timeout).await;
                self.finish(CallStatus::NoAnswer, Some(487));
            }
            _ => {
                let _ = self.pass(ring).await;
                self.answer().await;
            }
        }
    }

    async fn answer(&mut self) {
        self.answered = true;
        self.shared
            .update(&self.sid, |r| r.status = CallStatus::InProgress);
        self.emit(self.p.on_answered, "in-progress", Vec::new());
        let answered_by = match self.p.amd {
            None => Ok(None),
            Some(amd) => self.detect(amd).await.map(Some),
        };
        let outcome = match answered_by {
            Ok(answered_by) => {
                if let Some(a) = &answered_by {
                    let value = a.clone();
                    self.shared
                        .update(&self.sid, |r| r.answered_by = Some(value));
                }
                play::play(self, answered_by).await
            }
            Err(stop) => Err(stop),
        };
        if let Err(Stop::Webhook(why)) = &outcome {
            tracing::info!(call_sid = %self.sid, reason = %why, "simulator: call ended by a webhook failure");
        }
        self.finish(CallStatus::Completed, None);
    }

    /// Answering machine detection: how long it listens and what it concludes.
    async fn detect(&mut self, amd: Amd) -> Result<String, Stop> {
        let (secs, verdict) = match (&self.behavior, amd) {
            (Behavior::Machine, Amd::Enable) => (self.rng.random_range(2.5..4.5), "machine_start"),
            (Behavior::Machine, Amd::DetectMessageEnd) => {
                (self.rng.random_range(8.0..15.0), "machine_end_beep")
            }
            (Behavior::Silent, _) => (self.p.amd_timeout, "unknown"),
            _ => (self.rng.random_range(1.5..3.0), "human"),
        };
        self.pass(secs).await?;
        Ok(verdict.to_owned())
    }

    /// Ends the call after a REST update: `completed` once answered, else `canceled`. A call
    /// canceled while still queued fires no status callbacks.
    fn hung_up(&mut self) {
        if self.answered {
            return self.finish(CallStatus::Completed, None);
        }
        let started = {
            self.shared
                .book()
                .get(&self.sid)
                .is_some_and(|c| c.start_time.is_some())
        };
        if !started {
            self.p.status_callback = None;
        }
        self.finish(CallStatus::Canceled, None);
    }

    /// Records the final status and sends the terminal callback.
    fn finish(&mut self, status: CallStatus, sip: Option<u16>) {
        let now = self.shared.clock.now();
        let seconds = if self.answered {
            self.talk.ceil().max(1.0) as u64
        } else {
            0
        };
        let answered = self.answered;
        self.shared.update(&self.sid, |r| {
            r.status = status;
            r.end_time = Some(now);
            r.duration = answered.then_some(seconds);
        });
        let mut extra = vec![("CallDuration".to_owned(), seconds.to_string())];
        if status == CallStatus::Completed {
            extra.push(("Duration".to_owned(), billed_minutes(seconds).to_string()));
        }
        if let Some(code) = sip {
            extra.push(("SipResponseCode".to_owned(), code.to_string()));
        }
        self.emit(true, status.as_str(), extra);
    }
}
