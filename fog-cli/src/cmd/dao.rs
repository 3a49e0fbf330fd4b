//! `fog dao ...`: tokens, staking and governance on the local fog-dao ledger,
//! and the `dao` benchmark.
//!
//! Files live under `<data-dir>/dao/`: `ledger.db` (SQLite, WAL) and
//! `keys/<name>.key` (hex seeds, mode 0600). `fog dao init` makes the
//! `authority` key (the KING, who mints and assigns roles) and the `log` key
//! (which signs tree heads).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};
use fog_dao::merkle::{Hash, verify_consistency, verify_inclusion};
use fog_dao::{
    AccountId, Action, Body, Choice, DoubleSignEvidence, Durability, EarningRule, Event, Ledger,
    MismatchEvidence, ParamKey, Params, ProposalKind, Receipt, Role, SignedResult, SigningKey,
    VerifyOptions,
};
use serde_json::{Value, json};

use crate::cli::GlobalArgs;
use crate::cmd::Failure;

/// `fog dao`.
#[derive(Debug, Args)]
pub(crate) struct DaoArgs {
    /// Data directory; the ledger and keys live in its `dao/` folder.
    #[arg(long, global = true, env = "FOG_DATA_DIR", default_value = ".fog")]
    data_dir: PathBuf,
    /// Logical time to stamp on a new event (default: the later of now in
    /// Unix seconds and the ledger's time).
    #[arg(long, global = true, value_name = "TIME")]
    at: Option<u64>,
    #[command(subcommand)]
    command: DaoCommand,
}

