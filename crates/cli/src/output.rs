//! One place that decides between text and `--json` output.

use serde::Serialize;

pub struct Output {
    pub json: bool,
}

impl Output {
    /// Print a command's result: the JSON object under `--json`, else the text form.
    pub fn report<T: Serialize>(&self, value: &T, text: impl FnOnce() -> String) {
        if self.json {
            println!("{}", serde_json::to_string(value).expect("serialisable report"));
        } else {
            println!("{}", text());
        }
    }

    pub fn error(&self, err: &anyhow::Error) {
        eprintln!("error: {err:#}");
        if self.json {
            println!("{}", serde_json::json!({ "error": format!("{err:#}") }));
        }
    }
}
