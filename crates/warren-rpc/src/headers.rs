//! [`Headers`] and [`HeaderValue`]: Warren's own AMQP field tables, for request and
//! reply headers and queue arguments, so that no AMQP client type shows in Warren's API.
//!
//! A table maps names (at most 255 bytes) to values. Reading from the wire, every
//! AMQP integer type becomes [`HeaderValue::Int`] and both string types become
//! [`HeaderValue::Str`] (or [`HeaderValue::Bytes`] when not UTF-8); writing, integers
//! go out as signed 64-bit (`l`, as RabbitMQ writes them), strings and bytes as long
//! strings (`S`), floats as doubles (`d`).

use std::collections::{btree_map, BTreeMap};

use amq_protocol::types::{
    AMQPValue, DecimalValue, FieldArray, FieldTable, LongString, ShortString,
};

/// The longest header (or argument) name AMQP can carry, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// A table of AMQP header values by name: message headers, queue arguments.
///
/// ```
/// use warren_rpc::{HeaderValue, Headers};
///
/// let mut headers = Headers::new();
/// headers.insert("tenant", "acme");
/// headers.insert("attempt", 2);
/// assert_eq!(headers.get("tenant").and_then(HeaderValue::as_str), Some("acme"));
/// assert_eq!(headers.get("attempt").and_then(HeaderValue::as_i64), Some(2));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Headers(BTreeMap<String, HeaderValue>);

/// One AMQP field value.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum HeaderValue {
    /// A boolean (`t`).
    Bool(bool),
    /// An integer of any AMQP width; written as a signed 64-bit integer (`l`).
    Int(i64),
    /// A floating-point number (`f` or `d`); written as a double (`d`).
    Float(f64),
    /// A decimal: `value / 10^scale` (`D`).
    Decimal {
        /// Digits after the decimal point.
        scale: u8,
        /// The unscaled value.
        value: u32,
    },
    /// A UTF-8 string (short or long string); written as a long string (`S`).
    Str(String),
    /// Bytes that are not UTF-8 (a long string or RabbitMQ's byte array); written as a
    /// long string (`S`).
    Bytes(Vec<u8>),
    /// A timestamp, seconds since the Unix epoch (`T`).
    Timestamp(u64),
    /// An array of values (`A`).
    Array(Vec<HeaderValue>),
    /// A nested table (`F`).
    Table(Headers),
    /// No value (`V`).
    Void,
}

