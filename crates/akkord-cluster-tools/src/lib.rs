//! Cluster tools of akkord, built on cluster membership: a singleton actor with a proxy,
//! the receptionist made cluster-wide, distributed publish/subscribe by topic and routers
//! over the receptionist's listings.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod pubsub;
pub mod receptionist;
pub mod router;
pub mod singleton;
