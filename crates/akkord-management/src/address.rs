//! Member addresses as written in management URLs.

use std::net::SocketAddr;

use akkord_actor::address::{Address, SCHEME};

/// Parses a member address from a URL path segment, already percent-decoded.
///
/// Accepts `akkord://<system>@<host>:<port>` and the short form `<host>:<port>`, which
/// takes `system` as the actor system name. An IPv6 host is written in brackets.
///
/// # Errors
///
/// Returns a message naming `text` and the expected forms when it is neither.
pub fn parse_member_address(text: &str, system: &str) -> Result<Address, String> {
    let expected = format!("expected {SCHEME}://<system>@<host>:<port> or <host>:<port>");
    let invalid = |reason: String| format!("invalid member address {text:?}: {reason}");
    if text.starts_with(SCHEME) {
        return text
            .parse::<Address>()
            .map_err(|error| invalid(error.to_string()));
    }
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Address::new(system, socket.ip().to_string(), socket.port())
            .map_err(|error| invalid(error.to_string()));
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(invalid(expected));
    };
    if host.contains(':') || host.starts_with('[') {
        return Err(invalid(expected));
    }
    let Ok(port) = port.parse::<u16>() else {
        return Err(invalid(format!(
            "port {port:?} is not a number from 0 to 65535"
        )));
    };
    Address::new(system, host, port).map_err(|error| invalid(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_address_parsed() {
        let address = parse_member_address("akkord://other@10.1.2.3:2552", "sys").unwrap();
        assert_eq!(address, Address::new("other", "10.1.2.3", 2552).unwrap());
    }

    #[test]
    fn short_forms_take_local_system() {
        let cases = [
            ("127.0.0.1:2552", Address::new("sys", "127.0.0.1", 2552)),
            ("[::1]:2552", Address::new("sys", "::1", 2552)),
            ("node-a:25520", Address::new("sys", "node-a", 25520)),
        ];
        for (text, expected) in cases {
            assert_eq!(
                parse_member_address(text, "sys"),
                Ok(expected.unwrap()),
                "{text}"
            );
        }
    }

    #[test]
    fn malformed_addresses_rejected() {
        for text in [
            "",
            "localhost",
            "akkord://sys",
            "akkord://sys@host:port",
            "host:99999",
            "::1:80",
            "a b:80",
            "http://host:80",
        ] {
            let error = parse_member_address(text, "sys").unwrap_err();
            assert!(error.contains(&format!("{text:?}")), "{error}");
        }
    }
}
