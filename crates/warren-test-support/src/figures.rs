//! The figures a test measures (counts, wall times, RSS), printed with `--nocapture`
//! and, when `WARREN_FIGURES` names a file, appended to it, so that `scripts/test.sh`
//! prints every figure of the run it made at the end (the README's and
//! `docs/reliability.md`'s tables are read from there).

use std::io::Write;

/// Print `line` and append it to `$WARREN_FIGURES` (if set).
pub fn report(line: &str) {
    println!("{line}");
    let Ok(path) = std::env::var("WARREN_FIGURES") else {
        return;
    };
    let test = std::thread::current()
        .name()
        .unwrap_or("?")
        .rsplit("::")
        .next()
        .unwrap_or("?")
        .to_owned();
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        // One write per line (O_APPEND), so parallel tests do not interleave.
        .and_then(|mut f| f.write_all(format!("- {test}: {line}\n").as_bytes()));
    if let Err(e) = appended {
        panic!("cannot append to WARREN_FIGURES={path}: {e}");
    }
}
