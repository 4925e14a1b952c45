//! Campaigns and contacts: the JSON and CSV formats, their validation, phone numbers and zones.

pub mod model;
pub mod phone;
pub mod script;
pub mod template;
