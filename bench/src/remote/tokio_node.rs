//! The baseline of the remote benchmark: one bare tokio TCP connection on 127.0.0.1, with
//! length-prefixed frames, no actors and no serialization beyond copying the bytes.
//!
//! A frame is a `u32` length, a `u8` kind, a `u64` value and the payload, all integers in
//! network byte order. The length counts the bytes after the length field. The value is the
//! running count of an ack frame and the sequence number of a data, ping or pong frame.
//!
//! The client sends every frame through one writer task, which takes all queued frames with
//! `recv_many` and writes them with one `write_all`. The server decodes every frame already
//! buffered, appends the replies to one output buffer and writes it with one `write_all`
//! before it waits for more input.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::{JoinHandle, JoinSet};

use super::{Measured, OneWay, RemoteSizes, ACK_EVERY, ASK_TIMEOUT, PAYLOAD, WINDOW};

/// Size of the length field, in bytes.
const LENGTH_LEN: usize = 4;
/// Size of the kind and value fields that follow the length field, in bytes.
const BODY_HEADER_LEN: usize = 1 + 8;
/// Size of a frame without its payload, in bytes.
const HEADER_LEN: usize = LENGTH_LEN + BODY_HEADER_LEN;
/// Maximum value of the length field. A longer frame is rejected and closes the connection.
/// The benchmark's largest frame carries [`PAYLOAD`] bytes.
const MAX_FRAME_LEN: usize = 64 * 1024;
/// Minimum free space in a reader's buffer before each read, in bytes.
const READ_CHUNK: usize = 64 * 1024;
/// Maximum number of frames the client's writer takes from its queue for one write.
const BATCH_FRAMES: usize = 1024;
/// Upper bound on connecting to the serving child.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound on the client's writer flushing its queue when the measurement ends.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Returns what the tokio column measures, for the notes under the table.
pub(super) fn note() -> String {
    "tokio: the baseline, one TCP connection carrying length-prefixed frames, with no actors \
     and no serialization beyond copying the bytes. A writer task batches the client's \
     frames, and the server batches its replies."
        .to_owned()
}

/// Frame kind, the byte after the length field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// One-way payload, client to server.
    Data = 1,
    /// Running count of data frames received, server to client.
    Ack = 2,
    /// Ask with a sequence number, client to server.
    Ping = 3,
    /// Reply to a ping with the same sequence number, server to client.
    Pong = 4,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Kind::Data),
            2 => Some(Kind::Ack),
            3 => Some(Kind::Ping),
            4 => Some(Kind::Pong),
            _ => None,
        }
    }
}

/// A decoded frame, borrowing its payload from the input buffer.
#[derive(Debug, PartialEq, Eq)]
struct Frame<'a> {
    kind: Kind,
    value: u64,
    payload: &'a [u8],
}

