//! HTTP management of an akkord cluster node.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
