//! Several OpenBao nodes of one raft cluster, bootstrapped as one: initialise once, unseal every
//! node with the same keys, configure through the active node, and wait until raft lists every
//! reachable node as a voter.
//!
//! A re-run converges: only sealed nodes are unsealed (a node that restarted comes back sealed),
//! nothing is ever re-initialised, and the configuration is written only where it differs.
//! Followers join raft as non-voters; autopilot promotes them after its server stabilization
//! time (10 s by default), so the first run waits for that and says so.

use std::time::{Duration, Instant};

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tracing::Instrument;
use url::Url;

use super::REQUEST_TIMEOUT;
use super::{
    ACTIVE_TIMEOUT, BootstrapOptions, BootstrapReport, OpenbaoBootstrap, POLL_INTERVAL, SealStatus,
};
use crate::OpenbaoError;
use crate::state::{self, InitKeys};

/// How long a follower may take to finish joining raft once it has the keys.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long autopilot may take to promote every follower to a voter (10 s stabilization by
/// default, plus elections on a loaded machine).
const VOTERS_TIMEOUT: Duration = Duration::from_secs(90);

/// What one node looked like and what the run did to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReport {
    /// The node's base URL.
    pub url: String,
    /// This run unsealed it.
    pub unsealed: bool,
    /// It could not be reached (left alone; the next run unseals it when it is back).
    pub unreachable: bool,
}

/// What a cluster bootstrap did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterReport {
    /// Init and configuration, as for one server (`unsealed`: any node was unsealed).
    pub bootstrap: BootstrapReport,
    /// Per node, in the order given.
    pub nodes: Vec<NodeReport>,
    /// The active node's URL.
    pub active: String,
    /// How many raft voters the active node lists (0 when no admin token could ask).
    pub voters: usize,
}

impl ClusterReport {
    /// Nothing was initialised, unsealed or written.
    pub fn nothing_changed(&self) -> bool {
        self.bootstrap.nothing_changed()
    }
}

/// The bootstrap of a multi-node OpenBao (raft HA). See the module docs.
#[derive(Debug)]
pub struct OpenbaoClusterBootstrap {
    nodes: Vec<OpenbaoBootstrap>,
}

