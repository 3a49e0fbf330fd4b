//! Value types: accounts, roles, earning rules, ballots, proposals and
//! parameters.

use std::fmt;
use std::str::FromStr;

use crate::error::{DaoError, DecodeError};

/// An account: the 32-byte sr25519 public key of its holder.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId([u8; 32]);

impl AccountId {
    /// Wraps raw public-key bytes (checked when a signature is verified).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0[..8]))
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({})", hex::encode(self.0))
    }
}

impl FromStr for AccountId {
    type Err = DaoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut out)
            .map_err(|_| DaoError::Key(format!("not a 64-hex-digit account: {s}")))?;
        Ok(Self(out))
    }
}

macro_rules! tagged_enum {
    ($(#[$m:meta])* $name:ident, $what:literal, { $($(#[$vm:meta])* $variant:ident = $tag:literal : $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vm])* $variant),+
        }

        impl $name {
            /// Every value, in tag order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            #[allow(dead_code, reason = "not every tagged enum is encoded")]
            pub(crate) fn tag(self) -> u8 {
                match self { $($name::$variant => $tag),+ }
            }

            #[allow(dead_code, reason = "not every tagged enum is encoded")]
            pub(crate) fn from_tag(tag: u8) -> Result<Self, DecodeError> {
                match tag {
                    $($tag => Ok($name::$variant),)+
                    value => Err(DecodeError::UnknownTag { what: $what, value }),
                }
            }

            /// The lowercase name used on the command line and in JSON.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.name().eq_ignore_ascii_case(s))
                    .ok_or_else(|| {
                        let names: Vec<&str> = $name::ALL.iter().map(|v| v.name()).collect();
                        format!("unknown {} {s:?} (one of {})", $what, names.join(", "))
                    })
            }
        }
    };
}

tagged_enum!(
    /// A governance role. Each role has a vote weight (a parameter).
    Role, "role", {
        /// Every account starts as a citizen.
        Citizen = 0: "citizen",
        /// A delegate others delegate to.
        Delegate = 1: "delegate",
        /// A council member.
        Councilor = 2: "councilor",
        /// May cancel any proposal that has not executed.
        Guardian = 3: "guardian",
        /// The ledger authority: assigns roles, mints earnings, reports downtime.
        King = 4: "king",
    }
);

tagged_enum!(
    /// What a mint pays for. Each rule has a rate and a multiplier.
    EarningRule, "earning rule", {
        /// Compute contributed and verified.
        Compute = 0: "compute",
        /// Mix traffic relayed.
        Relay = 1: "relay",
        /// Hosting and storage.
        Hosting = 2: "hosting",
        /// Governance participation.
        Governance = 3: "governance",
    }
);

tagged_enum!(
    /// A ballot choice.
    Choice, "choice", {
        /// In favour.
        For = 0: "for",
        /// Against.
        Against = 1: "against",
        /// Counts for quorum only.
        Abstain = 2: "abstain",
        /// Against, and enough vetoes defeat the proposal outright.
        Veto = 3: "veto",
    }
);

tagged_enum!(
    /// The type of a proposal; each has its own timelock.
    ProposalKind, "proposal kind", {
        /// Changes one parameter.
        Parameter = 0: "parameter",
        /// Moves funds out of the treasury.
        Treasury = 1: "treasury",
        /// Records a software upgrade (a 32-byte release hash).
        Upgrade = 2: "upgrade",
        /// Any action, with the short emergency timelock.
        Emergency = 3: "emergency",
        /// Text only; executing it records the decision.
        General = 4: "general",
    }
);

tagged_enum!(
    /// Where a proposal is in its life. States only move forward.
    ProposalState, "proposal state", {
        /// Created, voting not yet open.
        Pending = 0: "pending",
        /// Voting open.
        Active = 1: "active",
        /// Canceled by its proposer or a guardian.
        Canceled = 2: "canceled",
        /// Voting closed without passing.
        Defeated = 3: "defeated",
        /// Voting closed and passed.
        Succeeded = 4: "succeeded",
        /// In the timelock.
        Queued = 5: "queued",
        /// Not executed within the grace period after its timelock.
        Expired = 6: "expired",
        /// Executed.
        Executed = 7: "executed",
    }
);

