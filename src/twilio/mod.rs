//! Twilio: the REST client, request signatures and TwiML.

pub mod client;
pub mod error;
pub mod signature;
pub mod twiml;

pub use client::{
    Call, CallPage, Client, ClientOptions, CreateCall, CreateMessage, ListCalls, Message,
    RetryPolicy,
};
pub use error::Error;

#[cfg(test)]
mod snapshots;
