//! Cluster-aware group router: a group router whose routees are the cluster-wide listing
//! of a service key.

use akkord_actor::{GroupRouter, Props, RoutingLogic, ServiceKey};

/// Builds group routers over the actors registered under a key on every member.
pub struct ClusterGroupRouter;

impl ClusterGroupRouter {
    /// Props of a router over the actors that the receptionist lists under `key` on every
    /// reachable member, this node included.
    ///
    /// The listing is cluster-wide once a
    /// [`ClusterReceptionist`](crate::receptionist::ClusterReceptionist) runs on this node;
    /// without one, the router routes to local registrations only. Remote routees need `M`
    /// registered for serialization on their node and on this one. The routee set follows
    /// registrations, members joining and members becoming unreachable or removed. A
    /// message that arrives while no routee is listed is dropped and logged at `debug`.
    pub fn props<M: Send + 'static>(
        key: ServiceKey<M>,
        logic: RoutingLogic<M>,
    ) -> Props<GroupRouter<M>> {
        GroupRouter::props_for_key(key, logic)
    }
}
