//! The composed libp2p behaviour of a fog node.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use libp2p::gossipsub::{self, DataTransform, RawMessage, TopicHash};
use libp2p::identity::Keypair;
use libp2p::kad::store::{MemoryStore, MemoryStoreConfig};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, allow_block_list, autonat, connection_limits, dcutr, identify, kad, mdns,
    memory_connection_limits, ping, relay, request_response,
};

use crate::Error;
use crate::codec::DirectCodec;
use crate::config::{Config, KadMode};

/// Counts every GossipSub message received, duplicates included (the
/// transform runs before the duplicate filter).
#[derive(Debug, Clone, Default)]
pub(crate) struct CountingTransform {
    pub(crate) received: Arc<AtomicU64>,
}

impl DataTransform for CountingTransform {
    fn inbound_transform(&self, raw: RawMessage) -> Result<gossipsub::Message, std::io::Error> {
        self.received.fetch_add(1, Ordering::Relaxed);
        Ok(gossipsub::Message {
            source: raw.source,
            data: raw.data,
            sequence_number: raw.sequence_number,
            topic: raw.topic,
        })
    }

    fn outbound_transform(
        &self,
        _topic: &TopicHash,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, std::io::Error> {
        Ok(data)
    }
}

/// Every protocol a fog node speaks.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) memory: Toggle<memory_connection_limits::Behaviour>,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) kad: kad::Behaviour<MemoryStore>,
    pub(crate) gossipsub: gossipsub::Behaviour<CountingTransform>,
    pub(crate) autonat: Toggle<autonat::Behaviour>,
    pub(crate) relay_server: Toggle<relay::Behaviour>,
    pub(crate) relay_client: relay::client::Behaviour,
    pub(crate) dcutr: dcutr::Behaviour,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    pub(crate) direct: request_response::Behaviour<DirectCodec>,
}

/// The protocol identifiers of a network.
#[derive(Debug, Clone)]
pub(crate) struct Protocols {
    pub(crate) kad: StreamProtocol,
    pub(crate) gossip_prefix: Option<String>,
    pub(crate) direct: StreamProtocol,
    pub(crate) identify: String,
}

impl Protocols {
    pub(crate) fn new(network: Option<&str>) -> Result<Self, Error> {
        match network {
            None => Ok(Self {
                kad: kad::PROTOCOL_NAME,
                gossip_prefix: None,
                direct: StreamProtocol::new("/fog/direct/1.0.0"),
                identify: "/fog/1.0.0".to_owned(),
            }),
            Some(name) => {
                if !crate::config::valid_network_name(name) {
                    return Err(Error::NetworkName(name.to_owned()));
                }
                let proto = |s: String| {
                    StreamProtocol::try_from_owned(s)
                        .map_err(|_| Error::NetworkName(name.to_owned()))
                };
                Ok(Self {
                    kad: proto(format!("/fog/{name}/kad/1.0.0"))?,
                    gossip_prefix: Some(format!("/fog/{name}/meshsub")),
                    direct: proto(format!("/fog/{name}/direct/1.0.0"))?,
                    identify: format!("/fog/{name}/1.0.0"),
                })
            }
        }
    }
}

