//! JSON bodies of the management endpoints, shared by the server and the client.

use akkord_actor::address::UniqueAddress;
use akkord_cluster::convergence::ConvergenceBlocker;
use akkord_cluster::member::{Member, MemberStatus};
use akkord_cluster::shell::ClusterState;
use serde::{Deserialize, Serialize};

/// Body of `GET /cluster/members`: the cluster state in the responding node's view.
///
/// Incarnation uids are strings, so JSON readers that hold numbers as 64-bit floats keep
/// them exact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersResponse {
    /// Address of the responding node, `akkord://<system>@<host>:<port>`.
    pub self_node: String,
    /// Incarnation uid of the responding node.
    pub self_uid: String,
    /// Address of the leader in this node's view, `None` when there is none.
    pub leader: Option<String>,
    /// Address of the oldest Up member, `None` when no member is Up.
    pub oldest: Option<String>,
    /// Whether this node's view of the state has converged.
    pub converged: bool,
    /// Members in address order.
    pub members: Vec<MemberEntry>,
    /// Members that some observer reports as unreachable.
    pub unreachable: Vec<UnreachableEntry>,
    /// Members that keep the state from converging, each with the reason.
    pub convergence_blockers: Vec<BlockerEntry>,
}

/// One member in a [`MembersResponse`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberEntry {
    /// Node address, `akkord://<system>@<host>:<port>`.
    pub address: String,
    /// Incarnation uid.
    pub uid: String,
    /// Member status as its name, such as `Up` or `Leaving`.
    pub status: String,
    /// Roles the node was started with, sorted.
    pub roles: Vec<String>,
    /// Order in which the member became Up, lower is older; `None` before it was Up.
    pub up_number: Option<u32>,
    /// Application version the node runs.
    pub app_version: String,
    /// False when some observer reports the member as unreachable.
    pub reachable: bool,
}

/// An unreachable member in a [`MembersResponse`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreachableEntry {
    /// Node address.
    pub address: String,
    /// Incarnation uid.
    pub uid: String,
    /// Addresses of the members that observe it as unreachable; `None` when the cluster
    /// state this node exposes does not name the observers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_by: Option<Vec<String>>,
}

/// A member that keeps the cluster state from converging.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockerEntry {
    /// Node address.
    pub address: String,
    /// Incarnation uid.
    pub uid: String,
    /// The member's status.
    pub status: String,
    /// Machine-readable reason: `not-seen` or `unreachable-not-downed`.
    pub reason: String,
    /// The reason for humans.
    pub message: String,
}

/// Body of a successful `POST` to `leave` or `down`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResponse {
    /// Description of the action the node took.
    pub message: String,
}

/// Body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// Message naming the failure, the value at fault and the next step.
    pub error: String,
}

/// Body of `GET /health/alive` and `GET /health/ready`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResponse {
    /// `alive`, `ready`, `not-ready` or `terminated`.
    pub status: String,
    /// This node's member status, `None` before it joined and after removal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_status: Option<String>,
}

impl MembersResponse {
    /// Builds the response from a snapshot of the cluster state seen by `self_node`.
    pub fn from_state(self_node: &UniqueAddress, state: &ClusterState) -> Self {
        let members = state
            .members
            .iter()
            .map(|member| MemberEntry {
                address: member.unique_address.address.to_string(),
                uid: member.unique_address.uid.to_string(),
                status: member.status.to_string(),
                roles: member.roles.iter().cloned().collect(),
                up_number: (member.up_number != u32::MAX).then_some(member.up_number),
                app_version: member.app_version.clone(),
                reachable: !state.unreachable.contains(&member.unique_address),
            })
            .collect();
        let unreachable = state
            .unreachable
            .iter()
            .map(|node| UnreachableEntry {
                address: node.address.to_string(),
                uid: node.uid.to_string(),
                observed_by: None,
            })
            .collect();
        let convergence_blockers = state.convergence_blockers.iter().map(blocker).collect();
        Self {
            self_node: self_node.address.to_string(),
            self_uid: self_node.uid.to_string(),
            leader: state.leader.as_ref().map(|node| node.address.to_string()),
            oldest: oldest_up(&state.members).map(|member| member.address().to_string()),
            converged: state.converged,
            members,
            unreachable,
            convergence_blockers,
        }
    }

