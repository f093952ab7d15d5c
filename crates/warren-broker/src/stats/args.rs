//! AMQP field tables turned into [`ArgValue`]s, the JSON-friendly form snapshots
//! carry for arguments and client properties.

use super::info::ArgValue;
use amq_protocol::types::{AMQPValue, FieldTable};

/// A field table's entries, in key order.
pub(crate) fn table(t: &FieldTable) -> Vec<(String, ArgValue)> {
    t.inner()
        .iter()
        .map(|(k, v)| (k.to_string(), value(v)))
        .collect()
}

/// One AMQP value.
pub(crate) fn value(v: &AMQPValue) -> ArgValue {
    use AMQPValue as V;
    match v {
        V::Boolean(b) => ArgValue::Bool(*b),
        V::ShortShortInt(i) => ArgValue::Int((*i).into()),
        V::ShortShortUInt(i) => ArgValue::Int((*i).into()),
        V::ShortInt(i) => ArgValue::Int((*i).into()),
        V::ShortUInt(i) => ArgValue::Int((*i).into()),
        V::LongInt(i) => ArgValue::Int((*i).into()),
        V::LongUInt(i) => ArgValue::Int((*i).into()),
        V::LongLongInt(i) => ArgValue::Int(*i),
        V::Timestamp(i) => ArgValue::Int(i64::try_from(*i).unwrap_or(i64::MAX)),
        V::Float(f) => ArgValue::Float((*f).into()),
        V::Double(f) => ArgValue::Float(*f),
        V::ShortString(s) => ArgValue::Str(s.to_string()),
        V::LongString(s) => ArgValue::Str(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        V::ByteArray(b) => ArgValue::Str(String::from_utf8_lossy(b.as_slice()).into_owned()),
        V::FieldArray(a) => ArgValue::List(a.as_slice().iter().map(value).collect()),
        V::FieldTable(t) => ArgValue::Table(table(t)),
        _ => ArgValue::Null,
    }
}
