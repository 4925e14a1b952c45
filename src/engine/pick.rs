//! Picking due contacts: the indexed due query (O(due + log n)), each row confirmed by the same
//! `decide` that `dialer plan` runs.

use std::collections::HashSet;
use std::ops::ControlFlow;

use chrono::{DateTime, Utc};

use crate::decision::Loaded;
use crate::store::{ContactRow, Store, StoreError};

/// Ids read from the due index per look, beyond the ones to skip; the rows of the others are
/// read and decided until `limit` are due.
const SCAN: u32 = 10_000;

/// Up to `limit` contacts of the campaign due at `at`, not in `skip`. Nothing for a paused or
/// draft campaign.
pub fn due_contacts(
    store: &Store,
    loaded: &Loaded,
    daily_cap: Option<u32>,
    at: DateTime<Utc>,
    skip: &HashSet<i64>,
    limit: usize,
) -> Result<Vec<ContactRow>, StoreError> {
    if !loaded.active() || limit == 0 {
        return Ok(Vec::new());
    }
    let scan = SCAN.saturating_add(u32::try_from(skip.len()).unwrap_or(u32::MAX));
    let mut out = Vec::new();
    store.visit_due(loaded.id(), at, scan, |id| {
        if skip.contains(&id) {
            return Ok(ControlFlow::Continue(()));
        }
        if let Some(row) = store.contact(id)?
            && loaded.decide(store, daily_cap, &row, at)?.is_due()
        {
            out.push(row);
            if out.len() >= limit {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(out)
}

/// The items of each list in turn: the first of each, then the second of each, and so on (round
/// robin between campaigns).
pub fn interleave<K: Clone, T>(mut lists: Vec<(K, std::vec::IntoIter<T>)>) -> Vec<(K, T)> {
    let mut out = Vec::new();
    loop {
        let before = out.len();
        for (key, items) in &mut lists {
            if let Some(item) = items.next() {
                out.push((key.clone(), item));
            }
        }
        if out.len() == before {
            return out;
        }
    }
}