/// An invalid frame. The connection that sent it is closed.
#[derive(Debug, PartialEq, Eq)]
enum FrameError {
    /// The length field exceeds [`MAX_FRAME_LEN`].
    TooLong(usize),
    /// The length field is below [`BODY_HEADER_LEN`], so the kind or value is missing.
    TooShort(usize),
    /// The kind byte names no [`Kind`].
    UnknownKind(u8),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLong(length) => {
                write!(
                    f,
                    "frame length {length} exceeds the maximum {MAX_FRAME_LEN}"
                )
            }
            FrameError::TooShort(length) => {
                write!(
                    f,
                    "frame length {length} is below the minimum {BODY_HEADER_LEN}"
                )
            }
            FrameError::UnknownKind(kind) => write!(f, "unknown frame kind {kind}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Decodes the frame at the start of `input`. Returns the frame and the bytes it took, or
/// `None` when `input` contains only part of a frame.
fn decode(input: &[u8]) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let Some((length, rest)) = input.split_first_chunk::<LENGTH_LEN>() else {
        return Ok(None);
    };
    let length = u32::from_be_bytes(*length) as usize;
    if length > MAX_FRAME_LEN {
        return Err(FrameError::TooLong(length));
    }
    if length < BODY_HEADER_LEN {
        return Err(FrameError::TooShort(length));
    }
    let Some(body) = rest.get(..length) else {
        return Ok(None);
    };
    let kind = Kind::from_byte(body[0]).ok_or(FrameError::UnknownKind(body[0]))?;
    let mut value = [0_u8; 8];
    value.copy_from_slice(&body[1..BODY_HEADER_LEN]);
    let frame = Frame {
        kind,
        value: u64::from_be_bytes(value),
        payload: &body[BODY_HEADER_LEN..],
    };
    Ok(Some((frame, LENGTH_LEN + length)))
}

/// Encodes the length, kind and value fields of a frame that carries `payload_len` bytes.
fn encode_header(kind: Kind, value: u64, payload_len: usize) -> [u8; HEADER_LEN] {
    assert!(
        payload_len <= MAX_FRAME_LEN - BODY_HEADER_LEN,
        "a payload of {payload_len} bytes does not fit in one frame"
    );
    let length = (BODY_HEADER_LEN + payload_len) as u32;
    let mut header = [0_u8; HEADER_LEN];
    header[..LENGTH_LEN].copy_from_slice(&length.to_be_bytes());
    header[LENGTH_LEN] = kind as u8;
    header[LENGTH_LEN + 1..].copy_from_slice(&value.to_be_bytes());
    header
}

/// Appends a frame to `out`.
fn encode_into(out: &mut Vec<u8>, kind: Kind, value: u64, payload: &[u8]) {
    out.extend_from_slice(&encode_header(kind, value, payload.len()));
    out.extend_from_slice(payload);
}

/// A frame queued for the client's writer: its encoded header and its payload, which the
/// writer copies behind the header into the batch it writes.
struct EncodedFrame {
    header: [u8; HEADER_LEN],
    payload: Vec<u8>,
}

impl EncodedFrame {
    fn new(kind: Kind, value: u64, payload: Vec<u8>) -> Self {
        Self {
            header: encode_header(kind, value, payload.len()),
            payload,
        }
    }
}

/// Buffered reader of frames: reads into a buffer with at least [`READ_CHUNK`] bytes free
/// and decodes the frames from it.
struct FrameReader<R> {
    source: R,
    buffer: Vec<u8>,
    /// Start of the bytes not decoded yet.
    start: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    fn new(source: R) -> Self {
        Self {
            source,
            buffer: Vec::with_capacity(READ_CHUNK),
            start: 0,
        }
    }

    /// Decodes the next frame from the buffer without reading, or returns `None` when the
    /// buffer contains no complete frame.
    fn next_buffered(&mut self) -> Result<Option<Frame<'_>>, FrameError> {
        match decode(&self.buffer[self.start..])? {
            Some((frame, used)) => {
                self.start += used;
                Ok(Some(frame))
            }
            None => Ok(None),
        }
    }

    /// Reads more bytes into the buffer. Returns `false` at the end of the stream and an
    /// error when the stream ends inside a frame.
    async fn fill(&mut self) -> anyhow::Result<bool> {
        // Drop the decoded bytes, so the buffer never grows beyond one partial frame and
        // one chunk.
        self.buffer.drain(..self.start);
        self.start = 0;
        self.buffer.reserve(READ_CHUNK);
        let read = self.source.read_buf(&mut self.buffer).await?;
        if read > 0 {
            return Ok(true);
        }
        if !self.buffer.is_empty() {
            bail!(
                "the connection closed inside a frame, {} bytes after its start",
                self.buffer.len()
            );
        }
        Ok(false)
    }
}

/// Runs the server until `stop` resolves, after printing its address on stdout.
pub(super) async fn serve(stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a TCP listener on 127.0.0.1")?;
    let port = listener
        .local_addr()
        .context("reading the listener's port")?
        .port();
    super::announce(&format!("127.0.0.1:{port}"))?;
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => {
                let (stream, peer) = accepted.context("accepting a TCP connection")?;
                connections.spawn(async move {
                    if let Err(error) = serve_tcp(stream).await {
                        eprintln!("tokio server: connection from {peer} failed: {error:#}");
                    }
                });
            }
            Some(_) = connections.join_next() => {}
        }
    }
    connections.shutdown().await;
    Ok(())
}

async fn serve_tcp(mut stream: TcpStream) -> anyhow::Result<()> {
    // Replies go out as soon as the input is drained, so Nagle's algorithm would only delay
    // them.
    stream.set_nodelay(true).context("setting TCP_NODELAY")?;
    let (read, write) = stream.split();
    serve_connection(read, write).await
}

