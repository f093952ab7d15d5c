//! The log record format: each record is `len: u32 | crc32: u32 | payload`, where
//! the payload is a tag byte and the record's fields, and must be consumed exactly.
//!
//! Decoding never stops at damage: a torn or corrupt record is reported as a damaged
//! byte range and decoding resynchronises on the next offset where a whole, valid
//! record starts (length in range, known tag, fields that fill the payload exactly,
//! matching CRC), so damage can never hide the good records written after it.

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
    // Trailing bytes: not a record this encoder wrote.
    c.data.is_empty().then_some(r)
}

/// The highest record tag.
const MAX_TAG: u8 = 8;

/// The record framed at `pos` and the offset after it, if a whole valid one starts
/// there.
fn record_at(data: &[u8], pos: usize) -> Option<(Record, usize)> {
    let head = data.get(pos..pos.checked_add(8)?)?;
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    let end = (pos + 8).checked_add(len)?;
    let p = data.get(pos + 8..end)?;
    // Cheap checks first: while resynchronising this runs at every offset.
    if !(1..=MAX_TAG).contains(p.first()?) || crc32(p) != crc {
        return None;
    }
    Some((decode_record(p)?, end))
}

/// What a log holds: its valid records in order, and the byte ranges that could not
/// be read (a torn tail, corruption in mid-log), in order.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    /// The valid records.
    pub(crate) records: Vec<Record>,
    /// Damaged byte ranges, each ending where the next valid record (or the data)
    /// starts (or ends).
    pub(crate) damaged: Vec<std::ops::Range<usize>>,
}

impl Decoded {
    /// Bytes that could not be read.
    pub(crate) fn damaged_bytes(&self) -> usize {
        self.damaged.iter().map(|r| r.len()).sum()
    }
}

