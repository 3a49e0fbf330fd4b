//! fog-sched decides where fog work runs; it never runs anything.
//!
//! It holds the scheduling [`model`] (nodes, jobs, SLA classes, the cluster
//! state), a generic [`nsga2`] multi-objective optimiser with the ZDT test
//! problems and quality indicators.
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