/// Replies to the frames from `read` on `write` until the client closes the connection.
///
/// The server acknowledges every [`ACK_EVERY`] data frames with the count received on this
/// connection, and replies to every ping with a pong of the same sequence number and payload
/// (the benchmark's pings carry none). It appends the replies to one buffer while complete
/// frames remain buffered, and writes that buffer with one `write_all` before it reads
/// again.
async fn serve_connection(
    read: impl AsyncRead + Unpin,
    mut write: impl AsyncWrite + Unpin,
) -> anyhow::Result<()> {
    let mut reader = FrameReader::new(read);
    let mut replies = Vec::with_capacity(READ_CHUNK);
    let mut received = 0_u64;
    loop {
        while let Some(frame) = reader.next_buffered()? {
            match frame.kind {
                Kind::Data => {
                    received += 1;
                    if received % ACK_EVERY == 0 {
                        encode_into(&mut replies, Kind::Ack, received, &[]);
                    }
                }
                Kind::Ping => encode_into(&mut replies, Kind::Pong, frame.value, frame.payload),
                other => bail!("the client sent a {other:?} frame, which only a server sends"),
            }
        }
        if !replies.is_empty() {
            write.write_all(&replies).await?;
            replies.clear();
        }
        if !reader.fill().await? {
            return Ok(());
        }
    }
}

/// Reply channels of the pending asks, keyed by ping sequence number.
#[derive(Default)]
struct Replies {
    waiting: HashMap<u64, oneshot::Sender<u64>>,
    /// Reason the connection closed, once it has. No ask registers after that.
    closed: Option<String>,
}

/// State the client's reader and writer tasks share with the workloads.
#[derive(Default)]
struct Shared {
    replies: Mutex<Replies>,
    /// Highest running count acknowledged by the server.
    acked: AtomicU64,
    /// Notified on every ack and when the connection closes.
    progress: Notify,
    /// Next ping sequence number, unique across concurrent asks.
    next_seq: AtomicU64,
}

impl Shared {
    fn replies(&self) -> std::sync::MutexGuard<'_, Replies> {
        self.replies.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records why the connection closed (the first reason wins), fails every waiting ask
    /// and wakes the one-way sender.
    fn close(&self, reason: String) {
        let waiting = {
            let mut replies = self.replies();
            replies.closed.get_or_insert(reason);
            std::mem::take(&mut replies.waiting)
        };
        drop(waiting);
        self.progress.notify_one();
    }

    fn closed(&self) -> Option<String> {
        self.replies().closed.clone()
    }
}

/// The measuring side of the connection, cheap to clone for concurrent askers.
#[derive(Clone)]
struct Client {
    frames: mpsc::UnboundedSender<EncodedFrame>,
    shared: Arc<Shared>,
}

impl Client {
    /// Queues `frame` for the writer, or fails when the writer has stopped.
    fn send(&self, frame: EncodedFrame) -> anyhow::Result<()> {
        if self.frames.send(frame).is_err() {
            bail!("{}", self.closed_reason());
        }
        Ok(())
    }

    fn closed_reason(&self) -> String {
        let reason = self.shared.closed();
        reason.unwrap_or_else(|| "the writer task stopped".to_owned())
    }

    /// Sends one ping and waits up to [`ASK_TIMEOUT`] for its pong. Returns the sequence
    /// number and the value the pong carried.
    async fn ask(&self) -> anyhow::Result<(u64, u64)> {
        let seq = self.shared.next_seq.fetch_add(1, Ordering::Relaxed);
        let (reply_to, reply) = oneshot::channel();
        {
            let mut replies = self.shared.replies();
            if let Some(reason) = &replies.closed {
                bail!("ask {seq} could not be sent: {reason}");
            }
            replies.waiting.insert(seq, reply_to);
        }
        self.send(EncodedFrame::new(Kind::Ping, seq, Vec::new()))
            .with_context(|| format!("ask {seq} could not be sent"))?;
        match tokio::time::timeout(ASK_TIMEOUT, reply).await {
            Ok(Ok(value)) => Ok((seq, value)),
            Ok(Err(_)) => bail!("ask {seq} got no reply: {}", self.closed_reason()),
            Err(_) => {
                self.shared.replies().waiting.remove(&seq);
                bail!("ask {seq} got no reply within {ASK_TIMEOUT:?}")
            }
        }
    }
}

