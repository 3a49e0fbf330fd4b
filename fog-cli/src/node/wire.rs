//! What fog nodes say to each other, in CBOR: heartbeats on a GossipSub
//! topic, and work messages (run, report, cancel, preempt, settle,
//! checkpoint, refill) over fog-p2p direct messages or through the mixnet.
//! Decoding takes bounded input and returns an error on anything
//! malformed, never a panic.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::store::ResultRecord;

/// GossipSub topic of heartbeats.
pub(crate) const HEARTBEAT_TOPIC: &str = "fog/heartbeat/1";

/// Largest message a node decodes (a module plus its framing).
pub(crate) const MAX_MESSAGE: usize = 4 << 20;

/// What a node announces about itself every heartbeat interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Heartbeat {
    /// Human-readable name.
    pub(crate) name: String,
    /// sr25519 account, hex.
    pub(crate) account: String,
    /// Roles (`exec`, `mix`, `ledger`).
    pub(crate) roles: Vec<String>,
    /// Capabilities (`exec:wasm`, `exec:docker`).
    pub(crate) capabilities: Vec<String>,
    /// CPU offered, millicores.
    pub(crate) cpu_millis: u32,
    /// Memory offered, MiB.
    pub(crate) memory_mb: u32,
    /// CPU reserved by the tasks it runs, millicores.
    pub(crate) used_cpu_millis: u32,
    /// Memory reserved by the tasks it runs, MiB.
    pub(crate) used_memory_mb: u32,
    /// Tasks running.
    pub(crate) running: u32,
    /// Whether its harvest policy lets it take work now.
    pub(crate) accepting: bool,
    /// Harvest state name.
    pub(crate) harvest: String,
    /// Its mix address (hex), when it runs a mix.
    pub(crate) mix_address: Option<String>,
    /// Its signed mix descriptor.
    pub(crate) mix_descriptor: Option<ByteBuf>,
    /// Sequence number (restarts at 0 with the node).
    pub(crate) seq: u64,
    /// Unix ms when sent.
    pub(crate) sent_ms: u64,
    /// Verification quorum from the ledger's parameters (ledger nodes only).
    pub(crate) quorum: Option<u64>,
}

/// A unit of work sent to an executor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunTask {
    /// Task id.
    pub(crate) task: String,
    /// The job's name (for people).
    pub(crate) name: String,
    /// WASM module bytes.
    pub(crate) wasm: Option<ByteBuf>,
    /// Container image name.
    pub(crate) image: Option<String>,
    /// Image tarball path on the executor.
    pub(crate) image_tar: Option<String>,
    /// Arguments.
    pub(crate) args: Vec<String>,
    /// Fuel budget.
    pub(crate) fuel: Option<u64>,
    /// Memory limit, MiB.
    pub(crate) memory_mb: u32,
    /// CPU, millicores.
    pub(crate) cpu_millis: u32,
    /// Timeout, seconds.
    pub(crate) timeout_s: Option<f64>,
    /// Where to send the report over fog-p2p (absent: answer by reply block).
    pub(crate) reply_peer: Option<String>,
    /// The checkpoint to start from: the last one a failed or preempted
    /// replica of the same job shipped (WASM tasks).
    #[serde(default)]
    pub(crate) checkpoint: Option<ByteBuf>,
}

/// A checkpoint a running task saved, shipped by its executor to the
/// task's submitter so that the task can resume elsewhere should that
/// executor fail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ShippedCheckpoint {
    /// Task id.
    pub(crate) task: String,
    /// The checkpoint's number on its executor (later ones are higher).
    pub(crate) seq: u64,
    /// The checkpoint's bytes.
    pub(crate) data: ByteBuf,
    /// The executor's sr25519 account, hex.
    pub(crate) account: String,
    /// Its signature over (task, seq, SHA-256 of the data), hex.
    pub(crate) signature: String,
}

/// An executor's answer about a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TaskReport {
    /// Task id.
    pub(crate) task: String,
    /// Executor name.
    pub(crate) node: String,
    /// Executor peer id.
    pub(crate) peer: String,
    /// Set when the executor did not run it (policy, capacity, bad spec).
    pub(crate) refused: Option<String>,
    /// Set when it was preempted or lost before finishing.
    pub(crate) interrupted: Option<String>,
    /// The result, when it ran to an end.
    pub(crate) result: Option<ResultRecord>,
}

