//! Replay protection: a persisted Bloom filter of Sphinx replay tags per key
//! epoch.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// Bytes of a Sphinx replay tag.
pub const REPLAY_TAG_LEN: usize = 32;

/// The highest false-positive rate a filter may be sized for.
pub const MAX_FALSE_POSITIVE_RATE: f64 = 1e-6;

/// The largest filter accepted, in bits (1 GiB of memory and file).
pub const MAX_FILTER_BITS: u64 = 1 << 33;

const MAGIC: &[u8; 8] = b"FOGMIXRF";
const FORMAT_VERSION: u8 = 1;
/// magic, version, epoch, capacity, bits, hashes, inserted.
const SNAPSHOT_HEAD_LEN: usize = 8 + 1 + 8 + 8 + 8 + 4 + 8;

/// How a replay filter is sized.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ReplayConfig {
    /// Packets one key epoch is sized for: the filter's capacity. Past it the
    /// filter is *full* (see [`ReplayFilter`]). Default 1,000,000.
    pub expected_packets: u64,
    /// The false-positive rate at capacity: the chance a fresh packet is taken
    /// for a replay. At most [`MAX_FALSE_POSITIVE_RATE`]; default 1e-6.
    pub false_positive_rate: f64,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            expected_packets: 1_000_000,
            false_positive_rate: MAX_FALSE_POSITIVE_RATE,
        }
    }
}

impl ReplayConfig {
    /// Sized for `expected_packets` per key epoch at the default
    /// false-positive rate.
    pub fn new(expected_packets: u64) -> Self {
        ReplayConfig {
            expected_packets,
            false_positive_rate: MAX_FALSE_POSITIVE_RATE,
        }
    }

    /// Sized for a node receiving `packets_per_second` over one key epoch of
    /// length `epoch`, at the default false-positive rate.
    pub fn for_rate(packets_per_second: f64, epoch: Duration) -> Self {
        let expected = (packets_per_second.max(0.0) * epoch.as_secs_f64()).ceil();
        ReplayConfig {
            expected_packets: (expected as u64).max(1),
            false_positive_rate: MAX_FALSE_POSITIVE_RATE,
        }
    }

    /// The same sizing with another false-positive rate.
    pub fn with_false_positive_rate(mut self, rate: f64) -> Self {
        self.false_positive_rate = rate;
        self
    }

    /// Bits and hash functions of the optimal Bloom filter for this sizing:
    /// `m = ceil(-n ln p / (ln 2)^2)` rounded up to whole 64-bit words,
    /// `k = round(m / n * ln 2)`.
    pub fn dimensions(&self) -> Result<(u64, u32), ReplayError> {
        let p = self.false_positive_rate;
        if !(p > 0.0 && p <= MAX_FALSE_POSITIVE_RATE) || self.expected_packets == 0 {
            return Err(ReplayError::Config(format!(
                "need expected_packets > 0 and 0 < false_positive_rate <= {MAX_FALSE_POSITIVE_RATE}, got {} and {p}",
                self.expected_packets
            )));
        }
        let n = self.expected_packets as f64;
        let ln2 = std::f64::consts::LN_2;
        let m = (-n * p.ln() / (ln2 * ln2)).ceil();
        if m > MAX_FILTER_BITS as f64 {
            return Err(ReplayError::Config(format!(
                "{} packets at rate {p} need {m} bits, more than {MAX_FILTER_BITS}",
                self.expected_packets
            )));
        }
        let mut m = (m as u64).div_ceil(64) * 64;
        // Rounding k to a whole number can leave the rate a hair above the
        // target; grow m by whole words until the exact formula meets it.
        loop {
            let k = ((m as f64 / n) * ln2).round().max(1.0) as u32;
            if false_positive_rate(m, k, self.expected_packets) <= p || m >= MAX_FILTER_BITS {
                return Ok((m, k));
            }
            m += 64;
        }
    }
}

/// The false-positive rate of a Bloom filter of `bits` bits and `hashes`
/// hash functions holding `n` items: `(1 - e^(-k n / m))^k`.
pub fn false_positive_rate(bits: u64, hashes: u32, n: u64) -> f64 {
    let k = f64::from(hashes);
    (1.0 - (-k * n as f64 / bits as f64).exp()).powf(k)
}