impl ProposalState {
    /// A rank that never decreases over a proposal's life.
    pub fn rank(self) -> u8 {
        match self {
            ProposalState::Pending => 0,
            ProposalState::Active => 1,
            ProposalState::Succeeded => 2,
            ProposalState::Queued => 3,
            ProposalState::Canceled
            | ProposalState::Defeated
            | ProposalState::Expired
            | ProposalState::Executed => 4,
        }
    }

    /// Whether nothing can happen to the proposal any more.
    pub fn is_final(self) -> bool {
        self.rank() == 4
    }
}

tagged_enum!(
    /// A governance parameter. All values are `u64`; fractions are in basis
    /// points (1/10,000); times are in the ledger's logical time units.
    ParamKey, "parameter", {
        /// Time between proposing and the voting snapshot/start.
        VotingDelay = 0: "voting_delay",
        /// Length of the voting window.
        VotingPeriod = 1: "voting_period",
        /// Participation needed, as a fraction of bonded stake at the snapshot.
        QuorumBps = 2: "quorum_bps",
        /// For/(For+Against) must exceed this.
        ThresholdBps = 3: "threshold_bps",
        /// Veto/(all votes) at or above this defeats a proposal.
        VetoBps = 4: "veto_bps",
        /// A quorum reached this close to the end extends voting by this much.
        LateQuorumExtension = 5: "late_quorum_extension",
        /// Timelock of parameter proposals.
        TimelockParameter = 6: "timelock_parameter",
        /// Timelock of treasury proposals.
        TimelockTreasury = 7: "timelock_treasury",
        /// Timelock of upgrade proposals.
        TimelockUpgrade = 8: "timelock_upgrade",
        /// Timelock of emergency proposals (the shortest).
        TimelockEmergency = 9: "timelock_emergency",
        /// Timelock of general proposals.
        TimelockGeneral = 10: "timelock_general",
        /// How long after its timelock a queued proposal may execute.
        GracePeriod = 11: "grace_period",
        /// Bonded stake needed to propose.
        ProposalThreshold = 12: "proposal_threshold",
        /// Time before unbonded stake can be withdrawn.
        UnbondingPeriod = 13: "unbonding_period",
        /// Length of a reward epoch.
        EpochLength = 14: "epoch_length",
        /// Tokens minted per epoch for stakers.
        EpochReward = 15: "epoch_reward",
        /// How long a downtime offender stays jailed.
        JailDuration = 16: "jail_duration",
        /// Fraction of stake slashed for a double sign.
        SlashDoubleSignBps = 17: "slash_double_sign_bps",
        /// Fraction of stake slashed for a verification-quorum mismatch.
        SlashMismatchBps = 18: "slash_mismatch_bps",
        /// Fraction of stake slashed for downtime.
        SlashDowntimeBps = 19: "slash_downtime_bps",
        /// Distinct bonded verifiers needed in a mismatch record.
        MinQuorumSigners = 20: "min_quorum_signers",
        /// Tokens per unit of verified compute.
        RateCompute = 21: "rate_compute",
        /// Tokens per unit of relayed traffic.
        RateRelay = 22: "rate_relay",
        /// Tokens per unit of hosting/storage.
        RateHosting = 23: "rate_hosting",
        /// Tokens per unit of governance participation.
        RateGovernance = 24: "rate_governance",
        /// Multiplier (bps) of compute earnings.
        MultiplierCompute = 25: "multiplier_compute",
        /// Multiplier (bps) of relay earnings.
        MultiplierRelay = 26: "multiplier_relay",
        /// Multiplier (bps) of hosting earnings.
        MultiplierHosting = 27: "multiplier_hosting",
        /// Multiplier (bps) of governance earnings.
        MultiplierGovernance = 28: "multiplier_governance",
        /// Share (bps) of every mint that goes to the treasury.
        TreasuryShareBps = 29: "treasury_share_bps",
        /// Vote weight (bps) of a citizen.
        WeightCitizen = 30: "weight_citizen",
        /// Vote weight (bps) of a delegate.
        WeightDelegate = 31: "weight_delegate",
        /// Vote weight (bps) of a councilor.
        WeightCouncilor = 32: "weight_councilor",
        /// Vote weight (bps) of a guardian.
        WeightGuardian = 33: "weight_guardian",
        /// Vote weight (bps) of the king.
        WeightKing = 34: "weight_king",
    }
);

