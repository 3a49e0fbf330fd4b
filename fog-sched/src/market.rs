//! Market prices per tier and resource that follow utilization (supply and
//! demand) within bounds.

use crate::model::{Cluster, Resources, Tier};

/// Price-update settings.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct MarketConfig {
    /// The utilization the market steers towards (prices rise above it and
    /// fall below it).
    pub target_utilization: f64,
    /// How strongly one update reacts: the price is multiplied by
    /// `exp(sensitivity × (utilization − target))`.
    pub sensitivity: f64,
    /// Lowest price, as a multiple of the base price.
    pub min_factor: f64,
    /// Highest price, as a multiple of the base price.
    pub max_factor: f64,
    /// Base prices per hour: one CPU core, one GiB of memory, one GPU.
    pub base: [f64; 3],
}

impl Default for MarketConfig {
    fn default() -> Self {
        Self {
            target_utilization: 0.7,
            sensitivity: 1.0,
            min_factor: 0.25,
            max_factor: 4.0,
            base: [1.0, 0.1, 5.0],
        }
    }
}

/// Per-tier, per-resource prices (per hour: CPU core, GiB, GPU).
#[derive(Debug, Clone, PartialEq)]
pub struct MarketPrices {
    config: MarketConfig,
    prices: [[f64; 3]; 4],
}

impl Default for MarketPrices {
    fn default() -> Self {
        Self::new(MarketConfig::default())
    }
}

impl MarketPrices {
    /// Prices at their base values. Bounds are sanitised: factors are made
    /// positive and ordered.
    pub fn new(mut config: MarketConfig) -> Self {
        if !(config.min_factor.is_finite() && config.min_factor > 0.0) {
            config.min_factor = 0.25;
        }
        if !(config.max_factor.is_finite() && config.max_factor >= config.min_factor) {
            config.max_factor = config.min_factor.max(4.0);
        }
        for b in &mut config.base {
            if !(b.is_finite() && *b >= 0.0) {
                *b = 0.0;
            }
        }
        Self {
            config,
            prices: [config.base; 4],
        }
    }

    /// The settings.
    pub fn config(&self) -> &MarketConfig {
        &self.config
    }

    /// Current prices per hour `[cpu core, GiB, GPU]` on `tier`.
    pub fn prices(&self, tier: Tier) -> [f64; 3] {
        self.prices[tier.index()]
    }

    /// The market cost of running `resources` on `tier` for `hours`.
    #[inline]
    pub fn cost(&self, tier: Tier, resources: Resources, hours: f64) -> f64 {
        let p = &self.prices[tier.index()];
        (resources.cpu_millis() as f64 / 1000.0 * p[0]
            + resources.memory_mib() as f64 / 1024.0 * p[1]
            + resources.gpus() as f64 * p[2])
            * hours
    }

    /// Moves every price once towards the cluster's utilization of that
    /// resource on that tier, within `[min_factor, max_factor] × base`.
    /// A tier without capacity of a resource keeps its price.
    pub fn update(&mut self, cluster: &Cluster) {
        let mut used = [[0u64; 3]; 4];
        let mut cap = [[0u64; 3]; 4];
        for (i, node) in cluster.nodes().iter().enumerate() {
            let t = node.tier().index();
            let u = cluster.used(i);
            let c = node.capacity();
            for (k, (uv, cv)) in [
                (u.cpu_millis(), c.cpu_millis()),
                (u.memory_mib(), c.memory_mib()),
                (u.gpus(), c.gpus()),
            ]
            .into_iter()
            .enumerate()
            {
                used[t][k] = used[t][k].saturating_add(uv.min(cv));
                cap[t][k] = cap[t][k].saturating_add(cv);
            }
        }
        for t in 0..4 {
            for k in 0..3 {
                if cap[t][k] == 0 {
                    continue;
                }
                let utilization = used[t][k] as f64 / cap[t][k] as f64;
                self.observe(t, k, utilization);
            }
        }
    }

    /// Moves one price given an observed utilization in `[0, 1]`.
    fn observe(&mut self, tier: usize, resource: usize, utilization: f64) {
        let c = &self.config;
        let base = c.base[resource];
        let u = if utilization.is_nan() {
            0.0
        } else {
            utilization.clamp(0.0, 1.0)
        };
        let next = self.prices[tier][resource] * (c.sensitivity * (u - c.target_utilization)).exp();
        self.prices[tier][resource] = next.clamp(base * c.min_factor, base * c.max_factor);
    }

    /// Sets the utilization of `resource` (0 CPU, 1 memory, 2 GPU) on `tier`
    /// directly, for markets fed by other sources than a [`Cluster`].
    pub fn observe_utilization(&mut self, tier: Tier, resource: usize, utilization: f64) {
        if resource < 3 {
            self.observe(tier.index(), resource, utilization);
        }
    }
}
