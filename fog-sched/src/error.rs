//! The crate's error type.

use crate::model::{JobId, NodeId};

/// Everything that can go wrong in fog-sched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchedError {
    /// A job does not fit on any node (capacity, privacy or affinity rules).
    #[error("job {0} fits on no node")]
    NoFeasibleNode(JobId),
    /// A placement would exceed a node's capacity.
    #[error("job {job} does not fit on node {node}")]
    CapacityExceeded {
        /// The job.
        job: JobId,
        /// The node.
        node: NodeId,
    },
    /// A node id that the cluster does not know.
    #[error("unknown node {0}")]
    UnknownNode(NodeId),
    /// A job id that the cluster or graph does not know.
    #[error("unknown job {0}")]
    UnknownJob(JobId),
    /// The same job id was given twice.
    #[error("duplicate job {0}")]
    DuplicateJob(JobId),
    /// The cluster has no nodes.
    #[error("the cluster has no nodes")]
    EmptyCluster,
    /// A dependency graph has a cycle or a dangling edge.
    #[error("invalid task graph: {0}")]
    InvalidGraph(String),
    /// A workflow file could not be read or parsed.
    #[error("invalid workflow: {0}")]
    InvalidWorkflow(String),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A bounded queue is full.
    #[error("queue full ({0} entries)")]
    QueueFull(usize),
    /// The reputation store failed.
    #[error("reputation store: {0}")]
    Store(#[from] rusqlite::Error),
}

/// The crate's result type.
pub type Result<T, E = SchedError> = std::result::Result<T, E>;
