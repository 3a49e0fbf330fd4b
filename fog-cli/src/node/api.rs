//! The control API's documents: what `GET /v1/status`, `/v1/jobs` and the
//! other endpoints return and what `POST /v1/jobs` takes. The node serves
//! them (`node::http`), `fog job ...`, `fog devnet` and `fog tui` read them
//! (`node::client`). Every field is plain JSON so other tools can use the
//! API too.

use serde::{Deserialize, Serialize};

/// `GET /v1/status`: everything a monitor shows about one node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct StatusSnapshot {
    /// This node.
    pub(crate) node: NodeInfo,
    /// The other nodes this node knows (from heartbeats), alive or not.
    pub(crate) peers: Vec<PeerView>,
    /// Jobs submitted at this node (newest first, at most 200) and tasks it
    /// runs for others.
    pub(crate) jobs: Vec<JobView>,
    /// Counters over all jobs submitted at this node.
    pub(crate) counts: JobCounts,
    /// The mix node and client of this node.
    pub(crate) mix: MixView,
    /// Whether this device may lend compute now.
    pub(crate) harvest: HarvestView,
    /// The ledger as this node sees it.
    pub(crate) dao: DaoView,
}

/// Identity and roles of a node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct NodeInfo {
    /// Human-readable name (from the config; defaults to the data dir name).
    pub(crate) name: String,
    /// libp2p peer id.
    pub(crate) peer_id: String,
    /// sr25519 account (hex) that earns rewards and signs results.
    pub(crate) account: String,
    /// `fog` version.
    pub(crate) version: String,
    /// Seconds since the node started.
    pub(crate) uptime_s: u64,
    /// Roles: `exec`, `mix`, `ledger`, ...
    pub(crate) roles: Vec<String>,
    /// libp2p listen addresses.
    pub(crate) listen: Vec<String>,
    /// The ledger's `min_quorum_signers` as this node applies it to the
    /// verification of replicated jobs (from the ledger node's heartbeats,
    /// so an executed parameter proposal reaches every node); `None` until
    /// the ledger is heard.
    #[serde(default)]
    pub(crate) min_quorum_signers: Option<u64>,
}

/// Another node, as the heartbeats describe it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct PeerView {
    /// Name it announces.
    pub(crate) name: String,
    /// libp2p peer id.
    pub(crate) peer_id: String,
    /// Roles it announces.
    pub(crate) roles: Vec<String>,
    /// Whether it sent a heartbeat within the timeout.
    pub(crate) alive: bool,
    /// Seconds since its last heartbeat.
    pub(crate) last_seen_s: u64,
    /// Its load as a share of its capacity (0 to 1).
    pub(crate) load: f64,
    /// Tasks it reports running.
    pub(crate) running: u32,
    /// This node's reputation of it (Beta mean, 0 to 1).
    pub(crate) reputation: f64,
    /// Its harvest state (`harvesting`, `suspended`, ...).
    pub(crate) harvest: String,
}

