//! HTTP management of an akkord cluster node, in the line of Akka Management's cluster
//! HTTP endpoints and health checks.
//!
//! [`ManagementServer`] serves one node's membership (list, leave, down), its liveness and
//! readiness, and its metrics in the Prometheus text format. [`client::ManagementClient`]
//! calls those endpoints, for the `akkord` command-line program and for tests.
//!
//! The server binds to loopback by default: the endpoints have no authentication, and
//! `leave` and `down` change the cluster.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod address;
pub mod client;
pub mod metrics;
pub mod model;
mod routes;
mod server;

pub use model::{
    BlockerEntry, CommandResponse, ErrorResponse, HealthResponse, MemberEntry, MembersResponse,
    UnreachableEntry,
};
pub use routes::{MAX_BODY_BYTES, REQUEST_TIMEOUT};
pub use server::{
    ManagementError, ManagementServer, ManagementSettings, CONNECTION_MAX_AGE, DEFAULT_PORT,
    HEADER_READ_TIMEOUT, MAX_CONNECTIONS,
};
