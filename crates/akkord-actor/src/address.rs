//! Node addresses and incarnations.
//!
//! A node is named `akkord://<system>@<host>:<port>`. Each start of a node picks a random
//! 64-bit uid, and the pair of address and uid, a [`UniqueAddress`], names one incarnation:
//! a restart at the same address is a different incarnation.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// URI scheme of node addresses.
pub const SCHEME: &str = "akkord";

/// Location of a node: actor system name, host and port.
///
/// Ordering compares system, then host as a string, then port. The cluster leader is the
/// lowest address, so this order must be the same on every node.
///
/// The text is shared, so a clone costs no allocation.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    system: Arc<str>,
    host: Arc<str>,
    port: u16,
}

impl Address {
    /// Creates an address after checking each part.
    ///
    /// # Errors
    ///
    /// Returns [`AddressError`] when the system name is empty or contains characters other
    /// than ASCII letters, digits, `-` and `_`, or when the host is empty or contains `/`,
    /// `@` or whitespace.
    pub fn new(
        system: impl Into<String>,
        host: impl Into<String>,
        port: u16,
    ) -> Result<Self, AddressError> {
        let system = system.into();
        let host = host.into();
        validate_system_name(&system)?;
        if host.is_empty()
            || host
                .chars()
                .any(|c| c == '/' || c == '@' || c.is_whitespace())
        {
            return Err(AddressError::InvalidHost(host));
        }
        Ok(Self {
            system: system.into(),
            host: host.into(),
            port,
        })
    }

    /// Returns the actor system name.
    pub fn system(&self) -> &str {
        &self.system
    }

    /// Returns the host name or IP address, without brackets for IPv6.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Returns the TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(
                f,
                "{SCHEME}://{}@[{}]:{}",
                self.system, self.host, self.port
            )
        } else {
            write!(f, "{SCHEME}://{}@{}:{}", self.system, self.host, self.port)
        }
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Address {
    type Err = AddressError;

    /// Parses `akkord://system@host:port`; an IPv6 host is written in brackets.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || AddressError::InvalidFormat(text.to_owned());
        let rest = text
            .strip_prefix(SCHEME)
            .and_then(|rest| rest.strip_prefix("://"))
            .ok_or_else(invalid)?;
        let (system, host_port) = rest.split_once('@').ok_or_else(invalid)?;
        let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
            let (host, port) = bracketed.split_once("]:").ok_or_else(invalid)?;
            (host, port)
        } else {
            host_port.rsplit_once(':').ok_or_else(invalid)?
        };
        let port = port
            .parse::<u16>()
            .map_err(|_| AddressError::InvalidPort(port.to_owned()))?;
        Address::new(system, host, port)
    }
}

/// One incarnation of a node: its address and the random uid it picked at start.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UniqueAddress {
    /// Location of the node.
    pub address: Address,
    /// Random 64-bit number chosen when the node started.
    pub uid: u64,
}

/// Hashes the uid alone: it is random, so it spreads well, and hashing is cheaper than
/// over the address's strings. Equal values have equal uids, so they hash alike.
impl std::hash::Hash for UniqueAddress {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.uid.hash(state);
    }
}

impl UniqueAddress {
    /// Creates a unique address from an address and an incarnation uid.
    pub fn new(address: Address, uid: u64) -> Self {
        Self { address, uid }
    }
}

impl fmt::Display for UniqueAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.address, self.uid)
    }
}

impl fmt::Debug for UniqueAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Invalid node address or part of one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The text is not of the form `akkord://system@host:port`.
    #[error("invalid node address {0:?}: expected akkord://<system>@<host>:<port>")]
    InvalidFormat(String),
    /// The system name is empty or has characters other than ASCII letters, digits, `-`, `_`.
    #[error(
        "invalid actor system name {0:?}: use ASCII letters, digits, '-' and '_', at least one"
    )]
    InvalidSystemName(String),
    /// The host is empty or contains `/`, `@` or whitespace.
    #[error("invalid host {0:?}: expected a host name or an IP address")]
    InvalidHost(String),
    /// The port is not a number from 0 to 65535.
    #[error("invalid port {0:?}: expected a number from 0 to 65535")]
    InvalidPort(String),
}

/// Checks that `name` is usable as an actor system name.
///
/// # Errors
///
/// Returns [`AddressError::InvalidSystemName`] when it is empty or has characters other than
/// ASCII letters, digits, `-` and `_`.
pub fn validate_system_name(name: &str) -> Result<(), AddressError> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(AddressError::InvalidSystemName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips() {
        for text in [
            "akkord://demo@127.0.0.1:2552",
            "akkord://my-system_2@localhost:0",
            "akkord://demo@[::1]:25520",
        ] {
            let address: Address = text.parse().unwrap();
            assert_eq!(address.to_string(), text);
        }
    }

    #[test]
    fn clone_shares_text() {
        let address = Address::new("demo", "127.0.0.1", 2552).unwrap();
        let copy = address.clone();
        assert_eq!(copy, address);
        assert_eq!(copy.system().as_ptr(), address.system().as_ptr());
        assert_eq!(copy.host().as_ptr(), address.host().as_ptr());
    }

    #[test]
    fn parse_rejects_bad_input() {
        assert!(matches!(
            "http://demo@h:1".parse::<Address>(),
            Err(AddressError::InvalidFormat(_))
        ));
        assert!(matches!(
            "akkord://demo@h:99999".parse::<Address>(),
            Err(AddressError::InvalidPort(_))
        ));
        assert!(matches!(
            "akkord://de mo@h:1".parse::<Address>(),
            Err(AddressError::InvalidSystemName(_))
        ));
        assert!(matches!(
            "akkord://demo@:1".parse::<Address>(),
            Err(AddressError::InvalidHost(_))
        ));
    }

    #[test]
    fn order_is_system_host_port() {
        let a = Address::new("s", "127.0.0.1", 2).unwrap();
        let b = Address::new("s", "127.0.0.1", 10).unwrap();
        let c = Address::new("s", "127.0.0.2", 1).unwrap();
        assert!(a < b);
        assert!(b < c);
    }
}