#[allow(clippy::derivable_impls, reason = "the enum comes from a macro")]
impl Default for Role {
    fn default() -> Self {
        Role::Citizen
    }
}

/// Number of parameters.
pub(crate) const PARAM_COUNT: usize = 35;

/// The governance parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    values: [u64; PARAM_COUNT],
}

impl Default for Params {
    /// Defaults in seconds for a ledger driven by wall-clock time.
    fn default() -> Self {
        use ParamKey as K;
        let mut p = Params {
            values: [0; PARAM_COUNT],
        };
        for (k, v) in [
            (K::VotingDelay, 60),
            (K::VotingPeriod, 3_600),
            (K::QuorumBps, 2_000),
            (K::ThresholdBps, 5_000),
            (K::VetoBps, 3_340),
            (K::LateQuorumExtension, 600),
            (K::TimelockParameter, 86_400),
            (K::TimelockTreasury, 172_800),
            (K::TimelockUpgrade, 259_200),
            (K::TimelockEmergency, 600),
            (K::TimelockGeneral, 3_600),
            (K::GracePeriod, 1_209_600),
            (K::ProposalThreshold, 1),
            (K::UnbondingPeriod, 604_800),
            (K::EpochLength, 86_400),
            (K::EpochReward, 1_000),
            (K::JailDuration, 86_400),
            (K::SlashDoubleSignBps, 500),
            (K::SlashMismatchBps, 100),
            (K::SlashDowntimeBps, 10),
            (K::MinQuorumSigners, 2),
            (K::RateCompute, 10),
            (K::RateRelay, 1),
            (K::RateHosting, 2),
            (K::RateGovernance, 5),
            (K::MultiplierCompute, 10_000),
            (K::MultiplierRelay, 10_000),
            (K::MultiplierHosting, 10_000),
            (K::MultiplierGovernance, 10_000),
            (K::TreasuryShareBps, 1_000),
            (K::WeightCitizen, 10_000),
            (K::WeightDelegate, 10_000),
            (K::WeightCouncilor, 15_000),
            (K::WeightGuardian, 10_000),
            (K::WeightKing, 10_000),
        ] {
            p.values[usize::from(k.tag())] = v;
        }
        p
    }
}

impl Params {
    /// A parameter's value.
    pub fn get(&self, key: ParamKey) -> u64 {
        self.values[usize::from(key.tag())]
    }

    /// Returns a copy with one parameter changed, if the result is valid.
    pub fn with(&self, key: ParamKey, value: u64) -> Result<Params, DaoError> {
        let mut p = self.clone();
        p.values[usize::from(key.tag())] = value;
        p.validate()?;
        Ok(p)
    }

