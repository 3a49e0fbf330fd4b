//! DAG scheduling: HEFT (Topcuoglu, Hariri and Wu 2002), NSGA-II seeded
//! with HEFT for makespan against cost, and a reader for WfCommons WfFormat
//! workflow instances.
//!
//! Communication between tasks on different processors costs
//! `data / bandwidth`; on the same processor it is free. As in the HEFT
//! paper, the average communication cost used by the upward rank is that
//! same `data / bandwidth`.

use std::collections::HashMap;

use serde_json::Value;

use crate::error::{Result, SchedError};
use crate::nsga2::{Nsga2, Nsga2Config, Problem, Variables};

/// Largest number of tasks accepted in one graph.
pub const MAX_TASKS: usize = 200_000;

/// A DAG of tasks on a set of heterogeneous processors.
#[derive(Debug, Clone, PartialEq)]
pub struct DagProblem {
    names: Vec<String>,
    /// `costs[t][p]`: run time of task `t` on processor `p`.
    costs: Vec<Vec<f64>>,
    /// `preds[t]`: `(parent, data)` pairs.
    preds: Vec<Vec<(usize, f64)>>,
    succs: Vec<Vec<(usize, f64)>>,
    bandwidth: f64,
    prices: Vec<f64>,
    /// A topological order (checked at construction).
    topo: Vec<usize>,
}

/// One task's slot in a schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slot {
    /// Task index.
    pub task: usize,
    /// Processor index.
    pub processor: usize,
    /// Start time.
    pub start: f64,
    /// Finish time.
    pub finish: f64,
}

/// A complete schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// One slot per task, indexed by task.
    pub slots: Vec<Slot>,
    /// Finish time of the last task.
    pub makespan: f64,
    /// Sum over tasks of run time × the processor's price.
    pub cost: f64,
}

impl DagProblem {
    /// A problem from a cost matrix (`costs[t][p]`, one row per task, the
    /// same number of processors in each), edges `(parent, child, data)`,
    /// a bandwidth and per-processor prices per time unit. Refuses cycles,
    /// dangling or duplicate edges, negative or non-finite numbers.
    pub fn new(
        names: Vec<String>,
        costs: Vec<Vec<f64>>,
        edges: &[(usize, usize, f64)],
        bandwidth: f64,
        prices: Vec<f64>,
    ) -> Result<Self> {
        let n = costs.len();
        let bad = |m: &str| Err(SchedError::InvalidGraph(m.to_string()));
        if n == 0 || n > MAX_TASKS {
            return bad("a graph needs between 1 and 200000 tasks");
        }
        let p = costs[0].len();
        if p == 0 || prices.len() != p || names.len() != n {
            return bad("every task needs a cost per processor, every processor a price");
        }
        if costs
            .iter()
            .any(|row| row.len() != p || row.iter().any(|c| !c.is_finite() || *c < 0.0))
            || prices.iter().any(|c| !c.is_finite() || *c < 0.0)
        {
            return bad("costs and prices must be finite and non-negative");
        }
        if !(bandwidth.is_finite() && bandwidth > 0.0) {
            return bad("bandwidth must be positive");
        }
        let mut preds = vec![Vec::new(); n];
        let mut succs = vec![Vec::new(); n];
        for &(a, b, data) in edges {
            if a >= n || b >= n || a == b || !data.is_finite() || data < 0.0 {
                return bad("an edge points outside the graph or has bad data");
            }
            if succs[a].iter().any(|&(s, _)| s == b) {
                return bad("duplicate edge");
            }
            succs[a].push((b, data));
            preds[b].push((a, data));
        }
        // Kahn's algorithm: a topological order exists iff there is no cycle.
        let mut indegree: Vec<usize> = preds.iter().map(Vec::len).collect();
        let mut stack: Vec<usize> = (0..n).rev().filter(|&t| indegree[t] == 0).collect();
        let mut topo = Vec::with_capacity(n);
        while let Some(t) = stack.pop() {
            topo.push(t);
            for &(s, _) in succs[t].iter().rev() {
                indegree[s] -= 1;
                if indegree[s] == 0 {
                    stack.push(s);
                }
            }
        }
        if topo.len() != n {
            return bad("the graph has a cycle");
        }
        Ok(Self {
            names,
            costs,
            preds,
            succs,
            bandwidth,
            prices,
            topo,
        })
    }

    /// Number of tasks.
    pub fn tasks(&self) -> usize {
        self.costs.len()
    }