impl OpenbaoClusterBootstrap {
    /// A bootstrap for the nodes at `urls` (the first one is initialised when none is), sharing
    /// `options` (one keys file for the whole cluster).
    pub fn new(urls: &[Url], options: BootstrapOptions) -> Result<Self, OpenbaoError> {
        if urls.is_empty() {
            return Err(OpenbaoError::InvalidUrl {
                url: String::new(),
                reason: "no OpenBao node URL was given".into(),
            });
        }
        let nodes = urls
            .iter()
            .map(|url| OpenbaoBootstrap::new(url, options.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { nodes })
    }

    /// Init if no node is, unseal every sealed node, configure through the active node, wait for
    /// every reachable node to be a raft voter.
    pub async fn run(&self) -> Result<ClusterReport, OpenbaoError> {
        let span = tracing::info_span!("openbao_cluster_bootstrap", nodes = self.nodes.len());
        self.run_inner().instrument(span).await
    }

    async fn run_inner(&self) -> Result<ClusterReport, OpenbaoError> {
        let first = &self.nodes[0];
        let options = &first.options;
        let mut report = ClusterReport::default();

        let mut statuses: Vec<Option<SealStatus>> = Vec::with_capacity(self.nodes.len());
        let mut first_error = None;
        for node in &self.nodes {
            match node.seal_status().await {
                Ok(status) => statuses.push(Some(status)),
                Err(e @ OpenbaoError::Unreachable { .. }) => {
                    tracing::warn!(url = %node.url(), error = %e, "OpenBao node unreachable; leaving it for the next run");
                    first_error.get_or_insert(e);
                    statuses.push(None);
                }
                Err(e) => return Err(e),
            }
        }
        if statuses.iter().all(Option::is_none) {
            return Err(first_error.unwrap_or_else(|| OpenbaoError::InvalidUrl {
                url: String::new(),
                reason: "no OpenBao node URL was given".into(),
            }));
        }

        let keys_file = options.state_dir.keys_file();
        let mut keys = state::load_keys(keys_file.clone()).await?;
        // Followers report themselves initialised once they reach an initialised leader.
        let any_initialised = statuses.iter().flatten().any(|s| s.initialized);
        let mut order: Vec<usize> = (0..self.nodes.len()).collect();
        if !any_initialised {
            // Checked above: at least one node answered.
            let target = statuses.iter().position(Option::is_some).unwrap_or(0);
            keys = Some(self.nodes[target].init(keys.is_some()).await?);
            report.bootstrap.initialised = true;
            // The initialised node is the leader the others join: unseal it first.
            order.retain(|&i| i != target);
            order.insert(0, target);
        } else {
            // Members first, joiners after.
            order.sort_by_key(|&i| !statuses[i].as_ref().is_some_and(|s| s.initialized));
        }

        report.nodes = self
            .nodes
            .iter()
            .zip(&statuses)
            .map(|(node, status)| NodeReport {
                url: node.url(),
                unsealed: false,
                unreachable: status.is_none(),
            })
            .collect();
        let mut leader_ready = false;
        for i in order {
            let Some(status) = &statuses[i] else { continue };
            // A joining follower's unseal blocks until the leader answers its join: make sure a
            // leader is active before unsealing a node that has not joined yet.
            if !leader_ready
                && (!status.initialized || report.bootstrap.initialised)
                && report.nodes.iter().any(|n| n.unsealed)
            {
                self.wait_for_active().await?;
                leader_ready = true;
            }
            let node = &self.nodes[i];
            // After an init the leader's earlier status is stale (it said uninitialised).
            let sealed = report.bootstrap.initialised || status.sealed;
            if !sealed {
                continue;
            }
            let Some(keys) = keys.as_ref() else {
                return Err(OpenbaoError::InitialisedElsewhere {
                    url: node.url(),
                    keys_file: keys_file.clone(),
                });
            };
            if node.unseal_and_wait(keys).await? {
                report.nodes[i].unsealed = true;
                report.bootstrap.unsealed = true;
            }
        }

        let active = self.wait_for_active().await?;
        report.active = active.url();
        let root = keys.map(|k| k.root_token);
        let token = active
            .configuring_token(root.clone(), report.bootstrap.initialised)
            .await?;
        match token {
            Some((token, is_root)) => {
                report.bootstrap.changes = active
                    .configure(&token, &mut report.bootstrap.notes)
                    .await?;
                report.bootstrap.configured = true;
                let reachable = report.nodes.iter().filter(|n| !n.unreachable).count();
                report.voters = active.wait_for_voters(&token, reachable).await?;
                // Last: the voter check above still needed the root token.
                report.bootstrap.changes.extend(
                    active
                        .after_configure(is_root, &token, root, &mut report.bootstrap.notes)
                        .await?,
                );
            }
            None => {
                report.bootstrap.skipped = Some(format!(
                    "no admin token given and no keys file at {}: configuration and the raft voter \
                     check left out",
                    keys_file.display()
                ));
            }
        }
        tracing::info!(
            initialised = report.bootstrap.initialised,
            unsealed = report.nodes.iter().filter(|n| n.unsealed).count(),
            voters = report.voters,
            active = %report.active,
            "OpenBao cluster bootstrap done"
        );
        Ok(report)
    }

    /// The node that answers `sys/health` with 200 (active), polled on every node.
    async fn wait_for_active(&self) -> Result<&OpenbaoBootstrap, OpenbaoError> {
        let deadline = Instant::now() + ACTIVE_TIMEOUT;
        let mut logged = false;
        loop {
            for node in &self.nodes {
                if let Ok(health) = node.client.health().await
                    && health.status == 200
                {
                    return Ok(node);
                }
            }
            if Instant::now() >= deadline {
                return Err(OpenbaoError::NotActive {
                    url: self
                        .nodes
                        .iter()
                        .map(|n| n.url())
                        .collect::<Vec<_>>()
                        .join(", "),
                    seconds: ACTIVE_TIMEOUT.as_secs(),
                    last_status: 0,
                });
            }
            if !logged {
                tracing::info!(
                    timeout_s = ACTIVE_TIMEOUT.as_secs(),
                    "waiting for one OpenBao node to become active (raft leader election)"
                );
                logged = true;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl OpenbaoBootstrap {
    /// Unseal this node with `keys` if it is sealed, then wait until it says unsealed (a follower
    /// finishes its raft join first). Returns whether it was sealed.
    async fn unseal_and_wait(&self, keys: &InitKeys) -> Result<bool, OpenbaoError> {
        let mut status = self.seal_status().await?;
        if !status.sealed {
            return Ok(false);
        }
        // A follower reports itself uninitialised until its retry_join has reached an
        // initialised leader; only then does it take the keys.
        let deadline = Instant::now() + JOIN_TIMEOUT;
        let mut logged = false;
        while !status.initialized {
            if Instant::now() >= deadline {
                return Err(OpenbaoError::NotJoined {
                    url: self.url(),
                    seconds: JOIN_TIMEOUT.as_secs(),
                });
            }
            if !logged {
                tracing::info!(url = %self.url(), "waiting for the node to reach the raft leader (retry_join)");
                logged = true;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
            status = self.seal_status().await?;
        }
        let path = "sys/unseal";
        self.write(
            Method::PUT,
            path,
            None,
            &json!({"reset": true}),
            REQUEST_TIMEOUT,
        )
        .await?;
        tracing::info!(url = %self.url(), "unsealing OpenBao node");
        for key in &keys.keys_base64 {
            let answer = self
                .write(
                    Method::PUT,
                    path,
                    None,
                    &json!({"key": key.expose_secret()}),
                    // The last key of a joining follower waits for raft to admit it.
                    JOIN_TIMEOUT,
                )
                .await?;
            if answer["sealed"] == Value::Bool(false) {
                return Ok(true);
            }
        }
        // Every key is in: a joining follower stays sealed until raft has caught it up.
        let deadline = Instant::now() + JOIN_TIMEOUT;
        loop {
            let now = self.seal_status().await?;
            if !now.sealed {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Err(OpenbaoError::StillSealed {
                    url: self.url(),
                    keys_file: self.options.state_dir.keys_file(),
                    submitted: keys.keys_base64.len(),
                    threshold: now.t.max(status.t),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Poll `sys/storage/raft/configuration` until `wanted` servers are voters; returns how many.
    async fn wait_for_voters(
        &self,
        token: &SecretString,
        wanted: usize,
    ) -> Result<usize, OpenbaoError> {
        let deadline = Instant::now() + VOTERS_TIMEOUT;
        let mut logged = false;
        loop {
            let config = self
                .read_data(token, "sys/storage/raft/configuration")
                .await?;
            let servers = config
                .as_ref()
                .and_then(|c| c["config"]["servers"].as_array().cloned())
                .unwrap_or_default();
            let voters = servers
                .iter()
                .filter(|s| s["voter"].as_bool() == Some(true))
                .count();
            if voters >= wanted {
                return Ok(voters);
            }
            if Instant::now() >= deadline {
                return Err(OpenbaoError::VotersMissing {
                    url: self.url(),
                    voters,
                    servers: servers.len(),
                    wanted,
                    seconds: VOTERS_TIMEOUT.as_secs(),
                });
            }
            if !logged {
                tracing::info!(
                    voters,
                    wanted,
                    timeout_s = VOTERS_TIMEOUT.as_secs(),
                    "waiting for autopilot to promote the followers to raft voters (server stabilization time, 10 s by default)"
                );
                logged = true;
            }
            tokio::time::sleep(POLL_INTERVAL * 4).await;
        }
    }
}
