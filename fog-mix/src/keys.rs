//! Key epochs: a mix's current Sphinx key, the previous one during the
//! overlap window, and a replay filter for each.

use crate::packet::{Packet, PacketConfig, ProcessError, Processed, Processor};
use crate::replay::ReplayFilter;
use x25519_dalek::StaticSecret;

/// Why a key rotation was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EpochError {
    /// The new epoch is not after the current one.
    #[error("epoch {new} is not after the current epoch {current}")]
    NotAfter {
        /// The current epoch.
        current: u64,
        /// The refused epoch.
        new: u64,
    },
    /// The replay filter given belongs to another epoch.
    #[error("replay filter is for epoch {filter}, the key for epoch {key}")]
    FilterEpoch {
        /// The key's epoch.
        key: u64,
        /// The filter's epoch.
        filter: u64,
    },
    /// The packet configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::packet::ConfigError),
}

#[derive(Debug)]
struct Epoch {
    number: u64,
    processor: Processor,
    replay: ReplayFilter,
}

/// A mix's Sphinx keys by epoch.
///
/// The mix holds the current epoch's key and, after a rotation, the previous
/// epoch's key until [`close_overlap`](Self::close_overlap): packets built
/// by senders who had not yet seen the new descriptor still arrive during
/// that window. Each key has its own replay filter, so a filter is rotated
/// exactly when its key is. At most two epochs are held; rotating again
/// retires the oldest.
#[derive(Debug)]
pub struct EpochKeys {
    current: Epoch,
    previous: Option<Epoch>,
}

impl EpochKeys {
    /// Keys holding `secret` for `epoch`, with `replay` as its filter.
    pub fn new(
        epoch: u64,
        secret: StaticSecret,
        config: PacketConfig,
        replay: ReplayFilter,
    ) -> Result<Self, EpochError> {
        Ok(EpochKeys {
            current: Self::epoch(epoch, secret, config, replay)?,
            previous: None,
        })
    }

    fn epoch(
        number: u64,
        secret: StaticSecret,
        config: PacketConfig,
        replay: ReplayFilter,
    ) -> Result<Epoch, EpochError> {
        if replay.epoch() != number {
            return Err(EpochError::FilterEpoch {
                key: number,
                filter: replay.epoch(),
            });
        }
        Ok(Epoch {
            number,
            processor: Processor::new(secret, config)?,
            replay,
        })
    }

    /// The current epoch.
    pub fn current_epoch(&self) -> u64 {
        self.current.number
    }

    /// The previous epoch, while its overlap window is open.
    pub fn previous_epoch(&self) -> Option<u64> {
        self.previous.as_ref().map(|e| e.number)
    }

    /// The current epoch's processor (its public key goes in the
    /// descriptor).
    pub fn current(&self) -> &Processor {
        &self.current.processor
    }

    /// The replay filter of `epoch`, if held.
    pub fn replay_filter(&self, epoch: u64) -> Option<&ReplayFilter> {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .find(|e| e.number == epoch)
            .map(|e| &e.replay)
    }

    /// Makes `secret` the key of the later `epoch`; the old current key
    /// becomes the previous one (overlap window open). Returns the replay
    /// filter of the epoch that was retired, if any, for the caller to
    /// [`remove`](ReplayFilter::remove).
    pub fn rotate(
        &mut self,
        epoch: u64,
        secret: StaticSecret,
        replay: ReplayFilter,
    ) -> Result<Option<ReplayFilter>, EpochError> {
        if epoch <= self.current.number {
            return Err(EpochError::NotAfter {
                current: self.current.number,
                new: epoch,
            });
        }
        let config = *self.current.processor.config();
        let next = Self::epoch(epoch, secret, config, replay)?;
        let old = std::mem::replace(&mut self.current, next);
        tracing::debug!(epoch, "sphinx key rotated");
        Ok(self.previous.replace(old).map(|e| e.replay))
    }

    /// Ends the overlap window: drops the previous key and returns its
    /// replay filter for the caller to remove.
    pub fn close_overlap(&mut self) -> Option<ReplayFilter> {
        self.previous.take().map(|e| e.replay)
    }

    /// Processes `packet` under the current key, or under the previous key
    /// if its header does not authenticate under the current one. Returns the
    /// epoch whose key processed it.
    pub fn process(&mut self, packet: &Packet) -> Result<(u64, Processed), ProcessError> {
        let current = &mut self.current;
        match current.processor.process(packet, &mut current.replay) {
            Err(ProcessError::Unauthenticated) => {}
            other => return other.map(|p| (current.number, p)),
        }
        match &mut self.previous {
            Some(previous) => previous
                .processor
                .process(packet, &mut previous.replay)
                .map(|p| (previous.number, p)),
            None => Err(ProcessError::Unauthenticated),
        }
    }
}