#[derive(Debug, Subcommand)]
enum DaoCommand {
    /// Create the ledger (and the `authority` and `log` keys if missing)
    Init {
        /// Override a parameter, e.g. `--param voting_period=600` (repeatable)
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
    },
    /// Manage signing keys
    #[command(subcommand)]
    Key(KeyCommand),
    /// Pay earnings (authority only): units x rate x multiplier
    Mint {
        /// Recipient: a key name or a 64-hex-digit account
        #[arg(long)]
        to: String,
        /// Earning rule: compute, relay, hosting, governance
        #[arg(long, default_value = "compute")]
        rule: EarningRule,
        /// Units of contribution
        #[arg(long)]
        units: u64,
        /// Signing key
        #[arg(long, default_value = "authority")]
        key: String,
    },
    /// Send tokens
    Transfer {
        /// Signing key (the sender)
        #[arg(long)]
        key: String,
        /// Recipient: a key name or an account
        #[arg(long)]
        to: String,
        /// Amount
        amount: u64,
    },
    /// Destroy tokens
    Burn {
        /// Signing key
        #[arg(long)]
        key: String,
        /// Amount
        amount: u64,
    },
    /// Bond tokens as stake
    Stake {
        /// Signing key
        #[arg(long)]
        key: String,
        /// Amount
        amount: u64,
    },
    /// Start unbonding stake (released after the unbonding period)
    Unstake {
        /// Signing key
        #[arg(long)]
        key: String,
        /// Amount
        amount: u64,
    },
    /// Release unbonded stake whose period has passed
    Withdraw {
        /// Signing key
        #[arg(long)]
        key: String,
    },
    /// Pay one epoch's staking reward pro rata to unjailed stake (authority only)
    Distribute {
        /// The epoch (must have ended and not been paid)
        epoch: u64,
        /// Signing key
        #[arg(long, default_value = "authority")]
        key: String,
    },
    /// Leave jail after the jail period
    Unjail {
        /// Signing key
        #[arg(long)]
        key: String,
    },
    /// Delegate voting power (single hop), or take it back with --clear
    Delegate {
        /// Signing key (the delegator)
        #[arg(long)]
        key: String,
        /// The delegate: a key name or an account
        #[arg(long, conflicts_with = "clear", required_unless_present = "clear")]
        to: Option<String>,
        /// Undelegate
        #[arg(long)]
        clear: bool,
    },
    /// Assign a governance role (authority only)
    Role {
        /// Account: a key name or an account
        account: String,
        /// citizen, delegate, councilor, guardian or king
        role: Role,
        /// Signing key
        #[arg(long, default_value = "authority")]
        key: String,
    },
    /// Create a proposal
    Propose {
        /// Signing key (the proposer; needs bonded stake)
        #[arg(long)]
        key: String,
        /// parameter, treasury, upgrade, emergency or general
        #[arg(long)]
        kind: ProposalKind,
        /// For parameter proposals: NAME=VALUE
        #[arg(long = "param", value_name = "NAME=VALUE")]
        param: Option<String>,
        /// For treasury proposals: the recipient
        #[arg(long, requires = "amount")]
        to: Option<String>,
        /// For treasury proposals: the amount
        #[arg(long)]
        amount: Option<u64>,
        /// For upgrade proposals: the release hash (64 hex digits)
        #[arg(long)]
        release: Option<String>,
        /// Free text
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Cast a signed ballot
    Vote {
        /// Signing key
        #[arg(long)]
        key: String,
        /// Proposal id
        proposal: u64,
        /// for, against, abstain or veto
        choice: Choice,
    },
    /// Queue a succeeded proposal into its timelock
    Queue {
        /// Signing key
        #[arg(long)]
        key: String,
        /// Proposal id
        proposal: u64,
    },
    /// Execute a queued proposal after its timelock
    Execute {
        /// Signing key
        #[arg(long)]
        key: String,
        /// Proposal id
        proposal: u64,
    },
    /// Cancel a proposal (its proposer while pending, or a guardian)
    Cancel {
        /// Signing key
        #[arg(long)]
        key: String,
        /// Proposal id
        proposal: u64,
    },
    /// Sign a task result with a node key (what an executor reports)
    SignResult {
        /// The node's key
        #[arg(long)]
        key: String,
        /// Task id (64 hex digits)
        #[arg(long)]
        task: String,
        /// Result digest (64 hex digits)
        #[arg(long)]
        result: String,
    },
    /// Submit slashing evidence from a JSON file (`-` for stdin):
    /// `{"double_sign": {node, task, first: {result, signature}, second}}`,
    /// `{"quorum_mismatch": {node, task, node_result, majority,
    /// attestations: [{verifier, signature}]}}` or `{"downtime": {node, epoch}}`
    Evidence {
        /// Signing key (the reporter; the authority for downtime)
        #[arg(long)]
        key: String,
        /// The JSON file
        file: PathBuf,
    },
    /// Show balances, stakes, proposals and parameters
    Status,
    /// Re-verify the whole ledger: signatures, hashes, tree head, replay
    Verify,
    /// Inclusion proof of one event in the current signed tree head
    Proof {
        /// Event sequence number (0 is the genesis)
        event: u64,
        /// Also prove that the tree of this many events is a prefix of the
        /// current one (an RFC 6962 consistency proof)
        #[arg(long, value_name = "SIZE")]
        since: Option<u64>,
    },
    /// Run the dao benchmark (what `fog bench dao` runs)
    #[command(hide = true)]
    Bench(BenchArgs),
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Generate a new key and print its account
    New {
        /// Key name (letters, digits, `-`, `_`)
        name: String,
    },
    /// List keys and their accounts
    List,
}

/// Options of the dao benchmark.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Events in the ledger whose verification is timed
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) events: u64,
    /// Signed votes used for the signature figures
    #[arg(long, default_value_t = 20_000)]
    pub(crate) votes: u64,
    /// Appends timed for `append_per_s`
    #[arg(long, default_value_t = 2_000)]
    pub(crate) appends: u64,
    /// Signatures per `verify_batch` call
    #[arg(long, default_value_t = fog_dao::VERIFY_BATCH)]
    pub(crate) batch: usize,
}

struct Ctx {
    dir: PathBuf,
    at: Option<u64>,
    json: bool,
}

impl Ctx {
    fn ledger_path(&self) -> PathBuf {
        self.dir.join("ledger.db")
    }

