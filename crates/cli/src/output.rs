//! One place that decides between text and `--json` output.

use serde::Serialize;

pub struct Output {
    pub json: bool,
}

impl Output {
    /// Print a command's result: the JSON object under `--json`, else the text form.
    pub fn report<T: Serialize>(&self, value: &T, text: impl FnOnce() -> String) {
        if self.json {
            emit(&serde_json::to_string(value).expect("serialisable report"));
        } else {
            emit(&text());
        }
    }

    pub fn error(&self, err: &anyhow::Error) {
        eprintln!("error: {err:#}");
        // The command printed its own report already: a second JSON object would break it.
        if self.json && !err.is::<Reported>() {
            emit(&serde_json::json!({ "error": format!("{err:#}") }).to_string());
        }
    }
}

/// One line on stdout. A reader that went away (a closed pipe: the caller was interrupted)
/// is reported on stderr instead of panicking like `println!`; the work is done and saved.
pub fn emit(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        eprintln!("could not write the result to stdout ({e}); it was: {line}");
    }
}

/// A failure whose report (with `--json`, its one JSON object) was already printed; only the
/// message goes to stderr and the exit code is non-zero.
#[derive(Debug)]
pub struct Reported(pub String);

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Reported {}
