//! The integration tests: the real `dialer` binary run in temporary folders (see `harness`), and
//! end to end against the simulator over loopback (`calls`).

mod harness;

mod bot;
mod browser;
mod calls;
mod campaign;
mod carrier;
mod cli;
mod contacts;
mod crash;
mod daemon;
mod dashboard;
mod disk;
mod dnc;
mod export;
mod faults;
mod generator;
mod imports;
mod inbound;
mod limits;
mod messaging;
mod pg_copy;
mod pg_run;
mod plan;
mod simulator;
mod soak;

/// The contacts generator, compiled in so its numbers can be checked.
#[path = "../../examples/gen_contacts.rs"]
#[allow(dead_code)]
mod gen_contacts;