    fn key_path(&self, name: &str) -> anyhow::Result<PathBuf> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!("bad key name {name:?}: use letters, digits, `-` and `_`");
        }
        Ok(self.dir.join("keys").join(format!("{name}.key")))
    }

    fn key(&self, name: &str) -> anyhow::Result<SigningKey> {
        let path = self.key_path(name)?;
        if !path.exists() {
            bail!("no key named {name:?} (create it with `fog dao key new {name}`)");
        }
        SigningKey::load(&path).with_context(|| format!("reading key {name:?}"))
    }

    /// A key name or a hex account.
    fn account(&self, text: &str) -> anyhow::Result<AccountId> {
        if text.len() == 64
            && let Ok(id) = AccountId::from_str(text)
        {
            return Ok(id);
        }
        Ok(self.key(text)?.account())
    }

    fn open(&self, writable: bool) -> anyhow::Result<Ledger> {
        let path = self.ledger_path();
        if !path.exists() {
            bail!(
                "no ledger at {} (create one with `fog dao init`)",
                path.display()
            );
        }
        let log = if writable {
            Some(self.key("log")?)
        } else {
            None
        };
        Ledger::open(&path, log).with_context(|| format!("opening {}", path.display()))
    }

    fn time(&self, ledger: &Ledger) -> u64 {
        self.at.unwrap_or_else(|| {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            now.max(ledger.state().time())
        })
    }

    fn names(&self) -> Vec<(String, AccountId)> {
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.join("keys")) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "key")
                    && let (Some(stem), Ok(key)) = (
                        path.file_stem().and_then(|s| s.to_str()),
                        SigningKey::load(&path),
                    )
                {
                    out.push((stem.to_owned(), key.account()));
                }
            }
        }
        out.sort();
        out
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex<const N: usize>(text: &str) -> anyhow::Result<[u8; N]> {
    let text = text.trim();
    if text.len() != 2 * N || !text.is_ascii() {
        bail!("expected {} hex digits, got {:?}", 2 * N, text);
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
            .map_err(|_| anyhow!("bad hex digits in {text:?}"))?;
    }
    Ok(out)
}

fn field<'a>(doc: &'a Value, name: &str) -> anyhow::Result<&'a str> {
    doc.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("evidence field {name:?} missing or not a string"))
}

fn signed_result(doc: &Value, name: &str) -> anyhow::Result<SignedResult> {
    let part = doc
        .get(name)
        .ok_or_else(|| anyhow!("evidence field {name:?} missing"))?;
    Ok(SignedResult {
        result: unhex(field(part, "result")?)?,
        signature: unhex(field(part, "signature")?)?,
    })
}

/// Reads a JSON evidence document into an event body.
fn evidence(ctx: &Ctx, doc: &Value) -> anyhow::Result<Body> {
    if let Some(e) = doc.get("double_sign") {
        return Ok(Body::DoubleSign(DoubleSignEvidence {
            node: ctx.account(field(e, "node")?)?,
            task: unhex(field(e, "task")?)?,
            first: signed_result(e, "first")?,
            second: signed_result(e, "second")?,
        }));
    }
    if let Some(e) = doc.get("quorum_mismatch") {
        let list = e
            .get("attestations")
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow!("evidence field \"attestations\" must be a list"))?;
        let mut attestations = Vec::with_capacity(list.len());
        for a in list {
            attestations.push((
                ctx.account(field(a, "verifier")?)?,
                unhex(field(a, "signature")?)?,
            ));
        }
        return Ok(Body::QuorumMismatch(MismatchEvidence {
            node: ctx.account(field(e, "node")?)?,
            task: unhex(field(e, "task")?)?,
            node_result: signed_result(e, "node_result")?,
            majority: unhex(field(e, "majority")?)?,
            attestations,
        }));
    }
    if let Some(e) = doc.get("downtime") {
        return Ok(Body::Downtime {
            node: ctx.account(field(e, "node")?)?,
            epoch: e
                .get("epoch")
                .and_then(Value::as_u64)
                .ok_or_else(|| anyhow!("evidence field \"epoch\" must be a number"))?,
        });
    }
    bail!("evidence must hold one of double_sign, quorum_mismatch, downtime")
}

fn param_pair(text: &str) -> anyhow::Result<(ParamKey, u64)> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| anyhow!("expected NAME=VALUE, got {text:?}"))?;
    let key = ParamKey::from_str(name.trim()).map_err(|e| anyhow!(e))?;
    let value = value
        .trim()
        .parse()
        .with_context(|| format!("bad value for {name}"))?;
    Ok((key, value))
}

