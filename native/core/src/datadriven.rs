//! Data-driven test scripts (etcd-io/raft's `datadriven`): the runner the state machines' tests share.
//!
//! A script is a text file: a sequence of blocks separated by blank lines; `#` lines between blocks are
//! comments. A block is one or more command lines, a `----` line, then the expected output (never blank
//! lines). [`run_dir`] runs every `testdata/<dir>/*.txt` file on a fresh [`Script`] and fails with every
//! mismatch; with `REWRITE=1` it writes the actual outputs into the files instead (then review the diff).
//!
//! A command line is a word and `name=value` arguments ([`Args`]); every argument must be used, so a typo
//! in a script fails rather than being ignored. Values take `\xNN` escapes ([`unescape`]).
use std::path::{Path, PathBuf};

/// What a script drives: one block of command lines in, its output out.
pub trait Script {
    /// Runs one command; `Some` is a line (or lines) of output.
    fn run(&mut self, args: &mut Args) -> Option<String>;

    /// Runs a block: each command's output on its own lines, or `ok` when none printed anything.
    fn run_block(&mut self, input: &[&str]) -> String {
        let mut out = Vec::new();
        for line in input.iter().filter(|l| !l.starts_with('#')) {
            let mut args = Args::parse(line);
            if let Some(s) = self.run(&mut args) {
                out.push(s);
            }
            args.finish();
        }
        let out = out.join("\n");
        assert!(!out.lines().any(|l| l.trim().is_empty()), "output must not contain blank lines: {out:?}");
        if out.is_empty() {
            "ok".to_string()
        } else {
            out
        }
    }
}

/// Runs every `testdata/<dir>/*.txt` script, each on a script from `new`.
pub fn run_dir<S: Script>(dir: &str, new: impl Fn() -> S) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata").join(dir);
    let rewrite = std::env::var("REWRITE").is_ok_and(|v| v == "1");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no test files in {}", dir.display());

    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("read test file");
        let (rewritten, mut failed) = run_file(&mut new(), path, &text);
        if rewrite {
            if rewritten != text {
                std::fs::write(path, rewritten).expect("rewrite test file");
            }
        } else {
            failures.append(&mut failed);
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n\n{}", failures.len(), failures.join("\n\n"));
}

/// Runs one file; returns its text with actual outputs in place of expected ones, and the mismatches.
fn run_file(script: &mut impl Script, path: &Path, text: &str) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut failures = Vec::new();
    for item in parse(path, text) {
        match item {
            Item::Verbatim(line) => {
                out.push_str(line);
                out.push('\n');
            }
            Item::Case { line, input, expected } => {
                let actual = script.run_block(&input);
                if actual != expected {
                    failures.push(format!(
                        "{}:{line}:\n{}\n--- expected\n{expected}\n--- actual\n{actual}",
                        path.display(),
                        input.join("\n")
                    ));
                }
                for l in &input {
                    out.push_str(l);
                    out.push('\n');
                }
                out.push_str("----\n");
                out.push_str(&actual);
                out.push('\n');
            }
        }
    }
    (out, failures)
}

enum Item<'a> {
    Verbatim(&'a str),
    Case { line: usize, input: Vec<&'a str>, expected: String },
}

fn parse<'a>(path: &Path, text: &'a str) -> Vec<Item<'a>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut items = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim().is_empty() || lines[i].starts_with('#') {
            items.push(Item::Verbatim(lines[i]));
            i += 1;
            continue;
        }
        let start = i;
        while i < lines.len() && lines[i] != "----" {
            assert!(!lines[i].trim().is_empty(), "{}:{}: block ends before its ----", path.display(), i + 1);
            i += 1;
        }
        assert!(i < lines.len(), "{}:{}: block without ----", path.display(), start + 1);
        let input = lines[start..i].to_vec();
        i += 1;
        let out_start = i;
        while i < lines.len() && !lines[i].is_empty() {
            i += 1;
        }
        items.push(Item::Case { line: start + 1, input, expected: lines[out_start..i].join("\n") });
    }
    items
}

/// A command line: the command word and its `name=value` arguments, each of which must be used.
pub struct Args {
    pub line: String,
    pub cmd: String,
    args: Vec<(String, String)>,
}

impl Args {
    pub fn parse(line: &str) -> Args {
        let mut words = line.split_whitespace();
        let cmd = words.next().expect("empty command line").to_string();
        let args = words
            .map(|w| {
                let (k, v) = w.split_once('=').unwrap_or_else(|| panic!("{line:?}: argument {w:?} is not name=value"));
                (k.to_string(), v.to_string())
            })
            .collect();
        Args { line: line.to_string(), cmd, args }
    }

    pub fn take(&mut self, name: &str) -> Option<String> {
        let i = self.args.iter().position(|(k, _)| k == name)?;
        Some(self.args.remove(i).1)
    }

    pub fn string(&mut self, name: &str) -> String {
        self.take(name).unwrap_or_else(|| panic!("{:?}: missing {name}=", self.line))
    }

    pub fn bytes(&mut self, name: &str) -> Vec<u8> {
        unescape(&self.string(name))
    }

    pub fn opt_bytes(&mut self, name: &str) -> Vec<u8> {
        self.take(name).map(|v| unescape(&v)).unwrap_or_default()
    }

    pub fn int(&mut self, name: &str) -> i64 {
        let v = self.string(name);
        v.parse().unwrap_or_else(|_| panic!("{:?}: {name}={v} is not an integer", self.line))
    }

    pub fn opt_int(&mut self, name: &str) -> Option<i64> {
        let v = self.take(name)?;
        Some(v.parse().unwrap_or_else(|_| panic!("{:?}: {name}={v} is not an integer", self.line)))
    }

    /// `name=true`/`name=false`, or `default` when absent.
    pub fn flag(&mut self, name: &str, default: bool) -> bool {
        match self.take(name).as_deref() {
            None => default,
            Some("true") => true,
            Some("false") => false,
            Some(v) => panic!("{:?}: {name}={v} is not true or false", self.line),
        }
    }

    pub fn finish(self) {
        assert!(self.args.is_empty(), "{:?}: unused arguments {:?}", self.line, self.args);
    }
}

/// `\xNN` is one byte, everything else stands for itself (the inverse of the index's `escape_key`).
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') && i + 4 <= b.len() {
            let hex = std::str::from_utf8(&b[i + 2..i + 4]).expect("ascii");
            out.push(u8::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("bad escape in {s:?}")));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}