    /// Every parameter with its value.
    pub fn iter(&self) -> impl Iterator<Item = (ParamKey, u64)> + '_ {
        ParamKey::ALL.iter().map(|k| (*k, self.get(*k)))
    }

    /// Checks every range: fractions at most 10,000 bps, periods and
    /// timelocks at least 1 (nothing executes instantly), the emergency
    /// timelock no longer than any other.
    pub fn validate(&self) -> Result<(), DaoError> {
        use ParamKey as K;
        const MAX_TIME: u64 = 1 << 40;
        for &k in ParamKey::ALL {
            let v = self.get(k);
            let bad = || DaoError::InvalidParameter {
                name: k.name(),
                value: v,
            };
            let ok = match k {
                K::QuorumBps
                | K::SlashDoubleSignBps
                | K::SlashMismatchBps
                | K::SlashDowntimeBps
                | K::TreasuryShareBps => v <= 10_000,
                K::ThresholdBps | K::VetoBps => (1..=10_000).contains(&v),
                K::VotingPeriod
                | K::TimelockParameter
                | K::TimelockTreasury
                | K::TimelockUpgrade
                | K::TimelockEmergency
                | K::TimelockGeneral
                | K::EpochLength
                | K::GracePeriod => (1..=MAX_TIME).contains(&v),
                K::VotingDelay | K::LateQuorumExtension | K::UnbondingPeriod | K::JailDuration => {
                    v <= MAX_TIME
                }
                K::MinQuorumSigners => (1..=64).contains(&v),
                K::MultiplierCompute
                | K::MultiplierRelay
                | K::MultiplierHosting
                | K::MultiplierGovernance
                | K::WeightCitizen
                | K::WeightDelegate
                | K::WeightCouncilor
                | K::WeightGuardian
                | K::WeightKing => v <= 1_000_000,
                K::RateCompute
                | K::RateRelay
                | K::RateHosting
                | K::RateGovernance
                | K::EpochReward
                | K::ProposalThreshold => v <= 1 << 48,
            };
            if !ok {
                return Err(bad());
            }
        }
        let emergency = self.get(K::TimelockEmergency);
        for k in [
            K::TimelockParameter,
            K::TimelockTreasury,
            K::TimelockUpgrade,
            K::TimelockGeneral,
        ] {
            if emergency > self.get(k) {
                return Err(DaoError::InvalidParameter {
                    name: K::TimelockEmergency.name(),
                    value: emergency,
                });
            }
        }
        Ok(())
    }

    /// The timelock of a proposal kind.
    pub fn timelock(&self, kind: ProposalKind) -> u64 {
        self.get(match kind {
            ProposalKind::Parameter => ParamKey::TimelockParameter,
            ProposalKind::Treasury => ParamKey::TimelockTreasury,
            ProposalKind::Upgrade => ParamKey::TimelockUpgrade,
            ProposalKind::Emergency => ParamKey::TimelockEmergency,
            ProposalKind::General => ParamKey::TimelockGeneral,
        })
    }

    /// The vote weight (bps) of a role.
    pub fn role_weight(&self, role: Role) -> u64 {
        self.get(match role {
            Role::Citizen => ParamKey::WeightCitizen,
            Role::Delegate => ParamKey::WeightDelegate,
            Role::Councilor => ParamKey::WeightCouncilor,
            Role::Guardian => ParamKey::WeightGuardian,
            Role::King => ParamKey::WeightKing,
        })
    }

    /// Rate and multiplier (bps) of an earning rule.
    pub fn earning(&self, rule: EarningRule) -> (u64, u64) {
        let (r, m) = match rule {
            EarningRule::Compute => (ParamKey::RateCompute, ParamKey::MultiplierCompute),
            EarningRule::Relay => (ParamKey::RateRelay, ParamKey::MultiplierRelay),
            EarningRule::Hosting => (ParamKey::RateHosting, ParamKey::MultiplierHosting),
            EarningRule::Governance => (ParamKey::RateGovernance, ParamKey::MultiplierGovernance),
        };
        (self.get(r), self.get(m))
    }

    pub(crate) fn raw(&self) -> &[u64; PARAM_COUNT] {
        &self.values
    }

    pub(crate) fn from_raw(values: &[u64; PARAM_COUNT]) -> Self {
        Self { values: *values }
    }
}

/// What an executed proposal does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Nothing beyond recording the decision.
    None,
    /// Sets one parameter.
    SetParam {
        /// The parameter.
        key: ParamKey,
        /// Its new value.
        value: u64,
    },
    /// Pays from the treasury.
    TreasuryTransfer {
        /// The recipient.
        to: AccountId,
        /// The amount.
        amount: u64,
    },
    /// Records an upgrade to the release with this hash.
    Upgrade {
        /// The release hash.
        release: [u8; 32],
    },
}

impl Action {
    /// Whether this action fits a proposal kind (emergency takes any).
    pub fn fits(&self, kind: ProposalKind) -> bool {
        matches!(
            (kind, self),
            (ProposalKind::Emergency, _)
                | (ProposalKind::Parameter, Action::SetParam { .. })
                | (ProposalKind::Treasury, Action::TreasuryTransfer { .. })
                | (ProposalKind::Upgrade, Action::Upgrade { .. })
                | (ProposalKind::General, Action::None)
        )
    }
}