fn print(ctx: &Ctx, doc: &Value, text: &str) {
    if ctx.json {
        println!("{doc}");
    } else {
        println!("{text}");
    }
}

/// Runs `fog dao ...`.
pub(crate) fn run(args: DaoArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let ctx = Ctx {
        dir: args.data_dir.join("dao"),
        at: args.at,
        json: global.json,
    };
    match args.command {
        DaoCommand::Init { params } => init(&ctx, &params),
        DaoCommand::Key(KeyCommand::New { name }) => key_new(&ctx, &name),
        DaoCommand::Key(KeyCommand::List) => {
            let names = ctx.names();
            let doc = json!(
                names
                    .iter()
                    .map(|(n, a)| json!({"name": n, "account": a.to_hex()}))
                    .collect::<Vec<_>>()
            );
            let text = names
                .iter()
                .map(|(n, a)| format!("{n:<16} {}", a.to_hex()))
                .collect::<Vec<_>>()
                .join("\n");
            print(&ctx, &doc, &text);
            Ok(())
        }
        DaoCommand::Mint {
            to,
            rule,
            units,
            key,
        } => {
            let to = ctx.account(&to)?;
            submit(&ctx, &key, Body::Mint { to, rule, units })
        }
        DaoCommand::Transfer { key, to, amount } => {
            let to = ctx.account(&to)?;
            submit(&ctx, &key, Body::Transfer { to, amount })
        }
        DaoCommand::Burn { key, amount } => submit(&ctx, &key, Body::Burn { amount }),
        DaoCommand::Stake { key, amount } => submit(&ctx, &key, Body::Bond { amount }),
        DaoCommand::Unstake { key, amount } => submit(&ctx, &key, Body::Unbond { amount }),
        DaoCommand::Withdraw { key } => submit(&ctx, &key, Body::Withdraw),
        DaoCommand::Distribute { epoch, key } => {
            submit(&ctx, &key, Body::DistributeRewards { epoch })
        }
        DaoCommand::Unjail { key } => submit(&ctx, &key, Body::Unjail),
        DaoCommand::Delegate { key, to, clear } => {
            let to = if clear {
                None
            } else {
                to.map(|t| ctx.account(&t)).transpose()?
            };
            submit(&ctx, &key, Body::Delegate { to })
        }
        DaoCommand::Role { account, role, key } => {
            let account = ctx.account(&account)?;
            submit(&ctx, &key, Body::SetRole { account, role })
        }
        DaoCommand::Propose {
            key,
            kind,
            param,
            to,
            amount,
            release,
            description,
        } => {
            let action = if let Some(p) = param {
                let (key, value) = param_pair(&p)?;
                Action::SetParam { key, value }
            } else if let (Some(to), Some(amount)) = (to, amount) {
                Action::TreasuryTransfer {
                    to: ctx.account(&to)?,
                    amount,
                }
            } else if let Some(r) = release {
                let release = *AccountId::from_str(&r)
                    .map_err(|_| anyhow!("release must be 64 hex digits"))?
                    .as_bytes();
                Action::Upgrade { release }
            } else {
                Action::None
            };
            submit(
                &ctx,
                &key,
                Body::Propose {
                    kind,
                    action,
                    description,
                },
            )
        }
        DaoCommand::Vote {
            key,
            proposal,
            choice,
        } => submit(&ctx, &key, Body::Vote { proposal, choice }),
        DaoCommand::Queue { key, proposal } => submit(&ctx, &key, Body::Queue { proposal }),
        DaoCommand::Execute { key, proposal } => submit(&ctx, &key, Body::Execute { proposal }),
        DaoCommand::Cancel { key, proposal } => submit(&ctx, &key, Body::Cancel { proposal }),
        DaoCommand::SignResult { key, task, result } => {
            let key = ctx.key(&key)?;
            let task: [u8; 32] = unhex(&task)?;
            let signed = key.sign_task_result(&task, &unhex(&result)?);
            let doc = json!({
                "node": key.account().to_hex(),
                "task": hex(&task),
                "result": hex(&signed.result),
                "signature": hex(&signed.signature),
            });
            print(&ctx, &doc, &doc.to_string());
            Ok(())
        }
        DaoCommand::Evidence { key, file } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let doc: Value = serde_json::from_str(&text).context("evidence is not JSON")?;
            let body = evidence(&ctx, &doc)?;
            submit(&ctx, &key, body)
        }
        DaoCommand::Status => status(&ctx),
        DaoCommand::Verify => verify(&ctx),
        DaoCommand::Proof { event, since } => proof(&ctx, event, since),
        DaoCommand::Bench(args) => bench(&args, global),
    }
}

