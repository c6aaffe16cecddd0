//! hoist's function runtimes.
//!
//! - [`catalog`] (feature `catalog`): runtime catalogs from Kubeless files, Laser executor
//!   providers and image mappings, merged and reloadable.
//! - [`function`] and [`plan`] (feature `catalog`): function specs and the build plans that
//!   provision, install, compile and run them on any backend.
//! - [`contract`] (feature `server`): a server that serves a Rust function by the runtime
//!   contract (`/healthz`, events, timeouts, request logs, Prometheus `/metrics`).
//! - [`proxy`] (feature `proxy`): the same contract in front of any language's server, as the
//!   `hoist-proxy` binary runs it; the Python and Node shims in `shims/` serve
//!   `(event, context)` functions behind it.

#[cfg(feature = "catalog")]
pub mod catalog;
#[cfg(feature = "server")]
pub mod contract;
#[cfg(feature = "catalog")]
pub mod function;
#[cfg(feature = "catalog")]
pub mod plan;
#[cfg(feature = "proxy")]
pub mod proxy;