/// An error opening, loading or saving a replay filter.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The sizing is invalid.
    #[error("invalid replay filter config: {0}")]
    Config(String),
    /// The snapshot file is not a valid filter (bad magic, version, length or
    /// checksum), or was sized differently; nothing was loaded.
    #[error("corrupt replay filter snapshot {path}: {reason}")]
    Corrupt {
        /// The snapshot file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing the files failed.
    #[error("replay filter i/o on {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// The verdict on a replay tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayVerdict {
    /// Not seen before; now recorded.
    Fresh,
    /// Seen before in this epoch (or a false positive, at most the configured
    /// rate): drop the packet.
    Replayed,
    /// The filter holds its capacity; the packet is refused, unrecorded.
    Full,
}

/// Counters of one filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ReplayStats {
    /// The key epoch the filter belongs to.
    pub epoch: u64,
    /// Tags recorded.
    pub inserted: u64,
    /// Tags the filter is sized for.
    pub capacity: u64,
    /// Packets dropped as replays since the filter was opened.
    pub replays: u64,
    /// Packets refused because the filter was full since it was opened.
    pub refused_full: u64,
    /// Filter size in bits.
    pub bits: u64,
    /// Hash functions.
    pub hashes: u32,
}

struct Store {
    dir: PathBuf,
    journal: File,
}

/// A Bloom filter of Sphinx replay tags for one key epoch.
///
/// * **Sizing.** Sized by [`ReplayConfig`] for a false-positive rate of at
///   most 1e-6 at its capacity. A tag is an HKDF output of the packet's
///   Diffie-Hellman secret, uniform to everyone but the packet's own sender;
///   the `k` indexes come from the tag by double hashing. A sender can grind
///   the tags of its own packets, but every tag it gets recorded costs an
///   accepted packet, which the capacity bounds.
/// * **Full.** When the filter holds `capacity` tags it is *full*: every new
///   tag gets [`ReplayVerdict::Full`] and its packet is refused (counted in
///   [`ReplayStats::refused_full`]) until the keys rotate. Accepting more
///   would raise the false-positive rate above the target; clearing early
///   would let every packet of the epoch be replayed. Size the filter for the
///   epoch's peak rate ([`ReplayConfig::for_rate`]).
/// * **Rotation.** A filter belongs to one key epoch. When the node rotates
///   its Sphinx key it opens a new filter for the new epoch, keeps the old
///   one while the old key is still accepted (the overlap window) and then
///   drops it with [`remove`](Self::remove). Replays across epochs fail
///   anyway: an old packet does not decrypt under a new key.
/// * **Persistence.** A persistent filter ([`open`](Self::open)) appends
///   every recorded tag to a journal file before answering
///   [`ReplayVerdict::Fresh`], so a tag survives a crash of the process; a
///   snapshot written by [`save`](Self::save) (temporary file, fsync,
///   rename) folds the journal in. Opening replays snapshot then journal
///   (ignoring a torn last record). Call [`sync`](Self::sync) to make the
///   journal survive power loss too.
pub struct ReplayFilter {
    epoch: u64,
    words: Vec<u64>,
    bits: u64,
    hashes: u32,
    capacity: u64,
    inserted: u64,
    replays: u64,
    refused_full: u64,
    store: Option<Store>,
}

impl std::fmt::Debug for ReplayFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayFilter")
            .field("stats", &self.stats())
            .field("dir", &self.store.as_ref().map(|s| &s.dir))
            .finish_non_exhaustive()
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ReplayError + '_ {
    move |source| ReplayError::Io {
        path: path.to_owned(),
        source,
    }
}

impl ReplayFilter {
    /// A filter kept only in memory (lost on restart).
    pub fn in_memory(epoch: u64, config: &ReplayConfig) -> Result<Self, ReplayError> {
        let (bits, hashes) = config.dimensions()?;
        Ok(ReplayFilter {
            epoch,
            words: vec![0; (bits / 64) as usize],
            bits,
            hashes,
            capacity: config.expected_packets,
            inserted: 0,
            replays: 0,
            refused_full: 0,
            store: None,
        })
    }

    /// The snapshot file of `epoch` in `dir`.
    pub fn snapshot_path(dir: &Path, epoch: u64) -> PathBuf {
        dir.join(format!("replay-{epoch}.bloom"))
    }

    /// The journal file of `epoch` in `dir`.
    pub fn journal_path(dir: &Path, epoch: u64) -> PathBuf {
        dir.join(format!("replay-{epoch}.journal"))
    }

