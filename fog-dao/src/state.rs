//! The materialised state: a deterministic replay of the events. Applying an
//! event either succeeds completely or returns an error and changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::DaoError;
use crate::event::{
    Body, DoubleSignEvidence, Event, MAX_ATTESTATIONS, MAX_DESCRIPTION, MismatchEvidence,
    TASK_RESULT_CONTEXT, verify_raw, verify_task_result,
};
use crate::merkle::leaf_hash;
use crate::types::{AccountId, Action, Choice, ParamKey, Params, ProposalState, Role};

/// Most unbonding entries an account may have at once; an `Unbond` beyond it
/// is refused until a `Withdraw` releases matured entries.
pub const MAX_UNBONDING: usize = 32;

/// Stake on its way out: still slashable until `release`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unbonding {
    /// Logical time from which it may be withdrawn.
    pub release: u64,
    /// The amount.
    pub amount: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checkpoint {
    time: u64,
    bonded: u64,
    delegate: Option<AccountId>,
}

/// One account's materialised state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    nonce: u64,
    balance: u64,
    bonded: u64,
    unbonding: Vec<Unbonding>,
    delegate: Option<AccountId>,
    role: Role,
    jailed_until: Option<u64>,
    tombstoned: bool,
    history: Vec<Checkpoint>,
}

impl Account {
    /// The next nonce this account must sign with.
    pub fn nonce(&self) -> u64 {
        self.nonce
    }
    /// Liquid tokens.
    pub fn balance(&self) -> u64 {
        self.balance
    }
    /// Bonded stake.
    pub fn bonded(&self) -> u64 {
        self.bonded
    }
    /// Stake being unbonded (still slashable).
    pub fn unbonding(&self) -> &[Unbonding] {
        &self.unbonding
    }
    /// Sum of the unbonding entries.
    pub fn unbonding_total(&self) -> u64 {
        self.unbonding.iter().map(|u| u.amount).sum()
    }
    /// Current delegate, if any.
    pub fn delegate(&self) -> Option<AccountId> {
        self.delegate
    }
    /// Governance role.
    pub fn role(&self) -> Role {
        self.role
    }
    /// Jailed until this time (`u64::MAX` when tombstoned); `None` if free.
    pub fn jailed_until(&self) -> Option<u64> {
        self.jailed_until
    }
    /// Permanently barred after a double sign.
    pub fn is_tombstoned(&self) -> bool {
        self.tombstoned
    }

    fn at(&self, snapshot: u64) -> Option<&Checkpoint> {
        // The last checkpoint strictly before the snapshot.
        let idx = self.history.partition_point(|c| c.time < snapshot);
        idx.checked_sub(1).map(|i| &self.history[i])
    }

    /// Bonded stake as of just before `snapshot`.
    pub fn bonded_at(&self, snapshot: u64) -> u64 {
        self.at(snapshot).map_or(0, |c| c.bonded)
    }

    /// Delegate as of just before `snapshot`.
    pub fn delegate_at(&self, snapshot: u64) -> Option<AccountId> {
        self.at(snapshot).and_then(|c| c.delegate)
    }

    fn checkpoint(&mut self, time: u64) {
        let c = Checkpoint {
            time,
            bonded: self.bonded,
            delegate: self.delegate,
        };
        match self.history.last_mut() {
            Some(last) if last.time == time => *last = c,
            _ => self.history.push(c),
        }
    }

    fn is_jailed(&self) -> bool {
        self.jailed_until.is_some() || self.tombstoned
    }
}

/// One recorded ballot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ballot {
    choice: Choice,
    own: u64,
    from_delegators: BTreeMap<AccountId, u64>,
}

impl Ballot {
    /// The choice.
    pub fn choice(&self) -> Choice {
        self.choice
    }
    /// Weighted power counted for each delegator who had not voted when this
    /// ballot was cast and has not overridden it since.
    pub fn delegators(&self) -> &BTreeMap<AccountId, u64> {
        &self.from_delegators
    }
    /// Weighted power cast, including delegators who have not voted themselves.
    pub fn weight(&self) -> u64 {
        self.own
            .saturating_add(self.from_delegators.values().copied().sum::<u64>())
    }
}

