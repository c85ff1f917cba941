//! MuJoCo's messages go to stderr, each distinct one once per process, instead of MuJoCo's
//! default `MUJOCO_LOG.TXT` in the working directory (Gymnasium's HalfCheetah XML alone
//! triggers a deprecation warning on every load).

use std::collections::HashSet;
use std::sync::{Mutex, Once};

use mujoco_rs::prelude::{MjLogMessage, MjtLogLevel, set_log_handler};

static INSTALL: Once = Once::new();
static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Install the handler; called before any model is loaded.
pub(crate) fn install() {
    // SAFETY: every use of MuJoCo in this crate starts with `load_model`, which calls this
    // first; `Once` makes any concurrent caller wait until the handler is in place, so no
    // other thread uses MuJoCo while it is installed.
    INSTALL.call_once(|| unsafe { set_log_handler(to_stderr) });
}

fn to_stderr(message: &MjLogMessage) {
    let level = match message.level() {
        MjtLogLevel::mjLOG_DEBUG | MjtLogLevel::mjLOG_INFO => return,
        MjtLogLevel::mjLOG_WARNING => "warning",
        MjtLogLevel::mjLOG_ERROR => "error",
    };
    let text = match message.body().filter(|b| !b.is_empty()) {
        Some(body) => format!("{}: {body}", message.subject()),
        None => message.subject().to_string(),
    };
    // Never panic here: the handler runs across the FFI boundary.
    let first_time = match SEEN.lock() {
        Ok(mut seen) => seen.get_or_insert_with(HashSet::new).insert(text.clone()),
        Err(_) => true,
    };
    if first_time || level == "error" {
        eprintln!("MuJoCo {level}: {text}");
    }
}