fn key_new(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let path = ctx.key_path(name)?;
    if path.exists() {
        bail!("a key named {name:?} already exists");
    }
    std::fs::create_dir_all(ctx.dir.join("keys"))?;
    let key = SigningKey::generate();
    key.save(&path)?;
    let account = key.account().to_hex();
    print(
        ctx,
        &json!({"name": name, "account": account, "path": path}),
        &format!("{name} {account}"),
    );
    Ok(())
}

fn init(ctx: &Ctx, overrides: &[String]) -> anyhow::Result<()> {
    let path = ctx.ledger_path();
    if path.exists() {
        bail!("a ledger already exists at {}", path.display());
    }
    let mut params = Params::default();
    for text in overrides {
        let (key, value) = param_pair(text)?;
        params = params.with(key, value)?;
    }
    std::fs::create_dir_all(ctx.dir.join("keys"))?;
    for name in ["authority", "log"] {
        let p = ctx.key_path(name)?;
        if !p.exists() {
            SigningKey::generate().save(&p)?;
        }
    }
    let authority = ctx.key("authority")?;
    let log = ctx.key("log")?;
    let time = ctx.at.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    let ledger = Ledger::create(&path, &authority, log, params, time)?;
    let head = ledger.head().cloned();
    print(
        ctx,
        &json!({
            "ledger": path,
            "ledger_id": hex(ledger.state().ledger_id()),
            "authority": authority.account().to_hex(),
            "root": head.as_ref().map(|h| hex(h.root())),
        }),
        &format!(
            "created {} (authority {})",
            path.display(),
            authority.account().to_hex()
        ),
    );
    Ok(())
}

fn submit(ctx: &Ctx, key_name: &str, body: Body) -> anyhow::Result<()> {
    let key = ctx.key(key_name)?;
    let mut ledger = ctx.open(true)?;
    let time = ctx.time(&ledger);
    let kind = body.kind_name();
    let receipt: Receipt = ledger.submit(&key, time, body).map_err(|e| {
        anyhow::Error::from(Failure {
            code: 1,
            kind: "refused",
            message: format!("{kind} refused: {e}"),
        })
    })?;
    print(
        ctx,
        &json!({
            "event": receipt.seq,
            "kind": kind,
            "time": time,
            "leaf": hex(&receipt.leaf),
            "tree_size": receipt.head.size(),
            "root": hex(receipt.head.root()),
        }),
        &format!(
            "event {} ({kind}) appended at time {time}; tree size {}, root {}",
            receipt.seq,
            receipt.head.size(),
            hex(receipt.head.root())
        ),
    );
    Ok(())
}

