//! fog-sched decides where fog work runs; it never runs anything.
//!
//! - [`model`]: nodes (capacity, load, tier, network coordinates, price,
//!   reputation, privacy clearance, labels), jobs (resources, SLA class
//!   S/A/B with deadline, priority, privacy level, affinity and
//!   anti-affinity, gang, dependencies, submitting node) and the
//!   [`model::Cluster`] state, which refuses any placement that would exceed
//!   a node's capacity and keeps measured node-to-node latencies (a sparse
//!   latency matrix that overrides the coordinate estimate).
//! - [`nsga2`]: a generic NSGA-II with pymoo's operators and defaults, real
//!   and integer encodings, Deb's constrained domination, two
//!   non-dominated sorts, hypervolume (exact in 2-D) and IGD, ZDT1-3.
//! - [`placement`]: the fast path ([`placement::Scheduler::place`], one scan
//!   with an explicit [`placement::Strategy`]) and batch placement on the
//!   Pareto front of latency, load, trust, cost and market price, chosen by
//!   SLA-class weights.
//! - [`reputation`]: Beta reputation with forgetting, in SQLite.
//! - [`preempt`] and [`gang`]: eviction plans for S jobs, all-or-nothing
//!   gangs with timeouts.
//! - [`market`]: per-tier prices that follow utilization within bounds.
//! - [`dag`]: HEFT, NSGA-II for makespan against cost, WfFormat reader.
//!
//! Decisions are returned, never carried out: the caller (fog-cli's node
//! runtime) applies them with the executor and feeds outcomes back to
//! [`reputation::ReputationStore`].
//!
//! ```
//! use fog_sched::nsga2::{Nsga2, Nsga2Config, Zdt, ZdtKind, hypervolume_2d};
//!
//! let mut config = Nsga2Config::with_seed(7);
//! config.max_evaluations = 2_000;
//! let outcome = Nsga2::new(config).run(&Zdt::new(ZdtKind::Zdt1))?;
//! let front: Vec<[f64; 2]> = outcome
//!     .front()
//!     .iter()
//!     .map(|s| [s.objectives[0], s.objectives[1]])
//!     .collect();
//! assert!(hypervolume_2d(&front, [1.1, 1.1]) > 0.0);
//!
//! // The fast path: place a job on the best node for its SLA class.
//! use fog_sched::model::{Cluster, Job, JobId, Node, NodeId, Resources, SlaClass};
//! use fog_sched::placement::{Scheduler, Strategy};
//!
//! let nodes = vec![
//!     Node::new(NodeId::new(1), Resources::new(4_000, 8_192, 0)).with_reputation(0.9),
//!     Node::new(NodeId::new(2), Resources::new(4_000, 8_192, 0)).with_reputation(0.4),
//! ];
//! let mut scheduler = Scheduler::new(Cluster::new(nodes), 42);
//! let job = Job::new(JobId::new(7), Resources::new(1_000, 512, 0)).with_class(SlaClass::S);
//! let placement = scheduler.place(&job, Strategy::Scored)?;
//! assert_eq!(placement.node, NodeId::new(1));
//! # Ok::<(), fog_sched::SchedError>(())
//! ```

pub mod dag;
pub mod error;
pub mod gang;
pub mod market;
pub mod model;
pub mod nsga2;
pub mod placement;
pub mod preempt;
pub mod reputation;
mod rng;
pub mod synthetic;

pub use error::{Result, SchedError};
pub use rng::SeededRng;