    /// Number of processors.
    pub fn processors(&self) -> usize {
        self.prices.len()
    }

    /// Task names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The parents of task `t` with the data they send.
    pub fn parents(&self, t: usize) -> &[(usize, f64)] {
        &self.preds[t]
    }

    fn comm(&self, data: f64, from: usize, to: usize) -> f64 {
        if from == to {
            0.0
        } else {
            data / self.bandwidth
        }
    }

    /// HEFT's upward ranks: mean run time plus the longest mean path to an
    /// exit task.
    pub fn upward_ranks(&self) -> Vec<f64> {
        let p = self.processors() as f64;
        let mut rank = vec![0.0; self.tasks()];
        for &t in self.topo.iter().rev() {
            let mean = self.costs[t].iter().sum::<f64>() / p;
            let tail = self.succs[t]
                .iter()
                .map(|&(s, data)| data / self.bandwidth + rank[s])
                .fold(0.0, f64::max);
            rank[t] = mean + tail;
        }
        rank
    }

    /// The HEFT priority order: among ready tasks, the highest upward rank
    /// first (ties by task index), which is always a topological order.
    pub fn heft_order(&self) -> Vec<usize> {
        let rank = self.upward_ranks();
        let n = self.tasks();
        let mut waiting: Vec<usize> = self.preds.iter().map(Vec::len).collect();
        let mut ready: Vec<usize> = (0..n).filter(|&t| waiting[t] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while !ready.is_empty() {
            // Ranks within a relative 1e-9 tie (float sums of equal paths
            // differ in the last bits); ties go to the lower task index.
            let mut k = 0;
            for (j, &t) in ready.iter().enumerate().skip(1) {
                let (a, b) = (rank[t], rank[ready[k]]);
                let tol = 1e-9 * a.abs().max(b.abs()).max(1.0);
                if a > b + tol || ((a - b).abs() <= tol && t < ready[k]) {
                    k = j;
                }
            }
            let t = ready.swap_remove(k);
            order.push(t);
            for &(s, _) in &self.succs[t] {
                waiting[s] -= 1;
                if waiting[s] == 0 {
                    ready.push(s);
                }
            }
        }
        order
    }

    /// HEFT: tasks in [`DagProblem::heft_order`], each on the processor
    /// giving the earliest finish time with insertion into idle gaps.
    pub fn heft(&self) -> Schedule {
        let order = self.heft_order();
        self.list_schedule(&order, None)
    }

    /// Schedules tasks in `order` on the given processors (`assignment[t]`),
    /// each as early as possible with insertion. Refuses an order that is
    /// not a topological permutation of the tasks and an assignment of the
    /// wrong length or naming a processor that does not exist.
    pub fn schedule_with(&self, order: &[usize], assignment: &[usize]) -> Result<Schedule> {
        let n = self.tasks();
        if order.len() != n || assignment.len() != n {
            return Err(SchedError::InvalidGraph(
                "order and assignment need one entry per task".into(),
            ));
        }
        if assignment.iter().any(|&q| q >= self.processors()) {
            return Err(SchedError::InvalidGraph("unknown processor".into()));
        }
        let mut position = vec![usize::MAX; n];
        for (k, &t) in order.iter().enumerate() {
            if t >= n || position[t] != usize::MAX {
                return Err(SchedError::InvalidGraph(
                    "order is not a permutation".into(),
                ));
            }
            position[t] = k;
        }
        if (0..n).any(|t| {
            self.preds[t]
                .iter()
                .any(|&(a, _)| position[a] > position[t])
        }) {
            return Err(SchedError::InvalidGraph("order is not topological".into()));
        }
        Ok(self.list_schedule(order, Some(assignment)))
    }

    fn list_schedule(&self, order: &[usize], assignment: Option<&[usize]>) -> Schedule {
        let n = self.tasks();
        let p = self.processors();
        let mut slots = vec![
            Slot {
                task: 0,
                processor: 0,
                start: 0.0,
                finish: 0.0,
            };
            n
        ];
        // Busy intervals per processor, sorted by start.
        let mut busy: Vec<Vec<(f64, f64)>> = vec![Vec::new(); p];
        let mut makespan: f64 = 0.0;
        let mut cost = 0.0;
        for &t in order {
            let try_proc = |q: usize, busy: &[Vec<(f64, f64)>]| -> (f64, f64, usize) {
                let ready = self.preds[t]
                    .iter()
                    .map(|&(a, data)| slots[a].finish + self.comm(data, slots[a].processor, q))
                    .fold(0.0, f64::max);
                let w = self.costs[t][q];
                let mut start = ready;
                let mut at = busy[q].len();
                for (k, &(s, f)) in busy[q].iter().enumerate() {
                    if start + w <= s {
                        at = k;
                        break;
                    }
                    start = start.max(f);
                }
                (start, start + w, at)
            };
            let (q, (start, finish, at)) = if let Some(a) = assignment {
                let q = a[t].min(p - 1);
                (q, try_proc(q, &busy))
            } else {
                let mut best = (0, try_proc(0, &busy));
                for q in 1..p {
                    let c = try_proc(q, &busy);
                    if c.1 < best.1.1 {
                        best = (q, c);
                    }
                }
                best
            };
            busy[q].insert(at, (start, finish));
            slots[t] = Slot {
                task: t,
                processor: q,
                start,
                finish,
            };
            makespan = makespan.max(finish);
            cost += self.costs[t][q] * self.prices[q];
        }
        Schedule {
            slots,
            makespan,
            cost,
        }
    }

    /// NSGA-II over processor assignments for makespan and cost, with HEFT's
    /// assignment in the initial population; returns the front sorted by
    /// makespan (its first schedule is never worse than HEFT's makespan).
    pub fn nsga_makespan_cost(&self, mut config: Nsga2Config) -> Result<Vec<Schedule>> {
        let heft = self.heft();
        let order = self.heft_order();
        config
            .initial
            .insert(0, heft.slots.iter().map(|s| s.processor as f64).collect());
        let problem = DagNsga {
            dag: self,
            order: &order,
        };
        let outcome = Nsga2::new(config).run(&problem)?;
        let mut front: Vec<Schedule> = outcome
            .front()
            .iter()
            .map(|s| problem.decode(&s.x))
            .collect();
        front.sort_by(|a, b| {
            a.makespan
                .total_cmp(&b.makespan)
                .then(a.cost.total_cmp(&b.cost))
        });
        front.dedup_by(|a, b| a.makespan == b.makespan && a.cost == b.cost);
        Ok(front)
    }

    /// Reads a WfCommons WfFormat instance (schema 1.4 and earlier with
    /// `workflow.tasks`, or 1.5/1.6 with `workflow.specification` and
    /// `workflow.execution`) and builds a problem on processors of the given
    /// relative `speeds` (run time = runtime / speed) and `prices`, with
    /// `bandwidth` in bytes per second.
    pub fn from_wfformat(
        json: &str,
        speeds: &[f64],
        prices: Vec<f64>,
        bandwidth: f64,
    ) -> Result<Self> {
        let tasks = parse_wfformat(json)?;
        if speeds.is_empty() || speeds.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(SchedError::InvalidConfig("speeds must be positive".into()));
        }
        let index: HashMap<&str, usize> = tasks
            .iter()
            .enumerate()
            .flat_map(|(i, t)| [(t.id.as_str(), i), (t.name.as_str(), i)])
            .collect();
        let mut edges = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (child, t) in tasks.iter().enumerate() {
            for parent in &t.parents {
                let &p = index.get(parent.as_str()).ok_or_else(|| {
                    SchedError::InvalidWorkflow(format!(
                        "task {} has unknown parent {parent}",
                        t.id
                    ))
                })?;
                if !seen.insert((p, child)) {
                    continue;
                }
                let data: f64 = tasks[p]
                    .outputs
                    .iter()
                    .filter_map(|(f, size)| t.inputs.iter().any(|(g, _)| g == f).then_some(*size))
                    .sum();
                edges.push((p, child, data));
            }
        }
        let costs = tasks
            .iter()
            .map(|t| speeds.iter().map(|s| t.runtime / s).collect())
            .collect();
        let names = tasks.into_iter().map(|t| t.name).collect();
        Self::new(names, costs, &edges, bandwidth, prices)
            .map_err(|e| SchedError::InvalidWorkflow(e.to_string()))
    }
}