/// A proposal and its tally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    id: u64,
    proposer: AccountId,
    kind: crate::types::ProposalKind,
    action: Action,
    description: String,
    created: u64,
    start: u64,
    end: u64,
    votes: BTreeMap<AccountId, Ballot>,
    tally: [u64; 4],
    total_power: Option<u64>,
    quorum_reached_at: Option<u64>,
    canceled: bool,
    eta: Option<u64>,
    executed: bool,
}

impl Proposal {
    /// Its id.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// Who proposed it.
    pub fn proposer(&self) -> AccountId {
        self.proposer
    }
    /// Its type.
    pub fn kind(&self) -> crate::types::ProposalKind {
        self.kind
    }
    /// What executing it does.
    pub fn action(&self) -> &Action {
        &self.action
    }
    /// Free text.
    pub fn description(&self) -> &str {
        &self.description
    }
    /// When voting opens; voting power is taken from just before this time.
    pub fn start(&self) -> u64 {
        self.start
    }
    /// When voting closes (may move later once, by a late quorum).
    pub fn end(&self) -> u64 {
        self.end
    }
    /// Weighted tally: for, against, abstain, veto.
    pub fn tally(&self) -> [u64; 4] {
        self.tally
    }
    /// Ballots by voter.
    pub fn ballots(&self) -> &BTreeMap<AccountId, Ballot> {
        &self.votes
    }
    /// Earliest execution time once queued.
    pub fn eta(&self) -> Option<u64> {
        self.eta
    }
}

/// The materialised ledger state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    ledger_id: [u8; 32],
    authority: Option<AccountId>,
    log_key: Option<AccountId>,
    params: Params,
    time: u64,
    events: u64,
    accounts: BTreeMap<AccountId, Account>,
    treasury: u64,
    minted: u64,
    burned: u64,
    slashed: u64,
    proposals: Vec<Proposal>,
    last_epoch: Option<u64>,
    offences: BTreeSet<(u8, AccountId, [u8; 32])>,
    upgrades: Vec<[u8; 32]>,
}

fn weighted(power: u64, weight_bps: u64) -> u64 {
    let w = u128::from(power) * u128::from(weight_bps) / 10_000;
    u64::try_from(w).unwrap_or(u64::MAX)
}

fn bps(amount: u64, bps: u64) -> u64 {
    (u128::from(amount) * u128::from(bps) / 10_000) as u64
}

fn positive(amount: u64) -> Result<u64, DaoError> {
    if amount == 0 {
        Err(DaoError::InvalidAmount(0))
    } else {
        Ok(amount)
    }
}

fn add(a: u64, b: u64) -> Result<u64, DaoError> {
    a.checked_add(b).ok_or(DaoError::InvalidAmount(b))
}

fn funds(available: u64, needed: u64) -> Result<(), DaoError> {
    if available < needed {
        Err(DaoError::InsufficientFunds { needed, available })
    } else {
        Ok(())
    }
}