impl Headers {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`, returning the value it had.
    pub fn insert(
        &mut self,
        name: impl Into<String>,
        value: impl Into<HeaderValue>,
    ) -> Option<HeaderValue> {
        self.0.insert(name.into(), value.into())
    }

    /// Sets `name` to `value` and returns the table, for building one in an expression.
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: impl Into<HeaderValue>) -> Self {
        self.insert(name, value);
        self
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&HeaderValue> {
        self.0.get(name)
    }

    /// Whether the table has `name`.
    pub fn contains_key(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Removes `name`, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<HeaderValue> {
        self.0.remove(name)
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries, by name.
    pub fn iter(&self) -> HeadersIter<'_> {
        HeadersIter(self.0.iter())
    }
}

/// The entries of a [`Headers`] table, by name.
#[derive(Debug, Clone)]
pub struct HeadersIter<'a>(btree_map::Iter<'a, String, HeaderValue>);

impl<'a> Iterator for HeadersIter<'a> {
    type Item = (&'a str, &'a HeaderValue);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k.as_str(), v))
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a str, &'a HeaderValue);
    type IntoIter = HeadersIter<'a>;

    fn into_iter(self) -> HeadersIter<'a> {
        self.iter()
    }
}

impl<K: Into<String>, V: Into<HeaderValue>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Headers(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl<K: Into<String>, V: Into<HeaderValue>> Extend<(K, V)> for Headers {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        self.0
            .extend(iter.into_iter().map(|(k, v)| (k.into(), v.into())));
    }
}

impl HeaderValue {
    /// The string, if this is [`HeaderValue::Str`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            HeaderValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is [`HeaderValue::Int`] or a [`HeaderValue::Timestamp`]
    /// that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            HeaderValue::Int(v) => Some(*v),
            HeaderValue::Timestamp(v) => i64::try_from(*v).ok(),
            _ => None,
        }
    }

    /// The boolean, if this is [`HeaderValue::Bool`].
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            HeaderValue::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for HeaderValue {
            fn from(v: $t) -> Self {
                HeaderValue::Int(i64::from(v))
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<bool> for HeaderValue {
    fn from(v: bool) -> Self {
        HeaderValue::Bool(v)
    }
}

impl From<f32> for HeaderValue {
    fn from(v: f32) -> Self {
        HeaderValue::Float(f64::from(v))
    }
}

impl From<f64> for HeaderValue {
    fn from(v: f64) -> Self {
        HeaderValue::Float(v)
    }
}

impl From<&str> for HeaderValue {
    fn from(v: &str) -> Self {
        HeaderValue::Str(v.to_owned())
    }
}

impl From<String> for HeaderValue {
    fn from(v: String) -> Self {
        HeaderValue::Str(v)
    }
}

impl From<Vec<u8>> for HeaderValue {
    fn from(v: Vec<u8>) -> Self {
        HeaderValue::Bytes(v)
    }
}

impl From<Vec<HeaderValue>> for HeaderValue {
    fn from(v: Vec<HeaderValue>) -> Self {
        HeaderValue::Array(v)
    }
}

impl From<Headers> for HeaderValue {
    fn from(v: Headers) -> Self {
        HeaderValue::Table(v)
    }
}

/// Reads an AMQP field table.
pub(crate) fn from_field_table(table: &FieldTable) -> Headers {
    Headers(
        table
            .inner()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), from_amqp(v)))
            .collect(),
    )
}

fn from_amqp(value: &AMQPValue) -> HeaderValue {
    match value {
        AMQPValue::Boolean(b) => HeaderValue::Bool(*b),
        AMQPValue::ShortShortInt(v) => HeaderValue::Int(i64::from(*v)),
        AMQPValue::ShortShortUInt(v) => HeaderValue::Int(i64::from(*v)),
        AMQPValue::ShortInt(v) => HeaderValue::Int(i64::from(*v)),
        AMQPValue::ShortUInt(v) => HeaderValue::Int(i64::from(*v)),
        AMQPValue::LongInt(v) => HeaderValue::Int(i64::from(*v)),
        AMQPValue::LongUInt(v) => HeaderValue::Int(i64::from(*v)),
        AMQPValue::LongLongInt(v) => HeaderValue::Int(*v),
        AMQPValue::Float(v) => HeaderValue::Float(f64::from(*v)),
        AMQPValue::Double(v) => HeaderValue::Float(*v),
        AMQPValue::DecimalValue(d) => HeaderValue::Decimal {
            scale: d.scale,
            value: d.value,
        },
        AMQPValue::ShortString(s) => HeaderValue::Str(s.as_str().to_owned()),
        AMQPValue::LongString(s) => bytes_or_str(s.as_bytes()),
        AMQPValue::ByteArray(b) => bytes_or_str(b.as_slice()),
        AMQPValue::FieldArray(a) => {
            HeaderValue::Array(a.as_slice().iter().map(from_amqp).collect())
        }
        AMQPValue::Timestamp(t) => HeaderValue::Timestamp(*t),
        AMQPValue::FieldTable(t) => HeaderValue::Table(from_field_table(t)),
        AMQPValue::Void => HeaderValue::Void,
    }
}

fn bytes_or_str(bytes: &[u8]) -> HeaderValue {
    match std::str::from_utf8(bytes) {
        Ok(s) => HeaderValue::Str(s.to_owned()),
        Err(_) => HeaderValue::Bytes(bytes.to_vec()),
    }
}

/// Writes an AMQP field table; fails naming the first name longer than
/// [`MAX_NAME_LEN`] bytes.
pub(crate) fn to_field_table(headers: &Headers) -> Result<FieldTable, String> {
    let mut table = FieldTable::default();
    for (name, value) in &headers.0 {
        let key = ShortString::try_new(name.as_str()).map_err(|_| {
            format!("header name `{name:.40}...` is longer than {MAX_NAME_LEN} bytes")
        })?;
        table.insert(key, to_amqp(value)?);
    }
    Ok(table)
}

fn to_amqp(value: &HeaderValue) -> Result<AMQPValue, String> {
    Ok(match value {
        HeaderValue::Bool(b) => AMQPValue::Boolean(*b),
        HeaderValue::Int(v) => AMQPValue::LongLongInt(*v),
        HeaderValue::Float(v) => AMQPValue::Double(*v),
        HeaderValue::Decimal { scale, value } => AMQPValue::DecimalValue(DecimalValue {
            scale: *scale,
            value: *value,
        }),
        HeaderValue::Str(s) => AMQPValue::LongString(LongString::from(s.as_str())),
        HeaderValue::Bytes(b) => AMQPValue::LongString(LongString::from(b.clone())),
        HeaderValue::Timestamp(t) => AMQPValue::Timestamp(*t),
        HeaderValue::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items.iter().map(to_amqp).collect::<Result<Vec<_>, _>>()?,
        )),
        HeaderValue::Table(t) => AMQPValue::FieldTable(to_field_table(t)?),
        HeaderValue::Void => AMQPValue::Void,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_kind_round_trips_through_a_field_table() {
        let nested = Headers::new().with("inner", true);
        let headers = Headers::new()
            .with("bool", false)
            .with("int", -7)
            .with("float", 1.5)
            .with(
                "decimal",
                HeaderValue::Decimal {
                    scale: 2,
                    value: 314,
                },
            )
            .with("str", "hello")
            .with("bytes", vec![0xff, 0xfe])
            .with("ts", HeaderValue::Timestamp(1_700_000_000))
            .with("array", vec![HeaderValue::from(1), HeaderValue::from("x")])
            .with("table", nested)
            .with("void", HeaderValue::Void);
        let table = to_field_table(&headers).expect("names are short");
        assert_eq!(from_field_table(&table), headers);
    }

    #[test]
    fn reads_every_integer_width_and_string_type() {
        let mut table = FieldTable::default();
        table.insert("a".into(), AMQPValue::ShortShortUInt(200));
        table.insert("b".into(), AMQPValue::LongUInt(u32::MAX));
        table.insert("c".into(), AMQPValue::ShortString("s".into()));
        table.insert("d".into(), AMQPValue::ByteArray(b"raw".to_vec().into()));
        let headers = from_field_table(&table);
        assert_eq!(headers.get("a"), Some(&HeaderValue::Int(200)));
        assert_eq!(
            headers.get("b").and_then(HeaderValue::as_i64),
            Some(i64::from(u32::MAX))
        );
        assert_eq!(headers.get("c").and_then(HeaderValue::as_str), Some("s"));
        assert_eq!(headers.get("d").and_then(HeaderValue::as_str), Some("raw"));
    }

    #[test]
    fn names_past_255_bytes_are_refused() {
        let headers = Headers::new().with("k".repeat(256), 1);
        let err = to_field_table(&headers).expect_err("too long");
        assert!(err.contains("longer than 255 bytes"), "{err}");
        let ok: Headers = [("x-queue-type", "quorum")].into_iter().collect();
        assert_eq!(ok.len(), 1);
        assert!(ok.contains_key("x-queue-type"));
    }
}
