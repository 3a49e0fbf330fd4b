//! Checkpoint shipping: how a task resumes elsewhere when its node fails.
//!
//! An executor ships each checkpoint a task it runs for another node saves
//! (WASM tasks: `fog.checkpoint_save`; containers: a commit of their
//! checkpoint directory, packed by fog-exec as a tar archive) to the task's
//! submitter, at most one
//! per task per [`SHIP_INTERVAL`]:
//!
//! - over fog-p2p when the task came that way, up to [`MAX_SHIPPED`] bytes;
//! - through the mixnet when it came that way, on reply blocks: a run
//!   message carries [`REPLY_BLOCKS`] blocks for checkpoints besides those
//!   for the report, so a checkpoint travels only if it fits them (about
//!   32 KB at every level); a shipment takes only the blocks it needs, and
//!   the submitter sends fresh ones back (`Message::Refill`) when it keeps
//!   it, and unasked to a replica it has heard nothing from for
//!   [`REFILL_AFTER`] (a shipment lost on the way, an executor restarted:
//!   its blocks are in memory only); the executor holds at most
//!   [`MAX_HELD_BLOCKS`] per task, the freshest, and ships a checkpoint
//!   that waited for blocks as soon as they come. The executor never
//!   learns who submitted the task.
//!
//! The executor signs (task, seq, SHA-256 of the bytes) with its account
//! key in a context of its own ([`CONTEXT`], never the ledger's), and the
//! submitter keeps a checkpoint only from the node the replica runs on,
//! only while the replica runs, only if it is later than the one it has,
//! and only within [`STORE_BUDGET`] bytes of checkpoints in all (node.db,
//! dropped when the job ends).
//!
//! When a replica is dropped (its node failed, it was preempted or stuck)
//! the next replica placed for the job starts from that replica's last
//! checkpoint (`RunTask::checkpoint`, fog-exec's
//! `TaskSpec::with_checkpoint`), and continues its lineage: its own
//! checkpoints replace the inherited one. Verification compares a resumed
//! replica by its output only, since its fuel covers only the work after
//! the checkpoint (see `Runtime::verify`).

use std::time::Duration;

use fog_dao::{AccountId, SigningKey};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use super::wire::ShippedCheckpoint;

/// The signing context of shipped checkpoints.
pub(crate) const CONTEXT: &[u8] = b"fog/checkpoint/1";

/// Largest checkpoint shipped over fog-p2p (work messages carry at most
/// 4 MiB).
pub(crate) const MAX_SHIPPED: usize = 1 << 20;

/// Reply blocks a run message carries for checkpoints, and a refill
/// brings.
pub(crate) const REPLY_BLOCKS: usize = 16;

/// Most checkpoint reply blocks an executor holds for one task (a refill
/// puts fresh blocks in front; the oldest beyond this are dropped).
pub(crate) const MAX_HELD_BLOCKS: usize = 2 * REPLY_BLOCKS;

/// How long a submitter waits for a checkpoint from a mix-routed replica
/// before it sends fresh reply blocks unasked.
pub(crate) const REFILL_AFTER: Duration = Duration::from_mins(1);

/// Shortest time between two shipments of one task's checkpoints.
pub(crate) const SHIP_INTERVAL: Duration = Duration::from_secs(1);

/// Bytes of shipped checkpoints a submitter keeps at once.
pub(crate) const STORE_BUDGET: u64 = 256 << 20;

/// Bytes a checkpoint message adds to the checkpoint itself (task id,
/// account, signature, CBOR framing), an upper bound.
pub(crate) const OVERHEAD: usize = 512;

/// What the signature covers.
fn statement(task: &str, seq: u64, data: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(task.len() + 8 + 32);
    m.extend_from_slice(&Sha256::digest(task.as_bytes()));
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&Sha256::digest(data));
    m
}

/// Checkpoint `seq` of `task`, signed by `key`.
pub(crate) fn sign(key: &SigningKey, task: &str, seq: u64, data: Vec<u8>) -> ShippedCheckpoint {
    let signature = key
        .sign_statement(CONTEXT, &statement(task, seq, &data))
        .expect("CONTEXT is not one of the ledger's");
    ShippedCheckpoint {
        task: task.to_owned(),
        seq,
        data: ByteBuf::from(data),
        account: key.account().to_hex(),
        signature: hex::encode(signature),
    }
}

/// Whether `checkpoint` is signed by the account `expected` (hex).
pub(crate) fn verify(checkpoint: &ShippedCheckpoint, expected: &str) -> bool {
    if checkpoint.account != expected {
        return false;
    }
    let Ok(account) = checkpoint.account.parse::<AccountId>() else {
        return false;
    };
    let Some(signature) = hex::decode(&checkpoint.signature)
        .ok()
        .and_then(|s| <[u8; 64]>::try_from(s.as_slice()).ok())
    else {
        return false;
    };
    fog_dao::verify_statement(
        &account,
        CONTEXT,
        &statement(&checkpoint.task, checkpoint.seq, &checkpoint.data),
        &signature,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_checkpoint_verifies_only_unchanged_and_from_its_signer() {
        let key = SigningKey::generate();
        let me = key.account().to_hex();
        let c = sign(&key, "j-1.0", 3, b"state".to_vec());
        assert!(verify(&c, &me));
        let other = SigningKey::generate().account().to_hex();
        assert!(!verify(&c, &other));
        let mutations: [fn(&mut ShippedCheckpoint); 4] = [
            |c| c.seq += 1,
            |c| c.task.push('x'),
            |c| c.data[0] ^= 1,
            |c| {
                let flipped = if c.signature.starts_with('0') {
                    "1"
                } else {
                    "0"
                };
                c.signature.replace_range(0..1, flipped);
            },
        ];
        for mutate in mutations {
            let mut bad = c.clone();
            mutate(&mut bad);
            assert!(!verify(&bad, &me), "{bad:?}");
        }
        let mut garbage = c;
        garbage.signature = "zz".into();
        assert!(!verify(&garbage, &me));
    }
}