impl State {
    /// The ledger id (the leaf hash of the genesis event).
    pub fn ledger_id(&self) -> &[u8; 32] {
        &self.ledger_id
    }
    /// The authority named by the genesis event.
    pub fn authority(&self) -> Option<AccountId> {
        self.authority
    }
    /// The key that signs tree heads.
    pub fn log_key(&self) -> Option<AccountId> {
        self.log_key
    }
    /// Current parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }
    /// Logical time of the last event.
    pub fn time(&self) -> u64 {
        self.time
    }
    /// Number of events applied.
    pub fn event_count(&self) -> u64 {
        self.events
    }
    /// An account, if it ever appeared.
    pub fn account(&self, id: &AccountId) -> Option<&Account> {
        self.accounts.get(id)
    }
    /// Every account.
    pub fn accounts(&self) -> &BTreeMap<AccountId, Account> {
        &self.accounts
    }
    /// The signer's next nonce.
    pub fn next_nonce(&self, id: &AccountId) -> u64 {
        self.accounts.get(id).map_or(0, |a| a.nonce)
    }
    /// Treasury balance.
    pub fn treasury(&self) -> u64 {
        self.treasury
    }
    /// All tokens ever minted.
    pub fn minted(&self) -> u64 {
        self.minted
    }
    /// All tokens burned.
    pub fn burned(&self) -> u64 {
        self.burned
    }
    /// All tokens slashed (destroyed).
    pub fn slashed(&self) -> u64 {
        self.slashed
    }
    /// Every proposal, by id.
    pub fn proposals(&self) -> &[Proposal] {
        &self.proposals
    }
    /// Executed upgrades, in order.
    pub fn upgrades(&self) -> &[[u8; 32]] {
        &self.upgrades
    }
    /// The last epoch whose rewards were paid.
    pub fn last_epoch(&self) -> Option<u64> {
        self.last_epoch
    }

    /// Sum of every balance, bond, unbonding entry and the treasury. Always
    /// equals `minted − burned − slashed`.
    pub fn circulating(&self) -> u128 {
        let held: u128 = self
            .accounts
            .values()
            .map(|a| u128::from(a.balance) + u128::from(a.bonded) + u128::from(a.unbonding_total()))
            .sum();
        held + u128::from(self.treasury)
    }

    /// A proposal's state at logical time `now`.
    pub fn proposal_state(&self, id: u64, now: u64) -> Result<ProposalState, DaoError> {
        let p = self
            .proposals
            .get(usize::try_from(id).unwrap_or(usize::MAX))
            .ok_or(DaoError::UnknownProposal(id))?;
        Ok(self.state_of(p, now))
    }

    fn state_of(&self, p: &Proposal, now: u64) -> ProposalState {
        if p.executed {
            return ProposalState::Executed;
        }
        if p.canceled {
            return ProposalState::Canceled;
        }
        if let Some(eta) = p.eta {
            let grace = self.params.get(ParamKey::GracePeriod);
            return if now > eta.saturating_add(grace) {
                ProposalState::Expired
            } else {
                ProposalState::Queued
            };
        }
        if now < p.start {
            ProposalState::Pending
        } else if now < p.end {
            ProposalState::Active
        } else if self.passed(p) {
            ProposalState::Succeeded
        } else {
            ProposalState::Defeated
        }
    }

    /// Bonded stake of all accounts just before `snapshot`.
    fn total_power_at(&self, snapshot: u64) -> u64 {
        self.accounts
            .values()
            .map(|a| a.bonded_at(snapshot))
            .fold(0u64, u64::saturating_add)
    }

    fn quorum_met(&self, p: &Proposal, total: u64) -> bool {
        let participation: u128 = p.tally.iter().map(|v| u128::from(*v)).sum();
        participation * 10_000
            >= u128::from(self.params.get(ParamKey::QuorumBps)) * u128::from(total)
    }

    fn passed(&self, p: &Proposal) -> bool {
        let total = p
            .total_power
            .unwrap_or_else(|| self.total_power_at(p.start));
        let [yes, no, _abstain, veto] = p.tally.map(u128::from);
        let all: u128 = p.tally.iter().map(|v| u128::from(*v)).sum();
        let vetoed =
            all > 0 && veto * 10_000 >= u128::from(self.params.get(ParamKey::VetoBps)) * all;
        self.quorum_met(p, total)
            && !vetoed
            && yes * 10_000 > u128::from(self.params.get(ParamKey::ThresholdBps)) * (yes + no)
    }

    /// Weighted voting power `voter` would cast on proposal `id` now:
    /// own bonded stake plus that of accounts delegating to it at the
    /// snapshot which have not voted themselves.
    pub fn voting_power(&self, id: u64, voter: &AccountId) -> Result<u64, DaoError> {
        let p = self
            .proposals
            .get(usize::try_from(id).unwrap_or(usize::MAX))
            .ok_or(DaoError::UnknownProposal(id))?;
        let (own, from) = self.power_parts(p, voter);
        Ok(own.saturating_add(from.values().copied().sum()))
    }