/// Connects to the server at `address`, starts the writer and reader tasks and returns the
/// client with both tasks' handles.
async fn connect(address: &str) -> anyhow::Result<(Client, JoinHandle<()>, JoinHandle<()>)> {
    let address: SocketAddr = address
        .parse()
        .with_context(|| format!("the tokio child announced `{address}`, not `IP:PORT`"))?;
    if !address.ip().is_loopback() {
        bail!("the tokio child announced {address}, which is not a loopback address");
    }
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
        Ok(connected) => connected.with_context(|| format!("connecting to {address}"))?,
        Err(_) => bail!("connecting to {address} timed out after {CONNECT_TIMEOUT:?}"),
    };
    stream.set_nodelay(true).context("setting TCP_NODELAY")?;
    let (read, write) = stream.into_split();
    let (frames, queued) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared::default());
    let writer = tokio::spawn({
        let shared = Arc::clone(&shared);
        async move {
            let reason = match write_frames(write, queued).await {
                Ok(()) => "the client closed the connection".to_owned(),
                Err(error) => format!("writing to the connection failed: {error}"),
            };
            shared.close(reason);
        }
    });
    let reader = tokio::spawn({
        let shared = Arc::clone(&shared);
        async move {
            let reason = match read_frames(read, &shared).await {
                Ok(()) => "the server closed the connection".to_owned(),
                Err(error) => format!("reading from the connection failed: {error:#}"),
            };
            shared.close(reason);
        }
    });
    Ok((Client { frames, shared }, writer, reader))
}

/// Takes every queued frame, up to [`BATCH_FRAMES`], and writes them with one `write_all`,
/// until every sender is dropped. Then it shuts down the write side.
async fn write_frames(
    mut write: impl AsyncWrite + Unpin,
    mut queued: mpsc::UnboundedReceiver<EncodedFrame>,
) -> std::io::Result<()> {
    let mut frames = Vec::with_capacity(BATCH_FRAMES);
    let mut batch = Vec::with_capacity(READ_CHUNK);
    while queued.recv_many(&mut frames, BATCH_FRAMES).await > 0 {
        for frame in frames.drain(..) {
            batch.extend_from_slice(&frame.header);
            batch.extend_from_slice(&frame.payload);
        }
        write.write_all(&batch).await?;
        batch.clear();
    }
    write.shutdown().await
}

/// Reads frames until the server closes the connection: acks update the count and wake the
/// one-way sender, pongs complete the waiting ask.
async fn read_frames(read: impl AsyncRead + Unpin, shared: &Shared) -> anyhow::Result<()> {
    let mut reader = FrameReader::new(read);
    loop {
        while let Some(frame) = reader.next_buffered()? {
            match frame.kind {
                Kind::Ack => {
                    shared.acked.fetch_max(frame.value, Ordering::Release);
                    shared.progress.notify_one();
                }
                Kind::Pong => {
                    // An ask that timed out has removed its entry, so its late pong finds
                    // none and is dropped.
                    let waiting = shared.replies().waiting.remove(&frame.value);
                    if let Some(reply_to) = waiting {
                        let _ = reply_to.send(frame.value);
                    }
                }
                other => bail!("the server sent a {other:?} frame, which only a client sends"),
            }
        }
        if !reader.fill().await? {
            return Ok(());
        }
    }
}

/// Connects to the server at `announced` (`127.0.0.1:PORT`) over one connection and runs
/// the one-way, sequential ask and concurrent ask workloads on it.
pub(super) async fn measure(announced: &str, sizes: &RemoteSizes) -> anyhow::Result<Measured> {
    let (client, writer, reader) = connect(announced).await?;

    // Warm the connection and both tasks before any clock starts.
    sequential_asks(&client, sizes.asks / 10 + 1, sizes.limit).await?;
    let one_way = one_way(&client, sizes).await;
    let asks = sequential_asks(&client, sizes.asks, sizes.limit).await;
    let concurrent = concurrent_asks(&client, sizes).await;

    // Dropping the last sender lets the writer flush its queue and shut down the write side.
    drop(client);
    if tokio::time::timeout(CLOSE_TIMEOUT, writer).await.is_err() {
        eprintln!("tokio client: the writer did not stop within {CLOSE_TIMEOUT:?}");
    }
    reader.abort();
    Ok(Measured {
        one_way,
        asks,
        concurrent: Some(concurrent),
        control: None,
    })
}

