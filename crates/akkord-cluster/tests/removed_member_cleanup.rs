//! A member that leaves: once it is removed and quarantined, the survivor also removes its
//! association, so a cluster whose members come and go keeps no association for them.

use std::time::Duration;

use akkord_actor::ActorSystem;
use akkord_cluster::member::MemberStatus;
use akkord_cluster::shell::{Cluster, ClusterSettings};
use akkord_remote::serialization::SerializationRegistry;
use akkord_remote::{RemoteSystem, RemoteSystemSettings};
use akkord_testkit::wait_until;

const SYSTEM: &str = "cleanup";

async fn start_node() -> (RemoteSystem, Cluster) {
    let system = ActorSystem::new(SYSTEM).unwrap();
    let mut settings = RemoteSystemSettings::new(SYSTEM);
    settings.transport.remove_quarantined_after = Duration::from_millis(300);
    let remote = RemoteSystem::bind(system.clone(), settings, SerializationRegistry::new())
        .await
        .unwrap();
    let cluster = Cluster::start(&system, &remote, ClusterSettings::default()).unwrap();
    (remote, cluster)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn association_of_left_member_is_removed() {
    let (first, first_cluster) = start_node().await;
    let (second, second_cluster) = start_node().await;
    let seed = first.local_address().address.clone();
    first_cluster.join(seed.clone()).unwrap();
    second_cluster.join(seed).unwrap();
    wait_until("both members are up", Duration::from_secs(30), || {
        first_cluster.state().count(MemberStatus::Up) == 2
    })
    .await;
    assert_eq!(first.transport().stats().associations, 1);

    let leaving = second.local_address().clone();
    second_cluster.leave(leaving.address.clone()).await.unwrap();
    wait_until("the member is removed", Duration::from_secs(30), || {
        first_cluster.state().member_at(&leaving.address).is_none()
    })
    .await;
    second.shutdown().await;

    // The removed incarnation is quarantined 5 s after its removal, and its association
    // goes 300 ms after that.
    wait_until(
        "the association is removed",
        Duration::from_secs(30),
        || first.transport().stats().associations == 0,
    )
    .await;
    assert!(first.transport().is_quarantined(&leaving));
    first.shutdown().await;
}