/// Decode every valid record of `data`, skipping past damage (see the module doc).
pub(crate) fn decode_all(data: &[u8]) -> Decoded {
    let mut out = Decoded::default();
    let mut damage_from = None;
    let mut pos = 0;
    while pos < data.len() {
        match record_at(data, pos) {
            Some((r, next)) => {
                if let Some(from) = damage_from.take() {
                    out.damaged.push(from..pos);
                }
                out.records.push(r);
                pos = next;
            }
            None => {
                damage_from.get_or_insert(pos);
                pos += 1;
            }
        }
    }
    if let Some(from) = damage_from {
        out.damaged.push(from..data.len());
    }
    out
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

    fn publish(id: u64, body: &[u8]) -> Record {
        Record::Publish {
            queue: "q".into(),
            id,
            exchange: "".into(),
            routing_key: "q".into(),
            raw_props: Bytes::from_static(&[0, 0]),
            body: Bytes::copy_from_slice(body),
        }
    }

    /// The ids of the Publish records.
    fn ids(d: &Decoded) -> Vec<u64> {
        d.records
            .iter()
            .filter_map(|r| match r {
                Record::Publish { id, .. } => Some(*id),
                _ => None,
            })
            .collect()
    }

    /// Encodes publishes `0..n` with 100-byte bodies; returns the log and each
    /// record's start offset.
    fn log(n: u64) -> (Vec<u8>, Vec<usize>) {
        let mut buf = Vec::new();
        let mut starts = Vec::new();
        for id in 0..n {
            starts.push(buf.len());
            encode_record(&publish(id, &[id as u8; 100]), &mut buf);
        }
        (buf, starts)
    }

    #[test]
    fn torn_tail_is_reported_and_the_records_before_it_are_kept() {
        let mut buf = Vec::new();
        encode_record(&Record::DeleteQueue { name: "a".into() }, &mut buf);
        let good = buf.len();
        encode_record(&Record::DeleteQueue { name: "b".into() }, &mut buf);
        buf.truncate(buf.len() - 1);
        let d = decode_all(&buf);
        assert_eq!(d.records.len(), 1);
        assert_eq!(d.damaged, vec![good..buf.len()]);
    }

    #[test]
    fn a_clean_log_has_no_damage() {
        let (buf, _) = log(50);
        let d = decode_all(&buf);
        assert_eq!(ids(&d), (0..50).collect::<Vec<_>>());
        assert!(d.damaged.is_empty());
        assert!(decode_all(&[]).records.is_empty());
    }

    #[test]
    fn damage_in_mid_log_hides_only_the_damaged_record() {
        let (mut buf, starts) = log(10);
        // One flipped byte in record 4's body.
        buf[starts[4] + 60] ^= 0xFF;
        let d = decode_all(&buf);
        assert_eq!(ids(&d), vec![0, 1, 2, 3, 5, 6, 7, 8, 9]);
        assert_eq!(d.damaged, vec![starts[4]..starts[5]]);
    }

    #[test]
    fn a_torn_record_in_mid_log_does_not_hide_the_records_written_after_it() {
        // Records 0..3, then half of record 3 (a failed write), then records 4..8
        // appended after it, as a writer that did not cut the torn bytes would.
        let (head, starts) = log(3);
        let mut torn = Vec::new();
        encode_record(&publish(3, &[3; 100]), &mut torn);
        torn.truncate(torn.len() / 2);
        let mut tail = Vec::new();
        for id in 4..8 {
            encode_record(&publish(id, &[id as u8; 100]), &mut tail);
        }
        let buf = [head.clone(), torn.clone(), tail].concat();
        let d = decode_all(&buf);
        assert_eq!(ids(&d), vec![0, 1, 2, 4, 5, 6, 7]);
        assert_eq!(d.damaged, vec![head.len()..head.len() + torn.len()]);
        assert_eq!(d.damaged_bytes(), torn.len());
        assert_eq!(starts.len(), 3);
    }

    #[test]
    fn zeroed_and_garbage_regions_are_skipped() {
        let (a, _) = log(3);
        let mut b = Vec::new();
        encode_record(&Record::DeleteQueue { name: "z".into() }, &mut b);
        let garbage: Vec<u8> = (0..777u32).map(|i| (i * 31 % 251) as u8).collect();
        let buf = [vec![0u8; 4096], a, garbage, b, vec![0u8; 9]].concat();
        let d = decode_all(&buf);
        assert_eq!(ids(&d), vec![0, 1, 2]);
        assert!(matches!(d.records.last(), Some(Record::DeleteQueue { name }) if name == "z"));
        assert_eq!(d.damaged.len(), 3, "{:?}", d.damaged);
        assert_eq!(d.damaged[0], 0..4096);
        assert_eq!(d.damaged[2].end, buf.len());
    }

    #[test]
    fn a_payload_with_trailing_bytes_is_not_a_record() {
        let mut p = Vec::new();
        p.push(4);
        put_bytes(&mut p, b"q");
        assert!(decode_record(&p).is_some());
        p.push(0);
        assert!(decode_record(&p).is_none());
    }

    mod random_damage {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            /// Overwriting any span of a log with anything loses at most the records
            /// that overlap the span; every other record is decoded.
            #[test]
            fn damage_loses_only_the_records_it_touches(
                n in 1u64..40,
                at in any::<prop::sample::Index>(),
                junk in prop::collection::vec(any::<u8>(), 1..300),
            ) {
                let (mut buf, starts) = log(n);
                let from = at.index(buf.len());
                let to = (from + junk.len()).min(buf.len());
                buf[from..to].copy_from_slice(&junk[..to - from]);
                let d = decode_all(&buf);
                let got = ids(&d);
                for id in 0..n as usize {
                    let start = starts[id];
                    let end = starts.get(id + 1).copied().unwrap_or(buf.len());
                    if end <= from || start >= to {
                        prop_assert!(got.contains(&(id as u64)), "record {} lost", id);
                    }
                }
            }
        }
    }
}
