//! The CLI's logs and traces: a `tracing` subscriber writing text or JSON lines to
//! stderr (filtered by `RUST_LOG` / `WARREN_LOG`), and, when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set, warren-rpc's
//! [`SpanExport`] installed with OpenTelemetry's OTLP/HTTP protobuf exporter, so the
//! call spans go out over OTLP.
//!
//! The standard variables are read by OpenTelemetry's SDK and exporter: the endpoint,
//! `OTEL_SERVICE_NAME` (default here: `warren`), `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` (default: parent-based,
//! always on); `OTEL_BSP_*` (queue, batch, delay) by `SpanExport`. Spans are queued by
//! the calls and exported from a thread of the pipeline's own, from a bounded queue
//! that drops spans when full rather than make a call wait.

use std::io::IsTerminal;

use opentelemetry_sdk::trace::SpanData;
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer as _;
use warren_rpc::otel::SpanExport;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`).
    Json,
}

/// Where spans go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traces {
    /// To OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, else nowhere.
    FromEnv,
    /// Recorded and sampled as for export, then to OTLP if the variable is set, else
    /// dropped (`warren bench --observe`: the cost without an exporter's).
    Always,
}

/// The span pipeline to flush at exit, if traces are on.
pub struct Telemetry {
    export: Option<SpanExport>,
}

impl Telemetry {
    /// Exports the spans still buffered (bounded by the export timeout).
    pub fn shutdown(self) {
        if let Some(export) = self.export {
            if let Err(e) = export.shutdown() {
                eprintln!("warren: exporting the last traces failed: {e}");
            }
        }
    }
}

/// The log filter: `RUST_LOG`, else `WARREN_LOG`, else warnings with lapin off.
fn log_filter() -> EnvFilter {
    for var in ["RUST_LOG", "WARREN_LOG"] {
        if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
            if let Ok(filter) = EnvFilter::try_from_env(var) {
                return filter;
            }
        }
    }
    // lapin logs as errors what Warren reports itself, typed (a lost connection, a
    // refused login) or does on purpose (shutting a stalled connection's socket down).
    EnvFilter::new("warn,lapin=off")
}

fn otlp_configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()))
}

/// Drops every span: the exporter of `Traces::Always` without an endpoint.
#[derive(Debug)]
struct Discard;

impl opentelemetry_sdk::trace::SpanExporter for Discard {
    async fn export(&self, _batch: Vec<SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

fn span_export(traces: Traces) -> Result<Option<SpanExport>, String> {
    let export = otlp_configured();
    if !export && traces == Traces::FromEnv {
        return Ok(None);
    }
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("warren");
    }
    let builder = if export {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|e| format!("cannot set up the OTLP trace exporter: {e}"))?;
        SpanExport::builder(exporter)
    } else {
        SpanExport::builder(Discard)
    };
    let span_export = builder
        .with_resource(resource.build())
        .build()
        .map_err(|e| format!("cannot start the span export thread: {e}"))?;
    span_export
        .install()
        .map_err(|e| format!("cannot install the span export: {e}"))?;
    Ok(Some(span_export))
}

/// Installs the global subscriber, and the global tracer provider when traces are on.
/// Fails only when the OTLP exporter cannot be built.
pub fn init(format: LogFormat, traces: Traces) -> Result<Telemetry, String> {
    let ansi = std::io::stderr().is_terminal();
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .with_filter(log_filter())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_filter(log_filter())
            .boxed(),
    };
    let export = span_export(traces)?;
    tracing_subscriber::registry().with(logs).init();
    Ok(Telemetry { export })
}
