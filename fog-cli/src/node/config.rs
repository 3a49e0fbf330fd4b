//! A node's configuration: embedded defaults, then a TOML file, then
//! `FOG_*` environment variables, then command-line flags (later wins).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// Settings that may be absent (`None`), settable from the environment.
const OPTIONAL_KEYS: [&str; 2] = ["network", "mix_advertise"];

/// Everything a node needs to start. Field names are the TOML keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct NodeConfig {
    /// Name shown to people (defaults to the data directory's name).
    pub(crate) name: String,
    /// Data directory: keys, SQLite databases, the API address and token.
    pub(crate) data_dir: PathBuf,
    /// libp2p listen addresses.
    pub(crate) listen: Vec<String>,
    /// libp2p bootstrap peers (`/ip4/.../tcp/.../p2p/<id>`).
    pub(crate) bootstrap: Vec<String>,
    /// Keeps fog networks apart (protocol prefix `/fog/<network>/`).
    pub(crate) network: Option<String>,
    /// Loopback (or local) profile: no mDNS/DNS, DHT server mode, short timers.
    pub(crate) local: bool,
    /// Control API and `/metrics` bind address (loopback unless configured).
    pub(crate) api: SocketAddr,
    /// Heartbeat interval in seconds.
    pub(crate) heartbeat_s: f64,
    /// A node missing heartbeats this long is failed, in seconds.
    pub(crate) heartbeat_timeout_s: f64,
    /// Whether this node runs work for others.
    pub(crate) exec: bool,
    /// Whether the Docker backend is enabled (when a daemon answers).
    pub(crate) docker: bool,
    /// CPU this node offers, in millicores (0: all cores).
    pub(crate) cpu_millis: u32,
    /// Memory this node offers, in MiB (0: half of the machine's).
    pub(crate) memory_mb: u32,
    /// Tasks run at once.
    pub(crate) max_running: usize,
    /// A replica silent this many seconds past its job's timeout is placed
    /// again elsewhere.
    pub(crate) task_grace_s: f64,
    /// Harvest policy: a TOML file path, or `default` (BOINC-like) or
    /// `dedicated` (a machine given to fog: no idle or load rule).
    pub(crate) policy: String,
    /// Sysfs root for the harvest sensors.
    pub(crate) sysfs_root: PathBuf,
    /// Procfs root for the harvest sensors.
    pub(crate) procfs_root: PathBuf,
    /// Whether this node holds the ledger (it needs `dao/authority.key`).
    pub(crate) ledger: bool,
    /// Whether this node runs a mix node and sends jobs through the mixnet.
    pub(crate) mix: bool,
    /// Mix node TCP listen address.
    pub(crate) mix_listen: SocketAddr,
    /// Mix address others dial (defaults to the bound one).
    pub(crate) mix_advertise: Option<SocketAddr>,
    /// Mean per-hop mixing delay in milliseconds.
    pub(crate) mix_delay_ms: f64,
    /// Loopix cover traffic on or off.
    pub(crate) mix_cover: bool,
    /// Test fault: this node reports a wrong result for every task whose
    /// job name contains this text (to exercise verification); empty means
    /// honest. Never set it on a real node.
    pub(crate) fault_lie: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            data_dir: PathBuf::from(".fog/node"),
            listen: vec![
                "/ip4/0.0.0.0/tcp/0".into(),
                "/ip4/0.0.0.0/udp/0/quic-v1".into(),
            ],
            bootstrap: Vec::new(),
            network: None,
            local: false,
            api: SocketAddr::from(([127, 0, 0, 1], 7700)),
            heartbeat_s: 30.0,
            heartbeat_timeout_s: 90.0,
            exec: true,
            docker: true,
            cpu_millis: 0,
            memory_mb: 0,
            max_running: 0,
            task_grace_s: 120.0,
            policy: "default".into(),
            sysfs_root: PathBuf::from("/sys"),
            procfs_root: PathBuf::from("/proc"),
            ledger: false,
            mix: true,
            mix_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            mix_advertise: None,
            mix_delay_ms: 20.0,
            mix_cover: true,
            fault_lie: String::new(),
        }
    }
}

