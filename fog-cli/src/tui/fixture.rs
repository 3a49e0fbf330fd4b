//! A made-up but plausible node status for the monitor's tests.

use crate::node::api::{
    DaoView, HarvestView, JobCounts, JobView, MixView, NodeInfo, PeerView, ProposalView,
    StatusSnapshot,
};

/// "Now" in the tests: 2026-12-01 12:00:00 UTC.
pub(crate) const NOW_MS: u64 = 1_795_953_600_000;

fn peer(
    name: &str,
    roles: &[&str],
    alive: bool,
    load: f64,
    reputation: f64,
    harvest: &str,
) -> PeerView {
    PeerView {
        name: name.into(),
        peer_id: format!("12D3KooW{name}"),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        alive,
        last_seen_s: if alive { 4 } else { 131 },
        load,
        running: (load * 4.0) as u32,
        reputation,
        harvest: harvest.into(),
    }
}

/// The jobs: id, name, kind, class, privacy, state, replicas, nodes (`-`
/// for none), age in seconds, run time in seconds (`-` while running).
const JOBS: &str = "
    9f2c41d0a7 hash-chain      wasm      S SECRET       running   1 node-3               12   -
    8e11b7c2f3 dag-reduce      wasm      A PRIVATE      pending   1 -                    20   -
    7d90aa1e44 gang-b          wasm      B PUBLIC       placed    1 node-2               31   -
    6c3f52b8d1 primes          wasm      A CONFIDENTIAL verifying 3 node-1,node-2,node-4 45   -
    5b7e0c9a12 replicated      wasm      B PUBLIC       verified  3 node-1,node-3,node-4 95   21
    4a6d19f7e5 liar-check      wasm      B PUBLIC       failed    3 node-2               140  40
    3f5c8e2b70 resize          container S PUBLIC       verified  1 node-4               260  62
    2e4b7d1a63 map-0           wasm      B PRIVATE      cancelled 1 -                    400  3
    1d3a6c0f59 task-for-node-3 wasm      B PUBLIC       executing 1 node-0               8    -
    0c29f5be48 task-for-node-1 wasm      A PUBLIC       done      1 node-0               3900 14
";

fn jobs() -> Vec<JobView> {
    JOBS.lines()
        .map(str::split_whitespace)
        .map(Iterator::collect::<Vec<_>>)
        .filter(|f| f.len() == 10)
        .map(|f| {
            let submitted_ms = NOW_MS - f[8].parse::<u64>().unwrap() * 1000;
            JobView {
                id: f[0].into(),
                name: f[1].into(),
                kind: f[2].into(),
                class: f[3].into(),
                privacy: f[4].into(),
                state: f[5].into(),
                replicas: f[6].parse().unwrap(),
                nodes: f[7]
                    .split(',')
                    .filter(|n| *n != "-")
                    .map(str::to_owned)
                    .collect(),
                preemptions: 0,
                submitted_ms,
                finished_ms: f[9].parse::<u64>().ok().map(|t| submitted_ms + t * 1000),
                output_hash: None,
                error: None,
                ..JobView::default()
            }
        })
        .collect()
}

/// The status of `node-0` in a five-node devnet midway through the sample
/// workload.
pub(crate) fn snapshot() -> StatusSnapshot {
    let mut jobs = jobs();
    jobs[0].preemptions = 1;
    jobs[4].output_hash = Some("b3e1c0ffee5d2a7719f0d3a4c6e8b901".into());
    jobs[5].error = Some("replicas disagree: node-2 returned a different output".into());
    let pps_history = (0..120u64).map(|i| 900 + (i * 37) % 400 + i * 3).collect();
    let latency_history = (0..120u64).map(|i| 40 + (i * 13) % 30).collect();
    StatusSnapshot {
        node: NodeInfo {
            name: "node-0".into(),
            peer_id: "12D3KooWQmN7v2rYc5gJx1Zb8aLdE3tFhK9sPu4wXyC6oRiT".into(),
            account: "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d".into(),
            version: "0.1.0".into(),
            uptime_s: 3725,
            roles: vec!["exec".into(), "mix".into(), "ledger".into()],
            listen: vec!["/ip4/127.0.0.1/tcp/40100".into()],
            min_quorum_signers: Some(2),
        },
        peers: vec![
            peer("node-1", &["exec", "mix"], true, 0.42, 0.97, "harvesting"),
            peer("node-2", &["exec"], true, 0.88, 0.41, "throttled"),
            peer("node-3", &["exec", "mix"], true, 0.15, 0.93, "harvesting"),
            peer("node-4", &["exec", "ledger"], false, 0.0, 0.85, "suspended"),
        ],
        jobs,
        counts: JobCounts {
            submitted: 8,
            pending: 1,
            running: 3,
            verified: 2,
            failed: 1,
            cancelled: 1,
            preemptions: 1,
            evidence: 1,
            executed: 2,
        },
        mix: MixView {
            enabled: true,
            pps: 1_234.5,
            received: 1_482_113,
            forwarded: 1_391_872,
            delivered: 12_345,
            cover: 301_220,
            dropped: 17,
            latency_p50_ms: 48.0,
            latency_p99_ms: 131.5,
            pps_history,
            latency_history,
        },
        harvest: HarvestView {
            state: "harvesting".into(),
            reason: "user idle 12m, on mains, cool".into(),
            cpu_share: 0.75,
            battery_pct: Some(81.0),
            on_ac: Some(true),
            temperature_c: Some(58.5),
            other_cpu_pct: Some(12.0),
            user_idle_s: Some(725.0),
            memory_available_pct: Some(46.0),
        },
        dao: DaoView {
            ledger: true,
            height: 1_942,
            supply: 10_000_000,
            rewards_paid: 4_210,
            evidence: 1,
            balance: 1_250,
            proposals: vec![
                ProposalView {
                    id: 4,
                    kind: "parameter".into(),
                    description: "raise the heartbeat timeout to 120 s".into(),
                    state: "active".into(),
                    votes_for: 3_200,
                    votes_against: 1_100,
                    votes_abstain: 200,
                    votes_veto: 0,
                },
                ProposalView {
                    id: 3,
                    kind: "treasury".into(),
                    description: "pay 500 to the devnet operators".into(),
                    state: "succeeded".into(),
                    votes_for: 5_000,
                    votes_against: 400,
                    votes_abstain: 0,
                    votes_veto: 0,
                },
                ProposalView {
                    id: 2,
                    kind: "parameter".into(),
                    description: "halve the reward per verified task".into(),
                    state: "defeated".into(),
                    votes_for: 900,
                    votes_against: 2_700,
                    votes_abstain: 300,
                    votes_veto: 1_800,
                },
                ProposalView {
                    id: 1,
                    kind: "parameter".into(),
                    description: "set the minimum stake to 100".into(),
                    state: "executed".into(),
                    votes_for: 6_100,
                    votes_against: 0,
                    votes_abstain: 0,
                    votes_veto: 0,
                },
            ],
        },
    }
}
