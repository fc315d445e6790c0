//! Byte streams of connections: plain TCP or TLS over TCP, and their two halves.

use std::io;
use std::sync::Arc;

use akkord_actor::address::UniqueAddress;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, WriteHalf};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::queue::IdleSocket;

/// A connected byte stream.
pub(crate) trait Connection: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Connection for T {}

/// A boxed connection, so plain and TLS streams share one code path.
pub(crate) type BoxedConnection = Box<dyn Connection>;

/// Read half of a [`Link`].
pub(crate) type LinkReader = Box<dyn AsyncRead + Unpin + Send>;

/// An established connection: plain TCP, whose socket senders may share while the lane
/// writer is idle, or TLS, written by the lane writer alone.
pub(crate) enum Link {
    Plain(TcpStream),
    Tls(BoxedConnection),
}

impl Link {
    /// Returns the connection as one byte stream, for the handshake.
    pub(crate) fn stream(&mut self) -> &mut dyn Connection {
        match self {
            Link::Plain(tcp) => tcp,
            Link::Tls(connection) => connection,
        }
    }

    /// Splits the connection into its read half and its write half.
    pub(crate) fn split(self) -> (LinkReader, LaneSink) {
        match self {
            Link::Plain(tcp) => {
                let (reader, writer) = tcp.into_split();
                (Box::new(reader), LaneSink::Shared(Arc::new(writer)))
            }
            Link::Tls(connection) => {
                let (reader, writer) = tokio::io::split(connection);
                (Box::new(reader), LaneSink::Boxed(writer))
            }
        }
    }
}

/// Write side of a connected lane.
pub(crate) enum LaneSink {
    Shared(Arc<OwnedWriteHalf>),
    Boxed(WriteHalf<BoxedConnection>),
}

impl LaneSink {
    /// Writes all of `bytes`.
    pub(crate) async fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        match self {
            LaneSink::Shared(socket) => {
                while !bytes.is_empty() {
                    socket.writable().await?;
                    match socket.try_write(bytes) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(n) => bytes = &bytes[n..],
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                        Err(error) => return Err(error),
                    }
                }
                Ok(())
            }
            LaneSink::Boxed(writer) => {
                writer.write_all(bytes).await?;
                writer.flush().await
            }
        }
    }

    /// Returns the socket senders may write to while the writer waits, for plain TCP.
    pub(crate) fn idle_socket(&self, peer_uid: u64) -> Option<IdleSocket> {
        match self {
            LaneSink::Shared(socket) => Some(IdleSocket {
                socket: socket.clone(),
                peer_uid,
            }),
            LaneSink::Boxed(_) => None,
        }
    }

    /// Returns a handle that keeps a plain TCP connection's write side open while it lives,
    /// because the socket's write side shuts down when its last handle drops.
    pub(crate) fn keep_open(&self) -> Option<Arc<OwnedWriteHalf>> {
        match self {
            LaneSink::Shared(socket) => Some(socket.clone()),
            LaneSink::Boxed(_) => None,
        }
    }
}

/// The write half of a connection that a peer opened, offered to the lane writer of the
/// association with that peer, which then sends on it instead of opening a connection.
pub(crate) struct OfferedLink {
    /// Identifier that tells this offer from a later one of the same peer and lane.
    pub(crate) id: u64,
    /// Incarnation that opened the connection.
    pub(crate) peer: UniqueAddress,
    /// Write half of the connection.
    pub(crate) sink: LaneSink,
    /// Cancelled when either side stops using the connection.
    pub(crate) closed: CancellationToken,
}
