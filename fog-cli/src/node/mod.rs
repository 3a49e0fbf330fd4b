//! The node runtime: one fog node composed from every layer (see
//! ARCHITECTURE.md, "How a job flows"), its control API and the client of
//! that API.

pub(crate) mod api;
pub(crate) mod client;
pub(crate) mod mixnet;
