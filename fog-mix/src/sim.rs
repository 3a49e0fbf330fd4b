//! Sender anonymity by simulation: the probability-mass method of the
//! Loopix authors' simulator.
//!
//! Every packet carries a probability vector over the senders (one-hot at
//! its sender when it enters the network). A mix holding packets for
//! independent exponential delays is memoryless: when one leaves, an
//! observer of every link cannot tell which of the held packets it was, so
//! the leaving packet's vector is the average of the vectors in the mix's
//! pool, and that average is taken out of the pool. The sender entropy of a
//! delivered packet is the Shannon entropy of its vector, renormalised over
//! the senders (mix loop cover carries no sender mass).
//!
//! Only the pools need vectors: a pool is its vector sum and its size,
//! and a packet leaving one mix enters the next at once, so memory is one
//! vector per mix whatever the traffic.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use rand::RngExt;
use rand_distr::{Distribution, Exp};

use crate::cover::CoverRates;
use crate::level::PrivacyLevel;

/// Parameters of a simulation.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct SimConfig {
    /// Senders (clients), each sending the Loopix streams.
    pub senders: usize,
    /// Mix layers.
    pub layers: usize,
    /// Mixes per layer.
    pub mixes_per_layer: usize,
    /// The level every packet travels at.
    pub level: PrivacyLevel,
    /// Mean per-hop delay.
    pub mean_delay: Duration,
    /// Each client's stream rates.
    pub rates: CoverRates,
    /// Each mix's own loop cover rate (λM), packets per second.
    pub mix_loop_rate: f64,
    /// Simulated time before measuring (pools fill).
    pub warmup: Duration,
    /// Packets whose sender entropy is measured (after the warm-up).
    pub samples: usize,
    /// Seed of the simulation's random numbers.
    pub seed: u64,
}

impl SimConfig {
    /// The network defaults ([`crate::PacketConfig::default`]'s mean delay,
    /// [`CoverRates::default`], λM = 1/s) for `senders` at PRIVATE over three
    /// layers of three mixes.
    pub fn new(senders: usize) -> Self {
        SimConfig {
            senders,
            layers: 3,
            mixes_per_layer: 3,
            level: PrivacyLevel::Private,
            mean_delay: crate::PacketConfig::default().mean_delay,
            rates: CoverRates::default(),
            mix_loop_rate: 1.0,
            warmup: Duration::ZERO,
            samples: 500,
            seed: 1,
        }
    }
}

/// What a simulation measured.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct SimReport {
    /// Senders.
    pub senders: usize,
    /// Mean sender entropy of the measured packets, in bits.
    pub entropy_bits: f64,
    /// The lowest entropy measured, in bits.
    pub min_entropy_bits: f64,
    /// log2(senders): the entropy if every sender were equally likely.
    pub max_entropy_bits: f64,
    /// Packets measured.
    pub samples: usize,
    /// Mean end-to-end mixing delay of a packet (sum of its hop delays).
    pub mean_latency: Duration,
    /// Packets simulated in all.
    pub packets: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// A client's packet enters its first mix.
    Inject { sender: usize },
    /// A mix's own loop packet enters the network.
    MixLoop { mix: usize },
    /// A held packet leaves `mix`; `rest` encodes the remaining hops.
    Leave {
        mix: usize,
        route: u64,
        hop: u8,
        hops: u8,
        measured: bool,
        held_ns: u64,
    },
}

struct Pool {
    sum: Vec<f64>,
    size: usize,
}