    fn power_parts(&self, p: &Proposal, voter: &AccountId) -> (u64, BTreeMap<AccountId, u64>) {
        let weight = self
            .params
            .role_weight(self.accounts.get(voter).map_or(Role::Citizen, |a| a.role));
        let own = self
            .accounts
            .get(voter)
            .map_or(0, |a| weighted(a.bonded_at(p.start), weight));
        let mut from = BTreeMap::new();
        for (id, a) in &self.accounts {
            if id == voter || p.votes.contains_key(id) {
                continue;
            }
            if a.delegate_at(p.start) == Some(*voter) {
                let w = weighted(a.bonded_at(p.start), weight);
                if w > 0 {
                    from.insert(*id, w);
                }
            }
        }
        (own, from)
    }

    fn role_of(&self, id: &AccountId) -> Role {
        self.accounts.get(id).map_or(Role::Citizen, |a| a.role)
    }

    fn require_king(&self, signer: AccountId, action: &'static str) -> Result<(), DaoError> {
        if self.role_of(&signer) == Role::King {
            Ok(())
        } else {
            Err(DaoError::NotAuthorized { signer, action })
        }
    }

    fn proposal_index(&self, id: u64) -> Result<usize, DaoError> {
        usize::try_from(id)
            .ok()
            .filter(|i| *i < self.proposals.len())
            .ok_or(DaoError::UnknownProposal(id))
    }

    fn balance_of(&self, id: &AccountId) -> u64 {
        self.accounts.get(id).map_or(0, |a| a.balance)
    }

    /// Applies one event. `check_signature` is false only when replaying a
    /// log whose signatures were checked separately (in a batch). On error
    /// nothing changes.
    pub fn apply(&mut self, event: &Event, check_signature: bool) -> Result<(), DaoError> {
        let signer = event.signer();
        let t = event.time();
        if self.events == 0 {
            let Body::Genesis { params, log_key } = event.body() else {
                return Err(DaoError::Genesis);
            };
            if event.nonce() != 0 {
                return Err(DaoError::BadNonce {
                    signer,
                    expected: 0,
                    got: event.nonce(),
                });
            }
            if check_signature && !event.verify_signature(&[0; 32]) {
                return Err(DaoError::BadSignature { signer });
            }
            params.validate()?;
            self.ledger_id = leaf_hash(&event.encode());
            self.authority = Some(signer);
            self.log_key = Some(*log_key);
            self.params = params.clone();
            self.time = t;
            self.events = 1;
            let account = self.accounts.entry(signer).or_default();
            account.role = Role::King;
            account.nonce = 1;
            return Ok(());
        }
        if matches!(event.body(), Body::Genesis { .. }) {
            return Err(DaoError::Genesis);
        }
        if t < self.time {
            return Err(DaoError::TimeWentBackwards {
                last: self.time,
                got: t,
            });
        }
        let expected = self.next_nonce(&signer);
        if event.nonce() != expected {
            return Err(DaoError::BadNonce {
                signer,
                expected,
                got: event.nonce(),
            });
        }
        if check_signature && !event.verify_signature(&self.ledger_id) {
            return Err(DaoError::BadSignature { signer });
        }
        self.apply_body(signer, t, event.body())?;
        self.accounts.entry(signer).or_default().nonce += 1;
        self.time = t;
        self.events += 1;
        Ok(())
    }

