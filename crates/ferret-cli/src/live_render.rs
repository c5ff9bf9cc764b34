//! Rendering helpers shared by `ferret dump` and `ferret stalls`.

use crate::fmt;

/// "thread \"name\" (tid N)", "thread (tid N)" or "task (no thread polls it)".
pub fn who(thread_name: Option<&str>, tid: Option<u64>) -> String {
    match (thread_name, tid) {
        (Some(n), Some(t)) => format!("thread \"{}\" (tid {t})", fmt::term_safe(n)),
        (None, Some(t)) => format!("thread (tid {t})"),
        _ => "task (no thread polls it)".into(),
    }
}

/// `key=value` pairs of a JSON object of tags (strings quoted).
pub fn tags_text(tags: Option<&serde_json::Value>) -> String {
    let Some(serde_json::Value::Object(m)) = tags else {
        return String::new();
    };
    m.iter()
        .map(|(k, v)| format!("{}={}", fmt::term_safe(k), fmt::term_safe(&v.to_string())))
        .collect::<Vec<_>>()
        .join("  ")
}
