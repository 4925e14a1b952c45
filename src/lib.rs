//! `dialer`: an outbound campaign dialer. The binary in `main.rs` parses the command line and
//! calls [`run`]; everything else lives in the modules below.

pub mod campaign;
pub mod clock;
pub mod schedule;
pub mod simulator;
pub mod twilio;
