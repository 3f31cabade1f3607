//! Behavioural features of a run (which calls returned what, which
//! callbacks and errors happened), recorded only when asked for. The
//! network targets' coverage is noisy (random keys, connection ids and ping
//! payloads take different paths on every run), so the committed corpora of
//! those targets are chosen by a greedy set cover over these features from
//! the libFuzzer-minimized corpus (`examples/select.rs`), which keeps them
//! small enough to replay in `cargo test`.

use std::cell::RefCell;
use std::collections::BTreeSet;

thread_local! {
    static FEATURES: RefCell<Option<BTreeSet<String>>> = const { RefCell::new(None) };
}

/// Record a feature, if recording.
pub fn note(feature: impl FnOnce() -> String) {
    FEATURES.with(|f| {
        if let Some(set) = f.borrow_mut().as_mut() {
            set.insert(feature());
        }
    });
}

/// Run `f` while recording; returns the features it noted.
pub fn record(f: impl FnOnce()) -> BTreeSet<String> {
    FEATURES.with(|s| *s.borrow_mut() = Some(BTreeSet::new()));
    f();
    FEATURES.with(|s| s.borrow_mut().take()).unwrap_or_default()
}

/// A value's `Debug` shape without numbers and quoted text, e.g.
/// `Err(Stream(Reset(9)))` becomes `Err(Stream(Reset()))`.
pub fn shape(value: &impl std::fmt::Debug) -> String {
    let text = format!("{value:?}");
    let mut out = String::with_capacity(text.len());
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            _ if quoted => {}
            c if c.is_ascii_digit() => {}
            c => out.push(c),
        }
    }
    out.truncate(120);
    out
}
