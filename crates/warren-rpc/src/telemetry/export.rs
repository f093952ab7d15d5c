//! Warren's own span pipeline (feature `otel`), behind
//! [`SpanExport`](crate::otel::SpanExport): a call's span is a plain record made on the
//! call's task (ids, clock reads, the sampler's decision), queued in a bounded buffer,
//! and turned into OpenTelemetry's `SpanData` only on the export thread, which hands
//! batches to an SDK `SpanExporter` (OTLP, in memory, ...).
//!
//! It exists for cost: an SDK span is a boxed object with its own attribute vector,
//! name and `SpanData` moved through a channel; here a call pays a lock and a push.
//! What the SDK does around a span that Warren's spans need is kept: its sampler
//! (`ShouldSample`, with the start attributes), its id generator, its resource and
//! instrumentation scope on every span, and its batch processor's bounds
//! (`OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`,
//! `OTEL_BSP_SCHEDULE_DELAY`): a full queue drops spans, never makes a call wait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{IdGenerator, ShouldSample, SpanData, SpanEvents, SpanLinks};

use super::sites::Site;
use super::{attributes, Side};

/// The pipeline installed for this process's clients and servers, if any.
static INSTALLED: OnceLock<Arc<Shared>> = OnceLock::new();

/// The installed pipeline, if [`install`] was called.
pub(crate) fn installed() -> Option<&'static Arc<Shared>> {
    INSTALLED.get()
}

/// Makes `shared` the pipeline of every client and server that has not made its first
/// call yet. `false` if one was installed already.
pub(crate) fn install(shared: Arc<Shared>) -> bool {
    INSTALLED.set(shared).is_ok()
}

/// One finished call span, as the call's task leaves it.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) context: SpanContext,
    /// `SpanId::INVALID` for a root span.
    pub(crate) parent: SpanId,
    pub(crate) parent_remote: bool,
    pub(crate) kind: SpanKind,
    pub(crate) site: Arc<Site>,
    pub(crate) start: SystemTime,
    pub(crate) end: SystemTime,
    /// The `x-status` name when the call failed; `None` for `ok`.
    pub(crate) failed: Option<Box<str>>,
    pub(crate) correlation_id: Option<Box<str>>,
    /// What the sampler added.
    pub(crate) extra: Vec<KeyValue>,
}

/// What the export thread is asked besides exporting.
enum Request {
    Flush(mpsc::Sender<OTelSdkResult>),
    Shutdown(mpsc::Sender<OTelSdkResult>),
}

#[derive(Default)]
struct Queue {
    spans: Vec<Record>,
    requests: Vec<Request>,
    closed: bool,
}

/// The bounds of the queue and of each export.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_queue: usize,
    pub(crate) max_batch: usize,
    pub(crate) delay: Duration,
    pub(crate) export_timeout: Duration,
}

/// What calls and the export thread share.
pub(crate) struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when the queue reaches a batch, or a request arrives.
    ready: Condvar,
    limits: Limits,
    pub(crate) sampler: Box<dyn ShouldSample>,
    pub(crate) ids: Box<dyn IdGenerator>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanExport")
            .field("limits", &self.limits)
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn lock(m: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    // A panic while holding the lock leaves a queue that is still whole.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The exporter, type-erased for the thread that owns it.
pub(crate) trait Export: Send {
    fn export(&mut self, batch: Vec<SpanData>) -> OTelSdkResult;
    fn flush(&mut self) -> OTelSdkResult;
    fn shutdown(&mut self, timeout: Duration) -> OTelSdkResult;
    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource);
}

impl<E: opentelemetry_sdk::trace::SpanExporter> Export for E {
    fn export(&mut self, batch: Vec<SpanData>) -> OTelSdkResult {
        futures_executor::block_on(opentelemetry_sdk::trace::SpanExporter::export(self, batch))
    }
    fn flush(&mut self) -> OTelSdkResult {
        opentelemetry_sdk::trace::SpanExporter::force_flush(self)
    }
    fn shutdown(&mut self, timeout: Duration) -> OTelSdkResult {
        opentelemetry_sdk::trace::SpanExporter::shutdown_with_timeout(self, timeout)
    }
    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        opentelemetry_sdk::trace::SpanExporter::set_resource(self, resource);
    }
}

