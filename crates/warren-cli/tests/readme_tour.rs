//! The README's quick tour, run line by line: the shell lines between
//! `<!-- readme-tour:begin -->` and `<!-- readme-tour:end -->` in README.md, in order,
//! each with `bash -c` and the `warren` under test first on `PATH`, and each checked
//! against its own comment:
//!
//! - `prints "TEXT"`, `prints WORD` or `prints a N-digit number`: on stdout (for a line
//!   ending in `&`, its first line, after which it must still be running);
//! - `says TEXT` (up to a comma or a colon): on stderr;
//! - `exit N`: the exit code (the last stdout line when the line runs `echo $?`);
//!   a line without it must exit 0.
//!
//! The tour's first line starts the embedded broker; the test runs it on a free port
//! (`127.0.0.1:0`) instead of 5672, then points every later line at it (its
//! `127.0.0.1:5672` and `$AMQP_URL`). A line whose comment says `(not run by the test:
//! WHY)` is left out, visibly: the summary lists it. Background lines are stopped
//! (SIGTERM, then SIGKILL) when the test ends, however it ends.

mod common;
use common::broker_process;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use broker_process::{parse_ready_line, read_first_line, WARREN};

/// The markers around the tour in README.md.
const BEGIN: &str = "<!-- readme-tour:begin -->";
const END: &str = "<!-- readme-tour:end -->";
/// What a line's comment says to keep it out of the test.
const NOT_RUN: &str = "(not run by the test:";
/// How long one foreground line may take.
const LINE_WITHIN: Duration = Duration::from_secs(60);

/// One shell line of the tour.
#[derive(Debug, Clone, PartialEq)]
struct TourLine {
    /// Its line number in README.md, for messages.
    number: usize,
    /// The shell command, without the comment and without a trailing `&`.
    command: String,
    /// It ended in `&`: it keeps running.
    background: bool,
    /// Why the test leaves it out, if it does.
    not_run: Option<String>,
    expect: Expect,
}

/// What a line's comment says it does.
#[derive(Debug, Clone, Default, PartialEq)]
struct Expect {
    prints: Option<Printed>,
    says: Option<String>,
    exit: Option<i32>,
}

#[derive(Debug, Clone, PartialEq)]
enum Printed {
    /// This text, somewhere on stdout.
    Text(String),
    /// stdout is a number of this many decimal digits.
    Digits(usize),
}

/// The tour's lines, from README.md's text.
fn tour_lines(readme: &str) -> Vec<TourLine> {
    let begin = readme
        .find(BEGIN)
        .expect("README.md marks the tour's beginning");
    let end = readme.find(END).expect("README.md marks the tour's end");
    let first_line = readme[..begin].lines().count() + 1;
    readme[begin..end]
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with("```") && !l.starts_with("<!--"))
        .map(|(i, l)| parse_line(first_line + i, l))
        .collect()
}

fn parse_line(number: usize, line: &str) -> TourLine {
    let (command, comment) = split_comment(line);
    let command = command.trim();
    let (command, background) = match command.strip_suffix('&') {
        Some(c) => (c.trim(), true),
        None => (command, false),
    };
    let not_run = comment.find(NOT_RUN).map(|i| {
        let why = &comment[i + NOT_RUN.len()..];
        why.split(')').next().unwrap_or(why).trim().to_owned()
    });
    TourLine {
        number,
        command: command.to_owned(),
        background,
        not_run,
        expect: parse_expect(comment),
    }
}

/// The command and its comment: the first ` #` outside quotes.
fn split_comment(line: &str) -> (&str, &str) {
    let mut quote = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if previous.is_whitespace() => return (&line[..i], &line[i + 1..]),
            _ => {}
        }
        previous = c;
    }
    (line, "")
}