/// Runs the simulation. Time is simulated; nothing sleeps.
pub fn simulate(config: &SimConfig) -> SimReport {
    let mut rng: rand::rngs::StdRng = rand::SeedableRng::seed_from_u64(config.seed);
    let n = config.senders.max(1);
    let layers = config.layers.max(1);
    let width = config.mixes_per_layer.max(1);
    let hops = config.level.hops();
    let mixes = layers * width;
    let mut pools: Vec<Pool> = (0..mixes)
        .map(|_| Pool {
            sum: vec![0.0; n],
            size: 0,
        })
        .collect();
    let mean = config.mean_delay.as_secs_f64();
    let delay = (mean > 0.0).then(|| Exp::new(1.0 / mean).ok()).flatten();
    let client_rate = config.rates.total();
    let inject = (client_rate > 0.0)
        .then(|| Exp::new(client_rate * n as f64).ok())
        .flatten();
    let mix_loop = (config.mix_loop_rate > 0.0)
        .then(|| Exp::new(config.mix_loop_rate * mixes as f64).ok())
        .flatten();
    let warmup = config.warmup.as_secs_f64().max(if config.warmup.is_zero() {
        // Long enough for pools to reach their steady size.
        10.0 * mean * hops as f64 + 1.0
    } else {
        0.0
    });

    // (time in ns, sequence, event)
    let mut queue: BinaryHeap<Reverse<(u64, u64, Event)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let ns = |s: f64| (s * 1e9) as u64;
    let mut push = |queue: &mut BinaryHeap<Reverse<(u64, u64, Event)>>, t: u64, e: Event| {
        seq += 1;
        queue.push(Reverse((t, seq, e)));
    };
    if let Some(exp) = &inject {
        let t = ns(exp.sample(&mut rng));
        push(
            &mut queue,
            t,
            Event::Inject {
                sender: rng.random_range(0..n),
            },
        );
    }
    if let Some(exp) = &mix_loop {
        let t = ns(exp.sample(&mut rng));
        push(
            &mut queue,
            t,
            Event::MixLoop {
                mix: rng.random_range(0..mixes),
            },
        );
    }
    let mut entropies: Vec<f64> = Vec::with_capacity(config.samples);
    let mut latency_sum = 0.0;
    let mut packets = 0u64;
    // Measure a fraction of the packets entering after the warm-up.
    let sample_every = 7u64;
    let mut marked = 0usize;
    let mut scratch = vec![0.0; n];
    let route_of = |rng: &mut rand::rngs::StdRng| -> u64 {
        // One mix index (within its layer) per hop, 8 bits each.
        let mut r = 0u64;
        for h in 0..hops {
            r |= (rng.random_range(0..width) as u64) << (8 * h);
        }
        r
    };
    let mix_at = |route: u64, hop: usize| -> usize {
        let layer = hop % layers;
        layer * width + ((route >> (8 * hop)) & 0xff) as usize
    };

    while let Some(Reverse((t, _, event))) = queue.pop() {
        if entropies.len() >= config.samples {
            break;
        }
        match event {
            Event::Inject { sender } => {
                packets += 1;
                if let Some(exp) = &inject {
                    let next = t + ns(exp.sample(&mut rng));
                    push(
                        &mut queue,
                        next,
                        Event::Inject {
                            sender: rng.random_range(0..n),
                        },
                    );
                }
                // Every packet marked for measurement is followed to delivery
                // (stopping at the first deliveries would favour short delays).
                let measured = t as f64 / 1e9 >= warmup
                    && packets.is_multiple_of(sample_every)
                    && marked < config.samples;
                marked += usize::from(measured);
                let route = route_of(&mut rng);
                scratch.fill(0.0);
                scratch[sender] = 1.0;
                enter(
                    &mut pools,
                    &mut queue,
                    &mut push,
                    &mut rng,
                    delay.as_ref(),
                    &mut entropies,
                    &mut latency_sum,
                    &scratch,
                    t,
                    route,
                    0,
                    hops,
                    measured,
                    0,
                    mix_at,
                );
            }
            Event::MixLoop { mix: _ } => {
                packets += 1;
                if let Some(exp) = &mix_loop {
                    let next = t + ns(exp.sample(&mut rng));
                    push(
                        &mut queue,
                        next,
                        Event::MixLoop {
                            mix: rng.random_range(0..mixes),
                        },
                    );
                }
                // No sender mass; it only grows pools.
                let route = route_of(&mut rng);
                scratch.fill(0.0);
                enter(
                    &mut pools,
                    &mut queue,
                    &mut push,
                    &mut rng,
                    delay.as_ref(),
                    &mut entropies,
                    &mut latency_sum,
                    &scratch,
                    t,
                    route,
                    0,
                    hops,
                    false,
                    0,
                    mix_at,
                );
            }
            Event::Leave {
                mix,
                route,
                hop,
                hops: h,
                measured,
                held_ns,
            } => {
                let pool = &mut pools[mix];
                let k = pool.size.max(1) as f64;
                for (s, x) in scratch.iter_mut().zip(pool.sum.iter_mut()) {
                    *s = *x / k;
                    *x -= *s;
                }
                pool.size = pool.size.saturating_sub(1);
                enter(
                    &mut pools,
                    &mut queue,
                    &mut push,
                    &mut rng,
                    delay.as_ref(),
                    &mut entropies,
                    &mut latency_sum,
                    &scratch,
                    t,
                    route,
                    usize::from(hop) + 1,
                    usize::from(h),
                    measured,
                    held_ns,
                    mix_at,
                );
            }
        }
    }
    let samples = entropies.len();
    let entropy_bits = if samples == 0 {
        0.0
    } else {
        entropies.iter().sum::<f64>() / samples as f64
    };
    SimReport {
        senders: n,
        entropy_bits,
        min_entropy_bits: entropies
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
            .min(entropy_bits),
        max_entropy_bits: (n as f64).log2(),
        samples,
        mean_latency: Duration::from_secs_f64(if samples == 0 {
            0.0
        } else {
            latency_sum / samples as f64
        }),
        packets,
    }
}