fn status(ctx: &Ctx) -> anyhow::Result<()> {
    let ledger = ctx.open(false)?;
    let now = ctx.time(&ledger);
    let s = ledger.state();
    let names = ctx.names();
    let name_of = |id: &AccountId| names.iter().find(|(_, a)| a == id).map(|(n, _)| n.clone());
    let accounts: Vec<Value> = s
        .accounts()
        .iter()
        .map(|(id, a)| {
            json!({
                "account": id.to_hex(),
                "name": name_of(id),
                "role": a.role().name(),
                "nonce": a.nonce(),
                "balance": a.balance(),
                "bonded": a.bonded(),
                "unbonding": a.unbonding().iter().map(|u| json!({"amount": u.amount, "release": u.release})).collect::<Vec<_>>(),
                "delegate": a.delegate().map(|d| d.to_hex()),
                "jailed_until": a.jailed_until(),
                "tombstoned": a.is_tombstoned(),
            })
        })
        .collect();
    let mut proposals = Vec::new();
    for p in s.proposals() {
        let state = s.proposal_state(p.id(), now)?;
        let [yes, no, abstain, veto] = p.tally();
        proposals.push(json!({
            "id": p.id(),
            "kind": p.kind().name(),
            "state": state.name(),
            "proposer": p.proposer().to_hex(),
            "description": p.description(),
            "start": p.start(),
            "end": p.end(),
            "eta": p.eta(),
            "tally": {"for": yes, "against": no, "abstain": abstain, "veto": veto},
            "voters": p.ballots().len(),
        }));
    }
    let params: serde_json::Map<String, Value> = s
        .params()
        .iter()
        .map(|(k, v)| (k.name().to_owned(), json!(v)))
        .collect();
    let head = ledger.head();
    let doc = json!({
        "ledger_id": hex(s.ledger_id()),
        "events": ledger.len(),
        "time": s.time(),
        "root": head.map(|h| hex(h.root())),
        "authority": s.authority().map(|a| a.to_hex()),
        "treasury": s.treasury(),
        "minted": s.minted(),
        "burned": s.burned(),
        "slashed": s.slashed(),
        "circulating": s.circulating().to_string(),
        "upgrades": s.upgrades().iter().map(|u| hex(u)).collect::<Vec<_>>(),
        "accounts": accounts,
        "proposals": proposals,
        "params": params,
    });
    let mut text = format!(
        "ledger {}\nevents {}  time {}  root {}\ntreasury {}  minted {}  burned {}  slashed {}\n",
        hex(s.ledger_id()),
        ledger.len(),
        s.time(),
        head.map_or_else(String::new, |h| hex(h.root())),
        s.treasury(),
        s.minted(),
        s.burned(),
        s.slashed()
    );
    text.push_str("\naccounts:\n");
    for (id, a) in s.accounts() {
        let _ = writeln!(
            text,
            "  {:<12} {}  {:<9} balance {:>10}  bonded {:>10}  unbonding {:>8}{}",
            name_of(id).unwrap_or_default(),
            id,
            a.role().name(),
            a.balance(),
            a.bonded(),
            a.unbonding_total(),
            if a.is_tombstoned() {
                "  tombstoned"
            } else if a.jailed_until().is_some() {
                "  jailed"
            } else {
                ""
            }
        );
    }
    if !s.proposals().is_empty() {
        text.push_str("\nproposals:\n");
        for p in s.proposals() {
            let [yes, no, abstain, veto] = p.tally();
            let _ = writeln!(
                text,
                "  #{} {:<9} {:<9} for {yes} against {no} abstain {abstain} veto {veto}  {}",
                p.id(),
                p.kind().name(),
                s.proposal_state(p.id(), now)?.name(),
                p.description()
            );
        }
    }
    print(ctx, &doc, text.trim_end());
    Ok(())
}

fn verify(ctx: &Ctx) -> anyhow::Result<()> {
    let path = ctx.ledger_path();
    if !path.exists() {
        bail!("no ledger at {}", path.display());
    }
    let report = Ledger::verify_file(&path, VerifyOptions::default())?;
    if let Some(problem) = &report.problem {
        let message = match problem.seq {
            Some(seq) => format!("ledger does not verify: event {seq}: {}", problem.reason),
            None => format!("ledger does not verify: {}", problem.reason),
        };
        return Err(Failure {
            code: 1,
            kind: "verify_failed",
            message,
        }
        .into());
    }
    print(
        ctx,
        &json!({
            "ok": true,
            "events": report.events,
            "root": hex(&report.root),
            "seconds": report.read_seconds + report.hash_seconds + report.signature_seconds + report.replay_seconds,
        }),
        &format!(
            "ok: {} events verify (signatures, leaf hashes, tree head, replay); root {}",
            report.events,
            hex(&report.root)
        ),
    );
    Ok(())
}

