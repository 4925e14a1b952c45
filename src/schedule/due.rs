//! The one decision: is a contact due at an instant, and if not, why and when next.

use chrono::{DateTime, Utc};

use super::{ContactView, Decision, Policy};

pub fn decide(_contact: &ContactView, _policy: &Policy, _at: DateTime<Utc>) -> Decision {
    unimplemented!("schedule::decide is being written")
}
