//! The log record format: each record is `len: u32 | crc32: u32 | payload`,
//! so a torn or corrupt tail is detected and ignored on recovery.

use super::Record;
use amq_protocol::frame::WriteContext;
use amq_protocol::types::generation::gen_field_table;
use amq_protocol::types::parsing::parse_field_table;
use amq_protocol::types::FieldTable;
use bytes::Bytes;

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

fn put_table(out: &mut Vec<u8>, t: &FieldTable) {
    let ctx = WriteContext::from(Vec::new());
    let bytes = match gen_field_table(t)(ctx) {
        Ok(c) => c.into_inner().0,
        Err(_) => {
            // An empty table: 4-byte zero length.
            vec![0, 0, 0, 0]
        }
    };
    put_bytes(out, &bytes);
}

/// Encode one record with its length + CRC32 frame.
pub(crate) fn encode_record(r: &Record, out: &mut Vec<u8>) {
    let mut p = Vec::new();
    match r {
        Record::DeclareExchange {
            name,
            kind,
            auto_delete,
            internal,
            arguments,
        } => {
            p.push(1);
            put_bytes(&mut p, name.as_bytes());
            put_bytes(&mut p, kind.as_bytes());
            p.push(u8::from(*auto_delete));
            p.push(u8::from(*internal));
            put_table(&mut p, arguments);
        }
        Record::DeleteExchange { name } => {
            p.push(2);
            put_bytes(&mut p, name.as_bytes());
        }
        Record::DeclareQueue {
            name,
            auto_delete,
            arguments,
        } => {
            p.push(3);
            put_bytes(&mut p, name.as_bytes());
            p.push(u8::from(*auto_delete));
            put_table(&mut p, arguments);
        }
        Record::DeleteQueue { name } => {
            p.push(4);
            put_bytes(&mut p, name.as_bytes());
        }
        Record::Bind {
            exchange,
            queue,
            to_exchange,
            routing_key,
            arguments,
        }
        | Record::Unbind {
            exchange,
            queue,
            to_exchange,
            routing_key,
            arguments,
        } => {
            p.push(if matches!(r, Record::Bind { .. }) {
                5
            } else {
                6
            });
            put_bytes(&mut p, exchange.as_bytes());
            put_bytes(&mut p, queue.as_bytes());
            put_bytes(&mut p, routing_key.as_bytes());
            put_table(&mut p, arguments);
            p.push(u8::from(*to_exchange));
        }
        Record::Publish {
            queue,
            id,
            exchange,
            routing_key,
            raw_props,
            body,
        } => {
            p.push(7);
            put_bytes(&mut p, queue.as_bytes());
            p.extend_from_slice(&id.to_be_bytes());
            put_bytes(&mut p, exchange.as_bytes());
            put_bytes(&mut p, routing_key.as_bytes());
            put_bytes(&mut p, raw_props);
            put_bytes(&mut p, body);
        }
        Record::Remove { queue, id } => {
            p.push(8);
            put_bytes(&mut p, queue.as_bytes());
            p.extend_from_slice(&id.to_be_bytes());
        }
    }
    out.extend_from_slice(&(p.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32(&p).to_be_bytes());
    out.extend_from_slice(&p);
}

struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.data.get(..8)?;
        let v = u64::from_be_bytes(b.try_into().ok()?);
        self.data = &self.data[8..];
        Some(v)
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let l = self.data.get(..4)?;
        let len = u32::from_be_bytes(l.try_into().ok()?) as usize;
        let b = self.data.get(4..4 + len)?;
        self.data = &self.data[4 + len..];
        Some(b)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
    fn table(&mut self) -> Option<FieldTable> {
        let b = self.bytes()?;
        parse_field_table(b).ok().map(|(_, t)| t)
    }
}

fn decode_record(p: &[u8]) -> Option<Record> {
    let mut c = Cursor { data: p };
    let r = match c.u8()? {
        1 => Record::DeclareExchange {
            name: c.string()?,
            kind: c.string()?,
            auto_delete: c.u8()? != 0,
            internal: c.u8()? != 0,
            arguments: c.table()?,
        },
        2 => Record::DeleteExchange { name: c.string()? },
        3 => Record::DeclareQueue {
            name: c.string()?,
            auto_delete: c.u8()? != 0,
            arguments: c.table()?,
        },
        4 => Record::DeleteQueue { name: c.string()? },
        t @ (5 | 6) => {
            let exchange = c.string()?;
            let queue = c.string()?;
            let routing_key = c.string()?;
            let arguments = c.table()?;
            let to_exchange = c.u8()? != 0;
            if t == 5 {
                Record::Bind {
                    exchange,
                    queue,
                    to_exchange,
                    routing_key,
                    arguments,
                }
            } else {
                Record::Unbind {
                    exchange,
                    queue,
                    to_exchange,
                    routing_key,
                    arguments,
                }
            }
        }
        7 => Record::Publish {
            queue: c.string()?,
            id: c.u64()?,
            exchange: c.string()?,
            routing_key: c.string()?,
            raw_props: Bytes::copy_from_slice(c.bytes()?),
            body: Bytes::copy_from_slice(c.bytes()?),
        },
        8 => Record::Remove {
            queue: c.string()?,
            id: c.u64()?,
        },
        _ => return None,
    };
    Some(r)
}

/// Decode records until the end or the first torn/corrupt one. Returns the
/// records and the length of the valid prefix.
pub(crate) fn decode_all(data: &[u8]) -> (Vec<Record>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= data.len() {
        let len =
            u32::from_be_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        let crc = u32::from_be_bytes([data[pos + 4], data[pos + 5], data[pos + 6], data[pos + 7]]);
        let Some(p) = data.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if crc32(p) != crc {
            break;
        }
        match decode_record(p) {
            Some(r) => out.push(r),
            None => break,
        }
        pos += 8 + len;
    }
    (out, pos)
}

/// CRC-32 (IEEE 802.3, reflected, poly 0xEDB88320).
pub(crate) fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        t
    });
    let mut crc = !0u32;
    for &b in data {
        crc = table[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Record;

    #[test]
    fn crc_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn torn_tail_is_ignored() {
        let mut buf = Vec::new();
        encode_record(&Record::DeleteQueue { name: "a".into() }, &mut buf);
        let good = buf.len();
        encode_record(&Record::DeleteQueue { name: "b".into() }, &mut buf);
        buf.truncate(buf.len() - 1);
        let (recs, len) = decode_all(&buf);
        assert_eq!(recs.len(), 1);
        assert_eq!(len, good);
    }
}
