//! What `warren bench` prints: the human report or one JSON object, with calls/s,
//! latency percentiles, errors by kind and CPU time per call by role.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::bench_cpu::PerCall;

/// What a run measured.
pub struct Summary {
    /// `rpc`, `typed` or `raw`.
    pub mode: &'static str,
    /// `embedded` or `url`.
    pub broker: &'static str,
    /// Calls in flight.
    pub in_flight: usize,
    /// Client connections.
    pub clients: usize,
    /// Echo workers.
    pub workers: usize,
    /// Request body size (raw bytes calls).
    pub payload: usize,
    /// Latency of each successful call, µs.
    pub latency: Histogram<u64>,
    /// Failed calls by kind.
    pub errors: BTreeMap<String, u64>,
    /// Wall time of the calls.
    pub elapsed: Duration,
    /// CPU time per call.
    pub cpu: PerCall,
}

impl Summary {
    fn rate(&self) -> f64 {
        self.latency.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }

    fn max_ms(&self) -> f64 {
        self.latency.max() as f64 / 1000.0
    }

    /// One JSON object.
    pub fn json(&self) -> String {
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        let failed: u64 = self.errors.values().sum();
        format!(
            "{{\"mode\":\"{}\",\"broker\":\"{}\",\"in_flight\":{},\"clients\":{},\"workers\":{},\"payload\":{},\"calls_ok\":{},\"calls_failed\":{failed},\"seconds\":{:.3},\"calls_per_sec\":{:.1},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"max_ms\":{:.3},\"cpu_us_per_call\":{},\"errors\":{{{}}}}}",
            self.mode,
            self.broker,
            self.in_flight,
            self.clients,
            self.workers,
            self.payload,
            self.latency.len(),
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.ms(0.5),
            self.ms(0.9),
            self.ms(0.99),
            self.ms(0.999),
            self.max_ms(),
            self.cpu.json(),
            errors.join(",")
        )
    }

    /// The report for a person, one line per figure.
    pub fn human(&self) -> String {
        let unit = if self.mode == "raw" {
            "messages"
        } else {
            "calls"
        };
        let what = match self.mode {
            "typed" => "typed JSON calc.add calls".to_owned(),
            _ => format!("{} B payload", self.payload),
        };
        let failed: u64 = self.errors.values().sum();
        let mut out = format!(
            "broker {}, {} in flight over {} client(s), {} worker(s), {what}\n",
            self.broker, self.in_flight, self.clients, self.workers
        );
        out += &format!(
            "{unit:<10} {} ok, {failed} failed in {:.2} s\n",
            self.latency.len(),
            self.elapsed.as_secs_f64()
        );
        out += &format!("throughput {:.0} {unit}/s\n", self.rate());
        out += &format!(
            "latency    p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms\n",
            self.ms(0.5),
            self.ms(0.9),
            self.ms(0.99),
            self.ms(0.999),
            self.max_ms()
        );
        out += &format!("cpu/call   {}\n", self.cpu);
        for (kind, n) in &self.errors {
            out += &format!("errors     {kind}: {n}\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_human_carry_cpu_per_call() {
        let mut latency = Histogram::new_with_bounds(1, 100_000_000, 3).expect("bounds");
        for v in [100, 200, 300, 400] {
            latency.record(v).expect("in bounds");
        }
        let s = Summary {
            mode: "typed",
            broker: "embedded",
            in_flight: 64,
            clients: 1,
            workers: 1,
            payload: 16,
            latency,
            errors: BTreeMap::from([("unavailable".to_owned(), 2)]),
            elapsed: Duration::from_secs(2),
            cpu: PerCall {
                client: 10.0,
                worker: 8.0,
                broker: Some(6.0),
                other: 0.5,
                process: 24.5,
                cores: 1.2,
            },
        };
        let j = s.json();
        assert!(j.contains("\"calls_ok\":4,\"calls_failed\":2"), "{j}");
        assert!(j.contains("\"calls_per_sec\":2.0"), "{j}");
        assert!(
            j.contains("\"cpu_us_per_call\":{\"client\":10.00,\"worker\":8.00,\"broker\":6.00"),
            "{j}"
        );
        let h = s.human();
        assert!(h.contains("typed JSON calc.add calls"), "{h}");
        assert!(
            h.contains("cpu/call   client 10.0 µs  worker 8.0 µs  broker 6.0 µs"),
            "{h}"
        );
        assert!(h.contains("errors     unavailable: 2"), "{h}");
    }
}
