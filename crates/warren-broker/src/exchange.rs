//! Exchanges and their routing algorithms: direct, fanout, topic (`*`/`#`)
//! and headers (`x-match` all/any).

use crate::message::value_as_str;
use crate::queue::Queue;
use amq_protocol::types::{AMQPValue, FieldTable};
use std::sync::{Arc, RwLock};

/// The routing algorithm of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExchangeKind {
    /// Exact routing-key match.
    Direct,
    /// Every bound queue.
    Fanout,
    /// Dotted pattern match with `*` and `#`.
    Topic,
    /// Header table match.
    Headers,
}

impl ExchangeKind {
    /// Parse an exchange type name.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "direct" => Some(Self::Direct),
            "fanout" => Some(Self::Fanout),
            "topic" => Some(Self::Topic),
            "headers" => Some(Self::Headers),
            _ => None,
        }
    }

    /// The exchange type name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Fanout => "fanout",
            Self::Topic => "topic",
            Self::Headers => "headers",
        }
    }
}

/// Where a binding delivers to.
#[derive(Debug, Clone)]
pub(crate) enum Dest {
    /// A queue.
    Queue(Arc<Queue>),
    /// Another exchange (by name), for exchange-to-exchange bindings.
    Exchange(String),
}

impl Dest {
    fn same(&self, other: &Dest) -> bool {
        match (self, other) {
            (Dest::Queue(a), Dest::Queue(b)) => Arc::ptr_eq(a, b),
            (Dest::Exchange(a), Dest::Exchange(b)) => a == b,
            _ => false,
        }
    }
}

/// A binding on an exchange.
#[derive(Debug, Clone)]
pub(crate) struct Binding {
    /// Destination.
    pub(crate) dest: Dest,
    /// Binding key.
    pub(crate) routing_key: String,
    /// Binding arguments (used by headers exchanges).
    pub(crate) arguments: FieldTable,
}

/// An exchange.
#[derive(Debug)]
pub(crate) struct Exchange {
    /// Name.
    pub(crate) name: String,
    /// Routing algorithm.
    pub(crate) kind: ExchangeKind,
    /// Survives restarts.
    pub(crate) durable: bool,
    /// Deleted when its last binding goes.
    pub(crate) auto_delete: bool,
    /// Not publishable by clients.
    pub(crate) internal: bool,
    /// Declaration arguments.
    pub(crate) arguments: FieldTable,
    /// Queue bindings.
    pub(crate) bindings: RwLock<Vec<Binding>>,
}

/// How an exchange is declared, apart from its name, type and arguments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ExchangeOptions {
    /// Survives restarts.
    pub(crate) durable: bool,
    /// Deleted when its last binding goes.
    pub(crate) auto_delete: bool,
    /// Takes no publishes from clients, only exchange-to-exchange routing.
    pub(crate) internal: bool,
}

impl Exchange {
    /// A new exchange with no bindings.
    pub(crate) fn new(
        name: String,
        kind: ExchangeKind,
        options: ExchangeOptions,
        arguments: FieldTable,
    ) -> Self {
        let ExchangeOptions {
            durable,
            auto_delete,
            internal,
        } = options;
        Self {
            name,
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
            bindings: RwLock::new(Vec::new()),
        }
    }

    /// Collect the queues (deduplicated) and exchanges a message routes to.
    pub(crate) fn route(
        &self,
        routing_key: &str,
        headers: Option<&FieldTable>,
        out: &mut Vec<Arc<Queue>>,
        exchanges: &mut Vec<String>,
    ) {
        let bindings = match self.bindings.read() {
            Ok(b) => b,
            Err(p) => p.into_inner(),
        };
        for b in bindings.iter() {
            let hit = match self.kind {
                ExchangeKind::Direct => b.routing_key == routing_key,
                ExchangeKind::Fanout => true,
                ExchangeKind::Topic => topic_matches(&b.routing_key, routing_key),
                ExchangeKind::Headers => headers_match(&b.arguments, headers),
            };
            if !hit {
                continue;
            }
            match &b.dest {
                Dest::Queue(q) => {
                    if !out.iter().any(|x| Arc::ptr_eq(x, q)) {
                        out.push(q.clone());
                    }
                }
                Dest::Exchange(x) => {
                    if !exchanges.contains(x) {
                        exchanges.push(x.clone());
                    }
                }
            }
        }
    }

    /// Add a binding (idempotent). Returns false if it already existed.
    pub(crate) fn bind(&self, dest: Dest, routing_key: &str, arguments: FieldTable) -> bool {
        let mut bindings = match self.bindings.write() {
            Ok(b) => b,
            Err(p) => p.into_inner(),
        };
        if bindings
            .iter()
            .any(|b| b.dest.same(&dest) && b.routing_key == routing_key && b.arguments == arguments)
        {
            return false;
        }
        bindings.push(Binding {
            dest,
            routing_key: routing_key.to_owned(),
            arguments,
        });
        true
    }

    /// Remove a binding. Returns whether it existed.
    pub(crate) fn unbind(&self, dest: &Dest, routing_key: &str, arguments: &FieldTable) -> bool {
        let mut bindings = match self.bindings.write() {
            Ok(b) => b,
            Err(p) => p.into_inner(),
        };
        let before = bindings.len();
        bindings.retain(|b| {
            !(b.dest.same(dest)
                && b.routing_key == routing_key
                && (self.kind != ExchangeKind::Headers || &b.arguments == arguments))
        });
        before != bindings.len()
    }