struct WfTask {
    id: String,
    name: String,
    parents: Vec<String>,
    runtime: f64,
    inputs: Vec<(String, f64)>,
    outputs: Vec<(String, f64)>,
}

fn parse_wfformat(json: &str) -> Result<Vec<WfTask>> {
    let bad = |m: &str| SchedError::InvalidWorkflow(m.to_string());
    let root: Value = serde_json::from_str(json).map_err(|e| bad(&e.to_string()))?;
    let workflow = root
        .get("workflow")
        .ok_or_else(|| bad("no `workflow` object"))?;
    let text = |v: &Value| -> Option<String> {
        v.as_str()
            .map(str::to_string)
            .or_else(|| v.as_u64().map(|n| n.to_string()))
    };
    let number = |v: Option<&Value>| {
        v.and_then(Value::as_f64)
            .filter(|x| x.is_finite() && *x >= 0.0)
    };
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(text).collect())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    if let Some(spec) = workflow.get("specification") {
        // Schema 1.5: structure and files in `specification`, runtimes in `execution`.
        let sizes: HashMap<String, f64> = spec
            .get("files")
            .and_then(Value::as_array)
            .map(|files| {
                files
                    .iter()
                    .filter_map(|f| {
                        Some((
                            text(f.get("id")?)?,
                            number(f.get("sizeInBytes")).unwrap_or(0.0),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let runtimes: HashMap<String, f64> = workflow
            .get("execution")
            .and_then(|e| e.get("tasks"))
            .and_then(Value::as_array)
            .map(|tasks| {
                tasks
                    .iter()
                    .filter_map(|t| Some((text(t.get("id")?)?, number(t.get("runtimeInSeconds"))?)))
                    .collect()
            })
            .unwrap_or_default();
        let tasks = spec
            .get("tasks")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no `workflow.specification.tasks` array"))?;
        for t in tasks {
            let id = t
                .get("id")
                .and_then(text)
                .ok_or_else(|| bad("a task has no id"))?;
            let name = t.get("name").and_then(text).unwrap_or_else(|| id.clone());
            let with_size = |names: Vec<String>| -> Vec<(String, f64)> {
                names
                    .into_iter()
                    .map(|f| {
                        let s = sizes.get(&f).copied().unwrap_or(0.0);
                        (f, s)
                    })
                    .collect()
            };
            out.push(WfTask {
                runtime: runtimes.get(&id).copied().unwrap_or(0.0),
                parents: strings(t.get("parents")),
                inputs: with_size(strings(t.get("inputFiles"))),
                outputs: with_size(strings(t.get("outputFiles"))),
                id,
                name,
            });
        }
    } else {
        // Schema 1.4 and earlier: one `tasks` array with files inline.
        let tasks = workflow
            .get("tasks")
            .or_else(|| workflow.get("jobs"))
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no `workflow.tasks` array"))?;
        for t in tasks {
            let name = t
                .get("name")
                .and_then(text)
                .ok_or_else(|| bad("a task has no name"))?;
            let id = t.get("id").and_then(text).unwrap_or_else(|| name.clone());
            let runtime = number(t.get("runtimeInSeconds"))
                .or_else(|| number(t.get("runtime")))
                .unwrap_or(0.0);
            let (mut inputs, mut outputs) = (Vec::new(), Vec::new());
            for f in t
                .get("files")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(fname) = f.get("name").or_else(|| f.get("id")).and_then(text) else {
                    continue;
                };
                let size = number(f.get("sizeInBytes"))
                    .or_else(|| number(f.get("size")))
                    .unwrap_or(0.0);
                match f.get("link").and_then(Value::as_str) {
                    Some("input") => inputs.push((fname, size)),
                    Some("output") => outputs.push((fname, size)),
                    _ => {}
                }
            }
            out.push(WfTask {
                id,
                name,
                parents: strings(t.get("parents")),
                runtime,
                inputs,
                outputs,
            });
        }
    }
    if out.is_empty() || out.len() > MAX_TASKS {
        return Err(bad("a workflow needs between 1 and 200000 tasks"));
    }
    Ok(out)
}

/// NSGA-II view of a DAG: gene `t` is task `t`'s processor.
struct DagNsga<'a> {
    dag: &'a DagProblem,
    order: &'a [usize],
}

impl DagNsga<'_> {
    fn decode(&self, x: &[f64]) -> Schedule {
        let assignment: Vec<usize> = x.iter().map(|&g| g as usize).collect();
        // Genes are in range and the order is HEFT's, so this is the
        // unchecked path.
        self.dag.list_schedule(self.order, Some(&assignment))
    }
}

impl Problem for DagNsga<'_> {
    fn variables(&self) -> Variables {
        Variables::Integer(vec![self.dag.processors() as u32; self.dag.tasks()])
    }

    fn objectives(&self) -> usize {
        2
    }

    fn evaluate(&self, x: &[f64], objectives: &mut [f64], _constraints: &mut [f64]) {
        let s = self.decode(x);
        objectives[0] = s.makespan;
        objectives[1] = s.cost;
    }
}
