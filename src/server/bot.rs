//! The conversational step (SPEC §13): a call handed to a bot over Rasa's REST channel.
//!
//! `/twilio/voice` for a bot step opens a conversation ([`open`]): a `bot_sessions` row, the
//! greeting sent to the bot, its answer spoken inside a speech `<Gather>` that posts to
//! `/twilio/bot?attempt=ID&session=N` ([`turn`]). Each turn stores what the caller said, sends it
//! to the bot, stores the answer (text, latency, error) and speaks it in the next `<Gather>`.
//!
//! The conversation ends when the bot says `custom.end` (its `outcome` becomes the attempt's, the
//! call goes to its `next` step or hangs up), or goes to the step's `fallback` when the caller has
//! used `max_turns`, was silent twice in a row, or the bot failed or was slower than `timeout`.
//! The bot is called outside the database writer, with the step's timeout (at most 10 s), so the
//! answer to Twilio always comes within its 15 s: the caller is never left in silence.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use super::ApiError;
use super::calls::{checked_attempt, fields, with_context, xml};
use super::rasa::{self, BotFailure, BotRequest, Exchange};
use super::signed::SignedForm;
use crate::campaign::bot::BotStep;
use crate::campaign::model::{Campaign, Content};
use crate::campaign::script::Script;
use crate::metrics::Metrics;
use crate::shared::Shared;
use crate::store::{AttemptRow, BotSession, BotTurn, NewTurn, SessionEnd, Tx};
use crate::twilio::twiml::{self, BotPrompt};

/// A bot step about to start.
pub struct Opening {
    pub step: String,
    pub bot: BotStep,
    /// The conversation id sent to the bot.
    pub call_sid: String,
}

/// What the caller hears next.
#[derive(Debug, Clone, PartialEq)]
enum Next {
    /// A turn: the bot's replies in a speech gather (`opening`: the step's `say` first).
    Prompt {
        texts: Vec<String>,
        opening: bool,
    },
    /// The bot ended the conversation: its last replies, then `next` (or hang up).
    End {
        texts: Vec<String>,
        next: Option<String>,
    },
    /// Straight to another step (the fallback; or where an ended conversation went).
    GoTo(String),
    Hangup,
}

/// What one bot answer leads to, decided before anything is stored.
#[derive(Debug, Clone, PartialEq)]
struct Decision {
    next: Next,
    /// The conversation ends: how, with what outcome, towards which step.
    ending: Option<(SessionEnd, Option<String>, Option<String>)>,
    /// Stored with the turn when the answer could not be used.
    error: Option<String>,
}

/// Reads the bot's answer to the greeting (`caller_turns` = 0) or to the caller's n-th turn.
fn decide(bot: &BotStep, script: &Script, caller_turns: u32, exchange: &Exchange) -> Decision {
    let fallback = |ending: SessionEnd, error: String| Decision {
        next: Next::GoTo(bot.fallback.clone()),
        ending: Some((ending, None, Some(bot.fallback.clone()))),
        error: Some(error),
    };
    let answer = match &exchange.result {
        Err(e @ BotFailure::Timeout(_)) => return fallback(SessionEnd::Timeout, e.to_string()),
        Err(e) => return fallback(SessionEnd::BotError, e.to_string()),
        Ok(answer) => answer,
    };
    if let Some(end) = &answer.end {
        if let Some(next) = end
            .next
            .as_deref()
            .filter(|n| !script.steps.contains_key(*n))
        {
            return fallback(
                SessionEnd::BotError,
                format!("the bot named step `{next}`, which the script does not have"),
            );
        }
        return Decision {
            next: Next::End {
                texts: answer.texts.clone(),
                next: end.next.clone(),
            },
            ending: Some((SessionEnd::Completed, end.outcome.clone(), end.next.clone())),
            error: None,
        };
    }
    if caller_turns >= bot.max_turns {
        return Decision {
            next: Next::GoTo(bot.fallback.clone()),
            ending: Some((SessionEnd::MaxTurns, None, Some(bot.fallback.clone()))),
            error: None,
        };
    }
    if answer.texts.is_empty() {
        return fallback(
            SessionEnd::BotError,
            "the bot had nothing to say".to_owned(),
        );
    }
    Decision {
        next: Next::Prompt {
            texts: answer.texts.clone(),
            opening: caller_turns == 0,
        },
        ending: None,
        error: None,
    }
}