    /// Remove all bindings to a queue.
    pub(crate) fn unbind_queue(&self, queue: &Arc<Queue>) {
        let mut bindings = match self.bindings.write() {
            Ok(b) => b,
            Err(p) => p.into_inner(),
        };
        bindings.retain(|b| !matches!(&b.dest, Dest::Queue(q) if Arc::ptr_eq(q, queue)));
    }

    /// Remove all bindings to an exchange.
    pub(crate) fn unbind_exchange(&self, name: &str) {
        let mut bindings = match self.bindings.write() {
            Ok(b) => b,
            Err(p) => p.into_inner(),
        };
        bindings.retain(|b| !matches!(&b.dest, Dest::Exchange(x) if x == name));
    }

    /// Number of bindings.
    pub(crate) fn binding_count(&self) -> usize {
        match self.bindings.read() {
            Ok(b) => b.len(),
            Err(p) => p.into_inner().len(),
        }
    }
}

/// AMQP topic matching: words separated by `.`, `*` matches exactly one word,
/// `#` matches zero or more words.
pub(crate) fn topic_matches(pattern: &str, key: &str) -> bool {
    // The empty string has no words (so `*` does not match it), while
    // "a..c" has an empty middle word, as in RabbitMQ.
    let words = |s: &'_ str| -> Vec<String> {
        if s.is_empty() {
            Vec::new()
        } else {
            s.split('.').map(str::to_owned).collect()
        }
    };
    let p = words(pattern);
    let k = words(key);
    // Dynamic programming over (pattern word, key word): O(|p| * |k|).
    let mut next = vec![false; k.len() + 1];
    next[k.len()] = true;
    for i in (0..p.len()).rev() {
        let mut cur = vec![false; k.len() + 1];
        for j in (0..=k.len()).rev() {
            cur[j] = if p[i] == "#" {
                next[j] || (j < k.len() && cur[j + 1])
            } else {
                j < k.len() && (p[i] == "*" || p[i] == k[j]) && next[j + 1]
            };
        }
        next = cur;
    }
    next[0]
}

/// Headers-exchange matching with `x-match` = `all` (default) or `any`.
/// Binding arguments starting with `x-` are ignored.
pub(crate) fn headers_match(args: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let mode_any = args
        .inner()
        .get("x-match")
        .and_then(value_as_str)
        .map(|m| m == "any" || m == "any-with-x")
        .unwrap_or(false);
    let empty = FieldTable::default();
    let headers = headers.unwrap_or(&empty);
    let mut any_hit = false;
    for (k, v) in args.inner() {
        if k.as_str().starts_with("x-") {
            continue;
        }
        let hit = match headers.inner().get(k.as_str()) {
            Some(hv) => matches!(v, AMQPValue::Void) || values_equal(v, hv),
            None => false,
        };
        if hit {
            any_hit = true;
            if mode_any {
                return true;
            }
        } else if !mode_any {
            return false;
        }
    }
    if mode_any {
        any_hit
    } else {
        true
    }
}

fn values_equal(a: &AMQPValue, b: &AMQPValue) -> bool {
    if let (Some(x), Some(y)) = (value_as_str(a), value_as_str(b)) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (
        crate::message::value_as_i64(a),
        crate::message::value_as_i64(b),
    ) {
        return x == y;
    }
    a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic() {
        assert!(topic_matches("*.orange.*", "quick.orange.rabbit"));
        assert!(!topic_matches("*.orange.*", "quick.orange.male.rabbit"));
        assert!(topic_matches("lazy.#", "lazy"));
        assert!(topic_matches("lazy.#", "lazy.orange.male.rabbit"));
        assert!(topic_matches("#", ""));
        assert!(topic_matches("#.rabbit", "rabbit"));
        assert!(topic_matches("a.#.b", "a.b"));
        assert!(topic_matches("a.#.b", "a.x.y.b"));
        assert!(!topic_matches("a.*.b", "a.b"));
        assert!(topic_matches("", ""));
        assert!(!topic_matches("*", ""));
        assert!(topic_matches("#", ""));
        assert!(topic_matches("a.*.c", "a..c"));
    }

    fn table(pairs: &[(&str, &str)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert(
                (*k).into(),
                AMQPValue::LongString(amq_protocol::types::LongString::from(*v)),
            );
        }
        t
    }

    #[test]
    fn headers() {
        let all = table(&[("x-match", "all"), ("a", "1"), ("b", "2")]);
        let any = table(&[("x-match", "any"), ("a", "1"), ("b", "2")]);
        let both = table(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let one = table(&[("a", "1"), ("b", "9")]);
        assert!(headers_match(&all, Some(&both)));
        assert!(!headers_match(&all, Some(&one)));
        assert!(headers_match(&any, Some(&one)));
        assert!(!headers_match(&any, None));
        // Default x-match is all; an empty binding matches everything.
        assert!(headers_match(&table(&[]), None));
        let mut ints = FieldTable::default();
        ints.insert("a".into(), AMQPValue::LongInt(1));
        let mut int_headers = FieldTable::default();
        int_headers.insert("a".into(), AMQPValue::ShortShortInt(1));
        assert!(headers_match(&ints, Some(&int_headers)));
    }
}
