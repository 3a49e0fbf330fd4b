//! The node runtime: one fog node composed from every layer (see
//! ARCHITECTURE.md, "How a job flows"), its control API and the client of
//! that API.

pub(crate) mod api;
pub(crate) mod checkpoint;
pub(crate) mod client;
pub(crate) mod config;
pub(crate) mod http;
pub(crate) mod metrics;
pub(crate) mod mixnet;
pub(crate) mod runtime;
pub(crate) mod store;
pub(crate) mod wire;

use std::path::Path;

use anyhow::Context;

/// Creates the ledger in `dir` (`ledger.db`, `keys/authority.key`,
/// `keys/log.key`, the layout `fog dao` uses) unless it exists.
pub(crate) fn ledger_init(dir: &Path) -> anyhow::Result<()> {
    let path = dir.join("ledger.db");
    if path.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir.join("keys"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let mut keys = Vec::new();
    for name in ["authority", "log"] {
        let p = dir.join("keys").join(format!("{name}.key"));
        if !p.exists() {
            fog_dao::SigningKey::generate().save(&p)?;
        }
        keys.push(fog_dao::SigningKey::load(&p)?);
    }
    let log = keys.pop().expect("two keys");
    let authority = keys.pop().expect("two keys");
    let params = fog_dao::Params::default();
    fog_dao::Ledger::create(&path, &authority, log, params, runtime::now_ms() / 1000)
        .with_context(|| format!("creating {}", path.display()))?;
    Ok(())
}
