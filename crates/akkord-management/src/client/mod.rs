//! A client of the management endpoints, for the `akkord` command-line program and tests.

mod table;

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::header::HOST;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::model::{CommandResponse, ErrorResponse, MemberEntry, MembersResponse};

pub use table::format_members;

/// Default time one request may take, connecting included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response body read; the members of a large cluster fit many times over.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Failure of a [`ManagementClient`] request.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint text is not `host:port` or `http://host:port`; nothing was sent.
    #[error("invalid management endpoint {0:?}: expected <host>:<port> or http://<host>:<port>")]
    InvalidEndpoint(String),
    /// No TCP connection to the endpoint could be opened.
    #[error("failed to connect to the management endpoint {endpoint}: {source}; check that the node runs and serves management on that address")]
    Connect {
        /// The endpoint, `host:port`.
        endpoint: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The request and its response took longer than the client's timeout; a `leave` or
    /// `down` may still have taken effect.
    #[error("request to the management endpoint {endpoint} timed out after {timeout:?}")]
    Timeout {
        /// The endpoint, `host:port`.
        endpoint: String,
        /// The client's timeout.
        timeout: Duration,
    },
    /// The HTTP exchange failed after the connection opened, or the response body was
    /// larger than 16 MiB.
    #[error("HTTP exchange with the management endpoint {endpoint} failed: {source}")]
    Http {
        /// The endpoint, `host:port`.
        endpoint: String,
        /// The HTTP library's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The endpoint responded with an error status; `message` is its explanation.
    #[error("the management endpoint answered {status}: {message}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The error message from the response body, or the body itself when it has none.
        message: String,
    },
    /// The response body is not the expected JSON, as when the endpoint runs another
    /// version or is not an akkord node.
    #[error("invalid response from the management endpoint {endpoint}: {source}")]
    Decode {
        /// The endpoint, `host:port`.
        endpoint: String,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// A client of one node's management endpoint over HTTP/1.1, one connection per request.
///
/// # Example
///
/// ```no_run
/// use akkord_management::client::{format_members, ManagementClient};
///
/// # #[tokio::main]
/// # async fn main() -> anyhow::Result<()> {
/// let client = ManagementClient::parse("127.0.0.1:8558")?;
/// let members = client.members().await?;
/// print!("{}", format_members(&members));
/// println!("{}", client.leave("127.0.0.1:2552").await?);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ManagementClient {
    /// `host:port` to connect to; also the `Host` header.
    endpoint: String,
    timeout: Duration,
}

impl ManagementClient {
    /// Creates a client of the endpoint at `endpoint`, with [`DEFAULT_TIMEOUT`].
    pub fn new(endpoint: SocketAddr) -> Self {
        Self {
            endpoint: endpoint.to_string(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Creates a client from `host:port` or `http://host:port`; the host is resolved on
    /// each request.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidEndpoint`] when `endpoint` has another scheme, a path, or no
    /// port number.
    pub fn parse(endpoint: &str) -> Result<Self, ClientError> {
        let invalid = || ClientError::InvalidEndpoint(endpoint.to_owned());
        let authority = endpoint.strip_prefix("http://").unwrap_or(endpoint);
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        if authority.contains(['/', '@', '?', '#']) || authority.chars().any(char::is_whitespace) {
            return Err(invalid());
        }
        let (host, port) = authority.rsplit_once(':').ok_or_else(invalid)?;
        let bracketed = host.starts_with('[') && host.ends_with(']');
        if host.is_empty() || (host.contains(':') && !bracketed) || port.parse::<u16>().is_err() {
            return Err(invalid());
        }
        Ok(Self {
            endpoint: authority.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Sets the time one request may take, connecting included.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Returns the endpoint, `host:port`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Fetches the cluster members in the node's view.
    ///
    /// # Errors
    ///
    /// Any [`ClientError`] but `InvalidEndpoint`.
    pub async fn members(&self) -> Result<MembersResponse, ClientError> {
        let body = self.expect_success(Method::GET, "/cluster/members").await?;
        self.decode(&body)
    }

    /// Fetches the member at `address` in the node's view.
    ///
    /// `address` is `akkord://<system>@<host>:<port>` or `<host>:<port>`.
    ///
    /// # Errors
    ///
    /// [`ClientError::Status`] with 400 for a malformed address and 404 when no member runs
    /// there; otherwise as [`ManagementClient::members`].
    pub async fn member(&self, address: &str) -> Result<MemberEntry, ClientError> {
        let path = format!("/cluster/members/{}", percent_encode(address));
        let body = self.expect_success(Method::GET, &path).await?;
        self.decode(&body)
    }

    /// Asks the member at `address` to leave the cluster; returns the node's message.
    ///
    /// `address` is `akkord://<system>@<host>:<port>` or `<host>:<port>`.
    ///
    /// # Errors
    ///
    /// [`ClientError::Status`] with 400 for a malformed address and 404 when no member runs
    /// there; otherwise as [`ManagementClient::members`].
    pub async fn leave(&self, address: &str) -> Result<String, ClientError> {
        self.command(address, "leave").await
    }

    /// Marks the member at `address` as Down; returns the node's message.
    ///
    /// # Errors
    ///
    /// As [`ManagementClient::leave`].
    pub async fn down(&self, address: &str) -> Result<String, ClientError> {
        self.command(address, "down").await
    }

    /// Fetches the node's metrics as Prometheus exposition text.
    ///
    /// # Errors
    ///
    /// As [`ManagementClient::members`], with `Http` when the text is not UTF-8.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let body = self.expect_success(Method::GET, "/metrics").await?;
        String::from_utf8(body.to_vec()).map_err(|error| ClientError::Http {
            endpoint: self.endpoint.clone(),
            source: Box::new(error),
        })
    }

    /// Sends `GET` to `path` and returns the status code and body, whatever the status.
    ///
    /// # Errors
    ///
    /// As [`ManagementClient::members`], without `Status` and `Decode`.
    pub async fn get(&self, path: &str) -> Result<(u16, Bytes), ClientError> {
        let (status, body) = self.request(Method::GET, path).await?;
        Ok((status.as_u16(), body))
    }

    async fn command(&self, address: &str, action: &str) -> Result<String, ClientError> {
        let path = format!("/cluster/members/{}/{action}", percent_encode(address));
        let body = self.expect_success(Method::POST, &path).await?;
        let response: CommandResponse = self.decode(&body)?;
        Ok(response.message)
    }

    async fn expect_success(&self, method: Method, path: &str) -> Result<Bytes, ClientError> {
        let (status, body) = self.request(method, path).await?;
        if status.is_success() {
            return Ok(body);
        }
        let message = match serde_json::from_slice::<ErrorResponse>(&body) {
            Ok(error) => error.error,
            Err(_) => String::from_utf8_lossy(&body).trim().to_owned(),
        };
        Err(ClientError::Status {
            status: status.as_u16(),
            message,
        })
    }

    fn decode<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, ClientError> {
        serde_json::from_slice(body).map_err(|source| ClientError::Decode {
            endpoint: self.endpoint.clone(),
            source,
        })
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        tokio::time::timeout(self.timeout, self.exchange(method, path))
            .await
            .map_err(|_| ClientError::Timeout {
                endpoint: self.endpoint.clone(),
                timeout: self.timeout,
            })?
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let http = |source: Box<dyn std::error::Error + Send + Sync>| ClientError::Http {
            endpoint: self.endpoint.clone(),
            source,
        };
        let stream =
            TcpStream::connect(&self.endpoint)
                .await
                .map_err(|source| ClientError::Connect {
                    endpoint: self.endpoint.clone(),
                    source,
                })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| http(error.into()))?;
        let _connection = AbortOnDrop(tokio::spawn(connection));
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.endpoint)
            .body(Empty::<Bytes>::new())
            .map_err(|error| http(error.into()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| http(error.into()))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(http)?
            .to_bytes();
        Ok((status, body))
    }
}

/// Stops the task driving a client connection when the request ends or is cancelled.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Percent-encodes every byte of `text` except the unreserved characters of RFC 3986.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_percent_encoded() {
        assert_eq!(
            percent_encode("akkord://sys@127.0.0.1:2552"),
            "akkord%3A%2F%2Fsys%40127.0.0.1%3A2552"
        );
        assert_eq!(percent_encode("a b/é"), "a%20b%2F%C3%A9");
    }

    #[test]
    fn endpoints_parsed() {
        let cases = [
            ("127.0.0.1:8558", "127.0.0.1:8558"),
            ("http://localhost:8558", "localhost:8558"),
            ("http://localhost:8558/", "localhost:8558"),
            ("[::1]:8558", "[::1]:8558"),
        ];
        for (text, endpoint) in cases {
            let client = ManagementClient::parse(text).unwrap();
            assert_eq!(client.endpoint(), endpoint, "{text}");
        }
    }

    #[test]
    fn malformed_endpoints_rejected() {
        for text in [
            "",
            "localhost",
            "https://localhost:8558",
            "http://localhost:8558/cluster",
            "localhost:http",
            "::1:8558",
            "user@localhost:8558",
        ] {
            let error = ManagementClient::parse(text).unwrap_err();
            assert!(
                matches!(&error, ClientError::InvalidEndpoint(value) if value == text),
                "{text}: {error}"
            );
        }
    }
}
