//! The integration tests, one binary (one build) with a module per concern.

mod support;

mod authorization;
mod contract;

mod e2e;
mod file_store;
mod fleet;
mod login;
mod observe;
mod redis;
mod refresh;
mod retry;
mod rotation;
mod schema;
mod secrets;
mod sessions;
mod sim_store;
mod simulation;
mod ui;
mod wire;