/// One job (or a task this node runs for someone else).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct JobView {
    /// Job id.
    pub(crate) id: String,
    /// Name given at submission.
    pub(crate) name: String,
    /// `wasm` or `container`.
    pub(crate) kind: String,
    /// SLA class `S`, `A` or `B`.
    pub(crate) class: String,
    /// Privacy level `PUBLIC` ... `SECRET`.
    pub(crate) privacy: String,
    /// `pending`, `placed`, `running`, `verifying`, `verified`, `failed`,
    /// `cancelled` (submitted here) or `executing`, `done` (run here).
    pub(crate) state: String,
    /// Replicas asked for.
    pub(crate) replicas: u32,
    /// Nodes (names) that ran or run it.
    pub(crate) nodes: Vec<String>,
    /// Times it was preempted.
    pub(crate) preemptions: u32,
    /// Unix milliseconds of submission.
    pub(crate) submitted_ms: u64,
    /// Unix milliseconds when it ended, if it did.
    pub(crate) finished_ms: Option<u64>,
    /// The agreed output hash once verified.
    pub(crate) output_hash: Option<String>,
    /// Why it failed, if it did.
    pub(crate) error: Option<String>,
    /// Replicas that failed without a result so far (retried elsewhere
    /// until the job's failure budget is spent).
    #[serde(default)]
    pub(crate) failures: u32,
    /// Why the last of them failed.
    #[serde(default)]
    pub(crate) last_failure: Option<String>,
    /// Replicas that started from the checkpoint of one that was dropped
    /// (its node failed, it was preempted or went silent).
    #[serde(default)]
    pub(crate) resumed: u32,
    /// The number of the latest checkpoint kept for a running replica.
    #[serde(default)]
    pub(crate) last_checkpoint: Option<u64>,
    /// Agreeing replicas its verdict required, once decided (replicated
    /// jobs): a majority, raised by the ledger's `min_quorum_signers`.
    #[serde(default)]
    pub(crate) quorum: Option<u32>,
}

/// Job counters of a node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JobCounts {
    /// Jobs submitted.
    pub(crate) submitted: u64,
    /// Jobs waiting for a placement or their dependencies.
    pub(crate) pending: u64,
    /// Jobs placed and running somewhere.
    pub(crate) running: u64,
    /// Jobs whose result was verified.
    pub(crate) verified: u64,
    /// Jobs that failed.
    pub(crate) failed: u64,
    /// Jobs cancelled.
    pub(crate) cancelled: u64,
    /// Preemptions ordered by this node.
    pub(crate) preemptions: u64,
    /// Evidence records produced by verification at this node.
    pub(crate) evidence: u64,
    /// Tasks this node ran for others.
    pub(crate) executed: u64,
}

/// Mix throughput and latency.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct MixView {
    /// Whether this node runs a mix node.
    pub(crate) enabled: bool,
    /// Packets processed per second over the last interval.
    pub(crate) pps: f64,
    /// Packets received, forwarded and delivered since start.
    pub(crate) received: u64,
    /// Packets forwarded.
    pub(crate) forwarded: u64,
    /// Packets delivered here.
    pub(crate) delivered: u64,
    /// Cover packets sent.
    pub(crate) cover: u64,
    /// Packets dropped (all reasons).
    pub(crate) dropped: u64,
    /// Median end-to-end latency of this node's own messages, ms.
    pub(crate) latency_p50_ms: f64,
    /// 99th percentile of the same, ms.
    pub(crate) latency_p99_ms: f64,
    /// Recent pps samples, oldest first (for sparklines; at most 120).
    pub(crate) pps_history: Vec<u64>,
    /// Recent latency p50 samples in ms, oldest first (at most 120).
    pub(crate) latency_history: Vec<u64>,
}

/// The harvest controller's state and the sensor readings behind it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct HarvestView {
    /// `ineligible`, `eligible`, `harvesting`, `throttled`, `suspended`.
    pub(crate) state: String,
    /// Why.
    pub(crate) reason: String,
    /// CPU share fog may use now (0 to 1).
    pub(crate) cpu_share: f64,
    /// Battery percent, when there is a battery.
    pub(crate) battery_pct: Option<f64>,
    /// Whether on mains power, when known.
    pub(crate) on_ac: Option<bool>,
    /// Hottest temperature in °C, when known.
    pub(crate) temperature_c: Option<f64>,
    /// CPU percent used by other programs, when known.
    pub(crate) other_cpu_pct: Option<f64>,
    /// Seconds since the user last touched the machine, when known.
    pub(crate) user_idle_s: Option<f64>,
    /// Memory available, percent, when known.
    pub(crate) memory_available_pct: Option<f64>,
}