fn proof(ctx: &Ctx, seq: u64, since: Option<u64>) -> anyhow::Result<()> {
    let ledger = ctx.open(false)?;
    let head = ledger
        .head()
        .cloned()
        .ok_or_else(|| anyhow!("the ledger is empty"))?;
    let path = ledger.inclusion_proof(seq, head.size())?;
    let leaf = ledger.leaf(seq).ok_or_else(|| anyhow!("no event {seq}"))?;
    let event = ledger.event(seq)?;
    let ok = verify_inclusion(&leaf, seq, head.size(), &path, head.root());
    let path_hex: Vec<String> = path.iter().map(|h: &Hash| hex(h)).collect();
    let consistency = match since {
        None => Value::Null,
        Some(old) => {
            let proof = ledger.consistency_proof(old, head.size())?;
            let old_root = ledger.root_at(old)?;
            let ok = verify_consistency(old, &old_root, head.size(), head.root(), &proof);
            json!({
                "old_size": old,
                "old_root": hex(&old_root),
                "proof": proof.iter().map(|h| hex(h)).collect::<Vec<_>>(),
                "verified": ok,
            })
        }
    };
    let consistency_text = if consistency.is_null() {
        String::new()
    } else {
        format!(
            "\nconsistency from size {}: {}",
            consistency["old_size"], consistency["verified"]
        )
    };
    print(
        ctx,
        &json!({
            "consistency": consistency,
            "event": seq,
            "kind": event.body().kind_name(),
            "signer": event.signer().to_hex(),
            "leaf": hex(&leaf),
            "tree_size": head.size(),
            "root": hex(head.root()),
            "tree_head_signature": hex(head.signature()),
            "path": path_hex,
            "verified": ok,
        }),
        &format!(
            "event {seq} ({}) leaf {}\nin tree of size {} with root {}\npath:\n  {}\nverified: {ok}{consistency_text}",
            event.body().kind_name(),
            hex(&leaf),
            head.size(),
            hex(head.root()),
            path_hex.join("\n  ")
        ),
    );
    Ok(())
}

/// `fog bench dao`: signature verification (single and batched), append
/// throughput, and hash-and-Merkle verification of a large ledger. Prints
/// one JSON document under `--json`. Keys: `verify_single_per_s` and
/// `verify_batch_per_s` (signed votes per wall second, one thread;
/// `*_per_cpu_s` the same per CPU-second of that thread, a per-core figure
/// that holds on a loaded machine), `append_per_s` (one transaction per
/// event, WAL, synchronous=NORMAL; `append_full_sync_per_s` with FULL),
/// `verify_events` and `verify_seconds` (reading every event from SQLite,
/// recomputing leaf hashes and the root and checking the tree head;
/// `verify_cpu_seconds` its CPU time), `signature_seconds` and
/// `replay_seconds` (the rest of a full `verify`, on `signature_threads`).
pub(crate) fn bench(args: &BenchArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("fog-dao-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = bench_in(args, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let doc = result?;
    if global.json {
        println!("{doc}");
    } else {
        let mut text = String::new();
        if let Value::Object(map) = &doc {
            for (k, v) in map {
                let _ = writeln!(text, "{k:<24} {v}");
            }
        }
        print!("{text}");
    }
    Ok(())
}

/// CPU time of the calling thread in seconds (Linux `schedstat`), so that
/// rates per core can be given on a loaded machine too.
fn thread_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// Runs `f`, returning its value, wall seconds and thread CPU seconds.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, Option<f64>) {
    let cpu = thread_cpu_seconds();
    let started = Instant::now();
    let out = f();
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu.and_then(|c0| thread_cpu_seconds().map(|c1| c1 - c0));
    (out, wall, cpu)
}

fn rate(n: usize, seconds: Option<f64>) -> Value {
    seconds
        .filter(|s| *s > 0.0)
        .map_or(Value::Null, |s| json!((n as f64 / s).round()))
}

