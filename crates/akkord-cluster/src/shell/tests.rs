//! The shell on one node in process, over a real loopback transport.

use std::time::Duration;

use akkord_remote::serialization::SerializationRegistry;
use akkord_remote::RemoteSystemSettings;

use super::*;

async fn start_node(name: &str) -> (ActorSystem, RemoteSystem, Cluster) {
    let system = ActorSystem::new(name).unwrap();
    let remote = RemoteSystem::bind(
        system.clone(),
        RemoteSystemSettings::new(name),
        SerializationRegistry::new(),
    )
    .await
    .unwrap();
    let cluster = Cluster::start(&system, &remote, ClusterSettings::default()).unwrap();
    (system, remote, cluster)
}

#[tokio::test]
async fn self_join_becomes_up() {
    let (_system, remote, cluster) = start_node("shell-up").await;
    let (up_sender, up) = oneshot::channel();
    cluster.register_on_member_up(move || {
        let _ = up_sender.send(());
    });
    let (snapshot, mut events) = cluster.subscribe();
    assert!(snapshot.members.is_empty());
    assert_eq!(cluster.self_member(), None);

    cluster
        .join(remote.local_address().address.clone())
        .unwrap();
    let up_event = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Ok(ClusterEvent::MemberUp(member)) => return member,
                Ok(_) => {}
                Err(error) => panic!("event stream ended: {error}"),
            }
        }
    })
    .await
    .expect("no MemberUp within 10 s");
    assert_eq!(&up_event.unique_address, remote.local_address());
    tokio::time::timeout(Duration::from_secs(5), up)
        .await
        .expect("member-up callback not run within 5 s")
        .unwrap();

    let state = cluster.state();
    assert_eq!(state.count(MemberStatus::Up), 1);
    assert_eq!(state.leader.as_ref(), Some(remote.local_address()));
    assert_eq!(
        cluster.self_member().map(|member| member.status),
        Some(MemberStatus::Up)
    );
    remote.shutdown().await;
}

#[tokio::test]
async fn second_start_rejected() {
    let (system, remote, _cluster) = start_node("shell-twice").await;
    let again = Cluster::start(&system, &remote, ClusterSettings::default());
    assert!(matches!(again, Err(ClusterStartError::AlreadyStarted(_))));
    remote.shutdown().await;
}

#[tokio::test]
async fn down_unknown_address_rejected() {
    let (_system, remote, cluster) = start_node("shell-down").await;
    let address = Address::new("shell-down", "127.0.0.1", 1).unwrap();
    assert_eq!(
        cluster.down(address.clone()).await,
        Err(ClusterCommandError::UnknownAddress(address))
    );
    assert!(matches!(
        cluster.leave(remote.local_address().address.clone()).await,
        Err(ClusterCommandError::Rejected(_))
    ));
    remote.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_daemon() {
    let (system, remote, cluster) = start_node("shell-stop").await;
    let (removed_sender, removed) = oneshot::channel();
    cluster.register_on_member_removed(move || {
        let _ = removed_sender.send(());
    });
    system
        .coordinated_shutdown()
        .run(
            &system,
            akkord_actor::shutdown::ShutdownReason::ActorSystemTerminate,
        )
        .await;
    tokio::time::timeout(Duration::from_secs(5), removed)
        .await
        .expect("removal callback not run within 5 s")
        .unwrap();
    assert_eq!(
        cluster.join(remote.local_address().address.clone()),
        Err(ClusterCommandError::Stopped)
    );
    remote.shutdown().await;
}
