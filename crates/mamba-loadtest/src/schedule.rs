//! When requests are sent: the arrival schedule, a pure function of its parameters.
//!
//! Follows `get_request` in vLLM's `vllm/benchmarks/serve.py`: the gaps between arrivals are
//! drawn from a gamma distribution with shape `burstiness` and scale `1 / (rate × burstiness)`
//! (burstiness 1 is a Poisson process, below 1 burstier, above 1 more even, infinite a fixed
//! gap), summed into offsets from the start, and the offsets are then scaled so the last one is
//! exactly `n / rate`: the run lasts as long as its rate says whatever the seed. With an
//! infinite rate every request is sent at once.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Gamma};

/// Requests per second, or all at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    /// This many requests per second on average (finite, above 0).
    PerSecond(f64),
    /// Every request at the start.
    Infinite,
}

impl Rate {
    /// The rate as a number (`f64::INFINITY` for [`Rate::Infinite`]).
    pub fn as_f64(self) -> f64 {
        match self {
            Rate::PerSecond(r) => r,
            Rate::Infinite => f64::INFINITY,
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::PerSecond(r) => write!(f, "{r}"),
            Rate::Infinite => f.write_str("inf"),
        }
    }
}

impl FromStr for Rate {
    type Err = String;

    /// `inf` or a positive number of requests per second.
    fn from_str(s: &str) -> Result<Rate, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("inf") || s.eq_ignore_ascii_case("infinity") {
            return Ok(Rate::Infinite);
        }
        match s.parse::<f64>() {
            Ok(r) if r.is_infinite() && r > 0.0 => Ok(Rate::Infinite),
            Ok(r) if r.is_finite() && r > 0.0 => Ok(Rate::PerSecond(r)),
            _ => Err(format!("a request rate is a positive number or `inf`, not {s:?}")),
        }
    }
}

/// The longest schedule a run may have (365 days): its last arrival is at most this long
/// after the start.
pub const MAX_SCHEDULE: Duration = Duration::from_secs(365 * 86_400);

/// The arrival process: rate, burstiness and seed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Arrivals {
    /// Average requests per second.
    pub rate: Rate,
    /// Shape of the gamma distribution of gaps: 1 is Poisson (default), below 1 burstier.
    pub burstiness: f64,
    /// Seed of the generator: the same seed gives the same schedule.
    pub seed: u64,
}

impl Arrivals {
    /// A Poisson process at `rate` with seed 0.
    pub fn poisson(rate: Rate) -> Arrivals {
        Arrivals { rate, burstiness: 1.0, seed: 0 }
    }

