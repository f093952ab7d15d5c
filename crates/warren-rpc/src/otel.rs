//! [`SpanExport`]: Warren's call spans exported through an OpenTelemetry SDK exporter
//! without an SDK span per call (feature `otel`).
//!
//! By default Warren builds its client and server spans with the global tracer
//! provider's tracer (`opentelemetry::global::set_tracer_provider`), like any
//! instrumented library. That costs an SDK span object per call end: about a
//! microsecond each, which at tens of thousands of calls a second is a tenth of the
//! calls. A [`SpanExport`] installed with [`SpanExport::install`] takes Warren's spans
//! instead: each call records its ids, times, status and correlation id into a bounded
//! queue, and a thread of the pipeline's own turns them into `SpanData` and hands
//! batches to the exporter (OTLP, or any `opentelemetry_sdk::trace::SpanExporter`).
//!
//! What stays the same: the spans' names, kinds, attributes, parents and trace context
//! on the wire (see the crate's telemetry docs); the SDK's sampler decides (by default
//! the one `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` name, as the SDK reads
//! them), its id generator makes the ids, and the resource and instrumentation scope
//! go on every span. A handler still runs with its server span as the current
//! OpenTelemetry context, so spans a handler makes through the global provider are its
//! children. What differs: the spans do not pass through the global provider's span
//! processors.
//!
//! ```no_run
//! # #[cfg(feature = "otel")] {
//! use opentelemetry_sdk::trace::InMemorySpanExporter;
//! use warren_rpc::otel::SpanExport;
//!
//! let exporter = InMemorySpanExporter::default();
//! let export = SpanExport::builder(exporter.clone()).build()?;
//! export.install().expect("the first pipeline of this process");
//! // ... clients and servers started from here on export their spans ...
//! export.shutdown()?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Config, IdGenerator, ShouldSample, SpanExporter};
use opentelemetry_sdk::Resource;

use crate::telemetry::export::{Export, Limits, Shared};

/// A span pipeline: sampler, bounded queue, export thread and exporter. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SpanExport {
    shared: Arc<Shared>,
}

/// A second [`SpanExport::install`] in one process.
#[derive(Debug, thiserror::Error)]
#[error("a span export is already installed in this process")]
#[non_exhaustive]
pub struct AlreadyInstalled;

impl SpanExport {
    /// A pipeline into `exporter`, with the SDK's defaults read from the environment.
    pub fn builder<E: SpanExporter + 'static>(exporter: E) -> SpanExportBuilder {
        SpanExportBuilder {
            exporter: Box::new(exporter),
            resource: None,
            sampler: None,
            ids: None,
            limits: Limits {
                max_queue: env_usize("OTEL_BSP_MAX_QUEUE_SIZE").unwrap_or(2048),
                max_batch: env_usize("OTEL_BSP_MAX_EXPORT_BATCH_SIZE").unwrap_or(512),
                delay: env_ms("OTEL_BSP_SCHEDULE_DELAY").unwrap_or(Duration::from_secs(5)),
                export_timeout: env_ms("OTEL_BSP_EXPORT_TIMEOUT")
                    .unwrap_or(Duration::from_secs(30)),
            },
        }
    }

    /// Makes this the pipeline of every client and server of the process that has not
    /// made its first call yet (they take it then, as they take the global tracer
    /// provider's tracer). Takes precedence over the global tracer provider.
    pub fn install(&self) -> Result<(), AlreadyInstalled> {
        if crate::telemetry::export::install(Arc::clone(&self.shared)) {
            Ok(())
        } else {
            Err(AlreadyInstalled)
        }
    }

    /// Exports every span that has ended so far, and waits for the exporter.
    pub fn force_flush(&self) -> OTelSdkResult {
        self.shared.flush()
    }

    /// Exports what is queued, shuts the exporter down and stops the export thread.
    /// Spans that end after it are dropped.
    pub fn shutdown(&self) -> OTelSdkResult {
        self.shared.shutdown()
    }

    /// How many spans were dropped because the queue was full or shut down.
    pub fn dropped_spans(&self) -> u64 {
        self.shared.dropped()
    }
}

/// Sets up a [`SpanExport`]; from [`SpanExport::builder`].
#[must_use]
pub struct SpanExportBuilder {
    exporter: Box<dyn Export>,
    resource: Option<Resource>,
    sampler: Option<Box<dyn ShouldSample>>,
    ids: Option<Box<dyn IdGenerator>>,
    limits: Limits,
}

impl std::fmt::Debug for SpanExportBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanExportBuilder")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

fn env_usize(var: &str) -> Option<usize> {
    std::env::var(var)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|n| *n > 0)
}

fn env_ms(var: &str) -> Option<Duration> {
    std::env::var(var)
        .ok()?
        .trim()
        .parse()
        .ok()
        .map(Duration::from_millis)
}

impl SpanExportBuilder {
    /// The resource on every span (default: the SDK's, from `OTEL_SERVICE_NAME` and
    /// `OTEL_RESOURCE_ATTRIBUTES`).
    pub fn with_resource(mut self, resource: Resource) -> Self {
        self.resource = Some(resource);
        self
    }

    /// The sampler (default: the SDK's, from `OTEL_TRACES_SAMPLER`, else parent-based
    /// always on).
    pub fn with_sampler(mut self, sampler: impl ShouldSample + 'static) -> Self {
        self.sampler = Some(Box::new(sampler));
        self
    }

    /// The id generator (default: the SDK's random one).
    pub fn with_id_generator(mut self, ids: impl IdGenerator + 'static) -> Self {
        self.ids = Some(Box::new(ids));
        self
    }

    /// Spans held before the export thread takes them (default 2048, or
    /// `OTEL_BSP_MAX_QUEUE_SIZE`); past it spans are dropped.
    pub fn with_max_queue_size(mut self, spans: usize) -> Self {
        self.limits.max_queue = spans.max(1);
        self
    }

    /// Spans per export (default 512, or `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`); a full
    /// batch wakes the export thread.
    pub fn with_max_export_batch_size(mut self, spans: usize) -> Self {
        self.limits.max_batch = spans.max(1);
        self
    }

    /// The longest a span waits for export (default 5 s, or `OTEL_BSP_SCHEDULE_DELAY`).
    pub fn with_scheduled_delay(mut self, delay: Duration) -> Self {
        self.limits.delay = delay;
        self
    }

    /// Starts the export thread. Fails only if the thread cannot be spawned.
    pub fn build(self) -> std::io::Result<SpanExport> {
        let mut limits = self.limits;
        limits.max_batch = limits.max_batch.min(limits.max_queue);
        let (sampler, ids, resource) = match (self.sampler, self.ids, self.resource) {
            (Some(s), Some(i), Some(r)) => (s, i, r),
            (s, i, r) => {
                let defaults = Config::default();
                (
                    s.unwrap_or(defaults.sampler),
                    i.unwrap_or(defaults.id_generator),
                    r.unwrap_or_else(|| defaults.resource.into_owned()),
                )
            }
        };
        let mut exporter = self.exporter;
        exporter.set_resource(&resource);
        let scope = InstrumentationScope::builder("warren-rpc")
            .with_version(env!("CARGO_PKG_VERSION"))
            .with_schema_url(crate::telemetry::SCHEMA_URL)
            .build();
        let shared = Shared::start(exporter, sampler, ids, scope, limits)?;
        Ok(SpanExport { shared })
    }
}