/// The bot's replies of a stored turn.
fn texts_of(turn: &BotTurn) -> Vec<String> {
    turn.bot_text
        .as_deref()
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The prompt to repeat: the bot's last replies (or the step's own `say` when it never spoke).
fn repeat_prompt(turns: &[BotTurn]) -> Next {
    let texts = turns
        .iter()
        .rev()
        .find(|t| t.bot_text.is_some() && t.error.is_none())
        .map(texts_of)
        .unwrap_or_default();
    let opening = texts.is_empty();
    Next::Prompt { texts, opening }
}

/// Answers a repeated delivery, or a request for a conversation that already ended.
fn replay(session: &BotSession, turns: &[BotTurn]) -> Next {
    match (&session.ending, &session.next_step) {
        (Some(_), Some(step)) => Next::GoTo(step.clone()),
        (Some(_), None) => Next::Hangup,
        (None, _) => repeat_prompt(turns),
    }
}

/// Stores a turn and, when the decision ends the conversation, its ending and outcome.
/// `false` when the turn's token was stored already (a repeated delivery).
fn store_turn(
    tx: &Tx<'_>,
    attempt_id: i64,
    session_id: i64,
    turn: &NewTurn<'_>,
    decision: &Decision,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool, ApiError> {
    if !tx.record_bot_turn(session_id, turn, now)? {
        return Ok(false);
    }
    if let Some((ending, outcome, next)) = &decision.ending
        && tx.end_bot_session(
            session_id,
            *ending,
            outcome.as_deref(),
            next.as_deref(),
            now,
        )?
        && outcome.is_some()
    {
        tx.apply_option(attempt_id, outcome.as_deref(), None, false, now)?;
    }
    Ok(true)
}

fn joined(exchange: &Exchange) -> Option<String> {
    match &exchange.result {
        Ok(a) if !a.texts.is_empty() => Some(a.texts.join("\n")),
        _ => None,
    }
}

/// Opens a conversation at a bot step: asks the bot for its greeting and speaks it.
pub async fn open(
    state: &Shared,
    campaign: &Arc<Campaign>,
    attempt: &AttemptRow,
    opening: Opening,
) -> Result<Response, ApiError> {
    let Content::Script(script) = &campaign.content else {
        return Ok(xml(twiml::hangup()));
    };
    let (attempt_id, step) = (attempt.id, opening.step.clone());
    let s = state.clone();
    let session_id = state
        .db
        .write(move |tx| tx.open_bot_session(attempt_id, &step, s.clock.now()))
        .await?;
    let Some(greeting) = opening.bot.greeting.as_deref() else {
        let next = Next::Prompt {
            texts: Vec::new(),
            opening: true,
        };
        return Ok(render(
            state, campaign, attempt, &opening, session_id, &next,
        ));
    };
    let metadata = fields(attempt);
    let request = BotRequest {
        sender: &opening.call_sid,
        message: greeting,
        metadata: &metadata,
    };
    let exchange = rasa::ask(&opening.bot.url, opening.bot.timeout, &request).await;
    let decision = decide(&opening.bot, script, 0, &exchange);
    let s = state.clone();
    let d = decision.clone();
    let greeting = greeting.to_owned();
    state
        .db
        .write(move |tx| {
            let bot_text = joined(&exchange);
            let turn = NewTurn {
                kind: "greeting",
                caller_text: Some(&greeting),
                confidence: None,
                bot_text: bot_text.as_deref(),
                latency_ms: Some(exchange.latency_ms()),
                error: d.error.as_deref(),
                token: None,
            };
            store_turn(tx, attempt_id, session_id, &turn, &d, s.clock.now())
        })
        .await?;
    log_failure(&decision, attempt_id, session_id);
    Ok(render(
        state,
        campaign,
        attempt,
        &opening,
        session_id,
        &decision.next,
    ))
}

#[derive(Debug, Deserialize)]
pub struct TurnTarget {
    attempt: i64,
    session: i64,
}

/// What a turn request needs after its first database job.
enum Plan {
    /// Answered without asking the bot.
    Reply(Next),
    /// Send the caller's words to the bot.
    Ask {
        text: String,
        confidence: Option<f64>,
        caller_turns: u32,
    },
}

/// `POST /twilio/bot?attempt=ID&session=N`: the caller spoke (`SpeechResult`) or was silent.
pub async fn turn(State(state): State<Shared>, form: SignedForm) -> Result<Response, ApiError> {
    let t: TurnTarget = form.query()?;
    let speech = form
        .get("SpeechResult")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let confidence = form
        .get("Confidence")
        .and_then(|c| c.trim().parse::<f64>().ok());
    let token = form.token().map(str::to_owned);
    let call_sid = form.get("CallSid").unwrap_or_default().to_owned();
    let s = state.clone();
    let tok = token.clone();
    let (attempt, campaign, session, plan) = state
        .db
        .write(move |tx| {
            let now = s.clock.now();
            let attempt = checked_attempt(tx, t.attempt, &form)?;
            let session = tx
                .bot_session(t.session)?
                .filter(|x| x.attempt_id == attempt.id)
                .ok_or(ApiError::NotFound)?;
            let campaign = s.campaign(tx, attempt.campaign_id)?;
            let plan = plan_turn(
                tx, &campaign, &attempt, &session, speech, confidence, tok, now,
            )?;
            Ok::<_, ApiError>((attempt, campaign, session, plan))
        })
        .await?;
    Metrics::inc(&state.metrics.callbacks);
    let bot = match &campaign.content {
        Content::Script(script) => script.bot(&session.step).cloned(),
        _ => None,
    };
    let Some(bot) = bot else {
        return Ok(xml(twiml::hangup()));
    };
    let opening = Opening {
        step: session.step.clone(),
        bot,
        call_sid,
    };
    let (text, confidence, caller_turns) = match plan {
        Plan::Reply(next) => {
            return Ok(render(
                &state, &campaign, &attempt, &opening, session.id, &next,
            ));
        }
        Plan::Ask {
            text,
            confidence,
            caller_turns,
        } => (text, confidence, caller_turns),
    };
    let metadata = fields(&attempt);
    let request = BotRequest {
        sender: &opening.call_sid,
        message: &text,
        metadata: &metadata,
    };
    let exchange = rasa::ask(&opening.bot.url, opening.bot.timeout, &request).await;
    let Content::Script(script) = &campaign.content else {
        return Ok(xml(twiml::hangup()));
    };
    let decision = decide(&opening.bot, script, caller_turns, &exchange);
    let s = state.clone();
    let d = decision.clone();
    let (attempt_id, session_id) = (attempt.id, session.id);
    let next = state
        .db
        .write(move |tx| {
            let bot_text = joined(&exchange);
            let turn = NewTurn {
                kind: "speech",
                caller_text: Some(&text),
                confidence,
                bot_text: bot_text.as_deref(),
                latency_ms: Some(exchange.latency_ms()),
                error: d.error.as_deref(),
                token: token.as_deref(),
            };
            if store_turn(tx, attempt_id, session_id, &turn, &d, s.clock.now())? {
                return Ok::<_, ApiError>(d.next);
            }
            // a repeated delivery raced the first: answer as the first did
            let session = tx.bot_session(session_id)?.ok_or(ApiError::NotFound)?;
            Ok(replay(&session, &tx.bot_turns(session_id)?))
        })
        .await?;
    log_failure(&decision, attempt_id, session_id);
    Ok(render(
        &state, &campaign, &attempt, &opening, session.id, &next,
    ))
}

/// The first database job of a turn: a replay or an ended conversation is answered from what is
/// stored; silence is stored (twice in a row: the fallback); speech goes to the bot.
#[allow(clippy::too_many_arguments)]
fn plan_turn(
    tx: &Tx<'_>,
    campaign: &Campaign,
    attempt: &AttemptRow,
    session: &BotSession,
    speech: Option<String>,
    confidence: Option<f64>,
    token: Option<String>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Plan, ApiError> {
    let turns = tx.bot_turns(session.id)?;
    let bot = match &campaign.content {
        Content::Script(script) => script.bot(&session.step),
        _ => None,
    };
    let Some(bot) = bot else {
        return Ok(Plan::Reply(Next::Hangup));
    };
    let repeated = match token.as_deref() {
        Some(t) => tx.bot_turn_seen(t)?,
        None => false,
    };
    if repeated || session.ending.is_some() {
        return Ok(Plan::Reply(replay(session, &turns)));
    }
    if attempt.ended_at.is_some() {
        return Ok(Plan::Reply(Next::Hangup));
    }
    let Some(text) = speech else {
        let silent_before = turns
            .iter()
            .rev()
            .take_while(|t| t.kind == "no_input")
            .count();
        let decision = if silent_before >= 1 {
            Decision {
                next: Next::GoTo(bot.fallback.clone()),
                ending: Some((SessionEnd::NoInput, None, Some(bot.fallback.clone()))),
                error: None,
            }
        } else {
            Decision {
                next: repeat_prompt(&turns),
                ending: None,
                error: None,
            }
        };
        let turn = NewTurn {
            kind: "no_input",
            caller_text: None,
            confidence: None,
            bot_text: None,
            latency_ms: None,
            error: None,
            token: token.as_deref(),
        };
        store_turn(tx, attempt.id, session.id, &turn, &decision, now)?;
        return Ok(Plan::Reply(decision.next));
    };
    let caller_turns = turns.iter().filter(|t| t.kind == "speech").count();
    Ok(Plan::Ask {
        text,
        confidence,
        caller_turns: u32::try_from(caller_turns + 1).unwrap_or(u32::MAX),
    })
}

fn log_failure(decision: &Decision, attempt: i64, session: i64) {
    if let Some(error) = &decision.error {
        tracing::warn!(attempt, session, %error, "bot answer not usable: the call goes to the fallback step");
    }
}

/// The TwiML of what comes next.
fn render(
    state: &Shared,
    campaign: &Campaign,
    attempt: &AttemptRow,
    opening: &Opening,
    session_id: i64,
    next: &Next,
) -> Response {
    let step_url = |step: &str| state.callback_url("/twilio/voice", attempt.id, Some(step));
    let language = opening.bot.language.as_deref();
    let body = with_context(state, campaign, attempt, |ctx| match next {
        Next::Prompt {
            texts,
            opening: first,
        } => {
            let step_say = match &campaign.content {
                Content::Script(s) if *first => {
                    s.steps.get(&opening.step).and_then(|st| st.say.as_deref())
                }
                _ => None,
            };
            let action = turn_url(state, attempt.id, session_id);
            twiml::render_bot_prompt(
                step_say,
                &BotPrompt {
                    texts,
                    action: &action,
                    language,
                },
                ctx,
            )
        }
        Next::End { texts, next } => {
            let url = next.as_deref().map(step_url);
            twiml::render_bot_end(texts, url.as_deref(), language, ctx)
        }
        Next::GoTo(step) => twiml::redirect_to(&step_url(step)),
        Next::Hangup => twiml::hangup(),
    });
    xml(body)
}

/// `{public_url}/twilio/bot?attempt=ID&session=N`.
fn turn_url(state: &Shared, attempt: i64, session: i64) -> String {
    format!(
        "{}/twilio/bot?attempt={attempt}&session={session}",
        state.public_url
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::campaign::script::{Ending, Step};
    use crate::server::rasa::{BotAnswer, BotEnd};

    fn bot() -> BotStep {
        BotStep {
            url: url::Url::parse("http://127.0.0.1:5005/webhooks/rest/webhook").expect("url"),
            greeting: Some("/greet".into()),
            max_turns: 3,
            timeout: Duration::from_secs(2),
            language: None,
            fallback: "agent".into(),
        }
    }

    fn script() -> Script {
        let mut steps = std::collections::BTreeMap::new();
        steps.insert(
            "talk".to_owned(),
            Step {
                ending: Ending::Bot(Box::new(bot())),
                ..Step::default()
            },
        );
        for name in ["agent", "bye"] {
            steps.insert(
                name.to_owned(),
                Step {
                    say: Some("x".into()),
                    ending: Ending::Hangup,
                    ..Step::default()
                },
            );
        }
        Script {
            start: "talk".into(),
            steps,
            voicemail: None,
        }
    }

    fn answered(texts: &[&str], end: Option<BotEnd>) -> Exchange {
        Exchange {
            result: Ok(BotAnswer {
                texts: texts.iter().map(|t| (*t).to_owned()).collect(),
                end,
            }),
            latency: Duration::from_millis(12),
        }
    }

    #[test]
    fn answers_lead_to_a_prompt_the_end_or_the_fallback() {
        let (b, s) = (bot(), script());
        let d = decide(&b, &s, 0, &answered(&["Hola"], None));
        assert_eq!(
            d.next,
            Next::Prompt {
                texts: vec!["Hola".into()],
                opening: true
            }
        );
        assert_eq!((d.ending, d.error), (None, None));

        let end = BotEnd {
            outcome: Some("card_blocked".into()),
            next: Some("bye".into()),
        };
        let d = decide(&b, &s, 2, &answered(&["Listo"], Some(end)));
        assert_eq!(
            d.ending,
            Some((
                SessionEnd::Completed,
                Some("card_blocked".into()),
                Some("bye".into())
            ))
        );

        // the last allowed turn without an end goes to the fallback, the reply unspoken
        let d = decide(&b, &s, 3, &answered(&["¿Algo más?"], None));
        assert_eq!(d.next, Next::GoTo("agent".into()));
        assert_eq!(d.ending.map(|e| e.0), Some(SessionEnd::MaxTurns));

        let bad_next = BotEnd {
            outcome: None,
            next: Some("nowhere".into()),
        };
        let d = decide(&b, &s, 1, &answered(&[], Some(bad_next)));
        assert_eq!(d.next, Next::GoTo("agent".into()));
        assert!(d.error.unwrap_or_default().contains("`nowhere`"));

        let d = decide(&b, &s, 1, &answered(&[], None));
        assert_eq!(d.ending.map(|e| e.0), Some(SessionEnd::BotError));

        for (failure, ending) in [
            (
                BotFailure::Timeout(Duration::from_secs(2)),
                SessionEnd::Timeout,
            ),
            (BotFailure::Status(500), SessionEnd::BotError),
            (
                BotFailure::Unreachable("refused".into()),
                SessionEnd::BotError,
            ),
        ] {
            let ex = Exchange {
                result: Err(failure.clone()),
                latency: Duration::from_millis(5),
            };
            let d = decide(&b, &s, 1, &ex);
            assert_eq!(d.next, Next::GoTo("agent".into()), "{failure}");
            assert_eq!(d.ending.map(|e| e.0), Some(ending));
            assert_eq!(d.error, Some(failure.to_string()));
        }
    }
}