fn parse_expect(comment: &str) -> Expect {
    let mut expect = Expect::default();
    if let Some(i) = comment.find("prints ") {
        let rest = &comment[i + "prints ".len()..];
        expect.prints = Some(if let Some(quoted) = rest.strip_prefix('"') {
            Printed::Text(quoted.split('"').next().unwrap_or("").to_owned())
        } else if let Some(digits) = rest
            .strip_prefix("a ")
            .and_then(|r| r.split_once("-digit number"))
            .and_then(|(n, _)| n.parse().ok())
        {
            Printed::Digits(digits)
        } else {
            let word = rest.split_whitespace().next().unwrap_or("");
            Printed::Text(word.trim_end_matches([':', ',', ';']).to_owned())
        });
    }
    if let Some(i) = comment.find("says ") {
        let rest = &comment[i + "says ".len()..];
        let end = rest.find([',', ':']).unwrap_or(rest.len());
        expect.says = Some(rest[..end].trim().to_owned());
    }
    if let Some(i) = comment.find("exit ") {
        let digits: String = comment[i + "exit ".len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        expect.exit = digits.parse().ok();
    }
    expect
}

/// The tour's background processes, stopped when the test ends.
#[derive(Default)]
struct Background(Vec<Child>);

impl Drop for Background {
    fn drop(&mut self) {
        for child in self.0.iter_mut().rev() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            for _ in 0..100 {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `bash -c command` with the `warren` under test first on `PATH`.
fn shell(command: &str, amqp_url: Option<&str>) -> Command {
    let bin = Path::new(WARREN).parent().expect("warren has a directory");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin.to_path_buf()];
    paths.extend(std::env::split_paths(&path));
    let mut shell = Command::new("bash");
    shell
        .args(["--norc", "--noprofile", "-c", command])
        .env("PATH", std::env::join_paths(paths).expect("PATH joins"))
        .env_remove("AMQP_URL")
        .stdin(Stdio::null());
    if let Some(url) = amqp_url {
        shell.env("AMQP_URL", url);
    }
    shell
}

/// Runs a foreground line to its end, within [`LINE_WITHIN`].
fn run_to_end(mut command: Command, what: &str) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash runs");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(LINE_WITHIN) {
        Ok(out) => out.expect("the line's output reads"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("{what}: still running after {LINE_WITHIN:?}");
        }
    }
}

/// Checks `stdout` against what the line says it prints.
fn check_printed(what: &str, printed: &Printed, stdout: &str) {
    match printed {
        Printed::Text(text) => assert!(
            stdout.contains(text.as_str()),
            "{what}: prints {text:?}, got {stdout:?}"
        ),
        Printed::Digits(n) => {
            let number = stdout.lines().next().unwrap_or("").trim();
            assert!(
                number.len() == *n && number.bytes().all(|b| b.is_ascii_digit()),
                "{what}: prints a {n}-digit number, got {number:?}"
            );
        }
    }
}

/// Runs one foreground line and checks it.
fn run_foreground(line: &TourLine, command: &str, amqp_url: Option<&str>) {
    let what = format!("README.md:{} `{}`", line.number, line.command);
    let out = run_to_end(shell(command, amqp_url), &what);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let wanted = line.expect.exit.unwrap_or(0);
    if command.contains("echo $?") {
        let code = stdout.lines().last().unwrap_or("").trim();
        assert_eq!(
            code,
            wanted.to_string(),
            "{what}: exit {wanted}; stderr {stderr}"
        );
    } else {
        assert_eq!(
            out.status.code(),
            Some(wanted),
            "{what}: exit {wanted}; stderr {stderr}"
        );
    }
    if let Some(printed) = &line.expect.prints {
        check_printed(&what, printed, &stdout);
    }
    if let Some(says) = &line.expect.says {
        assert!(
            stderr.contains(says.as_str()),
            "{what}: says {says:?}, got {stderr:?}"
        );
        assert_eq!(
            stderr.lines().count(),
            1,
            "{what}: one line on stderr: {stderr}"
        );
    }
}

/// Starts one background line, waits for its first stdout line and checks it.
fn run_background(line: &TourLine, command: &str, amqp_url: Option<&str>) -> (Child, String) {
    let what = format!("README.md:{} `{}`", line.number, line.command);
    let mut child = shell(&format!("exec {command}"), amqp_url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("bash runs");
    let first = child
        .stdout
        .take()
        .map(read_first_line)
        .unwrap_or_else(|| Err("no stdout".to_owned()));
    let first = match first {
        Ok(first) => first,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: no first line: {e}");
        }
    };
    if let Some(printed) = &line.expect.prints {
        check_printed(&what, printed, &first);
    }
    assert!(
        matches!(child.try_wait(), Ok(None)),
        "{what}: keeps running"
    );
    (child, first)
}

#[test]
fn every_line_of_the_readme_tour_does_what_it_says() {
    let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&readme_path).expect("README.md reads");
    let lines = tour_lines(&readme);
    let mut background = Background::default();
    // Before the tour's broker is up, its 127.0.0.1:5672 becomes a free port.
    let mut address = "127.0.0.1:0".to_owned();
    let mut amqp_url: Option<String> = None;
    let (mut ran, mut not_run) = (0, Vec::new());
    for line in &lines {
        if let Some(why) = &line.not_run {
            not_run.push(format!(
                "README.md:{} `{}` ({why})",
                line.number, line.command
            ));
            continue;
        }
        let command = line.command.replace("127.0.0.1:5672", &address);
        if line.background {
            let (child, first) = run_background(line, &command, amqp_url.as_deref());
            background.0.push(child);
            if command.starts_with("warren broker") {
                let addr = parse_ready_line(&first)
                    .unwrap_or_else(|| panic!("the tour's broker names its address: {first:?}"));
                address = addr.to_string();
                amqp_url = Some(format!("amqp://guest:guest@{addr}/%2f"));
            }
        } else {
            run_foreground(line, &command, amqp_url.as_deref());
        }
        ran += 1;
    }
    println!("README tour: {ran} lines run; not run: {not_run:#?}");
    assert!(amqp_url.is_some(), "the tour starts a broker");
    assert!(ran >= 15, "the tour has its lines: {lines:#?}");
    assert_eq!(
        not_run.len(),
        1,
        "only the cluster line is left out: {not_run:#?}"
    );
}

#[test]
fn comments_parse_into_expectations() {
    let l = parse_line(
        7,
        r#"warren call --method add '{"a":2}' ; echo $?   # says no route, exit 5, fast"#,
    );
    assert_eq!(l.command, r#"warren call --method add '{"a":2}' ; echo $?"#);
    assert_eq!(
        l.expect,
        Expect {
            prints: None,
            says: Some("no route".into()),
            exit: Some(5)
        }
    );
    let l = parse_line(
        8,
        r#"warren serve fib &   # prints " [x] Awaiting": the worker"#,
    );
    assert!(l.background && l.command == "warren serve fib");
    assert_eq!(l.expect.prints, Some(Printed::Text(" [x] Awaiting".into())));
    let l = parse_line(9, "warren call 1000   # prints a 209-digit number: exact");
    assert_eq!(l.expect.prints, Some(Printed::Digits(209)));
    let l = parse_line(
        10,
        "warren x &   # (not run by the test: needs a cluster) a queue",
    );
    assert_eq!(l.not_run.as_deref(), Some("needs a cluster"));
}

#[test]
fn broker_ready_lines_parse() {
    let line = " [*] Warren broker listening on 127.0.0.1:40123 (memory limit 64.0 MiB)\n";
    assert_eq!(
        parse_ready_line(line),
        Some(std::net::SocketAddr::from(([127, 0, 0, 1], 40123)))
    );
    assert_eq!(parse_ready_line("error: address in use"), None);
}