    fn apply_body(&mut self, signer: AccountId, t: u64, body: &Body) -> Result<(), DaoError> {
        match body {
            Body::Genesis { .. } => Err(DaoError::Genesis),
            Body::Mint { to, rule, units } => {
                self.require_king(signer, "mint")?;
                let (rate, mult) = self.params.earning(*rule);
                let amount = u128::from(*units) * u128::from(rate) * u128::from(mult) / 10_000;
                let amount = u64::try_from(amount).map_err(|_| DaoError::InvalidAmount(*units))?;
                positive(amount)?;
                let share = bps(amount, self.params.get(ParamKey::TreasuryShareBps));
                let minted = add(self.minted, amount)?;
                let treasury = add(self.treasury, share)?;
                let balance = add(self.balance_of(to), amount - share)?;
                self.minted = minted;
                self.treasury = treasury;
                self.accounts.entry(*to).or_default().balance = balance;
                Ok(())
            }
            Body::Transfer { to, amount } => {
                positive(*amount)?;
                funds(self.balance_of(&signer), *amount)?;
                if *to != signer {
                    let credited = add(self.balance_of(to), *amount)?;
                    self.accounts.entry(signer).or_default().balance -= amount;
                    self.accounts.entry(*to).or_default().balance = credited;
                }
                Ok(())
            }
            Body::Burn { amount } => {
                positive(*amount)?;
                funds(self.balance_of(&signer), *amount)?;
                let burned = add(self.burned, *amount)?;
                self.accounts.entry(signer).or_default().balance -= amount;
                self.burned = burned;
                Ok(())
            }
            Body::TreasuryDeposit { amount } => {
                positive(*amount)?;
                funds(self.balance_of(&signer), *amount)?;
                let treasury = add(self.treasury, *amount)?;
                self.accounts.entry(signer).or_default().balance -= amount;
                self.treasury = treasury;
                Ok(())
            }
            Body::Bond { amount } => {
                positive(*amount)?;
                funds(self.balance_of(&signer), *amount)?;
                let a = self.accounts.entry(signer).or_default();
                a.balance -= amount;
                a.bonded += amount;
                a.checkpoint(t);
                Ok(())
            }
            Body::Unbond { amount } => {
                positive(*amount)?;
                let period = self.params.get(ParamKey::UnbondingPeriod);
                let release = add(t, period)?;
                let a = self.accounts.get(&signer);
                funds(a.map_or(0, |a| a.bonded), *amount)?;
                if a.is_some_and(|a| a.unbonding.len() >= MAX_UNBONDING) {
                    return Err(DaoError::Rule("too many unbonding entries; withdraw first"));
                }
                let a = self.accounts.entry(signer).or_default();
                a.bonded -= amount;
                a.unbonding.push(Unbonding {
                    release,
                    amount: *amount,
                });
                a.checkpoint(t);
                Ok(())
            }
            Body::Withdraw => {
                let a = self.accounts.get(&signer);
                let ready: u64 = a.map_or(0, |a| {
                    a.unbonding
                        .iter()
                        .filter(|u| u.release <= t)
                        .map(|u| u.amount)
                        .sum()
                });
                let has_ready = a.is_some_and(|a| a.unbonding.iter().any(|u| u.release <= t));
                if !has_ready {
                    return Err(DaoError::Rule("nothing to withdraw yet"));
                }
                let balance = add(self.balance_of(&signer), ready)?;
                let a = self.accounts.entry(signer).or_default();
                a.unbonding.retain(|u| u.release > t);
                a.balance = balance;
                Ok(())
            }
            Body::Delegate { to } => {
                if *to == Some(signer) {
                    return Err(DaoError::Rule("cannot delegate to oneself"));
                }
                let a = self.accounts.entry(signer).or_default();
                a.delegate = *to;
                a.checkpoint(t);
                Ok(())
            }
            Body::SetRole { account, role } => {
                self.require_king(signer, "assign roles")?;
                if *account == signer {
                    return Err(DaoError::Rule("the king cannot change its own role"));
                }
                self.accounts.entry(*account).or_default().role = *role;
                Ok(())
            }
            Body::DistributeRewards { epoch } => {
                self.require_king(signer, "distribute rewards")?;
                if self.last_epoch.is_some_and(|last| *epoch <= last) {
                    return Err(DaoError::Rule("epoch already paid"));
                }
                let length = self.params.get(ParamKey::EpochLength);
                let ended = epoch
                    .checked_add(1)
                    .and_then(|e| e.checked_mul(length))
                    .is_some_and(|end| end <= t);
                if !ended {
                    return Err(DaoError::Rule("epoch has not ended"));
                }
                let reward = self.params.get(ParamKey::EpochReward);
                let minted = add(self.minted, reward)?;
                let total: u128 = self
                    .accounts
                    .values()
                    .filter(|a| !a.is_jailed())
                    .map(|a| u128::from(a.bonded))
                    .sum();
                let mut paid = 0u64;
                for a in self.accounts.values_mut().filter(|a| !a.is_jailed()) {
                    let share = (u128::from(reward) * u128::from(a.bonded))
                        .checked_div(total)
                        .unwrap_or(0) as u64;
                    a.balance = a.balance.saturating_add(share);
                    paid += share;
                }
                self.treasury = self.treasury.saturating_add(reward - paid);
                self.minted = minted;
                self.last_epoch = Some(*epoch);
                Ok(())
            }
            Body::Unjail => {
                let a = self.accounts.get(&signer);
                match a.map(|a| (a.tombstoned, a.jailed_until)) {
                    Some((false, Some(until))) if until <= t => {
                        self.accounts.entry(signer).or_default().jailed_until = None;
                        Ok(())
                    }
                    Some((false, Some(_))) => Err(DaoError::Rule("jail period not over")),
                    Some((true, _)) => Err(DaoError::Rule("tombstoned accounts stay jailed")),
                    _ => Err(DaoError::Rule("not jailed")),
                }
            }
            Body::Propose {
                kind,
                action,
                description,
            } => {
                if description.len() > MAX_DESCRIPTION {
                    return Err(DaoError::InvalidProposal("description too long"));
                }
                if !action.fits(*kind) {
                    return Err(DaoError::InvalidProposal("action does not fit the kind"));
                }
                match action {
                    Action::SetParam { key, value } => {
                        self.params.with(*key, *value)?;
                    }
                    Action::TreasuryTransfer { amount, .. } => {
                        positive(*amount)?;
                    }
                    Action::None | Action::Upgrade { .. } => {}
                }
                let bonded = self.accounts.get(&signer).map_or(0, |a| a.bonded);
                let threshold = self.params.get(ParamKey::ProposalThreshold);
                if bonded < threshold {
                    return Err(DaoError::BelowProposalThreshold { bonded, threshold });
                }
                let start = add(t, self.params.get(ParamKey::VotingDelay))?;
                let end = add(start, self.params.get(ParamKey::VotingPeriod))?;
                let id = self.proposals.len() as u64;
                self.proposals.push(Proposal {
                    id,
                    proposer: signer,
                    kind: *kind,
                    action: action.clone(),
                    description: description.clone(),
                    created: t,
                    start,
                    end,
                    votes: BTreeMap::new(),
                    tally: [0; 4],
                    total_power: None,
                    quorum_reached_at: None,
                    canceled: false,
                    eta: None,
                    executed: false,
                });
                Ok(())
            }
            Body::Vote { proposal, choice } => self.vote(signer, t, *proposal, *choice),
            Body::Queue { proposal } => {
                let i = self.proposal_index(*proposal)?;
                let state = self.state_of(&self.proposals[i], t);
                if state != ProposalState::Succeeded {
                    return Err(DaoError::WrongState {
                        proposal: *proposal,
                        state,
                        action: "queue",
                    });
                }
                let eta = add(t, self.params.timelock(self.proposals[i].kind))?;
                self.proposals[i].eta = Some(eta);
                Ok(())
            }
            Body::Execute { proposal } => self.execute(t, *proposal),
            Body::Cancel { proposal } => {
                let i = self.proposal_index(*proposal)?;
                let p = &self.proposals[i];
                let state = self.state_of(p, t);
                if state.is_final() {
                    return Err(DaoError::WrongState {
                        proposal: *proposal,
                        state,
                        action: "cancel",
                    });
                }
                let guardian = self.role_of(&signer) == Role::Guardian;
                let own_pending = p.proposer == signer && state == ProposalState::Pending;
                if !guardian && !own_pending {
                    return Err(DaoError::NotAuthorized {
                        signer,
                        action: "cancel this proposal",
                    });
                }
                self.proposals[i].canceled = true;
                Ok(())
            }
            Body::DoubleSign(e) => self.double_sign(e, t),
            Body::QuorumMismatch(e) => self.mismatch(e, t),
            Body::Downtime { node, epoch } => {
                self.require_king(signer, "report downtime")?;
                let key = (2u8, *node, {
                    let mut k = [0u8; 32];
                    k[..8].copy_from_slice(&epoch.to_be_bytes());
                    k
                });
                if self.offences.contains(&key) {
                    return Err(DaoError::DuplicateOffence { node: *node });
                }
                let until = t.saturating_add(self.params.get(ParamKey::JailDuration));
                self.slash(node, self.params.get(ParamKey::SlashDowntimeBps), t);
                let a = self.accounts.entry(*node).or_default();
                if !a.tombstoned {
                    a.jailed_until = Some(a.jailed_until.map_or(until, |u| u.max(until)));
                }
                self.offences.insert(key);
                Ok(())
            }
        }
    }

