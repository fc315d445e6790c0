//! System messages survive connections that break mid-frame: a proxy between two nodes cuts
//! every connection after a random number of bytes, and each message still arrives once and
//! in order.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use akkord_actor::address::{Address, UniqueAddress};
use common::{envelope, settings, wait_until, Node};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Forwards connections to `target`, closing each after `budget` client bytes.
async fn cutting_proxy(listener: TcpListener, target: u16, seed: u64, accepted: Arc<AtomicUsize>) {
    let mut rng = SmallRng::seed_from_u64(seed);
    loop {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        accepted.fetch_add(1, Ordering::Relaxed);
        let budget = rng.random_range(200..3000usize);
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                return;
            };
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            let upstream = async {
                let mut forwarded = 0;
                let mut buffer = [0u8; 512];
                while forwarded < budget {
                    let n = match client_read.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n.min(budget - forwarded),
                    };
                    if server_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                    forwarded += n;
                }
            };
            let downstream = async {
                let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
            };
            // Whichever direction ends first ends the connection in both directions.
            tokio::select! {
                () = upstream => {}
                () = downstream => {}
            }
        });
    }
}

#[tokio::test]
async fn system_messages_survive_cut_connections() {
    let mut sender_settings = settings();
    sender_settings.redelivery.resend_interval = Duration::from_millis(100);
    let a = Node::start(sender_settings).await;
    let mut b = Node::start(settings()).await;

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let target = b.address().address.port();
    let proxy = tokio::spawn(cutting_proxy(listener, target, 7, accepted.clone()));
    let via_proxy = UniqueAddress::new(
        Address::new("test", "127.0.0.1", proxy_port).unwrap(),
        b.address().uid,
    );

    let count = 200;
    for i in 0..count {
        a.transport
            .send_system(&via_proxy, envelope(i, "watch", &[0u8; 40]))
            .unwrap();
        if i % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    for i in 0..count {
        let received = b.next().await;
        assert!(received.system);
        assert_eq!(received.envelope.recipient, i);
        assert_eq!(received.from, a.address());
    }
    let proxy_address = via_proxy.address.clone();
    wait_until("every system message is acknowledged", || {
        a.transport.unacked_system_messages(&proxy_address) == 0
    })
    .await;
    assert!(b.stays_empty(Duration::from_millis(500)).await);
    // 200 frames of about 60 bytes cannot pass one connection of at most 3000 bytes.
    let connections = accepted.load(Ordering::Relaxed);
    assert!(
        connections >= 4,
        "only {connections} connections through the proxy"
    );
    proxy.abort();
}
