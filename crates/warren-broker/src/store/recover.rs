//! Opening the log: replay every valid record (past any damage, see `codec.rs`),
//! keep the bytes that could not be read aside in a file, then compact the live
//! state into a fresh log (tmp file + fsync + rename). Nothing that could not be
//! read is overwritten or truncated: if keeping it aside fails, or the rewrite fails
//! (a full disk), the broker goes on appending to the log as it is.
//!
//! A file of kept-aside bytes, `warren.log.damaged-<unix ms>`, holds one entry per
//! damaged range: its offset in the log (u64, big-endian), its length (u64,
//! big-endian), then the bytes.

use super::codec::{decode_all, encode_record};
use super::{apply, snapshot, Recovered, LOG_FILE};
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The compacting rewrite's file until it is renamed over the log.
const TMP_FILE: &str = "warren.log.tmp";

/// The log, open for appending, and the state it holds.
pub(super) struct Opened {
    /// The log file, open for appending.
    pub(super) file: File,
    /// Its length.
    pub(super) len: u64,
    /// The live state replayed from it.
    pub(super) state: Recovered,
    /// The highest message id seen.
    pub(super) max_id: u64,
    /// The log was rewritten compacted (else it is appended to as it was).
    pub(super) compacted: bool,
}

/// Replay the log in `dir` (an absent log is empty) and open it for appending.
pub(super) fn open_log(dir: &Path) -> std::io::Result<Opened> {
    let path = dir.join(LOG_FILE);
    // A rewrite that was never renamed into place is not part of the log.
    let _ = std::fs::remove_file(dir.join(TMP_FILE));
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let decoded = decode_all(&data);
    let mut state = Recovered::default();
    let mut max_id = 0;
    let damaged = decoded.damaged.clone();
    if !damaged.is_empty() {
        tracing::error!(
            path = %path.display(),
            ranges = damaged.len(),
            bytes = decoded.damaged_bytes(),
            recovered = decoded.records.len(),
            "the store log has unreadable bytes; the valid records around them are recovered"
        );
    }
    for r in decoded.records {
        apply(&mut state, r, &mut max_id);
    }
    let kept = damaged.is_empty()
        || match keep_aside(dir, &data, &damaged) {
            Ok(aside) => {
                tracing::warn!(file = %aside.display(), "kept the unreadable bytes of the store log aside");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot keep the unreadable bytes aside; the log is kept as it is");
                false
            }
        };
    if kept {
        match write_snapshot(dir, &state) {
            Ok((file, len)) => {
                return Ok(Opened {
                    file,
                    len,
                    state,
                    max_id,
                    compacted: true,
                })
            }
            Err(e) => tracing::warn!(
                error = %e,
                "cannot compact the store log at startup; appending to it as it is"
            ),
        }
    }
    let file = OpenOptions::new().create(true).append(true).open(&path)?;
    Ok(Opened {
        file,
        len: data.len() as u64,
        state,
        max_id,
        compacted: false,
    })
}