    fn vote(
        &mut self,
        voter: AccountId,
        t: u64,
        proposal: u64,
        choice: Choice,
    ) -> Result<(), DaoError> {
        let i = self.proposal_index(proposal)?;
        let p = &self.proposals[i];
        let state = self.state_of(p, t);
        if state != ProposalState::Active {
            return Err(DaoError::WrongState {
                proposal,
                state,
                action: "vote",
            });
        }
        if p.votes.contains_key(&voter) {
            return Err(DaoError::DoubleVote { proposal, voter });
        }
        let (own, from) = self.power_parts(p, &voter);
        let weight = own.saturating_add(from.values().copied().sum());
        if weight == 0 {
            return Err(DaoError::NoVotingPower { proposal, voter });
        }
        let total = p
            .total_power
            .unwrap_or_else(|| self.total_power_at(p.start));
        let delegate = self
            .accounts
            .get(&voter)
            .and_then(|a| a.delegate_at(p.start));
        let ext = self.params.get(ParamKey::LateQuorumExtension);
        // Everything checked: mutate.
        let p = &mut self.proposals[i];
        p.total_power = Some(total);
        // Delegator override: take this voter's stake back from its delegate.
        if let Some(d) = delegate
            && let Some(ballot) = p.votes.get_mut(&d)
            && let Some(w) = ballot.from_delegators.remove(&voter)
        {
            let slot = usize::from(ballot.choice.tag());
            p.tally[slot] = p.tally[slot].saturating_sub(w);
        }
        let slot = usize::from(choice.tag());
        p.tally[slot] = p.tally[slot].saturating_add(weight);
        p.votes.insert(
            voter,
            Ballot {
                choice,
                own,
                from_delegators: from,
            },
        );
        let p = &self.proposals[i];
        if p.quorum_reached_at.is_none() && self.quorum_met(p, total) {
            let p = &mut self.proposals[i];
            p.quorum_reached_at = Some(t);
            let extended = t.saturating_add(ext);
            if extended > p.end {
                p.end = extended;
            }
        }
        Ok(())
    }

