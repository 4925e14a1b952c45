//! The pages, as maud templates: sign-in, the overview of every campaign, one campaign (charts,
//! plan, actions) and one contact's history. Values that change live carry
//! `data-campaign`/`data-field` attributes that `live.js` updates from `/events`.

use chrono_tz::Tz;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::auth::Session;
use super::charts;
use super::view::{CampaignCard, Charts, Plan, rfc3339};
use crate::schedule::ContactState;
use crate::store::{AttemptHistory, ContactRow};

const STYLE: &str = r#"
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2433;background:#f4f6fa}
header{background:#1d2d50;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.2rem;align-items:center}
header a{color:#fff;text-decoration:none;font-weight:600}header form{margin-left:auto}
main{padding:1rem 1.2rem;max-width:1200px}
h1{font-size:1.4rem;margin:.4rem 0 1rem}h2{font-size:1.1rem;margin:1.4rem 0 .5rem}
table{border-collapse:collapse;background:#fff;width:100%;margin-bottom:1rem}
th,td{padding:.35rem .55rem;border-bottom:1px solid #e1e5ee;text-align:left;vertical-align:top}
th{background:#eef1f7;font-weight:600;font-size:.85rem}td.n{text-align:right;font-variant-numeric:tabular-nums}
.state{display:inline-block;padding:.05rem .5rem;border-radius:1rem;font-size:.8rem;background:#e1e5ee}
.state-active{background:#c8efd4}.state-paused{background:#ffe1b3}.state-draft{background:#ddd}
.state-outside-window,.state-next-wave,.state-waiting-for-retries{background:#d6e4ff}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:.6rem;margin-bottom:1rem}
.card{background:#fff;border-radius:6px;padding:.6rem .8rem;box-shadow:0 1px 2px #0001}
.card b{display:block;font-size:1.5rem;font-variant-numeric:tabular-nums}.card>span{font-size:.8rem;color:#5a6478}
.chart{width:100%;max-width:760px;background:#fff;border-radius:6px}
.chart .attempts{fill:#5b8def}.chart .reached{fill:#2fb36d}.chart .funnel{fill:#5b8def}
.chart .line{fill:none;stroke:#e0663a;stroke-width:2}.chart .point{fill:#e0663a}
.chart .axis{stroke:#8891a5}.chart text{font-size:11px;fill:#5a6478}.chart .label,.chart .value{font-size:13px;fill:#1d2433}
.legend .key{display:inline-block;width:.8rem;height:.8rem;vertical-align:middle}
.legend .attempts{background:#5b8def}.legend .reached{background:#2fb36d}
form.inline{display:inline}button{font:inherit;padding:.3rem .8rem;border:1px solid #1d2d50;border-radius:4px;background:#fff;cursor:pointer}
button.primary{background:#1d2d50;color:#fff}input,select{font:inherit;padding:.3rem .4rem}
.login{max-width:340px;margin:4rem auto;background:#fff;padding:1.5rem;border-radius:8px;box-shadow:0 1px 4px #0002}
.login label{display:block;margin:.6rem 0 .2rem}.login input{width:100%;box-sizing:border-box}
.error{color:#b3261e}.muted{color:#5a6478;font-size:.85rem}.live{font-size:.8rem;color:#2fb36d}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:1rem}@media(max-width:900px){.grid2{grid-template-columns:1fr}}
"#;

/// A campaign name in a URL path segment.
pub fn segment(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn campaign_href(name: &str) -> String {
    format!("/campaigns/{}", segment(name))
}

fn page(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · dialer" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a href="/" { "dialer" }
                    @if let Some(s) = session {
                        span.live #live-status data-state="connecting" { "connecting…" }
                        form.inline method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            span { (s.user) " " }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
                @if session.is_some() { script src="/static/live.js" {} }
            }
        }
    }
}

pub fn login(csrf: &str, error: Option<&str>, users: bool, token: bool) -> Markup {
    page(
        "Sign in",
        None,
        html! {
            form.login method="post" action="/login" {
                h1 { "Sign in" }
                @if let Some(e) = error { p.error role="alert" { (e) } }
                input type="hidden" name="csrf" value=(csrf);
                @if users {
                    label for="user" { "User" }
                    input #user name="user" autocomplete="username";
                }
                label for="password" { @if users { "Password" } @else { "Token" } }
                input #password name="password" type="password" autocomplete="current-password" required;
                @if users && token { p.muted { "To sign in with the token, leave the user empty." } }
                p { button.primary type="submit" { "Sign in" } }
            }
        },
    )
}

fn state_badge(card: &CampaignCard) -> Markup {
    html! {
        span class={"state state-" (card.state.replace(' ', "-"))}
            data-campaign=(card.name) data-field="state" { (card.state) }
    }
}

fn live(card: &CampaignCard, field: &str, value: String) -> Markup {
    html! { span data-campaign=(card.name) data-field=(field) { (value) } }
}

pub fn percent(rate: f64) -> String {
    format!("{:.0}%", rate * 100.0)
}

pub fn outcomes(card: &CampaignCard) -> String {
    if card.outcomes.is_empty() {
        return "—".into();
    }
    card.outcomes
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The next window or wave; "now" while contacts are due (`live.js` says the same).
fn next(card: &CampaignCard) -> String {
    match &card.next {
        Some(t) => t.clone(),
        None if card.due_now > 0 => "now".into(),
        None => "—".into(),
    }
}

pub fn overview(session: &Session, cards: &[CampaignCard]) -> Markup {
    page(
        "Campaigns",
        Some(session),
        html! {
            h1 { "Campaigns" }
            @if cards.is_empty() {
                p { "No campaign yet: import one with " code { "dialer campaign import FILE.json" } "." }
            }
            table #campaigns {
                thead { tr {
                    th { "campaign" } th { "state" } th.n { "contacts" } th.n { "open" }
                    th.n { "completed" } th.n { "exhausted" } th.n { "opted out" } th.n { "DNC" }
                    th.n { "in flight" } th.n { "placed today" } th.n { "due now" }
                    th.n { "answer rate" } th { "outcomes" } th { "next window / wave (UTC)" }
                } }
                tbody {
                    @for c in cards {
                        tr data-row=(c.name) {
                            td { a href=(campaign_href(&c.name)) { (c.name) } }
                            td { (state_badge(c)) }
                            td.n { (live(c, "contacts", c.contacts.to_string())) }
                            td.n { (live(c, "open", c.open.to_string())) }
                            td.n { (live(c, "completed", c.completed.to_string())) }
                            td.n { (live(c, "exhausted", c.exhausted.to_string())) }
                            td.n { (live(c, "opted_out", c.opted_out.to_string())) }
                            td.n { (live(c, "dnc", c.dnc.to_string())) }
                            td.n { (live(c, "in_flight", c.in_flight.to_string())) }
                            td.n { (live(c, "placed_today", c.placed_today.to_string())) }
                            td.n { (live(c, "due_now", c.due_now.to_string())) }
                            td.n { (live(c, "answer_rate", percent(c.answer_rate))) }
                            td { (live(c, "outcomes", outcomes(c))) }
                            td { (live(c, "next", next(c))) }
                        }
                    }
                }
            }
            (dnc_form(session))
        },
    )
}

fn dnc_form(session: &Session) -> Markup {
    html! {
        h2 { "Do-not-call list" }
        form method="post" action="/dnc" {
            input type="hidden" name="csrf" value=(session.csrf);
            label for="dnc-number" { "Add a number " }
            input #dnc-number name="number" placeholder="+12125550100" required;
            " " button type="submit" { "Add to DNC" }
            span.muted { " It is never called again, in any campaign." }
        }
    }
}

pub struct CampaignPage<'a> {
    pub card: &'a CampaignCard,
    pub paused: bool,
    pub tz: Tz,
    pub charts: &'a Charts,
    pub plan: &'a Plan,
    pub reason: Option<&'a str>,
}

pub fn campaign(session: &Session, p: &CampaignPage<'_>) -> Markup {
    let c = p.card;
    let href = campaign_href(&c.name);
    let counters: [(&str, &str, String); 8] = [
        ("in_flight", "in flight", c.in_flight.to_string()),
        ("placed_today", "placed today", c.placed_today.to_string()),
        ("due_now", "due now", c.due_now.to_string()),
        ("open", "open", c.open.to_string()),
        ("completed", "completed", c.completed.to_string()),
        ("exhausted", "exhausted", c.exhausted.to_string()),
        ("opted_out", "opted out", c.opted_out.to_string()),
        ("answer_rate", "answer rate", percent(c.answer_rate)),
    ];
    page(
        &c.name,
        Some(session),
        html! {
            h1 { (c.name) " " (state_badge(c)) }
            p {
                form.inline method="post" action={(href) (if p.paused { "/resume" } else { "/pause" })} {
                    input type="hidden" name="csrf" value=(session.csrf);
                    @if p.paused { button.primary #resume type="submit" { "Resume" } }
                    @else { button #pause type="submit" { "Pause" } }
                }
                " "
                a href={(href) "/attempts.csv"} download { "Attempts CSV" }
                " · "
                a href={(href) "/contacts.csv"} download { "Contacts CSV" }
                " · next window / wave: " (live(c, "next", next(c)))
                " · outcomes: " (live(c, "outcomes", outcomes(c)))
            }
            div.cards {
                @for (field, label, value) in &counters {
                    div.card { b { (live(c, field, value.clone())) } span { (label) } }
                }
            }
            div.grid2 {
                div { h2 { "Attempts and answers per hour" } (charts::hourly(p.charts.from, &p.charts.hourly, p.tz)) }
                div { h2 { "Outcome funnel" } (charts::funnel(&p.charts.funnel)) }
                div { h2 { "Calls in flight" } (charts::in_flight(&p.charts.in_flight, p.tz)) }
                div {
                    h2 { "Open contacts by time zone" }
                    table {
                        thead { tr { th { "time zone(s)" } th.n { "open" } th.n { "due now" } th { "window opens (UTC)" } } }
                        tbody {
                            @for z in &p.charts.zones {
                                tr { td { (z.zones) } td.n { (z.open) } td.n { (z.due_now) }
                                     td { (z.window_opens) } }
                            }
                        }
                    }
                }
            }
            h2 #plan { "Plan: who is due, why not, when next" }
            form method="get" action={(href) "#plan"} {
                label for="reason" { "Reason " }
                select #reason name="reason" {
                    option value="" selected[p.reason.is_none()] { "all (" (p.plan.reasons.values().sum::<usize>()) ")" }
                    @for (r, n) in &p.plan.reasons {
                        option value=(r) selected[p.reason == Some(*r)] { (r) " (" (n) ")" }
                    }
                }
                " " button type="submit" { "Filter" }
            }
            p.muted {
                (p.plan.matching) " contacts match"
                @if p.plan.matching > p.plan.rows.len() { "; the " (p.plan.rows.len()) " due soonest are shown (" a href={"/api/campaigns/" (segment(&c.name)) "/plan"} { "all, as JSON" } ")" }
                ". Same decision as " code { "dialer plan" } "."
            }
            table #plan-rows {
                thead { tr { th { "contact" } th { "phone" } th { "time zone" } th { "local time" } th { "due" } th { "reason" } th { "next eligible (UTC)" } th.n { "attempts" } } }
                tbody {
                    @for r in &p.plan.rows {
                        tr {
                            td { a href={"/contacts/" (r.id)} { (r.contact) } }
                            td { (r.phone) } td { (r.timezone) } td { (r.local_time) }
                            td { (if r.due { "yes" } else { "no" }) } td { (r.reason) }
                            td { (r.next_eligible_at.clone().unwrap_or_else(|| "never".into())) }
                            td.n { (r.attempts) }
                        }
                    }
                }
            }
        },
    )
}

pub fn contact(
    session: &Session,
    campaign: &str,
    row: &ContactRow,
    history: &[AttemptHistory],
) -> Markup {
    page(
        row.reference(),
        Some(session),
        html! {
            h1 { "Contact " (row.reference()) }
            p {
                "campaign " a href=(campaign_href(campaign)) { (campaign) }
                " · " (row.phone)
                @if let Some(n) = &row.name { " · " (n) }
                " · state " strong { (row.state.as_str()) }
                " · attempts " (row.attempts)
                @if let Some(t) = row.next_attempt_at { @if row.state == ContactState::Open { " · next attempt at " (rfc3339(t)) } }
                @if row.on_dnc { " · " strong { "on the do-not-call list" } }
                @if let Some(o) = &row.outcome { " · outcome " (o) }
            }
            @if !row.on_dnc {
                form method="post" action="/dnc" {
                    input type="hidden" name="csrf" value=(session.csrf);
                    input type="hidden" name="number" value=(row.phone);
                    button type="submit" { "Add " (row.phone) " to the do-not-call list" }
                }
            }
            h2 { "Attempts" }
            @if history.is_empty() { p { "Not called yet." } }
            @for a in history {
                h2 { "Attempt " (a.attempt_no) " · " (a.reason.as_deref().unwrap_or(&a.status)) }
                table {
                    tbody {
                        tr { th { "call" } td { (a.call_sid.as_deref().unwrap_or("—")) } }
                        tr { th { "started / ended" } td { (rfc3339(a.started_at)) " / " (a.ended_at.map(rfc3339).unwrap_or_else(|| "in progress".into())) } }
                        tr { th { "answered by / outcome" } td { (a.answered_by.as_deref().unwrap_or("—")) " / " (a.outcome.as_deref().unwrap_or("—")) } }
                        tr { th { "duration" } td { (a.duration_seconds.map(|d| format!("{d} s")).unwrap_or_else(|| "—".into())) } }
                        @if a.error_code.is_some() || a.error_message.is_some() {
                            tr { th { "error" } td.error { (a.error_code.map(|c| c.to_string()).unwrap_or_default()) " " (a.error_message.as_deref().unwrap_or("")) } }
                        }
                        tr { th { "events" } td {
                            @for (i, e) in a.events.iter().enumerate() {
                                @if i > 0 { " → " }
                                (e.call_status) " " span.muted { (e.received_at.format("%H:%M:%S")) }
                            }
                        } }
                        @if !a.answers.is_empty() {
                            tr { th { "answers" } td {
                                @for an in &a.answers {
                                    div { "step " code { (an.step) } ": "
                                        (an.digits.as_deref().or(an.speech.as_deref()).unwrap_or("(nothing)"))
                                        @if let Some(c) = an.confidence { " (confidence " (format!("{c:.2}")) ")" }
                                        @if !an.matched { " · no match" }
                                        @if an.late { " · late, ignored" }
                                    }
                                }
                            } }
                        }
                    }
                }
            }
        },
    )
}

pub fn message(session: &Session, title: &str, text: &str, back: &str) -> Markup {
    page(
        title,
        Some(session),
        html! { h1 { (title) } p #message { (text) } p { a href=(back) { "Back" } } },
    )
}

pub fn not_found(session: &Session, what: &str) -> Markup {
    message(session, "Not found", what, "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded_in_paths() {
        assert_eq!(segment("Campaña Optimizada"), "Campa%C3%B1a%20Optimizada");
        assert_eq!(segment("a/b?c"), "a%2Fb%3Fc");
        assert_eq!(segment("appointment-reminder"), "appointment-reminder");
    }
}
