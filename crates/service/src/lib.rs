//! `codejail serve`: openedx/codejail-service's v0 API over codejail's
//! warm pool.
//!
//! - [`api`]: the routes (`POST /api/v0/code-exec`, `/health/`,
//!   `/metrics`), refusals in codejail-service's order and words;
//! - [`form`] and [`payload`]: the body as Django and DRF read it, the
//!   payload as Python's `json.loads` and jsonschema judge it;
//! - [`pool`]: the warm pool behind a bounded queue; [`checks`]: the
//!   start-up safety checks; [`metrics`]: Prometheus;
//! - [`server`]: start (gc, pool, checks), serve, graceful stop.
//!
//! The code runs through the facade (`codejail::Warm`); nothing here
//! confines anything.
#![deny(missing_docs)]

pub mod api;
pub mod checks;
pub mod form;
pub mod metrics;
pub mod payload;
pub mod pool;
pub mod server;

pub use server::{ServeError, Service, bind};