/// Write the `damaged` ranges of `data` to a new file in `dir` (fsynced); returns
/// its path. A partial file is removed.
fn keep_aside(dir: &Path, data: &[u8], damaged: &[Range<usize>]) -> std::io::Result<PathBuf> {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let mut path = dir.join(format!("{LOG_FILE}.damaged-{ms}"));
    let mut n = 1;
    while path.exists() {
        path = dir.join(format!("{LOG_FILE}.damaged-{ms}.{n}"));
        n += 1;
    }
    let mut buf = Vec::new();
    for r in damaged {
        buf.extend_from_slice(&(r.start as u64).to_be_bytes());
        buf.extend_from_slice(&(r.len() as u64).to_be_bytes());
        buf.extend_from_slice(&data[r.clone()]);
    }
    let written = File::create_new(&path).and_then(|mut f| {
        f.write_all(&buf)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    sync_dir(dir);
    Ok(path)
}

/// Rewrite the live state as a fresh log (tmp file + fsync + rename). Returns the
/// new log, open for appending (the tmp file's own handle, so nothing can fail once
/// it is renamed into place), and its length. On failure the log is as it was and
/// the tmp file is removed.
pub(super) fn write_snapshot(dir: &Path, rec: &Recovered) -> std::io::Result<(File, u64)> {
    let tmp = dir.join(TMP_FILE);
    let path = dir.join(LOG_FILE);
    let mut buf = Vec::new();
    for r in snapshot(rec) {
        encode_record(&r, &mut buf);
    }
    let _ = std::fs::remove_file(&tmp);
    let written = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(&buf)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            Ok(f)
        });
    match written {
        Ok(file) => {
            sync_dir(dir);
            Ok((file, buf.len() as u64))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Make a rename or a new file in `dir` durable (best effort).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Record;
    use amq_protocol::types::FieldTable;
    use bytes::Bytes;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("warren-recover-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A log declaring queue `q` and publishing ids `1..=n`; returns it and the
    /// offset where each publish starts.
    fn log(n: u64) -> (Vec<u8>, Vec<usize>) {
        let mut buf = Vec::new();
        encode_record(
            &Record::DeclareQueue {
                name: "q".into(),
                auto_delete: false,
                arguments: FieldTable::default(),
            },
            &mut buf,
        );
        let mut starts = Vec::new();
        for id in 1..=n {
            starts.push(buf.len());
            encode_record(
                &Record::Publish {
                    queue: "q".into(),
                    id,
                    exchange: "".into(),
                    routing_key: "q".into(),
                    raw_props: Bytes::from_static(&[0, 0]),
                    body: Bytes::from(vec![b'x'; 200]),
                },
                &mut buf,
            );
        }
        (buf, starts)
    }

    fn ids(state: &Recovered) -> Vec<u64> {
        state.messages["q"].keys().copied().collect()
    }

    /// The files whose name starts with `prefix` in `dir`.
    fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn mid_log_damage_is_kept_aside_and_the_records_after_it_are_recovered() {
        let dir = temp_dir("mid");
        let (mut buf, starts) = log(6);
        let (from, to) = (starts[2], starts[3]);
        buf[from + 20] ^= 0x55;
        std::fs::write(dir.join(LOG_FILE), &buf).unwrap();

        let opened = open_log(&dir).unwrap();
        assert_eq!(ids(&opened.state), vec![1, 2, 4, 5, 6]);
        assert!(opened.compacted);
        assert_eq!(opened.max_id, 6);

        // The damaged record's bytes, with their offset and length, are in one file.
        let aside = files(&dir, "warren.log.damaged-");
        assert_eq!(aside.len(), 1, "{aside:?}");
        let kept = std::fs::read(&aside[0]).unwrap();
        assert_eq!(&kept[..8], &(from as u64).to_be_bytes());
        assert_eq!(&kept[8..16], &((to - from) as u64).to_be_bytes());
        assert_eq!(&kept[16..], &buf[from..to]);

        // The rewritten log reads clean.
        drop(opened);
        let again = open_log(&dir).unwrap();
        assert_eq!(ids(&again.state), vec![1, 2, 4, 5, 6]);
        assert_eq!(files(&dir, "warren.log.damaged-").len(), 1, "no new damage");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_tail_is_kept_aside_too() {
        let dir = temp_dir("tail");
        let (mut buf, starts) = log(3);
        buf.truncate(starts[2] + 30);
        std::fs::write(dir.join(LOG_FILE), &buf).unwrap();
        let opened = open_log(&dir).unwrap();
        assert_eq!(ids(&opened.state), vec![1, 2]);
        let aside = files(&dir, "warren.log.damaged-");
        assert_eq!(aside.len(), 1);
        assert_eq!(std::fs::read(&aside[0]).unwrap().len(), 16 + 30);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn appending_to_a_damaged_log_loses_nothing_after_the_damage() {
        // What the broker does when it cannot rewrite at open: it appends to the log
        // as it is, after the damage.
        let dir = temp_dir("append");
        let (mut buf, starts) = log(3);
        buf.truncate(starts[2] + 30);
        let mut more = Vec::new();
        encode_record(
            &Record::Remove {
                queue: "q".into(),
                id: 1,
            },
            &mut more,
        );
        buf.extend_from_slice(&more);
        std::fs::write(dir.join(LOG_FILE), &buf).unwrap();
        let opened = open_log(&dir).unwrap();
        assert_eq!(
            ids(&opened.state),
            vec![2],
            "1 removed after the torn record"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_leftover_rewrite_is_removed_and_an_absent_log_is_empty() {
        let dir = temp_dir("tmp");
        std::fs::write(dir.join(TMP_FILE), b"half a rewrite").unwrap();
        let opened = open_log(&dir).unwrap();
        assert!(opened.state.queues.is_empty());
        assert_eq!(opened.len, 0);
        assert!(!dir.join(TMP_FILE).exists());
        assert!(files(&dir, "warren.log.damaged-").is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