    fn execute(&mut self, t: u64, proposal: u64) -> Result<(), DaoError> {
        let i = self.proposal_index(proposal)?;
        let p = &self.proposals[i];
        let state = self.state_of(p, t);
        if state != ProposalState::Queued {
            return Err(DaoError::WrongState {
                proposal,
                state,
                action: "execute",
            });
        }
        let eta = p.eta.unwrap_or(u64::MAX);
        if t < eta {
            return Err(DaoError::Timelocked { proposal, eta });
        }
        match p.action.clone() {
            Action::None => {}
            Action::SetParam { key, value } => {
                self.params = self.params.with(key, value)?;
            }
            Action::TreasuryTransfer { to, amount } => {
                funds(self.treasury, amount)?;
                let balance = add(self.balance_of(&to), amount)?;
                self.treasury -= amount;
                self.accounts.entry(to).or_default().balance = balance;
            }
            Action::Upgrade { release } => self.upgrades.push(release),
        }
        self.proposals[i].executed = true;
        Ok(())
    }

    fn double_sign(&mut self, e: &DoubleSignEvidence, t: u64) -> Result<(), DaoError> {
        if e.first.result == e.second.result {
            return Err(DaoError::InvalidEvidence("the two results are the same"));
        }
        if !verify_task_result(&e.node, &e.task, &e.first)
            || !verify_task_result(&e.node, &e.task, &e.second)
        {
            return Err(DaoError::InvalidEvidence(
                "a result signature does not verify",
            ));
        }
        if self.accounts.get(&e.node).is_some_and(|a| a.tombstoned) {
            return Err(DaoError::DuplicateOffence { node: e.node });
        }
        self.slash(&e.node, self.params.get(ParamKey::SlashDoubleSignBps), t);
        let a = self.accounts.entry(e.node).or_default();
        a.tombstoned = true;
        a.jailed_until = Some(u64::MAX);
        self.offences.insert((0, e.node, e.task));
        Ok(())
    }