    /// Checks that a schedule of `n` requests can be run: a rate that is a positive number
    /// (or infinite), a burstiness above 0 (infinite is a fixed gap), and a schedule that ends
    /// within [`MAX_SCHEDULE`] (`n / rate` seconds). The error says which and what to change.
    pub fn validate(&self, n: usize) -> Result<(), String> {
        if let Rate::PerSecond(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(format!("a request rate is a positive number or `inf`, not {rate}"));
            }
            let secs = n as f64 / rate;
            if secs.is_nan() || secs > MAX_SCHEDULE.as_secs_f64() {
                return Err(format!(
                    "{n} requests at {rate} a second take {secs:.3e} s, past the longest schedule ({} days): give a higher rate or fewer requests",
                    MAX_SCHEDULE.as_secs() / 86_400
                ));
            }
        }
        if self.burstiness.is_nan() || self.burstiness <= 0.0 {
            return Err(format!("a burstiness is a number above 0, not {}", self.burstiness));
        }
        Ok(())
    }

    /// The send time of each of `n` requests, from the start of the run, in order.
    ///
    /// Panics never: a burstiness that is not a positive number is taken as 1, and a time past
    /// [`MAX_SCHEDULE`] (a rate too small for `n`, see [`Arrivals::validate`]) is taken as
    /// `MAX_SCHEDULE`.
    pub fn offsets(&self, n: usize) -> Vec<Duration> {
        self.offsets_secs(n)
            .into_iter()
            .map(|secs| Duration::try_from_secs_f64(secs).map_or(MAX_SCHEDULE, |d| d.min(MAX_SCHEDULE)))
            .collect()
    }

    /// [`Arrivals::offsets`] in seconds.
    pub fn offsets_secs(&self, n: usize) -> Vec<f64> {
        let rate = match self.rate {
            Rate::Infinite => return vec![0.0; n],
            Rate::PerSecond(r) if r.is_finite() && r > 0.0 => r,
            Rate::PerSecond(_) => return vec![0.0; n],
        };
        if n == 0 {
            return Vec::new();
        }
        let burstiness = if self.burstiness > 0.0 { self.burstiness } else { 1.0 };
        let mut gaps: Vec<f64> = if burstiness.is_infinite() {
            vec![1.0 / rate; n]
        } else {
            let mut rng = StdRng::seed_from_u64(self.seed);
            let theta = 1.0 / (rate * burstiness);
            match Gamma::new(burstiness, theta) {
                Ok(gamma) => (0..n).map(|_| gamma.sample(&mut rng)).collect(),
                Err(_) => vec![1.0 / rate; n],
            }
        };
        // Cumulative sum: the first request also waits one gap, as in vLLM.
        let mut total = 0.0;
        for gap in &mut gaps {
            total += *gap;
            *gap = total;
        }
        // Scale so the last arrival is at n / rate (vLLM does the same to stabilise throughput
        // across seeds).
        if total > 0.0 {
            let factor = (n as f64 / rate) / total;
            for t in &mut gaps {
                *t *= factor;
            }
        }
        gaps
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!("inf".parse::<Rate>().unwrap(), Rate::Infinite);
        assert_eq!("2.5".parse::<Rate>().unwrap(), Rate::PerSecond(2.5));
        assert!("0".parse::<Rate>().is_err());
        assert!("-1".parse::<Rate>().is_err());
        assert!("x".parse::<Rate>().is_err());
        assert_eq!(Rate::Infinite.to_string(), "inf");
    }

    /// `bench --request-rate 1e-20` panicked turning 1e23 s into a `Duration`: the schedule is
    /// refused by `validate`, and `offsets` never panics whatever it is given.
    #[test]
    fn rates_too_small_for_their_schedule_are_refused_not_a_panic() {
        for rate in [1e-20, 1e-300, 5e-324, 1e-5] {
            let a = Arrivals::poisson(Rate::PerSecond(rate));
            let e = a.validate(1000).unwrap_err();
            assert!(e.contains("higher rate or fewer requests"), "{rate}: {e}");
            let offsets = a.offsets(1000);
            assert!(offsets.iter().all(|d| *d <= MAX_SCHEDULE), "{rate}");
            assert!(Arrivals { burstiness: f64::INFINITY, ..a }.offsets(3).iter().all(|d| *d <= MAX_SCHEDULE));
        }
        for rate in [0.0, -1.0, f64::NAN, f64::NEG_INFINITY] {
            assert!(Arrivals::poisson(Rate::PerSecond(rate)).validate(10).is_err(), "{rate}");
            assert!(Arrivals::poisson(Rate::PerSecond(rate)).offsets(3).iter().all(Duration::is_zero));
        }
        for burstiness in [0.0, -2.0, f64::NAN] {
            assert!(Arrivals { rate: Rate::PerSecond(1.0), burstiness, seed: 0 }.validate(10).is_err());
        }
        // What fits is fine: a year of one request a day, all at once, a fixed gap.
        assert!(Arrivals::poisson(Rate::PerSecond(1.0 / 86_400.0)).validate(365).is_ok());
        assert!(Arrivals::poisson(Rate::Infinite).validate(1_000_000).is_ok());
        assert!(Arrivals { rate: Rate::PerSecond(1e308), burstiness: f64::INFINITY, seed: 0 }.validate(10).is_ok());
    }

    #[test]
    fn infinite_rate_sends_everything_at_once() {
        assert_eq!(Arrivals::poisson(Rate::Infinite).offsets_secs(3), vec![0.0; 3]);
    }

    #[test]
    fn schedules_are_seeded_sorted_and_last_at_n_over_rate() {
        let a = Arrivals { rate: Rate::PerSecond(50.0), burstiness: 1.0, seed: 7 };
        let x = a.offsets_secs(1000);
        assert_eq!(x, a.offsets_secs(1000));
        assert_ne!(x, Arrivals { seed: 8, ..a }.offsets_secs(1000));
        assert!(x.windows(2).all(|w| w[0] <= w[1]));
        assert!((x[999] - 20.0).abs() < 1e-9);
    }

    #[test]
    fn infinite_burstiness_is_a_fixed_gap() {
        let x = Arrivals { rate: Rate::PerSecond(4.0), burstiness: f64::INFINITY, seed: 0 }.offsets_secs(4);
        assert_eq!(x, vec![0.25, 0.5, 0.75, 1.0]);
    }

    fn gaps(x: &[f64]) -> Vec<f64> {
        let mut prev = 0.0;
        x.iter()
            .map(|t| {
                let g = t - prev;
                prev = *t;
                g
            })
            .collect()
    }

    /// Kolmogorov–Smirnov test of Poisson gaps against the exponential distribution of the
    /// requested rate (α = 0.01: critical value 1.628 / √n), for several seeds.
    #[test]
    fn poisson_gaps_pass_a_ks_test_for_their_rate() {
        let rate = 2000.0;
        let n = 20_000;
        for seed in [1, 2, 3, 42] {
            let mut g = gaps(&Arrivals { rate: Rate::PerSecond(rate), burstiness: 1.0, seed }.offsets_secs(n));
            g.sort_by(f64::total_cmp);
            let d = g
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    let cdf = 1.0 - (-rate * x).exp();
                    let lo = cdf - i as f64 / n as f64;
                    let hi = (i + 1) as f64 / n as f64 - cdf;
                    lo.max(hi)
                })
                .fold(0.0, f64::max);
            assert!(d < 1.628 / (n as f64).sqrt(), "seed {seed}: KS statistic {d}");
            // A wrong rate fails the same test.
            let wrong = g
                .iter()
                .enumerate()
                .map(|(i, x)| ((1.0 - (-rate * 1.1 * x).exp()) - i as f64 / n as f64).abs())
                .fold(0.0, f64::max);
            assert!(wrong > 1.628 / (n as f64).sqrt(), "seed {seed}: a 10% wrong rate passed ({wrong})");
        }
    }

    /// Gamma gaps: mean 1/rate and coefficient of variation 1/√burstiness.
    #[test]
    fn gamma_gaps_have_the_mean_and_variance_of_their_burstiness() {
        let rate = 100.0;
        let n = 50_000;
        for burstiness in [0.25, 1.0, 4.0] {
            let g = gaps(&Arrivals { rate: Rate::PerSecond(rate), burstiness, seed: 9 }.offsets_secs(n));
            let mean = g.iter().sum::<f64>() / n as f64;
            let var = g.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            let cv = var.sqrt() / mean;
            assert!((mean * rate - 1.0).abs() < 1e-9, "mean {mean}");
            let want = 1.0 / burstiness.sqrt();
            assert!((cv - want).abs() / want < 0.05, "burstiness {burstiness}: cv {cv}, want {want}");
        }
    }
}
