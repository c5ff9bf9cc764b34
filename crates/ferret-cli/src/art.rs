//! Tree indentation art, bounded: the `├──`/`└──`/`│` prefix grows for
//! [`ART_DEPTH`] levels and then stops; deeper lines carry their depth as a
//! number (`[40] name`). A line's prefix is therefore at most
//! `4 × ART_DEPTH` characters, and a tree's text is linear in its lines
//! however deep it is (a 100,000-deep chain would otherwise print 20 GB).

/// Levels of indentation drawn before the prefix stops growing.
pub const ART_DEPTH: usize = 24;

/// The branch before a line at `depth` (0 = a root, which has none).
pub fn branch(depth: usize, last: bool) -> &'static str {
    match (depth, last) {
        (0, _) => "",
        (_, true) => "└── ",
        (_, false) => "├── ",
    }
}

/// The prefix of the children of a line at `depth` whose own prefix is
/// `prefix`.
pub fn child_prefix(prefix: &str, depth: usize, last: bool) -> String {
    if depth == 0 || depth > ART_DEPTH {
        return prefix.to_owned();
    }
    let mut p = String::with_capacity(prefix.len() + 6);
    p.push_str(prefix);
    p.push_str(if last { "    " } else { "│   " });
    p
}

/// `[depth] ` for a line deeper than the drawn indentation, else nothing.
pub fn depth_mark(depth: usize) -> String {
    if depth > ART_DEPTH {
        format!("[{depth}] ")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_stops_growing_and_depth_shows() {
        let mut prefix = String::new();
        for depth in 0..100 {
            prefix = child_prefix(&prefix, depth, true);
        }
        assert_eq!(prefix.chars().count(), 4 * ART_DEPTH);
        assert_eq!(depth_mark(ART_DEPTH), "");
        assert_eq!(depth_mark(ART_DEPTH + 1), format!("[{}] ", ART_DEPTH + 1));
        assert_eq!(branch(0, true), "");
    }
}
