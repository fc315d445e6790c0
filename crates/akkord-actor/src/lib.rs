//! Local actor runtime of akkord.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod address;
