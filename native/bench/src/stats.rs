//! Latencies: every request's duration in microseconds, merged across tasks, summarized as percentiles
//! and a log-scale histogram (what the report's CDF plots are drawn from).
use serde_json::{json, Value};

#[derive(Default)]
pub struct Latencies {
    micros: Vec<u32>,
}

impl Latencies {
    pub fn record(&mut self, d: std::time::Duration) {
        self.micros.push(d.as_micros().min(u32::MAX as u128) as u32);
    }

    pub fn merge(&mut self, other: Latencies) {
        self.micros.extend(other.micros);
    }

    pub fn len(&self) -> usize {
        self.micros.len()
    }

    /// Percentiles in milliseconds, plus a histogram: 20 buckets per decade from 10 µs.
    pub fn summary(mut self) -> Value {
        if self.micros.is_empty() {
            return json!({});
        }
        self.micros.sort_unstable();
        let n = self.micros.len();
        let at = |q: f64| self.micros[((n as f64 * q).ceil() as usize).clamp(1, n) - 1] as f64 / 1000.0;
        let mean = self.micros.iter().map(|v| *v as f64).sum::<f64>() / n as f64 / 1000.0;
        let mut hist: Vec<(f64, u64)> = Vec::new();
        for v in &self.micros {
            let bucket = ((*v).max(10) as f64 / 10.0).log10() * 20.0;
            let upper = 10.0 * 10f64.powf((bucket.floor() + 1.0) / 20.0) / 1000.0;
            match hist.last_mut() {
                Some((u, c)) if (*u - upper).abs() < 1e-12 => *c += 1,
                _ => hist.push((upper, 1)),
            }
        }
        json!({
            "p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "p999": at(0.999),
            "mean": mean, "min": self.micros[0] as f64 / 1000.0, "max": self.micros[n - 1] as f64 / 1000.0,
            "hist_ms": hist,
        })
    }
}

/// User + system CPU seconds this process has used (to show the generator is not the bottleneck).
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}