impl Behaviour {
    pub(crate) fn new(
        key: &Keypair,
        relay_client: relay::client::Behaviour,
        config: &Config,
        protocols: &Protocols,
        received: Arc<AtomicU64>,
    ) -> Result<Self, Error> {
        let peer_id = key.public().to_peer_id();

        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established(Some(config.max_connections))
            .with_max_established_per_peer(Some(config.max_connections_per_peer))
            .with_max_pending_incoming(Some(64))
            .with_max_pending_outgoing(Some(128));

        let identify = identify::Behaviour::new(
            identify::Config::new(protocols.identify.clone(), key.public())
                .with_agent_version(config.agent.clone())
                .with_cache_size(64),
        );

        let mut kad_config = kad::Config::new(protocols.kad.clone());
        kad_config.set_query_timeout(config.query_timeout);
        if let Some(alpha) = std::num::NonZeroUsize::new(config.kad_parallelism) {
            kad_config.set_parallelism(alpha);
        }
        kad_config.set_periodic_bootstrap_interval(config.kad_bootstrap_interval);
        let store = MemoryStore::with_config(
            peer_id,
            MemoryStoreConfig {
                max_records: config.kad_max_records,
                max_provided_keys: config.kad_max_records,
                ..MemoryStoreConfig::default()
            },
        );
        let mut kad = kad::Behaviour::with_config(peer_id, store, kad_config);
        // In `Auto` the node task, not Kademlia's own rule (server once any
        // external address is confirmed), decides: a relayed address must
        // not make a DHT server (`Task::update_kad_mode`).
        kad.set_mode(Some(match config.kad_mode {
            KadMode::Server => kad::Mode::Server,
            KadMode::Auto | KadMode::Client => kad::Mode::Client,
        }));

        let mut gossip_config = gossipsub::ConfigBuilder::default();
        gossip_config
            .heartbeat_interval(config.gossip_heartbeat)
            .validation_mode(gossipsub::ValidationMode::Strict)
            .max_transmit_size(config.gossip_max_message)
            .mesh_n(config.gossip_mesh_n)
            .mesh_n_low(config.gossip_mesh_n_low)
            .mesh_n_high(config.gossip_mesh_n_high)
            .mesh_outbound_min(
                (config.gossip_mesh_n / 2)
                    .min(config.gossip_mesh_n_low)
                    .min(2),
            )
            .gossip_lazy(config.gossip_lazy)
            .flood_publish(config.gossip_flood_publish)
            .idontwant_message_size_threshold(config.gossip_idontwant_threshold);
        if let Some(prefix) = &protocols.gossip_prefix {
            gossip_config.protocol_id_prefix(prefix.clone());
        }
        let gossip_config = gossip_config
            .build()
            .map_err(|e| Error::Config(format!("gossipsub: {e}")))?;
        let mut gossipsub = gossipsub::Behaviour::new_with_transform(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            gossip_config,
            CountingTransform { received },
        )
        .map_err(|e| Error::Config(format!("gossipsub: {e}")))?;
        // Many peers behind one loopback address are normal in tests and
        // devnets, never a Sybil sign; on LANs the factor is off too.
        let mut score_params = gossipsub::PeerScoreParams::default();
        score_params.ip_colocation_factor_whitelist.extend([
            std::net::IpAddr::from([127, 0, 0, 1]),
            std::net::Ipv6Addr::LOCALHOST.into(),
        ]);
        if config.autonat_local {
            score_params.ip_colocation_factor_weight = 0.0;
        }
        gossipsub
            .with_peer_score(score_params, gossipsub::PeerScoreThresholds::default())
            .map_err(|e| Error::Config(format!("gossipsub scoring: {e}")))?;

        let autonat = config.autonat.then(|| {
            autonat::Behaviour::new(
                peer_id,
                autonat::Config {
                    only_global_ips: !config.autonat_local,
                    ..autonat::Config::default()
                },
            )
        });

        let relay_server = config
            .relay_server
            .then(|| relay::Behaviour::new(peer_id, relay::Config::default()));

        let mdns = if config.mdns {
            Some(
                mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)
                    .map_err(|e| Error::Transport(format!("mdns: {e}")))?,
            )
        } else {
            None
        };

        let memory = config
            .max_memory_fraction
            .map(memory_connection_limits::Behaviour::with_max_percentage);

        let direct = request_response::Behaviour::with_codec(
            DirectCodec,
            [(
                protocols.direct.clone(),
                request_response::ProtocolSupport::Full,
            )],
            request_response::Config::default()
                .with_request_timeout(config.request_timeout)
                .with_max_concurrent_streams(64),
        );

        Ok(Self {
            blocked: allow_block_list::Behaviour::default(),
            limits: connection_limits::Behaviour::new(limits),
            memory: memory.into(),
            identify,
            ping: ping::Behaviour::new(ping::Config::new().with_interval(config.ping_interval)),
            kad,
            gossipsub,
            autonat: autonat.into(),
            relay_server: relay_server.into(),
            relay_client,
            dcutr: dcutr::Behaviour::new(peer_id),
            mdns: mdns.into(),
            direct,
        })
    }
}