/// Connects to the server at `announced` and runs only `asks` sequential asks after a
/// warm-up of a tenth as many; returns every round trip.
pub(super) async fn measure_asks(
    announced: &str,
    asks: usize,
    limit: Duration,
) -> anyhow::Result<Vec<Duration>> {
    let (client, writer, reader) = connect(announced).await?;
    sequential_asks(&client, asks / 10 + 1, limit).await?;
    let latencies = sequential_asks(&client, asks, limit).await;
    drop(client);
    if tokio::time::timeout(CLOSE_TIMEOUT, writer).await.is_err() {
        eprintln!("tokio client: the writer did not stop within {CLOSE_TIMEOUT:?}");
    }
    reader.abort();
    latencies
}

/// Sends `sizes.messages` data frames with at most [`WINDOW`] unacknowledged.
///
/// The server's count starts at zero on each connection, and this is the only workload
/// that sends data frames, so the acknowledged counts start at zero as well.
async fn one_way(client: &Client, sizes: &RemoteSizes) -> anyhow::Result<OneWay> {
    let shared = &client.shared;
    let messages = sizes.messages - sizes.messages % ACK_EVERY;
    let started = Instant::now();
    let deadline = started + sizes.limit;
    let mut sent = 0_u64;
    while sent < messages || shared.acked.load(Ordering::Acquire) < messages {
        let acked = shared.acked.load(Ordering::Acquire);
        if sent < messages && sent.saturating_sub(acked) < WINDOW {
            client
                .send(EncodedFrame::new(Kind::Data, sent, vec![0x5a; PAYLOAD]))
                .with_context(|| format!("one-way: message {sent} could not be sent"))?;
            sent += 1;
            continue;
        }
        if let Some(reason) = shared.closed() {
            bail!("one-way: {acked} of {messages} messages acknowledged, then {reason}");
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, shared.progress.notified())
            .await
            .is_err()
        {
            bail!(
                "one-way: {} of {messages} messages acknowledged within {:?}, so the server \
                 or the connection stalled",
                shared.acked.load(Ordering::Acquire),
                sizes.limit
            );
        }
    }
    Ok(OneWay {
        messages,
        elapsed: started.elapsed(),
        dropped: 0,
    })
}

/// Asks `count` times one after the other and returns every round trip.
async fn sequential_asks(
    client: &Client,
    count: usize,
    limit: Duration,
) -> anyhow::Result<Vec<Duration>> {
    let deadline = Instant::now() + limit;
    let mut latencies = Vec::with_capacity(count);
    for done in 0..count {
        if Instant::now() > deadline {
            bail!("asks: only {done} of {count} done within {limit:?}");
        }
        let started = Instant::now();
        let (seq, reply) = client.ask().await?;
        latencies.push(started.elapsed());
        if reply != seq {
            bail!("ask {seq} returned {reply}, expected {seq}");
        }
    }
    Ok(latencies)
}