/// A packet with vector `v` arrives at hop `hop` of its route at time `t`:
/// it joins that mix's pool and is scheduled to leave, or, at the last hop
/// (which holds nothing), is delivered and, if measured, its entropy taken.
#[allow(clippy::too_many_arguments)] // reason: one private step of the event loop
fn enter<P, M>(
    pools: &mut [Pool],
    queue: &mut BinaryHeap<Reverse<(u64, u64, Event)>>,
    push: &mut P,
    rng: &mut rand::rngs::StdRng,
    delay: Option<&Exp<f64>>,
    entropies: &mut Vec<f64>,
    latency_sum: &mut f64,
    v: &[f64],
    t: u64,
    route: u64,
    hop: usize,
    hops: usize,
    measured: bool,
    held_ns: u64,
    mix_at: M,
) where
    P: FnMut(&mut BinaryHeap<Reverse<(u64, u64, Event)>>, u64, Event),
    M: Fn(u64, usize) -> usize,
{
    if hop + 1 >= hops {
        if measured {
            entropies.push(entropy(v));
            *latency_sum += held_ns as f64 / 1e9;
        }
        return;
    }
    let mix = mix_at(route, hop);
    let pool = &mut pools[mix];
    for (x, y) in pool.sum.iter_mut().zip(v) {
        *x += *y;
    }
    pool.size += 1;
    let d = (delay.map_or(0.0, |e| e.sample(rng)) * 1e9) as u64;
    push(
        queue,
        t + d,
        Event::Leave {
            mix,
            route,
            hop: hop as u8,
            hops: hops as u8,
            measured,
            held_ns: held_ns + d,
        },
    );
}