    fn mismatch(&mut self, e: &MismatchEvidence, t: u64) -> Result<(), DaoError> {
        if e.attestations.len() > MAX_ATTESTATIONS {
            return Err(DaoError::InvalidEvidence("too many attestations"));
        }
        if e.node_result.result == e.majority {
            return Err(DaoError::InvalidEvidence("the node agrees with the quorum"));
        }
        if !verify_task_result(&e.node, &e.task, &e.node_result) {
            return Err(DaoError::InvalidEvidence(
                "the node's signature does not verify",
            ));
        }
        let mut message = [0u8; 64];
        message[..32].copy_from_slice(&e.task);
        message[32..].copy_from_slice(&e.majority);
        let mut seen = BTreeSet::new();
        for (verifier, signature) in &e.attestations {
            if *verifier == e.node || !seen.insert(*verifier) {
                return Err(DaoError::InvalidEvidence("duplicate or self attestation"));
            }
            let eligible = self
                .accounts
                .get(verifier)
                .is_some_and(|a| a.bonded > 0 && !a.is_jailed());
            if !eligible {
                return Err(DaoError::InvalidEvidence(
                    "a verifier is not bonded or is jailed",
                ));
            }
            if !verify_raw(verifier, TASK_RESULT_CONTEXT, &message, signature) {
                return Err(DaoError::InvalidEvidence("an attestation does not verify"));
            }
        }
        if (seen.len() as u64) < self.params.get(ParamKey::MinQuorumSigners) {
            return Err(DaoError::InvalidEvidence("not enough verifiers"));
        }
        let key = (1u8, e.node, e.task);
        if self.offences.contains(&key) {
            return Err(DaoError::DuplicateOffence { node: e.node });
        }
        self.slash(&e.node, self.params.get(ParamKey::SlashMismatchBps), t);
        self.offences.insert(key);
        Ok(())
    }

    /// Slashes `bps` of bonded plus unbonding stake, bonded first. Returns
    /// the amount destroyed (never more than the stake).
    fn slash(&mut self, node: &AccountId, fraction: u64, t: u64) -> u64 {
        let Some(a) = self.accounts.get_mut(node) else {
            return 0;
        };
        let base = a.bonded.saturating_add(a.unbonding_total());
        let mut left = bps(base, fraction).min(base);
        let amount = left;
        let from_bonded = left.min(a.bonded);
        a.bonded -= from_bonded;
        left -= from_bonded;
        for u in &mut a.unbonding {
            let take = left.min(u.amount);
            u.amount -= take;
            left -= take;
        }
        a.unbonding.retain(|u| u.amount > 0);
        if from_bonded > 0 {
            a.checkpoint(t);
        }
        self.slashed = self.slashed.saturating_add(amount);
        amount
    }
}
