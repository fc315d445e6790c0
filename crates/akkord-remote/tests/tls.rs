//! TLS 1.3 with mutual authentication. Nodes with certificates from the cluster CA talk,
//! but a node with a certificate from another CA and a plain-TCP client cannot associate.

mod common;

use std::time::Duration;

use akkord_remote::tls::TlsSettings;
use akkord_remote::transport::Destination;
use akkord_remote::Lane;
use common::{envelope, logs, settings, wait_until, warn_lines_with, Node};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    /// Issues a certificate for 127.0.0.1 and returns TLS settings trusting this CA.
    fn node_tls(&self, trusted: &Ca) -> TlsSettings {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        TlsSettings::from_pem(
            trusted.issuer.pem().as_bytes(),
            cert.pem().as_bytes(),
            key.serialize_pem().as_bytes(),
        )
        .unwrap()
    }
}

#[tokio::test]
async fn nodes_with_cluster_ca_talk() {
    let ca = Ca::new();
    let mut a_settings = settings();
    a_settings.tls = Some(ca.node_tls(&ca));
    let mut b_settings = settings();
    b_settings.tls = Some(ca.node_tls(&ca));
    let mut a = Node::start(a_settings).await;
    let mut b = Node::start(b_settings).await;

    a.transport
        .send(
            &Destination::Node(b.address()),
            Lane::Ordinary,
            &envelope(1, "m", b"over tls"),
        )
        .unwrap();
    let received = b.next().await;
    assert_eq!(&received.envelope.payload[..], b"over tls");
    b.transport
        .send_system(&a.address(), envelope(2, "watch", b""))
        .unwrap();
    let received = a.next().await;
    assert!(received.system);
    assert_eq!(received.from, b.address());

    // B replies on the ordinary lane over the TLS connection that A opened.
    b.send_ordinary(&a.address(), 3, b"back over tls");
    let received = a.next().await;
    assert_eq!(&received.envelope.payload[..], b"back over tls");
    let ordinary = Lane::Ordinary.index();
    assert_eq!(b.transport.stats().connections_taken[ordinary], 1);
    assert_eq!(b.transport.stats().connections_opened[ordinary], 0);
}

#[tokio::test]
async fn foreign_certificate_cannot_associate() {
    logs();
    let ca = Ca::new();
    let rogue_ca = Ca::new();
    let mut node_settings = settings();
    node_settings.tls = Some(ca.node_tls(&ca));
    let mut node = Node::start(node_settings).await;
    // The rogue trusts the cluster CA, so only the node's check of the client certificate
    // can keep it out.
    let mut rogue_settings = settings();
    rogue_settings.tls = Some(rogue_ca.node_tls(&ca));
    let rogue = Node::start(rogue_settings).await;

    let to_node = Destination::Node(node.address());
    rogue
        .transport
        .send(&to_node, Lane::Ordinary, &envelope(1, "m", b"let me in"))
        .unwrap();
    wait_until("node logs the failed TLS handshake", || {
        !warn_lines_with(&["handshake i/o failed", "127.0.0.1"]).is_empty()
    })
    .await;
    assert!(node.stays_empty(Duration::from_millis(500)).await);
    assert!(node.transport.stats().inbound_rejected >= 1);
}

#[tokio::test]
async fn plain_client_cannot_associate() {
    logs();
    let ca = Ca::new();
    let mut node_settings = settings();
    node_settings.tls = Some(ca.node_tls(&ca));
    let node = Node::start(node_settings).await;
    let mut plain = TcpStream::connect(("127.0.0.1", node.address().address.port()))
        .await
        .unwrap();
    let local = plain.local_addr().unwrap().to_string();
    plain.write_all(b"AKKD\x01\x00\x00\x00\x00").await.unwrap();
    let mut buffer = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match plain.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "plain connection left open");
    wait_until("node logs the plain client", || {
        !warn_lines_with(&["handshake i/o failed", &local]).is_empty()
    })
    .await;
}

#[test]
fn pem_without_certificate_is_rejected() {
    let key = KeyPair::generate().unwrap();
    let result = TlsSettings::from_pem(b"", b"", key.serialize_pem().as_bytes());
    assert!(result.is_err());
}