/// A verified task for the ledger node to pay (and to slash on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Settlement {
    /// Task id (the job id: one settlement per job).
    pub(crate) task: String,
    /// The agreed claim digest, hex.
    pub(crate) digest: String,
    /// Fuel of the agreed claim.
    pub(crate) fuel: u64,
    /// (account hex, signature hex) of every replica that agreed.
    pub(crate) agreeing: Vec<(String, String)>,
    /// (account hex, its digest hex, its signature hex) of every replica
    /// that disagreed.
    pub(crate) disagreeing: Vec<(String, String, String)>,
}

/// Every work message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Message {
    /// Run this task.
    Run(Box<RunTask>),
    /// A task's outcome.
    Report(Box<TaskReport>),
    /// Stop a task; its result is no longer wanted.
    Cancel {
        /// Task id.
        task: String,
    },
    /// Evict a task to make room for a more urgent one.
    Preempt {
        /// Task id.
        task: String,
    },
    /// Pay (and slash for) a verified job.
    Settle(Box<Settlement>),
    /// A running task's latest checkpoint, for its submitter.
    Checkpoint(Box<ShippedCheckpoint>),
    /// Fresh reply blocks (attached through the mixnet) for the next
    /// checkpoint of a task that came through the mixnet: each shipped
    /// checkpoint uses up the blocks it travelled on.
    Refill {
        /// Task id.
        task: String,
    },
}

/// Why bytes did not decode.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    /// More than [`MAX_MESSAGE`] bytes.
    #[error("message of {0} bytes is over the limit")]
    TooLarge(usize),
    /// Not valid CBOR for the type.
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Encodes any wire value.
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail for these plain types.
    ciborium::into_writer(value, &mut out).expect("CBOR encoding into memory");
    out
}

/// Decodes a wire value from at most [`MAX_MESSAGE`] bytes.
pub(crate) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, WireError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(WireError::TooLarge(bytes.len()));
    }
    ciborium::de::from_reader_with_recursion_limit(bytes, 32)
        .map_err(|e| WireError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn report() -> Message {
        Message::Report(Box::new(TaskReport {
            task: "j-1.0".into(),
            node: "n".into(),
            peer: "p".into(),
            refused: None,
            interrupted: None,
            result: Some(ResultRecord {
                exit_code: Some(0),
                failure: None,
                output_hash: "ab".into(),
                fuel: 7,
                stdout: b"hi".to_vec(),
                stderr: vec![],
                account: "00".into(),
                signature: "11".into(),
            }),
        }))
    }

    #[test]
    fn messages_round_trip() {
        let m = report();
        assert_eq!(decode::<Message>(&encode(&m)).unwrap(), m);
        let run = Message::Run(Box::new(RunTask {
            task: "t".into(),
            name: "n".into(),
            wasm: Some(ByteBuf::from(vec![0, 97, 115, 109])),
            image: None,
            image_tar: None,
            args: vec!["a".into()],
            fuel: Some(1),
            memory_mb: 64,
            cpu_millis: 100,
            timeout_s: Some(1.5),
            reply_peer: Some("x".into()),
            checkpoint: Some(ByteBuf::from(vec![1, 2, 3])),
        }));
        assert_eq!(decode::<Message>(&encode(&run)).unwrap(), run);
        let checkpoint = Message::Checkpoint(Box::new(ShippedCheckpoint {
            task: "t".into(),
            seq: 3,
            data: ByteBuf::from(vec![7; 40]),
            account: "00".into(),
            signature: "11".into(),
        }));
        assert_eq!(decode::<Message>(&encode(&checkpoint)).unwrap(), checkpoint);
        let refill = Message::Refill { task: "t".into() };
        assert_eq!(decode::<Message>(&encode(&refill)).unwrap(), refill);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<Message>(&bytes);
            let _ = decode::<Heartbeat>(&bytes);
        }

        #[test]
        fn mutated_messages_never_panic(flip in 0usize..200, value in any::<u8>()) {
            let mut bytes = encode(&report());
            let i = flip % bytes.len();
            bytes[i] = value;
            let _ = decode::<Message>(&bytes);
        }
    }
}
