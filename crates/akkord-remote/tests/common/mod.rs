//! Helpers shared by the transport tests: a collecting handler, log capture and waiting.

#![allow(dead_code)]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use akkord_actor::address::UniqueAddress;
use akkord_remote::transport::{Destination, InboundHandler, Transport, TransportEvent};
use akkord_remote::wire::UserEnvelope;
use akkord_remote::{Lane, RemoteSettings};
use bytes::Bytes;
use tokio::sync::mpsc;

/// A message received by a [`Collector`].
#[derive(Debug)]
pub struct Received {
    pub from: UniqueAddress,
    pub lane: Lane,
    pub system: bool,
    pub envelope: UserEnvelope,
}

/// Handler that forwards everything it receives to channels.
pub struct Collector {
    messages: mpsc::UnboundedSender<Received>,
    pub events: Mutex<Vec<TransportEvent>>,
    pub heartbeats: Mutex<Vec<(UniqueAddress, u64)>>,
}

impl InboundHandler for Collector {
    fn on_user_message(&self, from: &UniqueAddress, lane: Lane, envelope: UserEnvelope) {
        let _ = self.messages.send(Received {
            from: from.clone(),
            lane,
            system: false,
            envelope,
        });
    }

    fn on_system_message(&self, from: &UniqueAddress, envelope: UserEnvelope) {
        let _ = self.messages.send(Received {
            from: from.clone(),
            lane: Lane::Control,
            system: true,
            envelope,
        });
    }

    fn on_heartbeat_response(&self, from: &UniqueAddress, nonce: u64) {
        self.heartbeats.lock().unwrap().push((from.clone(), nonce));
    }

    fn on_event(&self, event: TransportEvent) {
        self.events.lock().unwrap().push(event);
    }
}

/// A running transport with its collector and received-message channel.
pub struct Node {
    pub transport: Transport,
    pub collector: Arc<Collector>,
    pub inbox: mpsc::UnboundedReceiver<Received>,
}

impl Node {
    pub async fn start(settings: RemoteSettings) -> Node {
        let (messages, inbox) = mpsc::unbounded_channel();
        let collector = Arc::new(Collector {
            messages,
            events: Mutex::new(Vec::new()),
            heartbeats: Mutex::new(Vec::new()),
        });
        let transport = Transport::bind(settings, collector.clone()).await.unwrap();
        Node {
            transport,
            collector,
            inbox,
        }
    }

    /// Starts a node at the port of `old`, as the next incarnation there.
    pub async fn start_in_place_of(old: &UniqueAddress) -> Node {
        let mut restarted = settings();
        restarted.bind = format!("127.0.0.1:{}", old.address.port()).parse().unwrap();
        Node::start(restarted).await
    }

    pub fn address(&self) -> UniqueAddress {
        self.transport.local_address().clone()
    }

    /// Sends a message for `recipient` with manifest `m` and `payload` to incarnation `to` on
    /// the ordinary lane.
    pub fn send_ordinary(&self, to: &UniqueAddress, recipient: u64, payload: &[u8]) {
        self.transport
            .send(
                &Destination::Node(to.clone()),
                Lane::Ordinary,
                &envelope(recipient, "m", payload),
            )
            .unwrap();
    }

    /// Waits up to ten seconds for the next message.
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(10), self.inbox.recv())
            .await
            .expect("no message within 10 s")
            .expect("inbox closed")
    }

    /// Returns true when no message arrives within `wait`.
    pub async fn stays_empty(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.inbox.recv()).await.is_err()
    }
}

pub fn settings() -> RemoteSettings {
    let mut settings = RemoteSettings::new("test");
    settings.reconnect_backoff_min = Duration::from_millis(20);
    settings.reconnect_backoff_max = Duration::from_millis(200);
    settings
}

pub fn envelope(recipient: u64, manifest: &str, payload: &[u8]) -> UserEnvelope {
    UserEnvelope {
        recipient,
        sender: None,
        manifest: manifest.to_owned(),
        payload: Bytes::copy_from_slice(payload),
    }
}

/// Waits up to ten seconds for `condition`, polling every 10 ms.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Log lines of every test in this binary, captured at debug level and above.
pub fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || LogWriter(logs))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
}

/// Returns the captured warn lines that contain every one of `parts`.
pub fn warn_lines_with(parts: &[&str]) -> Vec<String> {
    lines_with("WARN", parts)
}

/// Returns the captured lines of `level` (`"INFO"`, `"WARN"`, ...) that contain every one
/// of `parts`.
pub fn lines_with(level: &str, parts: &[&str]) -> Vec<String> {
    let level = format!(" {level} ");
    let logs = logs().lock().unwrap();
    String::from_utf8_lossy(&logs)
        .lines()
        .filter(|line| line.contains(&level))
        .filter(|line| parts.iter().all(|part| line.contains(part)))
        .map(str::to_owned)
        .collect()
}

struct LogWriter(&'static Mutex<Vec<u8>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
