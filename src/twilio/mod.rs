//! Twilio: the REST client, request signatures and TwiML.

pub mod signature;
