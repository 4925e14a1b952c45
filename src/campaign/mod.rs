//! Campaigns and contacts: the JSON and CSV formats, their validation, phone numbers and zones.

pub mod bot;
pub mod contacts_csv;
pub mod follow_up;
pub mod json;
pub mod model;
pub mod phone;
pub mod phone_order;
pub mod script;
pub mod template;

#[cfg(test)]
mod contacts_fuzz_tests;
#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod schedule_fuzz_tests;