impl NodeConfig {
    /// The loopback profile `fog devnet` uses: short heartbeats, a
    /// dedicated-machine policy, small mixing delays, API on a free port.
    pub(crate) fn devnet(data_dir: &Path, name: &str) -> Self {
        Self {
            name: name.to_owned(),
            data_dir: data_dir.to_owned(),
            listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
            local: true,
            api: SocketAddr::from(([127, 0, 0, 1], 0)),
            heartbeat_s: 1.0,
            heartbeat_timeout_s: 4.0,
            policy: "dedicated".into(),
            mix_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            mix_delay_ms: 2.0,
            cpu_millis: 2_000,
            memory_mb: 2_048,
            max_running: 4,
            task_grace_s: 15.0,
            ..Self::default()
        }
    }

    /// Reads a TOML file over the defaults.
    pub(crate) fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Writes this configuration as TOML (atomically: temp file, rename).
    pub(crate) fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = toml::to_string_pretty(self).context("encoding the node config")?;
        super::store::write_atomic(path, text.as_bytes())
    }

    /// Applies `FOG_NODE_<KEY>` environment variables (for example
    /// `FOG_NODE_API=127.0.0.1:7701`, `FOG_NODE_BOOTSTRAP=a,b`).
    pub(crate) fn apply_env(&mut self) -> anyhow::Result<()> {
        let mut table = toml::Table::try_from(&*self).context("encoding the node config")?;
        for (key, value) in std::env::vars() {
            let Some(name) = key.strip_prefix("FOG_NODE_") else {
                continue;
            };
            let name = name.to_ascii_lowercase();
            if OPTIONAL_KEYS.contains(&name.as_str()) {
                table.insert(name, toml::Value::String(value.clone()));
                continue;
            }
            let Some(current) = table.get(&name) else {
                bail!("{key}: no such node setting");
            };
            let parsed = match current {
                toml::Value::Boolean(_) => toml::Value::Boolean(
                    value
                        .parse()
                        .with_context(|| format!("{key}: expected true or false"))?,
                ),
                toml::Value::Integer(_) => toml::Value::Integer(
                    value
                        .parse()
                        .with_context(|| format!("{key}: expected an integer"))?,
                ),
                toml::Value::Float(_) => toml::Value::Float(
                    value
                        .parse()
                        .with_context(|| format!("{key}: expected a number"))?,
                ),
                toml::Value::Array(_) => toml::Value::Array(
                    value
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.trim().to_owned()))
                        .collect(),
                ),
                _ => toml::Value::String(value.clone()),
            };
            table.insert(name, parsed);
        }
        *self = table.try_into().context("applying FOG_NODE_* variables")?;
        Ok(())
    }

    /// Checks values that TOML types cannot.
    pub(crate) fn validate(&mut self) -> anyhow::Result<()> {
        if !(self.heartbeat_s.is_finite() && self.heartbeat_s > 0.0) {
            bail!("heartbeat_s must be a positive number of seconds");
        }
        if !(self.heartbeat_timeout_s.is_finite() && self.heartbeat_timeout_s > self.heartbeat_s) {
            bail!("heartbeat_timeout_s must be longer than heartbeat_s");
        }
        if !(self.mix_delay_ms.is_finite() && self.mix_delay_ms >= 0.0) {
            bail!("mix_delay_ms must be zero or more");
        }
        if self.name.is_empty() {
            self.name = self
                .data_dir
                .file_name()
                .map_or_else(|| "fog".to_owned(), |n| n.to_string_lossy().into_owned());
        }
        Ok(())
    }

    /// The heartbeat interval.
    pub(crate) fn heartbeat(&self) -> Duration {
        Duration::from_secs_f64(self.heartbeat_s)
    }

    /// The failure-detection timeout.
    pub(crate) fn heartbeat_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.heartbeat_timeout_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip_and_unknown_keys_refused() {
        let config = NodeConfig::devnet(Path::new("/tmp/x/node-0"), "node-0");
        let text = toml::to_string(&config).unwrap();
        let back: NodeConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, config);
        assert!(toml::from_str::<NodeConfig>("nope = 1").is_err());
        let partial: NodeConfig = toml::from_str("heartbeat_s = 5.0").unwrap();
        assert_eq!(partial.heartbeat_s, 5.0);
        assert_eq!(partial.heartbeat_timeout_s, 90.0);
    }

    #[test]
    fn validation_names_the_bad_value() {
        let mut config = NodeConfig {
            heartbeat_s: 10.0,
            heartbeat_timeout_s: 5.0,
            ..NodeConfig::default()
        };
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("heartbeat_timeout_s"), "{error}");
    }
}
