//! Byte streams of connections: plain TCP or TLS over TCP.

use tokio::io::{AsyncRead, AsyncWrite};

/// A connected byte stream.
pub(crate) trait Connection: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Connection for T {}

/// A boxed connection, so plain and TLS streams share one code path.
pub(crate) type BoxedConnection = Box<dyn Connection>;
