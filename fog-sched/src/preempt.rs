//! Preemption: where an S job that fits nowhere should go, and which
//! lower-class tasks to evict for it at least cost.
//!
//! The planner only decides; the executor carries the evictions out and then
//! releases the victims from the [`Cluster`]. Cost is lexicographic: fewest
//! victims first, then least work lost since each victim's last checkpoint.
//! A task in a gang is evicted with its whole gang (a gang cannot run in
//! part), so the gang counts as all its members. S tasks, and gangs with an
//! S member, are never victims.

use std::collections::HashMap;

use crate::error::{Result, SchedError};
use crate::model::{Cluster, GangId, Job, JobId, NodeId, Resources, SlaClass};

/// What the planner needs to know about a running task.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningTask {
    job: JobId,
    class: SlaClass,
    gang: Option<GangId>,
    work_since_checkpoint_s: f64,
}

impl RunningTask {
    /// A running task of `class` that would lose `work_since_checkpoint_s`
    /// seconds of work if evicted now.
    pub fn new(job: JobId, class: SlaClass, work_since_checkpoint_s: f64) -> Self {
        Self {
            job,
            class,
            gang: None,
            work_since_checkpoint_s: if work_since_checkpoint_s.is_finite() {
                work_since_checkpoint_s.max(0.0)
            } else {
                0.0
            },
        }
    }
    /// Marks the task as a gang member.
    pub fn with_gang(mut self, gang: GangId) -> Self {
        self.gang = Some(gang);
        self
    }
    /// The task's job id.
    pub fn job(&self) -> JobId {
        self.job
    }
    /// The task's class.
    pub fn class(&self) -> SlaClass {
        self.class
    }
    /// The task's gang, if any.
    pub fn gang(&self) -> Option<GangId> {
        self.gang
    }
    /// Work lost on eviction, in seconds.
    pub fn work_since_checkpoint_s(&self) -> f64 {
        self.work_since_checkpoint_s
    }
}

/// A decision: run the job on `node` after evicting `victims`.
#[derive(Debug, Clone, PartialEq)]
pub struct PreemptionPlan {
    /// Where the job goes.
    pub node: NodeId,
    /// Tasks to evict (possibly on other nodes, for gang members), empty
    /// when the job fits without eviction.
    pub victims: Vec<JobId>,
    /// Total work lost, in seconds.
    pub work_lost_s: f64,
}

/// Above this many eviction units on one node the exact search gives way to
/// a greedy choice.
const EXACT_LIMIT: usize = 16;

/// An eviction unit: a lone task or a whole gang.
#[derive(Debug, Clone)]
struct Unit {
    members: Vec<JobId>,
    freed_here: Resources,
    work: f64,
}

