//! [`Sites`]: what every call on one (queue, method) of a client or a server shares,
//! made at its first call and then looked up: the queue and method as shared strings
//! (span attributes and log fields), the span name, and the metric handles (no label
//! set built per call). Bounded: past [`MAX_SITES`] a call gets a site of its own.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::Side;

/// Sites kept per side of one client or server. Queues and typed methods are few in a
/// program; this bounds what requests with made-up method names can make it hold.
pub(crate) const MAX_SITES: usize = 1024;

/// What the calls on one (side, queue, method) share.
#[derive(Debug)]
pub(crate) struct Site {
    pub(crate) queue: Arc<str>,
    pub(crate) method: Option<Arc<str>>,
    /// `send {queue}` / `process {queue}/{method}`: the OpenTelemetry span name,
    /// interned ([`span_name`]).
    #[cfg(feature = "otel")]
    pub(crate) span_name: std::borrow::Cow<'static, str>,
    #[cfg(feature = "metrics")]
    pub(crate) metrics: Option<crate::metrics::SiteMetrics>,
}

impl Site {
    fn new(
        side: Side,
        queue: Arc<str>,
        method: Option<Arc<str>>,
        #[cfg(feature = "metrics")] metrics: Option<&crate::metrics::Metrics>,
    ) -> Site {
        #[cfg(feature = "otel")]
        let span_name = {
            let operation = match side {
                Side::Client => "send",
                Side::Server => "process",
            };
            span_name(match &method {
                Some(method) => format!("{operation} {queue}/{method}"),
                None => format!("{operation} {queue}"),
            })
        };
        #[cfg(feature = "metrics")]
        let metrics = metrics.map(|m| m.site(side, &queue, method.as_deref()));
        let _ = side;
        Site {
            queue,
            method,
            #[cfg(feature = "otel")]
            span_name,
            #[cfg(feature = "metrics")]
            metrics,
        }
    }
}

/// Span names kept for the life of the process, so that every span can borrow its
/// name (a span's name is a `Cow<'static, str>`: no copy per span, here or in an SDK).
/// Bounded: past it, names are owned by their sites.
#[cfg(feature = "otel")]
const MAX_SPAN_NAMES: usize = 4096;

/// `name`, interned while fewer than [`MAX_SPAN_NAMES`] are.
#[cfg(feature = "otel")]
fn span_name(name: String) -> std::borrow::Cow<'static, str> {
    use std::borrow::Cow;
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(known) = names.get(name.as_str()) {
        return Cow::Borrowed(known);
    }
    if names.len() >= MAX_SPAN_NAMES {
        return Cow::Owned(name);
    }
    let kept: &'static str = Box::leak(name.into_boxed_str());
    names.insert(kept);
    Cow::Borrowed(kept)
}

#[derive(Debug, Default)]
struct QueueSites {
    plain: Option<Arc<Site>>,
    methods: HashMap<Box<str>, Arc<Site>>,
}

impl QueueSites {
    fn find(&self, method: Option<&str>) -> Option<&Arc<Site>> {
        match method {
            None => self.plain.as_ref(),
            Some(method) => self.methods.get(method),
        }
    }
}

#[derive(Debug, Default)]
struct Map {
    queues: HashMap<Arc<str>, QueueSites>,
    len: usize,
}

/// The sites of one side of a client or server.
#[derive(Debug, Default)]
pub(crate) struct Sites {
    map: RwLock<Map>,
}

impl Sites {
    /// The site of (`queue`, `method`), made if this is its first call.
    pub(crate) fn get(
        &self,
        side: Side,
        queue: &str,
        method: Option<&str>,
        #[cfg(feature = "metrics")] metrics: Option<&crate::metrics::Metrics>,
    ) -> Arc<Site> {
        {
            let map = self.map.read().unwrap_or_else(|e| e.into_inner());
            if let Some(site) = map.queues.get(queue).and_then(|q| q.find(method)) {
                return Arc::clone(site);
            }
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        let map = &mut *map;
        let known = map.queues.get_key_value(queue);
        if let Some(site) = known.and_then(|(_, q)| q.find(method)) {
            return Arc::clone(site);
        }
        let queue: Arc<str> = known.map_or_else(|| queue.into(), |(name, _)| Arc::clone(name));
        let site = Arc::new(Site::new(
            side,
            Arc::clone(&queue),
            method.map(Arc::from),
            #[cfg(feature = "metrics")]
            metrics,
        ));
        if map.len < MAX_SITES {
            map.len += 1;
            let sites = map.queues.entry(queue).or_default();
            match method {
                None => sites.plain = Some(Arc::clone(&site)),
                Some(method) => {
                    sites.methods.insert(method.into(), Arc::clone(&site));
                }
            }
        }
        site
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(sites: &Sites, queue: &str, method: Option<&str>) -> Arc<Site> {
        sites.get(
            Side::Server,
            queue,
            method,
            #[cfg(feature = "metrics")]
            None,
        )
    }

    #[test]
    fn a_site_is_made_once_per_queue_and_method() {
        let sites = Sites::default();
        let plain = get(&sites, "calc", None);
        let add = get(&sites, "calc", Some("add"));
        assert!(Arc::ptr_eq(&plain, &get(&sites, "calc", None)));
        assert!(Arc::ptr_eq(&add, &get(&sites, "calc", Some("add"))));
        assert!(!Arc::ptr_eq(&plain, &add));
        assert_eq!(add.method.as_deref(), Some("add"));
        // Both share the queue name.
        assert!(Arc::ptr_eq(&plain.queue, &add.queue));
    }

    #[cfg(feature = "otel")]
    #[test]
    fn span_names_are_interned() {
        let a = span_name("send interned_q".to_owned());
        let b = span_name("send interned_q".to_owned());
        assert!(matches!(a, std::borrow::Cow::Borrowed(_)));
        assert!(std::ptr::eq(a.as_ptr(), b.as_ptr()));
        assert_eq!(a, "send interned_q");
    }

    #[test]
    fn past_the_bound_calls_get_sites_of_their_own() {
        let sites = Sites::default();
        for i in 0..MAX_SITES {
            get(&sites, "calc", Some(&i.to_string()));
        }
        let extra = get(&sites, "calc", Some("one-more"));
        assert!(!Arc::ptr_eq(&extra, &get(&sites, "calc", Some("one-more"))));
        assert_eq!(extra.method.as_deref(), Some("one-more"));
    }
}