    /// Returns the member at `address`, written as in [`MemberEntry::address`].
    pub fn member(&self, address: &str) -> Option<&MemberEntry> {
        self.members.iter().find(|member| member.address == address)
    }
}

fn oldest_up(members: &[Member]) -> Option<&Member> {
    members
        .iter()
        .filter(|member| member.status == MemberStatus::Up)
        .min_by(|a, b| a.age_order(b))
}

fn blocker(blocker: &ConvergenceBlocker) -> BlockerEntry {
    let (node, status, reason) = match blocker {
        ConvergenceBlocker::NotSeen { node, status } => (node, status, "not-seen"),
        ConvergenceBlocker::UnreachableNotDowned { node, status } => {
            (node, status, "unreachable-not-downed")
        }
    };
    BlockerEntry {
        address: node.address.to_string(),
        uid: node.uid.to_string(),
        status: status.to_string(),
        reason: reason.to_owned(),
        message: blocker.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use akkord_actor::address::Address;

    use super::*;

    fn node(port: u16) -> UniqueAddress {
        UniqueAddress::new(
            Address::new("sys", "127.0.0.1", port).unwrap(),
            u64::MAX - 1,
        )
    }

    fn member(port: u16, status: MemberStatus, up_number: u32) -> Member {
        Member {
            status,
            up_number,
            ..Member::joining(node(port), BTreeSet::from(["web".to_owned()]), "1".into())
        }
    }

    #[test]
    fn response_from_state_lists_members() {
        let state = ClusterState {
            members: vec![
                member(1, MemberStatus::Up, 2),
                member(2, MemberStatus::Up, 1),
                member(3, MemberStatus::Joining, u32::MAX),
            ],
            unreachable: BTreeSet::from([node(3)]),
            leader: Some(node(1)),
            convergence_blockers: vec![ConvergenceBlocker::UnreachableNotDowned {
                node: node(3),
                status: MemberStatus::Joining,
            }],
            ..ClusterState::default()
        };
        let response = MembersResponse::from_state(&node(1), &state);

        assert_eq!(response.self_node, "akkord://sys@127.0.0.1:1");
        assert_eq!(response.self_uid, (u64::MAX - 1).to_string());
        assert_eq!(response.leader.as_deref(), Some("akkord://sys@127.0.0.1:1"));
        assert_eq!(response.oldest.as_deref(), Some("akkord://sys@127.0.0.1:2"));
        assert!(!response.converged);
        assert_eq!(response.members.len(), 3);
        assert_eq!(response.members[0].up_number, Some(2));
        assert_eq!(response.members[2].up_number, None);
        assert_eq!(response.members[2].status, "Joining");
        assert!(response.members[0].reachable);
        assert!(!response.members[2].reachable);
        assert_eq!(response.members[0].roles, vec!["web".to_owned()]);
        assert_eq!(response.unreachable.len(), 1);
        assert_eq!(response.unreachable[0].address, "akkord://sys@127.0.0.1:3");
        assert_eq!(response.convergence_blockers.len(), 1);
        assert_eq!(
            response.convergence_blockers[0].reason,
            "unreachable-not-downed"
        );
    }

    #[test]
    fn response_round_trips_through_json() {
        let state = ClusterState {
            members: vec![member(1, MemberStatus::Up, 1)],
            ..ClusterState::default()
        };
        let response = MembersResponse::from_state(&node(1), &state);
        let json = serde_json::to_string(&response).unwrap();
        assert!(json.contains(&format!("\"uid\":\"{}\"", u64::MAX - 1)));
        let decoded: MembersResponse = serde_json::from_str(&json).unwrap();
        assert_eq!(decoded, response);
    }
}
