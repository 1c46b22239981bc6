//! `GET /metrics`: Prometheus text format (prometheus-client, the
//! Prometheus project's own Rust client).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::pool::Pool;

type Labels = Vec<(&'static str, String)>;

/// The service's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    kills: Family<Labels, Counter>,
    durations: Histogram,
}

/// Reads the pool at each scrape.
#[derive(Debug)]
struct PoolCollector(Arc<Pool>);

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let pool = &self.0;
        let health = pool.health();
        let gauge = |encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: i64| {
            let g = ConstGauge::new(v);
            let m = encoder.encode_descriptor(name, help, None, g.metric_type())?;
            g.encode(m)
        };
        let counter = |encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64| {
            let c = ConstCounter::new(v);
            let m = encoder.encode_descriptor(name, help, None, c.metric_type())?;
            c.encode(m)
        };
        let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        gauge(
            &mut encoder,
            "codejail_queue_length",
            "Requests waiting for an interpreter.",
            n(pool.queued()),
        )?;
        gauge(
            &mut encoder,
            "codejail_running",
            "Calls running now.",
            n(pool.running()),
        )?;
        gauge(
            &mut encoder,
            "codejail_pool_size",
            "Warm interpreters the pool keeps.",
            n(health.size),
        )?;
        gauge(
            &mut encoder,
            "codejail_pool_idle",
            "Warm interpreters idle now.",
            n(health.idle),
        )?;
        counter(
            &mut encoder,
            "codejail_pool_served",
            "Calls a warm interpreter served.",
            health.served,
        )?;
        counter(
            &mut encoder,
            "codejail_pool_cold_fallbacks",
            "Calls sent down the cold path.",
            health.cold_fallbacks,
        )?;
        counter(
            &mut encoder,
            "codejail_pool_restarts",
            "Warm interpreters started again.",
            health.restarts,
        )?;
        counter(
            &mut encoder,
            "codejail_pool_failures",
            "Calls failed by a warm interpreter.",
            health.failures,
        )?;
        gauge(
            &mut encoder,
            "codejail_startup_checks_ok",
            "1 when every start-up safety check passed.",
            i64::from(pool.safe()),
        )?;
        Ok(())
    }
}

impl Metrics {
    /// The metrics of a service serving `pool`.
    pub fn new(pool: Arc<Pool>) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        let kills = Family::<Labels, Counter>::default();
        let durations = Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]);
        registry.register(
            "codejail_requests",
            "code-exec requests by outcome",
            requests.clone(),
        );
        registry.register(
            "codejail_kills",
            "Runs codejail ended, by reason",
            kills.clone(),
        );
        registry.register(
            "codejail_run_duration_seconds",
            "Time a code-exec call held an interpreter",
            durations.clone(),
        );
        registry.register_collector(Box::new(PoolCollector(pool)));
        Metrics {
            registry,
            requests,
            kills,
            durations,
        }
    }

    /// One request ended with `outcome`.
    pub fn request(&self, outcome: &str) {
        self.requests
            .get_or_create(&vec![("outcome", outcome.to_owned())])
            .inc();
    }

    /// A run was killed.
    pub fn kill(&self, reason: &str) {
        self.kills
            .get_or_create(&vec![("reason", reason.to_owned())])
            .inc();
    }

    /// A run took `seconds`.
    pub fn duration(&self, seconds: f64) {
        self.durations.observe(seconds);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
