//! `ferret analyze --tree`: the slowest call trees of a run.

use crate::art;
use crate::error::CliResult;
use crate::fmt::{self, Style};
use ferret_analyze::analysis::{slowest_trees, Query, Tree, TreeNode, TreeOptions};
use ferret_analyze::store::Store;
use std::io::Write;

/// How `--tree` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Indented text.
    Text,
    /// JSON for scripts.
    Json,
}

/// What `analyze --tree` asks for.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    /// Roots to show.
    pub top: usize,
    /// Children per node before same-name siblings merge.
    pub max_children: usize,
    /// Output format.
    pub format: Format,
    /// Levels to show (0 = all).
    pub max_depth: usize,
    /// Threads reading a native file's first passes.
    pub threads: usize,
}

pub fn run(store: &Store, q: &Query, r: &Request) -> CliResult {
    let opts = TreeOptions {
        top: r.top,
        max_children: r.max_children.max(1),
        threads: r.threads,
    };
    let tree = slowest_trees(store, q, &opts)?;
    let out = std::io::stdout().lock();
    let mut out = std::io::BufWriter::new(out);
    match r.format {
        Format::Json => write_json(&mut out, &tree, r.max_depth)?,
        Format::Text => {
            let how = if tree.latest { " (latest)" } else { "" };
            eprintln!(
                "Analyzing run {}{how}{}",
                tree.run_id,
                super::clock_note(q.clock)
            );
            writeln!(out, "Top {} Slowest Traces", r.top)?;
            write_text(&mut out, &tree, fmt::color_stdout(), r.max_depth)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// `12.34ms`, as ferret-io prints span durations; below 10µs (which
/// ferret-io would print as `0.00ms`) the unit fits the size: `812ns`.
fn ms(ns: Option<u64>) -> String {
    match ns {
        Some(n) if n < 10_000 => fmt::dur(n as f64),
        Some(n) => format!("{:.2}ms", n as f64 / 1e6),
        None => "?".to_owned(),
    }
}

/// The text of one line (without its branch).
pub fn label(n: &TreeNode, root_ns: u64, color: bool) -> String {
    if let Some(m) = &n.merged {
        let total = fmt::dur(m.total_ns as f64);
        let total = match fmt::heat(m.total_ns as f64, root_ns as f64) {
            Some(st) => fmt::paint(&total, st, color),
            None => total,
        };
        let errors = match m.error_count {
            0 => "0 errors".to_owned(),
            1 => fmt::paint("1 error", Style::Red, color),
            e => fmt::paint(&format!("{e} errors"), Style::Red, color),
        };
        return format!(
            "{} ×{}  total {total}, avg {}, max {}, {errors}",
            fmt::term_safe(&n.name),
            m.count,
            fmt::dur(m.avg_ns()),
            fmt::dur(m.max_ns as f64)
        );
    }
    let d = ms(n.duration_ns);
    let d = match n
        .duration_ns
        .and_then(|v| fmt::heat(v as f64, root_ns as f64))
    {
        Some(st) => fmt::paint(&d, st, color),
        None => d,
    };
    let d = if n.missing { format!("≥{d}") } else { d };
    let mut s = format!("{} - {d}", fmt::term_safe(&n.name));
    if n.missing {
        s.push_str(&fmt::paint(
            " (open or lost: the span is not in the file; times of its children)",
            Style::Yellow,
            color,
        ));
    }
    if let Some(sn) = n.self_ns {
        if !n.children.is_empty() || n.more.is_some() {
            s.push_str(&fmt::paint(
                &format!(" [self {}]", fmt::dur(sn as f64)),
                Style::Dim,
                color,
            ));
        }
    }
    if !n.tags.is_empty() {
        let t: Vec<String> = n.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        s.push_str(&fmt::term_safe(&format!(" ({})", t.join(", "))));
    }
    if n.status.is_error() {
        s.push_str(&fmt::paint(
            &format!(" ✗ {}", fmt::term_safe(n.status.as_str())),
            Style::Red,
            color,
        ));
    }
    s
}

enum Item {
    Node(usize),
    More(usize),
    /// A node's subtree below `--max-depth`: its span count.
    Cut(u64),
}

/// Spans in the subtrees of `kids` (iteratively; merged lines count their spans).
fn descendants(t: &Tree, kids: &[usize]) -> u64 {
    let mut n = 0u64;
    let mut stack: Vec<usize> = kids.to_vec();
    while let Some(i) = stack.pop() {
        let node = &t.nodes[i];
        n += node.merged.map_or(1, |m| m.count);
        n += node.more.map_or(0, |m| m.agg.count);
        stack.extend_from_slice(&node.children);
    }
    n
}

/// Box-drawing rendering like ferret-io's `--tree`; a blank line after each
/// tree. Indentation stops growing at [`fmt::ART_DEPTH`] levels; deeper
/// lines show their depth as a number, so a line's length is bounded and
/// the output is linear in spans. `max_depth` (0 = all) cuts the tree
/// below that many levels, with a line saying how many spans were cut.
pub fn write_text(
    out: &mut impl Write,
    t: &Tree,
    color: bool,
    max_depth: usize,
) -> std::io::Result<()> {
    for &root in &t.roots {
        let root_ns = t.nodes[root].duration_ns.unwrap_or(0);
        // (item, prefix of its children's lines' parent, is_last, depth)
        let mut stack: Vec<(Item, String, bool, usize)> =
            vec![(Item::Node(root), String::new(), true, 0)];
        while let Some((item, prefix, last, depth)) = stack.pop() {
            let branch = art::branch(depth, last);
            let mark = art::depth_mark(depth);
            match item {
                Item::More(p) => {
                    let m = t.nodes[p].more.unwrap_or_default();
                    writeln!(
                        out,
                        "{prefix}{branch}{mark}{}",
                        fmt::paint(
                            &format!(
                                "… {} more ({} spans, total {})",
                                m.lines,
                                m.agg.count,
                                fmt::dur(m.agg.total_ns as f64)
                            ),
                            Style::Dim,
                            color
                        )
                    )?;
                }
                Item::Cut(n) => {
                    writeln!(
                        out,
                        "{prefix}{branch}{mark}{}",
                        fmt::paint(
                            &format!("… {n} spans below, cut by --max-depth"),
                            Style::Dim,
                            color
                        )
                    )?;
                }
                Item::Node(i) => {
                    let n = &t.nodes[i];
                    writeln!(out, "{prefix}{branch}{mark}{}", label(n, root_ns, color))?;
                    let child_prefix = art::child_prefix(&prefix, depth, last);
                    let mut items: Vec<Item> = Vec::new();
                    if max_depth > 0 && depth + 1 >= max_depth {
                        let cut = descendants(t, &n.children) + n.more.map_or(0, |m| m.agg.count);
                        if cut > 0 {
                            items.push(Item::Cut(cut));
                        }
                    } else {
                        items.extend(n.children.iter().map(|&c| Item::Node(c)));
                        if n.more.is_some() {
                            items.push(Item::More(i));
                        }
                    }
                    let len = items.len();
                    for (k, it) in items.into_iter().enumerate().rev() {
                        stack.push((it, child_prefix.clone(), k + 1 == len, depth + 1));
                    }
                }
            }
        }
        writeln!(out)?;
    }
    Ok(())
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn open_node(out: &mut impl Write, n: &TreeNode) -> CliResult {
    let num = |v: Option<u64>| v.map_or("null".to_owned(), |x| secs(x).to_string());
    write!(
        out,
        "{{\"name\":{},\"duration_s\":{},\"self_s\":{},\"status\":{},\"tags\":{{",
        json_str(&n.name),
        num(n.duration_ns),
        num(n.self_ns),
        json_str(n.status.as_str())
    )?;
    for (k, (key, v)) in n.tags.iter().enumerate() {
        if k > 0 {
            write!(out, ",")?;
        }
        write!(out, "{}:{}", json_str(key), serde_json::to_string(v)?)?;
    }
    write!(out, "}},")?;
    if n.missing {
        write!(out, "\"missing\":true,")?;
    }
    write!(out, "\"merged\":")?;
    match &n.merged {
        None => write!(out, "null")?,
        Some(m) => write!(
            out,
            "{{\"count\":{},\"total_s\":{},\"max_s\":{},\"error_count\":{}}}",
            m.count,
            secs(m.total_ns),
            secs(m.max_ns),
            m.error_count
        )?,
    }
    write!(out, ",\"children\":[")?;
    Ok(())
}

/// The JSON document, written without recursion (deep chains are fine).
/// Lines left out appear as a last merged child named `… N more`.
pub fn write_json(out: &mut impl Write, t: &Tree, max_depth: usize) -> CliResult {
    write!(out, "{{\"run_id\":{},\"roots\":[", json_str(&t.run_id))?;
    for (ri, &root) in t.roots.iter().enumerate() {
        if ri > 0 {
            write!(out, ",")?;
        }
        open_node(out, &t.nodes[root])?;
        // (node, next child, its depth; root = 0)
        let mut stack: Vec<(usize, usize, usize)> = vec![(root, 0, 0)];
        while let Some(top) = stack.last_mut() {
            let n = &t.nodes[top.0];
            let cut = max_depth > 0 && top.2 + 1 >= max_depth;
            if !cut && top.1 < n.children.len() {
                if top.1 > 0 {
                    write!(out, ",")?;
                }
                let c = n.children[top.1];
                let depth = top.2 + 1;
                top.1 += 1;
                open_node(out, &t.nodes[c])?;
                stack.push((c, 0, depth));
                continue;
            }
            if cut {
                // Below --max-depth: no children, and how many spans that cut.
                let below = descendants(t, &n.children) + n.more.map_or(0, |m| m.agg.count);
                write!(out, "]")?;
                if below > 0 {
                    write!(out, ",\"cut_spans\":{below}")?;
                }
                write!(out, "}}")?;
                stack.pop();
                continue;
            }
            if let Some(m) = &n.more {
                if !n.children.is_empty() {
                    write!(out, ",")?;
                }
                write!(
                    out,
                    "{{\"name\":{},\"duration_s\":{},\"self_s\":{},\"status\":\"ok\",\"tags\":{{}},\
                     \"merged\":{{\"count\":{},\"total_s\":{},\"max_s\":{},\"error_count\":{}}},\"children\":[]}}",
                    json_str(&format!("… {} more", m.lines)),
                    secs(m.agg.total_ns),
                    secs(m.agg.self_ns),
                    m.agg.count,
                    secs(m.agg.total_ns),
                    secs(m.agg.max_ns),
                    m.agg.error_count
                )?;
            }
            write!(out, "]}}")?;
            stack.pop();
        }
    }
    writeln!(out, "]}}")?;
    Ok(())
}
