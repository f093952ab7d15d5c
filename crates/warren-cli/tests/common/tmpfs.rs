//! A small tmpfs that a test mounts for itself (and unmounts, also on failure), to fill
//! a disk for real. Mounting needs root (or CAP_SYS_ADMIN); without it the test fails
//! saying so, never passes.
//!
//! A module of `tests/common` (`mod common; use common::tmpfs;`).
#![allow(dead_code)]

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The size of each tmpfs.
pub const SIZE: &str = "8m";

/// A tmpfs mounted for one test, unmounted (and its mount point removed) on drop.
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts an [`SIZE`] tmpfs under the temporary directory, named after `name`.
    pub fn mount(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("warren-{name}-{}", std::process::id()));
        // A mount left by an earlier, aborted run of this test.
        let _ = Command::new("umount")
            .arg(&dir)
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={SIZE}"), "tmpfs"])
            .arg(&dir)
            .output();
        let ok = matches!(&out, Ok(o) if o.status.success());
        if !ok {
            let _ = std::fs::remove_dir(&dir);
            let why = match out {
                Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            // Fails with or without CI: a full-disk test that cannot fill a disk proves
            // nothing and must not pass.
            panic!(
                "this test mounts an 8 MiB tmpfs and needs root (or CAP_SYS_ADMIN); \
                 `mount -t tmpfs` failed: {why}"
            );
        }
        Tmpfs { dir }
    }

    /// Where the broker keeps its data.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The file that takes up space, to be freed later.
    pub fn ballast(&self) -> PathBuf {
        self.dir.join("ballast")
    }

    /// Writes a ballast file of `bytes` (or until the disk is full if `None`); returns
    /// how many bytes it took.
    pub fn fill(&self, bytes: Option<usize>) -> usize {
        let mut f = File::create(self.ballast()).expect("create the ballast file");
        let chunk = vec![0xBAu8; 64 * 1024];
        let mut written = 0;
        // Bounded: at most 16 MiB on an 8 MiB disk.
        while written < bytes.unwrap_or(16 << 20) {
            let n = chunk.len().min(bytes.unwrap_or(usize::MAX) - written);
            match f.write(&chunk[..n]) {
                Ok(0) | Err(_) => break,
                Ok(n) => written += n,
            }
        }
        let _ = f.sync_all();
        written
    }

    /// Deletes the ballast file.
    pub fn free_ballast(&self) {
        std::fs::remove_file(self.ballast()).expect("delete the ballast file");
    }

    /// Free bytes on the tmpfs, as `df` says.
    pub fn available(&self) -> u64 {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&self.dir)
            .output()
            .expect("df runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}
