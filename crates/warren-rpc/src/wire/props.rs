//! How call metadata maps onto AMQP properties: the `x-deadline` and `x-status`
//! headers, `expiration`, `correlation_id`, `delivery_mode`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use amq_protocol::protocol::BasicProperties;
use amq_protocol::types::{AMQPValue, FieldTable, ShortString};

use super::{epoch_millis, HEADER_DEADLINE, HEADER_STATUS, PERSISTENT, TRANSIENT};
use crate::status::{Code, Status};

/// Reads an integer header of any AMQP integer type.
fn header_int(headers: &FieldTable, name: &str) -> Option<i64> {
    match headers.inner().get(name)? {
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::LongInt(v) => Some(i64::from(*v)),
        AMQPValue::LongUInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::Timestamp(v) => i64::try_from(*v).ok(),
        _ => None,
    }
}

/// Reads a string header (short or long string).
fn header_str(headers: &FieldTable, name: &str) -> Option<String> {
    match headers.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// The absolute deadline a request carries in `x-deadline`, if any.
pub fn deadline_of(props: &BasicProperties) -> Option<SystemTime> {
    let millis = header_int(props.headers().as_ref()?, HEADER_DEADLINE)?;
    let millis = u64::try_from(millis).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_millis(millis))
}

/// The status a reply carries: `Ok(())` when `x-status` is absent or `ok`, else the
/// remote [`Status`] with the body as its message.
pub fn reply_status(props: &BasicProperties, body: &[u8]) -> Result<(), Status> {
    let code = props
        .headers()
        .as_ref()
        .and_then(|h| header_str(h, HEADER_STATUS))
        .map(|s| Code::from_wire(&s))
        .unwrap_or(Code::Ok);
    if code == Code::Ok {
        Ok(())
    } else {
        Err(Status::new(
            code,
            String::from_utf8_lossy(body).into_owned(),
        ))
    }
}

/// Properties of a request: `reply_to`, `correlation_id`, `delivery_mode`,
/// `expiration` and `x-deadline` from the remaining time, plus caller extras; `more`
/// adds headers to the table in place (the trace context: no table of its own to copy).
#[allow(clippy::too_many_arguments)]
pub fn request_properties(
    reply_to: Option<&str>,
    correlation_id: &str,
    content_type: Option<&str>,
    persistent: bool,
    timeout: Duration,
    extra_headers: Option<&FieldTable>,
    more: impl FnOnce(&mut FieldTable),
) -> BasicProperties {
    let deadline = SystemTime::now() + timeout;
    let mut headers = extra_headers.cloned().unwrap_or_default();
    more(&mut headers);
    headers.insert(
        HEADER_DEADLINE.into(),
        AMQPValue::LongLongInt(epoch_millis(deadline)),
    );
    let mut props = BasicProperties::default()
        .with_correlation_id(correlation_id.into())
        .with_delivery_mode(if persistent { PERSISTENT } else { TRANSIENT })
        .with_expiration(ShortString::from(timeout.as_millis().max(1).to_string()))
        .with_headers(headers);
    if let Some(reply_to) = reply_to {
        props = props.with_reply_to(reply_to.into());
    }
    if let Some(ct) = content_type {
        props = props.with_content_type(ct.into());
    }
    props
}

/// Properties of a reply to `request`: same `correlation_id` and `delivery_mode`,
/// the body's `content_type`, and `x-status` when the call failed.
pub fn reply_properties(
    request: &BasicProperties,
    content_type: Option<&str>,
    code: Code,
) -> BasicProperties {
    let mut props = BasicProperties::default();
    if let Some(id) = request.correlation_id() {
        props = props.with_correlation_id(id.clone());
    }
    if let Some(mode) = request.delivery_mode() {
        props = props.with_delivery_mode(*mode);
    }
    if let Some(ct) = content_type {
        props = props.with_content_type(ct.into());
    }
    if code != Code::Ok {
        let mut headers = FieldTable::default();
        headers.insert(
            HEADER_STATUS.into(),
            AMQPValue::LongString(code.as_str().into()),
        );
        props = props.with_headers(headers);
    }
    props
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::wire::DIRECT_REPLY_TO;

    #[test]
    fn request_carries_deadline_expiration_and_ids() {
        let before = epoch_millis(SystemTime::now());
        let p = request_properties(
            Some(DIRECT_REPLY_TO),
            "abc-1",
            Some("text/plain"),
            false,
            Duration::from_millis(1500),
            None,
            |_| {},
        );
        assert_eq!(
            p.reply_to().as_ref().map(|s| s.as_str()),
            Some(DIRECT_REPLY_TO)
        );
        assert_eq!(
            p.correlation_id().as_ref().map(|s| s.as_str()),
            Some("abc-1")
        );
        assert_eq!(p.expiration().as_ref().map(|s| s.as_str()), Some("1500"));
        assert_eq!(*p.delivery_mode(), Some(TRANSIENT));
        let deadline = deadline_of(&p).map(epoch_millis).unwrap_or(0);
        assert!(
            deadline >= before + 1500 && deadline <= before + 3000,
            "{deadline}"
        );
    }

    #[test]
    fn reply_copies_correlation_and_sets_status() {
        let req = request_properties(
            None,
            "id-7",
            None,
            true,
            Duration::from_secs(1),
            None,
            |_| {},
        );
        let ok = reply_properties(&req, Some("text/plain"), Code::Ok);
        assert_eq!(
            ok.correlation_id().as_ref().map(|s| s.as_str()),
            Some("id-7")
        );
        assert_eq!(*ok.delivery_mode(), Some(PERSISTENT));
        assert_eq!(reply_status(&ok, b"5"), Ok(()));
        let err = reply_properties(&req, Some("text/plain"), Code::InvalidArgument);
        let status = reply_status(&err, b"bad n").err();
        assert_eq!(status, Some(Status::invalid_argument("bad n")));
    }

    #[test]
    fn every_code_and_an_unknown_one_cross_the_wire() {
        let req = request_properties(
            None,
            "id-8",
            None,
            false,
            Duration::from_secs(1),
            None,
            |_| {},
        );
        let teapot = Code::from_wire("im_a_teapot");
        for code in Code::known().chain([teapot]) {
            let reply = reply_properties(&req, Some("text/plain"), code.clone());
            let got = reply_status(&reply, b"msg").err().map(|s| s.code());
            if code == Code::Ok {
                assert_eq!(got, None);
            } else {
                assert_eq!(got, Some(code));
            }
        }
    }

    #[test]
    fn deadline_accepts_any_integer_type() {
        let mut h = FieldTable::default();
        h.insert(HEADER_DEADLINE.into(), AMQPValue::LongInt(1000));
        let p = BasicProperties::default().with_headers(h);
        assert_eq!(
            deadline_of(&p),
            UNIX_EPOCH.checked_add(Duration::from_secs(1))
        );
        let mut h = FieldTable::default();
        h.insert(HEADER_DEADLINE.into(), AMQPValue::LongLongInt(-5));
        let p = BasicProperties::default().with_headers(h);
        assert_eq!(deadline_of(&p), None);
    }
}