fn bench_in(args: &BenchArgs, dir: &Path) -> anyhow::Result<Value> {
    let ledger_id = [7u8; 32];
    // Signed votes from 256 voters.
    let voters: Vec<SigningKey> = (0..=255u8)
        .map(|i| SigningKey::from_seed([i; 32]))
        .collect();
    let votes: Vec<Event> = (0..args.votes.max(1))
        .map(|i| {
            let key = &voters[(i % 256) as usize];
            Event::sign(
                key,
                &ledger_id,
                i / 256,
                i,
                Body::Vote {
                    proposal: i % 7,
                    choice: Choice::For,
                },
            )
        })
        .collect();
    let (single_ok, single_wall, single_cpu) =
        timed(|| votes.iter().all(|v| v.verify_signature(&ledger_id)));
    let (batch_ok, batch_wall, batch_cpu) = timed(|| {
        votes
            .chunks(args.batch.max(1))
            .all(|chunk| fog_dao::verify_batch(&ledger_id, chunk))
    });
    if !single_ok || !batch_ok {
        bail!("a benchmark signature did not verify");
    }

    // Appends: one transaction each, WAL, synchronous=NORMAL and FULL.
    let king = SigningKey::from_seed([1; 32]);
    let alice = SigningKey::from_seed([2; 32]);
    let bob = SigningKey::from_seed([3; 32]).account();
    let mut append_rates = Vec::new();
    for (name, durability) in [("normal", Durability::Normal), ("full", Durability::Full)] {
        let path = dir.join(format!("append-{name}.db"));
        let mut ledger = Ledger::create(
            &path,
            &king,
            SigningKey::from_seed([9; 32]),
            Params::default(),
            0,
        )?;
        ledger.set_durability(durability)?;
        ledger.submit(
            &king,
            0,
            Body::Mint {
                to: alice.account(),
                rule: EarningRule::Compute,
                units: 1 << 40,
            },
        )?;
        let n = if durability == Durability::Full {
            (args.appends / 4).max(1)
        } else {
            args.appends.max(1)
        };
        let started = Instant::now();
        for t in 1..=n {
            ledger.submit(&alice, t, Body::Transfer { to: bob, amount: 1 })?;
        }
        append_rates.push(n as f64 / started.elapsed().as_secs_f64());
    }

    // A large ledger, built in batches, then verified from the file.
    let path = dir.join("large.db");
    let mut ledger = Ledger::create(
        &path,
        &king,
        SigningKey::from_seed([9; 32]),
        Params::default(),
        0,
    )?;
    ledger.set_durability(Durability::Normal)?;
    ledger.submit(
        &king,
        0,
        Body::Mint {
            to: alice.account(),
            rule: EarningRule::Compute,
            units: 1 << 40,
        },
    )?;
    let target = args.events.max(3);
    let id = *ledger.state().ledger_id();
    let mut t = 1;
    while ledger.len() < target {
        let n = (target - ledger.len()).min(10_000);
        let nonce = ledger.state().next_nonce(&alice.account());
        let batch: Vec<Event> = (0..n)
            .map(|i| {
                Event::sign(
                    &alice,
                    &id,
                    nonce + i,
                    t + i,
                    Body::Transfer { to: bob, amount: 1 },
                )
            })
            .collect();
        t += n;
        ledger.append_batch(&batch)?;
    }
    drop(ledger);
    let (hashes, hashes_wall, hashes_cpu) =
        timed(|| Ledger::verify_file(&path, VerifyOptions::hashes_only()));
    let hashes = hashes?;
    let full = Ledger::verify_file(&path, VerifyOptions::default())?;
    if !hashes.is_ok() || !full.is_ok() {
        bail!("the benchmark ledger did not verify");
    }
    Ok(json!({
        "verify_single_per_s": rate(votes.len(), Some(single_wall)),
        "verify_batch_per_s": rate(votes.len(), Some(batch_wall)),
        "verify_single_per_cpu_s": rate(votes.len(), single_cpu),
        "verify_batch_per_cpu_s": rate(votes.len(), batch_cpu),
        "append_per_s": append_rates[0].round(),
        "append_full_sync_per_s": append_rates[1].round(),
        "verify_events": hashes.events,
        "verify_seconds": hashes_wall,
        "verify_cpu_seconds": hashes_cpu,
        "signature_seconds": full.signature_seconds,
        "replay_seconds": full.replay_seconds,
        "votes": votes.len(),
        "batch": args.batch.max(1),
        "signature_threads": VerifyOptions::default().threads,
    }))
}