/// Runs `sizes.askers` tasks that each ask `sizes.asks_per_asker` times in sequence, and
/// returns the asks completed per second over all of them.
async fn concurrent_asks(client: &Client, sizes: &RemoteSizes) -> anyhow::Result<f64> {
    let started = Instant::now();
    let tasks: Vec<_> = (0..sizes.askers)
        .map(|_| {
            let client = client.clone();
            let (count, limit) = (sizes.asks_per_asker, sizes.limit);
            tokio::spawn(async move { sequential_asks(&client, count, limit).await.map(|_| ()) })
        })
        .collect();
    for task in tasks {
        task.await.context("an asking task panicked")??;
    }
    let total = (sizes.askers * sizes.asks_per_asker) as f64;
    Ok(total / started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(kind: Kind, value: u64, payload: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode_into(&mut bytes, kind, value, payload);
        bytes
    }

    #[test]
    fn decode_round_trips_frame() {
        let bytes = encoded(Kind::Data, 7, &[0x5a; PAYLOAD]);
        let (frame, used) = decode(&bytes).unwrap().unwrap();
        assert_eq!(used, HEADER_LEN + PAYLOAD);
        assert_eq!(frame.kind, Kind::Data);
        assert_eq!(frame.value, 7);
        assert_eq!(frame.payload, &[0x5a; PAYLOAD][..]);
    }

    #[test]
    fn decode_waits_for_split_frame() {
        let mut bytes = encoded(Kind::Ping, 42, b"abc");
        let whole = bytes.len();
        bytes.extend_from_slice(&encoded(Kind::Pong, 43, &[]));
        for cut in 0..whole {
            assert_eq!(decode(&bytes[..cut]), Ok(None), "cut after {cut} bytes");
        }
        let (frame, used) = decode(&bytes).unwrap().unwrap();
        assert_eq!(used, whole);
        assert_eq!(frame.value, 42);
        assert_eq!(frame.payload, b"abc");
        let (next, _) = decode(&bytes[used..]).unwrap().unwrap();
        assert_eq!(next.kind, Kind::Pong);
        assert_eq!(next.value, 43);
    }

    #[test]
    fn decode_rejects_oversized_length() {
        let length = (MAX_FRAME_LEN as u32 + 1).to_be_bytes();
        assert_eq!(decode(&length), Err(FrameError::TooLong(MAX_FRAME_LEN + 1)));
        assert_eq!(
            decode(&u32::MAX.to_be_bytes()),
            Err(FrameError::TooLong(u32::MAX as usize))
        );
    }

    #[test]
    fn decode_rejects_short_length_and_unknown_kind() {
        let short = (BODY_HEADER_LEN as u32 - 1).to_be_bytes();
        assert_eq!(
            decode(&short),
            Err(FrameError::TooShort(BODY_HEADER_LEN - 1))
        );
        let mut unknown = encoded(Kind::Data, 1, &[]);
        unknown[LENGTH_LEN] = 9;
        assert_eq!(decode(&unknown), Err(FrameError::UnknownKind(9)));
    }

    #[tokio::test]
    async fn reader_joins_frame_split_across_reads() {
        let (mut client, server) = tokio::io::duplex(1024);
        let bytes = encoded(Kind::Data, 5, &[0x5a; PAYLOAD]);
        let mut reader = FrameReader::new(server);
        client.write_all(&bytes[..6]).await.unwrap();
        assert!(reader.fill().await.unwrap());
        assert_eq!(reader.next_buffered(), Ok(None));
        client.write_all(&bytes[6..]).await.unwrap();
        while reader.buffer.len() < bytes.len() {
            assert!(reader.fill().await.unwrap());
        }
        let frame = reader.next_buffered().unwrap().unwrap();
        assert_eq!(frame.value, 5);
        assert_eq!(frame.payload.len(), PAYLOAD);
        drop(client);
        assert!(!reader.fill().await.unwrap());
    }

    #[tokio::test]
    async fn reader_rejects_stream_ending_inside_frame() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = FrameReader::new(server);
        client
            .write_all(&encoded(Kind::Ping, 1, &[])[..5])
            .await
            .unwrap();
        drop(client);
        assert!(reader.fill().await.unwrap());
        assert!(reader.fill().await.is_err());
    }

    #[tokio::test]
    async fn server_acks_data_and_answers_pings() {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let (read, write) = tokio::io::split(server);
        let serving = tokio::spawn(serve_connection(read, write));
        let mut input = Vec::new();
        for seq in 0..2 * ACK_EVERY {
            input.extend_from_slice(&encoded(Kind::Data, seq, &[0x5a; PAYLOAD]));
        }
        input.extend_from_slice(&encoded(Kind::Ping, 77, b"echo"));
        client.write_all(&input).await.unwrap();
        client.shutdown().await.unwrap();
        serving.await.unwrap().unwrap();

        let mut output = Vec::new();
        client.read_to_end(&mut output).await.unwrap();
        let mut frames = Vec::new();
        let mut rest = &output[..];
        while let Some((frame, used)) = decode(rest).unwrap() {
            frames.push((frame.kind, frame.value, frame.payload.to_vec()));
            rest = &rest[used..];
        }
        assert!(rest.is_empty(), "{} bytes left undecoded", rest.len());
        let expected = [
            (Kind::Ack, ACK_EVERY, Vec::new()),
            (Kind::Ack, 2 * ACK_EVERY, Vec::new()),
            (Kind::Pong, 77, b"echo".to_vec()),
        ];
        assert_eq!(frames, expected);
    }

    #[tokio::test]
    async fn server_closes_on_oversized_frame() {
        let (mut client, server) = tokio::io::duplex(1024);
        let (read, write) = tokio::io::split(server);
        let serving = tokio::spawn(serve_connection(read, write));
        let length = (MAX_FRAME_LEN as u32 + 1).to_be_bytes();
        client.write_all(&length).await.unwrap();
        let error = serving.await.unwrap().unwrap_err();
        assert!(
            error.to_string().contains("exceeds the maximum"),
            "{error:#}"
        );
    }
}