    /// Opens (or creates) the persistent filter of `epoch` in `dir`: loads
    /// the snapshot if there is one, then the journal. A snapshot that is
    /// corrupt or was sized differently is an error and nothing is changed.
    pub fn open(dir: &Path, epoch: u64, config: &ReplayConfig) -> Result<Self, ReplayError> {
        let mut filter = Self::in_memory(epoch, config)?;
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let snapshot = Self::snapshot_path(dir, epoch);
        match fs::read(&snapshot) {
            Ok(bytes) => filter.load_snapshot(&snapshot, &bytes)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&snapshot)(e)),
        }
        let journal_path = Self::journal_path(dir, epoch);
        let mut journal = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&journal_path)
            .map_err(io_err(&journal_path))?;
        let mut bytes = Vec::new();
        journal
            .read_to_end(&mut bytes)
            .map_err(io_err(&journal_path))?;
        let whole = bytes.len() / REPLAY_TAG_LEN * REPLAY_TAG_LEN;
        for tag in bytes[..whole].chunks_exact(REPLAY_TAG_LEN) {
            let mut t = [0u8; REPLAY_TAG_LEN];
            t.copy_from_slice(tag);
            if !filter.contains(&t) {
                filter.set(&t);
                filter.inserted += 1;
            }
        }
        if whole != bytes.len() {
            tracing::warn!(path = %journal_path.display(), "dropping a torn replay journal record");
            journal
                .set_len(whole as u64)
                .map_err(io_err(&journal_path))?;
        }
        filter.store = Some(Store {
            dir: dir.to_owned(),
            journal,
        });
        Ok(filter)
    }

    fn load_snapshot(&mut self, path: &Path, bytes: &[u8]) -> Result<(), ReplayError> {
        let corrupt = |reason: String| ReplayError::Corrupt {
            path: path.to_owned(),
            reason,
        };
        let expected = SNAPSHOT_HEAD_LEN + self.words.len() * 8 + 32;
        if bytes.len() != expected {
            return Err(corrupt(format!(
                "{} bytes, expected {expected}",
                bytes.len()
            )));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body).as_slice() != sum {
            return Err(corrupt("checksum mismatch".into()));
        }
        if &body[..8] != MAGIC || body[8] != FORMAT_VERSION {
            return Err(corrupt("not a fog-mix replay filter".into()));
        }
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&body[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let mut k = [0u8; 4];
        k.copy_from_slice(&body[33..37]);
        let (epoch, capacity, bits, hashes, inserted) = (
            u64_at(9),
            u64_at(17),
            u64_at(25),
            u32::from_le_bytes(k),
            u64_at(37),
        );
        if (epoch, capacity, bits, hashes) != (self.epoch, self.capacity, self.bits, self.hashes) {
            return Err(corrupt(format!(
                "snapshot is epoch {epoch}, {capacity} packets, {bits} bits, {hashes} hashes; \
                 expected epoch {}, {} packets, {} bits, {} hashes",
                self.epoch, self.capacity, self.bits, self.hashes
            )));
        }
        for (word, chunk) in self
            .words
            .iter_mut()
            .zip(body[SNAPSHOT_HEAD_LEN..].chunks_exact(8))
        {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *word = u64::from_le_bytes(b);
        }
        self.inserted = inserted;
        Ok(())
    }

    /// Checks `tag` and records it if fresh. A journal write error records
    /// nothing and is returned (the caller drops the packet).
    pub fn check_and_insert(&mut self, tag: &[u8; REPLAY_TAG_LEN]) -> io::Result<ReplayVerdict> {
        if self.contains(tag) {
            self.replays += 1;
            return Ok(ReplayVerdict::Replayed);
        }
        if self.inserted >= self.capacity {
            self.refused_full += 1;
            return Ok(ReplayVerdict::Full);
        }
        if let Some(store) = &mut self.store {
            store.journal.write_all(tag)?;
        }
        self.set(tag);
        self.inserted += 1;
        Ok(ReplayVerdict::Fresh)
    }

    /// Whether `tag` is (probably) recorded.
    pub fn contains(&self, tag: &[u8; REPLAY_TAG_LEN]) -> bool {
        self.indexes(tag)
            .all(|i| self.words[(i / 64) as usize] & (1 << (i % 64)) != 0)
    }

    fn set(&mut self, tag: &[u8; REPLAY_TAG_LEN]) {
        let indexes: Vec<u64> = self.indexes(tag).collect();
        for i in indexes {
            self.words[(i / 64) as usize] |= 1 << (i % 64);
        }
    }

    /// Kirsch-Mitzenmacher double hashing over two 64-bit words of the tag.
    fn indexes(&self, tag: &[u8; REPLAY_TAG_LEN]) -> impl Iterator<Item = u64> + use<> {
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&tag[..8]);
        b.copy_from_slice(&tag[8..16]);
        let h1 = u64::from_le_bytes(a);
        let h2 = u64::from_le_bytes(b) | 1;
        let bits = self.bits;
        (0..u64::from(self.hashes)).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % bits)
    }

    /// The filter's counters.
    pub fn stats(&self) -> ReplayStats {
        ReplayStats {
            epoch: self.epoch,
            inserted: self.inserted,
            capacity: self.capacity,
            replays: self.replays,
            refused_full: self.refused_full,
            bits: self.bits,
            hashes: self.hashes,
        }
    }

    /// The key epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether the filter holds its capacity.
    pub fn is_full(&self) -> bool {
        self.inserted >= self.capacity
    }

    /// Flushes the journal to stable storage (fsync).
    pub fn sync(&self) -> Result<(), ReplayError> {
        if let Some(store) = &self.store {
            store
                .journal
                .sync_data()
                .map_err(io_err(&Self::journal_path(&store.dir, self.epoch)))?;
        }
        Ok(())
    }

    /// Writes a snapshot atomically (temporary file, fsync, rename, fsync of
    /// the directory) and then empties the journal. A crash at any point
    /// leaves the old or the new snapshot, and the journal still covers
    /// every recorded tag. Does nothing for an in-memory filter.
    pub fn save(&mut self) -> Result<(), ReplayError> {
        let Some(store) = &mut self.store else {
            return Ok(());
        };
        let path = Self::snapshot_path(&store.dir, self.epoch);
        let tmp = path.with_extension("bloom.tmp");
        let mut body = Vec::with_capacity(SNAPSHOT_HEAD_LEN + self.words.len() * 8 + 32);
        body.extend_from_slice(MAGIC);
        body.push(FORMAT_VERSION);
        body.extend_from_slice(&self.epoch.to_le_bytes());
        body.extend_from_slice(&self.capacity.to_le_bytes());
        body.extend_from_slice(&self.bits.to_le_bytes());
        body.extend_from_slice(&self.hashes.to_le_bytes());
        body.extend_from_slice(&self.inserted.to_le_bytes());
        for w in &self.words {
            body.extend_from_slice(&w.to_le_bytes());
        }
        let sum = Sha256::digest(&body);
        body.extend_from_slice(&sum);
        {
            let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
            f.write_all(&body).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        if let Ok(d) = File::open(&store.dir) {
            // Directory fsync makes the rename durable; not every platform
            // allows it, and the journal still covers the tags if it fails.
            let _ = d.sync_all();
        }
        let journal = Self::journal_path(&store.dir, self.epoch);
        store.journal.set_len(0).map_err(io_err(&journal))?;
        store.journal.sync_all().map_err(io_err(&journal))?;
        Ok(())
    }

    /// Deletes this filter's files (after its key epoch has ended and its
    /// overlap window closed). Does nothing for an in-memory filter.
    pub fn remove(self) -> Result<(), ReplayError> {
        if let Some(store) = self.store {
            drop(store.journal);
            for path in [
                Self::snapshot_path(&store.dir, self.epoch),
                Self::journal_path(&store.dir, self.epoch),
            ] {
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(&path)(e)),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensions_meet_the_target_rate() {
        let c = ReplayConfig::default();
        let (m, k) = c.dimensions().unwrap();
        let p = false_positive_rate(m, k, c.expected_packets);
        assert!(p <= 1e-6, "p = {p}");
        assert_eq!(k, 20);
    }

    #[test]
    fn a_filter_sized_for_a_rate_holds_an_epoch_at_that_rate_within_the_target() {
        // 2,000 packets/s over a one-hour epoch and its 15-minute overlap.
        let c = ReplayConfig::for_rate(2000.0, Duration::from_mins(75));
        assert_eq!(c.expected_packets, 9_000_000);
        let (m, k) = c.dimensions().unwrap();
        assert!(false_positive_rate(m, k, 9_000_000) <= 1e-6);
        // Twice the traffic would break the target: the sizing is not lavish.
        assert!(false_positive_rate(m, k, 18_000_000) > 1e-6);
        assert_eq!(
            ReplayConfig::for_rate(0.0, Duration::from_secs(10)).expected_packets,
            1
        );
    }

    #[test]
    fn rates_above_the_maximum_are_refused() {
        assert!(
            ReplayConfig::default()
                .with_false_positive_rate(1e-3)
                .dimensions()
                .is_err()
        );
    }
}
