//! `GET /Calls.json`: Twilio's list filters (`To`, `From`, `Status`, `StartTime`/`EndTime` with
//! `>`/`<`), newest first, with `PageSize`, `Page`/`PageToken` and `next_page_uri` paging.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};

use super::SimState;
use super::api::{ApiError, authenticate, param};
use super::record::CallRecord;

/// One list filter on a date: `StartTime` (that day), `StartTime>` (on or after), `StartTime<` (before).
fn date_filter(params: &[(String, String)], key: &str) -> Result<Vec<(char, NaiveDate)>, ApiError> {
    let mut filters = Vec::new();
    for (suffix, op) in [("", '='), (">", '>'), ("<", '<')] {
        if let Some(v) = param(params, &format!("{key}{suffix}")) {
            let date =
                NaiveDate::parse_from_str(v.get(..10).unwrap_or(v), "%Y-%m-%d").map_err(|_| {
                    ApiError::bad(
                        20001,
                        format!("Invalid {key}{suffix}: {v}, expected YYYY-MM-DD"),
                    )
                })?;
            filters.push((op, date));
        }
    }
    Ok(filters)
}

fn date_matches(filters: &[(char, NaiveDate)], at: Option<DateTime<Utc>>) -> bool {
    filters
        .iter()
        .all(|(op, date)| match at.map(|t| t.date_naive()) {
            None => false,
            Some(day) => match op {
                '=' => day == *date,
                '>' => day >= *date,
                _ => day < *date,
            },
        })
}

pub async fn list(
    State(state): State<SimState>,
    Path(account): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authenticate(&state, &headers, &account)?;
    let params: Vec<(String, String)> = serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
        .map_err(|_| ApiError::bad(20001, "Invalid query string"))?;
    let page_size = match param(&params, "PageSize") {
        None => 50,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                ApiError::bad(20001, format!("Invalid PageSize: {v}, expected 1 to 1000"))
            })?,
    };
    let page = match param(&params, "Page") {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ApiError::bad(20001, format!("Invalid Page: {v}")))?,
    };
    let (to, from, status) = (
        param(&params, "To"),
        param(&params, "From"),
        param(&params, "Status"),
    );
    let starts = date_filter(&params, "StartTime")?;
    let ends = date_filter(&params, "EndTime")?;
    let matching: Vec<CallRecord> = {
        let book = state.shared.book();
        // Newest first, like Twilio.
        book.calls
            .iter()
            .rev()
            .filter(|c| to.is_none_or(|t| c.to == t))
            .filter(|c| from.is_none_or(|f| c.from == f))
            .filter(|c| status.is_none_or(|s| c.status.as_str() == s))
            .filter(|c| date_matches(&starts, c.start_time) && date_matches(&ends, c.end_time))
            .cloned()
            .collect()
    };
    // A page token names the last call of the previous page, so calls created while paging
    // do not shift later pages.
    let skip = match param(&params, "PageToken").and_then(|t| t.strip_prefix("PA")) {
        Some(after) => matching
            .iter()
            .position(|c| c.sid == after)
            .map_or(matching.len(), |i| i + 1),
        None => page.saturating_mul(page_size),
    };
    let calls: Vec<&CallRecord> = matching.iter().skip(skip).take(page_size).collect();
    let more = skip + calls.len() < matching.len();
    let base_path = format!("/2010-04-01/Accounts/{account}/Calls.json");
    let filters: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "PageSize" | "Page" | "PageToken"))
        .cloned()
        .collect();
    let page_uri = |page: usize, token: Option<String>| {
        let mut pairs = filters.clone();
        pairs.push(("PageSize".to_owned(), page_size.to_string()));
        pairs.push(("Page".to_owned(), page.to_string()));
        if let Some(token) = token {
            pairs.push(("PageToken".to_owned(), token));
        }
        format!(
            "{base_path}?{}",
            serde_urlencoded::to_string(pairs).unwrap_or_default()
        )
    };
    let next_page_uri = match (more, calls.last()) {
        (true, Some(last)) => Some(page_uri(page + 1, Some(format!("PA{}", last.sid)))),
        _ => None,
    };
    let previous_page_uri = (page > 0).then(|| page_uri(page - 1, None));
    Ok(Json(json!({
        "calls": calls.iter().map(|c| c.to_json()).collect::<Vec<_>>(),
        "end": (skip + calls.len()).saturating_sub(1),
        "first_page_uri": page_uri(0, None),
        "next_page_uri": next_page_uri,
        "page": page,
        "page_size": page_size,
        "previous_page_uri": previous_page_uri,
        "start": skip,
        "uri": page_uri(page, param(&params, "PageToken").map(str::to_owned)),
    })))
}