/// Plans the placement of the S job `job`: a node where it fits now (no
/// victims), or else the node and victims of least cost. Only S jobs may
/// preempt; `running` describes the placed tasks (tasks it does not list
/// are treated as S and never evicted).
pub fn plan_preemption(
    cluster: &Cluster,
    running: &[RunningTask],
    job: &Job,
) -> Result<PreemptionPlan> {
    if cluster.is_empty() {
        return Err(SchedError::EmptyCluster);
    }
    if let Some(i) = (0..cluster.len()).find(|&i| cluster.is_feasible(job, i)) {
        return Ok(PreemptionPlan {
            node: cluster.nodes()[i].id(),
            victims: Vec::new(),
            work_lost_s: 0.0,
        });
    }
    if job.class() != SlaClass::S {
        return Err(SchedError::NoFeasibleNode(job.id()));
    }
    let info: HashMap<JobId, &RunningTask> = running.iter().map(|t| (t.job, t)).collect();
    // Gangs: all members, and whether any is S (or unknown) and so protected.
    let mut gangs: HashMap<GangId, (Vec<JobId>, bool, f64)> = HashMap::new();
    for t in running {
        if let Some(g) = t.gang {
            let e = gangs.entry(g).or_insert((Vec::new(), false, 0.0));
            e.0.push(t.job);
            e.1 |= t.class == SlaClass::S || cluster.placement_of(t.job).is_none();
            e.2 += t.work_since_checkpoint_s;
        }
    }
    let mut resources_of: HashMap<JobId, Resources> = HashMap::new();
    let mut best: Option<(usize, f64, usize, Vec<JobId>)> = None;
    for i in 0..cluster.len() {
        let node = &cluster.nodes()[i];
        if job.privacy() > node.max_privacy()
            || !job.affinity().iter().all(|l| node.has_label(l))
            || !job.resources().fits_in(node.capacity().minus(node.load()))
        {
            continue;
        }
        let mut units: Vec<Unit> = Vec::new();
        let mut seen_gangs: Vec<GangId> = Vec::new();
        for &resident in cluster.residents(i) {
            let Some(task) = info.get(&resident) else {
                continue;
            };
            if task.class == SlaClass::S {
                continue;
            }
            match task.gang {
                None => units.push(Unit {
                    members: vec![resident],
                    freed_here: placed_resources(cluster, resident, &mut resources_of, i),
                    work: task.work_since_checkpoint_s,
                }),
                Some(g) => {
                    if seen_gangs.contains(&g) {
                        continue;
                    }
                    seen_gangs.push(g);
                    let (members, protected, work) = &gangs[&g];
                    if *protected {
                        continue;
                    }
                    let freed_here = cluster
                        .residents(i)
                        .iter()
                        .filter(|r| members.contains(r))
                        .fold(Resources::ZERO, |acc, &r| {
                            acc.plus(placed_resources(cluster, r, &mut resources_of, i))
                        });
                    units.push(Unit {
                        members: members.clone(),
                        freed_here,
                        work: *work,
                    });
                }
            }
        }
        let free = cluster.free(i);
        let Some((count, work, chosen)) = cheapest_subset(&units, free, job.resources()) else {
            continue;
        };
        let better = best
            .as_ref()
            .is_none_or(|(c, w, _, _)| (count, work) < (*c, *w));
        if better {
            let victims = chosen
                .iter()
                .flat_map(|&u| units[u].members.iter().copied())
                .collect();
            best = Some((count, work, i, victims));
        }
    }
    let (_, work, i, victims) = best.ok_or(SchedError::NoFeasibleNode(job.id()))?;
    tracing::debug!(job = %job.id(), victims = victims.len(), "preemption planned");
    Ok(PreemptionPlan {
        node: cluster.nodes()[i].id(),
        victims,
        work_lost_s: work,
    })
}

/// The resources a placed job holds on node `index` (zero if elsewhere).
fn placed_resources(
    cluster: &Cluster,
    job: JobId,
    cache: &mut HashMap<JobId, Resources>,
    index: usize,
) -> Resources {
    if !cluster.residents(index).contains(&job) {
        return Resources::ZERO;
    }
    *cache
        .entry(job)
        .or_insert_with(|| cluster.placed_resources(job).unwrap_or(Resources::ZERO))
}

/// The subset of `units` with the fewest members and then the least work
/// whose freed resources make `need` fit into `free`.
fn cheapest_subset(
    units: &[Unit],
    free: Resources,
    need: Resources,
) -> Option<(usize, f64, Vec<usize>)> {
    let all = units.iter().fold(free, |acc, u| acc.plus(u.freed_here));
    if !need.fits_in(all) {
        return None;
    }
    if units.len() <= EXACT_LIMIT {
        let mut best: Option<(usize, f64, u32)> = None;
        for mask in 1u32..(1 << units.len()) {
            let mut freed = free;
            let mut count = 0;
            let mut work = 0.0;
            for (k, u) in units.iter().enumerate() {
                if mask & (1 << k) != 0 {
                    freed = freed.plus(u.freed_here);
                    count += u.members.len();
                    work += u.work;
                }
            }
            if need.fits_in(freed) && best.is_none_or(|(c, w, _)| (count, work) < (c, w)) {
                best = Some((count, work, mask));
            }
        }
        return best.map(|(c, w, mask)| {
            let chosen = (0..units.len()).filter(|k| mask & (1 << k) != 0).collect();
            (c, w, chosen)
        });
    }
    // Greedy: the units freeing most per member and per lost second first.
    let mut order: Vec<usize> = (0..units.len()).collect();
    order.sort_by(|&a, &b| {
        let key = |u: &Unit| {
            let share = u
                .freed_here
                .dominant_share(need.plus(Resources::new(1, 1, 1)));
            -(share / (u.members.len() as f64 * (1.0 + u.work)))
        };
        key(&units[a]).total_cmp(&key(&units[b]))
    });
    let mut freed = free;
    let (mut count, mut work, mut chosen) = (0, 0.0, Vec::new());
    for k in order {
        if need.fits_in(freed) {
            break;
        }
        freed = freed.plus(units[k].freed_here);
        count += units[k].members.len();
        work += units[k].work;
        chosen.push(k);
    }
    need.fits_in(freed).then_some((count, work, chosen))
}