impl Shared {
    /// A pipeline and the export thread that drains it into `exporter`.
    pub(crate) fn start(
        exporter: Box<dyn Export>,
        sampler: Box<dyn ShouldSample>,
        ids: Box<dyn IdGenerator>,
        scope: InstrumentationScope,
        limits: Limits,
    ) -> std::io::Result<Arc<Shared>> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                spans: Vec::with_capacity(limits.max_batch),
                ..Queue::default()
            }),
            ready: Condvar::new(),
            limits,
            sampler,
            ids,
            dropped: AtomicU64::new(0),
        });
        let thread = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("warren-span-export".into())
            .spawn(move || thread.run(exporter, &scope))?;
        Ok(shared)
    }

    /// Queues a finished span, or drops it when the queue is full or shut down.
    pub(crate) fn push(&self, record: Record) {
        let mut q = lock(&self.queue);
        if q.closed || q.spans.len() >= self.limits.max_queue {
            drop(q);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        q.spans.push(record);
        let wake = q.spans.len() == self.limits.max_batch;
        drop(q);
        if wake {
            self.ready.notify_one();
        }
    }

    /// Spans dropped so far because the queue was full (or shut down).
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn ask(&self, make: impl FnOnce(mpsc::Sender<OTelSdkResult>) -> Request) -> OTelSdkResult {
        let (tx, rx) = mpsc::channel();
        {
            let mut q = lock(&self.queue);
            if q.closed {
                return Err(OTelSdkError::AlreadyShutdown);
            }
            q.requests.push(make(tx));
        }
        self.ready.notify_one();
        let wait = self.limits.export_timeout * 2;
        rx.recv_timeout(wait)
            .map_err(|_| OTelSdkError::Timeout(wait))?
    }

    /// Exports every span queued so far, and waits for it.
    pub(crate) fn flush(&self) -> OTelSdkResult {
        self.ask(Request::Flush)
    }

    /// Exports what is queued, shuts the exporter down and ends the thread. Spans that
    /// end later are dropped.
    pub(crate) fn shutdown(&self) -> OTelSdkResult {
        self.ask(Request::Shutdown)
    }

    /// The export thread: waits for a batch, a request or the delay, then exports.
    fn run(&self, mut exporter: Box<dyn Export>, scope: &InstrumentationScope) {
        let mut taken: Vec<Record> = Vec::with_capacity(self.limits.max_batch);
        let mut next = Instant::now() + self.limits.delay;
        loop {
            let requests = {
                let mut q = lock(&self.queue);
                while q.spans.len() < self.limits.max_batch && q.requests.is_empty() {
                    let left = next.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    q = self
                        .ready
                        .wait_timeout(q, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                std::mem::swap(&mut q.spans, &mut taken);
                let requests = std::mem::take(&mut q.requests);
                if requests.iter().any(|r| matches!(r, Request::Shutdown(_))) {
                    q.closed = true;
                }
                requests
            };
            next = Instant::now() + self.limits.delay;
            // The last export's failure, for the flush or shutdown that asked.
            let mut failure: Option<String> = None;
            while !taken.is_empty() {
                let cut = taken.len().saturating_sub(self.limits.max_batch);
                let batch: Vec<SpanData> = taken.drain(cut..).map(|r| r.into_data(scope)).collect();
                if let Err(e) = exporter.export(batch) {
                    tracing::debug!(error = %e, "exporting spans failed");
                    failure = Some(e.to_string());
                }
            }
            let outcome = || match &failure {
                None => Ok(()),
                Some(e) => Err(OTelSdkError::InternalFailure(e.clone())),
            };
            let mut last = false;
            for request in requests {
                match request {
                    Request::Flush(reply) => {
                        let _ = reply.send(outcome().and_then(|()| exporter.flush()));
                    }
                    Request::Shutdown(reply) => {
                        let done = exporter.shutdown(self.limits.export_timeout);
                        let _ = reply.send(outcome().and(done));
                        last = true;
                    }
                }
            }
            if last {
                return;
            }
        }
    }
}

impl Record {
    /// The span as OpenTelemetry's exporters take it, with the attributes of
    /// `telemetry`'s module doc.
    fn into_data(self, scope: &InstrumentationScope) -> SpanData {
        let side = match self.kind {
            SpanKind::Server => Side::Server,
            _ => Side::Client,
        };
        let (start, n) = attributes::start(&self.site, side);
        // The correlation id moves into its attribute (no copy), so `ending` gets none.
        let (end, status) = attributes::ending(
            self.failed.as_deref().unwrap_or("ok"),
            self.failed.is_some(),
            None,
        );
        let mut attributes = Vec::with_capacity(8 + self.extra.len());
        attributes.extend(start.into_iter().take(n));
        if let Some(id) = self.correlation_id {
            attributes.push(KeyValue::new(
                "messaging.message.conversation_id",
                String::from(id),
            ));
        }
        attributes.extend(end);
        attributes.extend(self.extra);
        SpanData {
            span_context: self.context,
            parent_span_id: self.parent,
            parent_span_is_remote: self.parent_remote,
            span_kind: self.kind,
            name: self.site.span_name.clone(),
            start_time: self.start,
            end_time: self.end,
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: status.unwrap_or(Status::Unset),
            instrumentation_scope: scope.clone(),
        }
    }
}