/// The ledger as a node sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct DaoView {
    /// Whether this node holds the ledger (otherwise the figures are empty).
    pub(crate) ledger: bool,
    /// Events in the log.
    pub(crate) height: u64,
    /// Tokens in circulation.
    pub(crate) supply: u64,
    /// Rewards paid for verified work since the ledger began.
    pub(crate) rewards_paid: u64,
    /// Slashing and evidence events in the log.
    pub(crate) evidence: u64,
    /// Balance of this node's account.
    pub(crate) balance: u64,
    /// Proposals, newest first (at most 50).
    pub(crate) proposals: Vec<ProposalView>,
}

/// One proposal with its tally.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ProposalView {
    /// Proposal number.
    pub(crate) id: u64,
    /// Kind (`parameter`, `treasury`, ...).
    pub(crate) kind: String,
    /// What it does, in words.
    pub(crate) description: String,
    /// `pending`, `active`, `succeeded`, `defeated`, `queued`, `executed`, ...
    pub(crate) state: String,
    /// Weight for.
    pub(crate) votes_for: u64,
    /// Weight against.
    pub(crate) votes_against: u64,
    /// Weight abstaining.
    pub(crate) votes_abstain: u64,
    /// Weight vetoing.
    pub(crate) votes_veto: u64,
}

/// `POST /v1/jobs`: a job to run on the network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SubmitRequest {
    /// A name for people (defaults to the id).
    #[serde(default)]
    pub(crate) name: String,
    /// WASM module bytes, base64 (standard alphabet). One of `wasm_b64` and
    /// `image` is required.
    #[serde(default)]
    pub(crate) wasm_b64: Option<String>,
    /// Container image name (the image must be loadable on the executor from
    /// `image_tar`).
    #[serde(default)]
    pub(crate) image: Option<String>,
    /// Path of an image tarball readable by the executors (devnet, tests).
    #[serde(default)]
    pub(crate) image_tar: Option<String>,
    /// Arguments (module args or container command).
    #[serde(default)]
    pub(crate) args: Vec<String>,
    /// CPU in millicores.
    #[serde(default)]
    pub(crate) cpu_millis: Option<u32>,
    /// Memory in MiB.
    #[serde(default)]
    pub(crate) memory_mb: Option<u32>,
    /// WASM fuel budget.
    #[serde(default)]
    pub(crate) fuel: Option<u64>,
    /// Wall-clock timeout in seconds.
    #[serde(default)]
    pub(crate) timeout_s: Option<f64>,
    /// SLA class `S`, `A` or `B` (default `B`).
    #[serde(default)]
    pub(crate) class: Option<String>,
    /// Privacy level (default `PUBLIC`).
    #[serde(default)]
    pub(crate) privacy: Option<String>,
    /// Replicas to run and compare (default 1; 3 or more to catch a liar).
    #[serde(default)]
    pub(crate) replicas: Option<u32>,
    /// Ids of jobs (submitted at this node) that must be verified first.
    #[serde(default)]
    pub(crate) depends_on: Vec<String>,
    /// Gang name: jobs of one gang are placed all at once or not at all.
    #[serde(default)]
    pub(crate) gang: Option<String>,
    /// Number of members of the gang (the gang starts when all arrived).
    #[serde(default)]
    pub(crate) gang_size: Option<u32>,
}

/// `POST /v1/jobs` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SubmitResponse {
    /// The new job's id.
    pub(crate) id: String,
}

/// `GET /v1/jobs/{id}/logs`: the agreed result's output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LogsResponse {
    /// Job id.
    pub(crate) id: String,
    /// Standard output (lossy UTF-8).
    pub(crate) stdout: String,
    /// Standard error (lossy UTF-8).
    pub(crate) stderr: String,
    /// Exit code.
    pub(crate) exit_code: Option<i32>,
    /// Fuel consumed.
    pub(crate) fuel: u64,
}

/// An error answer: `{"error": "..."}` with a 4xx/5xx status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ErrorResponse {
    /// What went wrong.
    pub(crate) error: String,
}