/// Shannon entropy in bits of `v` renormalised to sum 1.
fn entropy(v: &[f64]) -> f64 {
    let total: f64 = v.iter().filter(|x| **x > 0.0).sum();
    if total <= 0.0 {
        return 0.0;
    }
    // `0.0 -`, not unary `-`: a one-hot vector sums to 0.0 and must give
    // +0.0 bits, not -0.0 (printed as "-0.000").
    0.0 - v
        .iter()
        .filter(|x| **x > 0.0)
        .map(|x| {
            let p = x / total;
            p * p.log2()
        })
        .sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick(senders: usize, level: PrivacyLevel, mean_ms: u64) -> SimReport {
        let mut c = SimConfig::new(senders);
        c.level = level;
        c.mean_delay = Duration::from_millis(mean_ms);
        c.samples = 60;
        simulate(&c)
    }

    #[test]
    fn more_hops_and_longer_delays_hide_the_sender_better() {
        let public = quick(100, PrivacyLevel::Public, 50);
        assert_eq!(public.entropy_bits, 0.0);
        let short = quick(100, PrivacyLevel::Private, 5);
        let long = quick(100, PrivacyLevel::Private, 100);
        assert!(short.entropy_bits > 0.0);
        assert!(long.entropy_bits > short.entropy_bits, "{short:?} {long:?}");
        assert!(long.entropy_bits <= long.max_entropy_bits + 1e-9);
        assert_eq!(long.samples, 60);
        // Two holding hops of mean 100 ms.
        let ms = long.mean_latency.as_secs_f64() * 1000.0;
        assert!((100.0..300.0).contains(&ms), "{ms} ms");
    }

    /// Two senders, one layer of one mix, PRIVATE (hops 0 and 1 both held
    /// by that mix, hop 2 delivers), no mix loop cover.
    fn one_mix_two_senders(mean_delay: Duration) -> SimConfig {
        let mut c = SimConfig::new(2);
        c.layers = 1;
        c.mixes_per_layer = 1;
        c.level = PrivacyLevel::Private;
        c.mix_loop_rate = 0.0;
        c.mean_delay = mean_delay;
        c
    }

    /// The unmixed case, by hand: with a zero mean delay a packet's
    /// departure is scheduled at its arrival instant, so it leaves (both
    /// times it visits the one mix) before the next packet, which arrives
    /// strictly later, joins the pool. The pool then holds that packet
    /// alone: sum = one-hot e_s, size 1, so the departing vector is
    /// e_s / 1 = e_s and the pool is left empty. Every delivered packet
    /// keeps its one-hot vector: entropy exactly 0 bits (of a possible
    /// log2(2) = 1), with no mixing delay.
    #[test]
    fn a_packet_alone_in_the_pool_keeps_its_one_hot_vector_and_zero_bits() {
        let mut c = one_mix_two_senders(Duration::ZERO);
        c.samples = 50;
        let r = simulate(&c);
        assert_eq!(r.samples, 50);
        assert_eq!(r.senders, 2);
        assert_eq!(r.max_entropy_bits, 1.0);
        assert_eq!(r.entropy_bits, 0.0);
        assert_eq!(r.min_entropy_bits, 0.0);
        // +0.0, not -0.0 (which reports print as "-0.000 bits").
        assert!(r.entropy_bits.is_sign_positive(), "{r:?}");
        assert!(r.min_entropy_bits.is_sign_positive(), "{r:?}");
        assert!(entropy(&[1.0, 0.0]).is_sign_positive());
        assert_eq!(r.mean_latency, Duration::ZERO);
    }

    /// The mixed case, by hand: two senders each sending 14 packets/s
    /// (the default λP + λL + λD) reach the one mix at 28/s, and every
    /// packet visits it twice, so by Little's law the pool holds about
    /// 56/s × 20 s ≈ 1100 packets (the default warm-up is 10 × 20 s × 3
    /// hops + 1 s). A departure takes the pool average S/k, which leaves
    /// the pool's sender share p = S[0]/k unchanged; only a fresh one-hot
    /// arrival moves it, by (1{s=0} − p)/(k+1), pulling it back to 1/2.
    /// Its spread is therefore of order 1/(2√k) ≈ 0.015, so every
    /// delivered vector is close to (1/2, 1/2), i.e. close to 1 bit:
    /// H(1/2 ± 0.1) = 0.971 bits bounds the minimum from below with a wide
    /// margin, and no vector over two senders can exceed 1 bit.
    #[test]
    fn a_pool_mixing_two_senders_gives_every_packet_about_one_bit() {
        let mut c = one_mix_two_senders(Duration::from_secs(20));
        c.samples = 40;
        let r = simulate(&c);
        assert_eq!(r.samples, 40);
        assert_eq!(r.max_entropy_bits, 1.0);
        assert!(r.min_entropy_bits > 0.97, "{r:?}");
        assert!(r.entropy_bits > 0.99, "{r:?}");
        assert!(r.entropy_bits <= 1.0 + 1e-12, "{r:?}");
        assert_eq!(entropy(&[0.5, 0.5]), 1.0);
    }

    #[test]
    fn entropy_of_uniform_and_one_hot() {
        assert!((entropy(&[1.0; 8]) - 3.0).abs() < 1e-12);
        assert_eq!(entropy(&[0.0, 2.0, 0.0]), 0.0);
        assert_eq!(entropy(&[0.0; 4]), 0.0);
    }
}
