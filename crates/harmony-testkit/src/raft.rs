//! A real highly available OpenBao: several `bao` raft nodes on loopback.

use crate::{OpenbaoServer, TestkitError};

/// A raft cluster of real OpenBao nodes on free loopback ports, every node uninitialised and
/// sealed. Node 0 is the one the others `retry_join`: initialise and unseal it first, then unseal
/// each follower with the same keys (that completes its join). Followers join as non-voters and
/// autopilot promotes them after its server stabilization time (10 s by default), as in a real
/// deployment. Every node is killed when the cluster is dropped.
#[derive(Debug)]
pub struct OpenbaoCluster {
    nodes: Vec<OpenbaoServer>,
}

impl OpenbaoCluster {
    /// Start `size` nodes (at least 1).
    pub async fn start(size: usize) -> Result<Self, TestkitError> {
        let first = OpenbaoServer::raft_node("node-0", None).await?;
        let leader = first.url().to_owned();
        let mut nodes = vec![first];
        for i in 1..size.max(1) {
            nodes.push(OpenbaoServer::raft_node(&format!("node-{i}"), Some(&leader)).await?);
        }
        Ok(Self { nodes })
    }

    /// The nodes' base URLs, node 0 first.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url().to_owned()).collect()
    }

    /// Node `i` (to read its log, or call it).
    pub fn node(&self, i: usize) -> &OpenbaoServer {
        &self.nodes[i]
    }

    /// Node `i`, to stop or restart it (a restarted node comes back sealed).
    pub fn node_mut(&mut self, i: usize) -> &mut OpenbaoServer {
        &mut self.nodes[i]
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Never true: a cluster has at least one node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}
