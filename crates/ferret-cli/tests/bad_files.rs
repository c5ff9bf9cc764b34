//! Bad files (issue items 14, 15, 16): damaged, truncated, foreign or
//! unreadable databases exit 2 with a message naming the file; a failing
//! export leaves an existing output file alone; non-ASCII paths survive the
//! read-only fallback.

mod support;
use std::path::Path;
use support::*;

fn small_native(path: &Path) {
    run(&["demo", "--db", s(path), "--spans", "2000", "--no-analyze"]).ok();
}

fn assert_bad(o: &Outcome, path: &str, what: &str) {
    assert_eq!(o.code, Some(2), "{what}: {o:?}");
    assert!(
        o.stderr.contains(path),
        "{what}: names {path}: {}",
        o.stderr
    );
    assert!(
        !o.stderr.contains("file:"),
        "{what}: no internal URI: {}",
        o.stderr
    );
    assert!(!o.stderr.contains("panicked"), "{what}: {}", o.stderr);
}

#[test]
fn damaged_truncated_and_foreign_files_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.db");
    small_native(&good);
    let bytes = std::fs::read(&good).unwrap();
    let mut cases = vec![];
    for (name, data) in [
        ("trunc-20k.db", bytes[..20_000.min(bytes.len())].to_vec()),
        ("trunc-page.db", bytes[..4096].to_vec()),
        ("trunc-header.db", bytes[..60].to_vec()),
        (
            "garbage.db",
            (0..9000u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        cases.push(p);
    }
    let nometa = dir.path().join("nometa.db");
    std::fs::copy(&good, &nometa).unwrap();
    rusqlite::Connection::open(&nometa)
        .unwrap()
        .execute_batch("DROP TABLE ferret_meta")
        .unwrap();
    cases.push(nometa);
    for p in &cases {
        let db = s(p);
        for args in [
            vec!["runs", db],
            vec!["analyze", db],
            vec!["analyze", db, "--tree"],
            vec!["calltree", db],
            vec!["export", db, "--format", "jsonl", "-o", "-"],
        ] {
            assert_bad(&run(&args), db, &format!("{args:?}"));
        }
    }
}

#[test]
fn demo_into_a_directory_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("adir");
    std::fs::create_dir(&d).unwrap();
    let o = run(&["demo", "--db", s(&d), "--spans", "10"]);
    assert_bad(&o, s(&d), "demo --db DIR");
}

#[test]
fn a_failing_export_leaves_the_existing_output_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    // A ferret-io run whose spans have no duration: nothing to draw, so the
    // svg export fails after the output would have been opened.
    let db = dir.path().join("nodur.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    fio_schema(&conn, true);
    conn.execute(
        "INSERT INTO beaver_logs VALUES ('_ferret_trace', 1.0, ?1)",
        [fio_row("a", None, "r", "x", 1.0, None)],
    )
    .unwrap();
    drop(conn);
    let out = dir.path().join("flame.svg");
    std::fs::write(&out, "previous content").unwrap();
    let o = run(&["export", s(&db), "--format", "svg", "-o", s(&out)]);
    assert_eq!(o.code, Some(2), "{o:?}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "previous content");
    let o = run(&["flamegraph", s(&db), "-o", s(&out)]);
    assert_eq!(o.code, Some(2), "{o:?}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "previous content");
    // No temporary file is left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".ferret-export"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // A successful export replaces it, with the usual permissions.
    let good = dir.path().join("good.db");
    small_native(&good);
    run(&["export", s(&good), "--format", "folded", "-o", s(&out)]).ok();
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("handle_request"), "{text}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
}

/// Runs as `nobody` when the tests run as root (root reads any file, so
/// permissions only bite another user).
fn as_reader(args: &[&str]) -> Outcome {
    run_with(
        args,
        &Run {
            uid: is_root().then_some(NOBODY),
            ..Default::default()
        },
    )
}

#[test]
fn read_only_fallback_keeps_a_non_ascii_path() {
    use std::os::unix::fs::PermissionsExt;
    let top = open_tempdir();
    let ro = top.path().join("ro-dïr");
    std::fs::create_dir(&ro).unwrap();
    let db = ro.join("café.db");
    small_native(&db);
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    for args in [vec!["runs", s(&db)], vec!["analyze", s(&db)]] {
        let o = as_reader(&args);
        assert_eq!(o.code, Some(0), "{args:?}: {o:?}");
    }
    let o = as_reader(&["runs", s(&db)]);
    assert!(o.text().contains("café.db"), "{}", o.text());
}

#[test]
fn an_unreadable_file_exits_2_showing_its_path() {
    use std::os::unix::fs::PermissionsExt;
    let top = open_tempdir();
    let db = top.path().join("secret.db");
    small_native(&db);
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o000)).unwrap();
    for args in [
        vec!["runs", s(&db)],
        vec!["analyze", s(&db)],
        vec!["calltree", s(&db)],
    ] {
        let o = as_reader(&args);
        assert_bad(&o, s(&db), &format!("{args:?}"));
        assert!(o.stderr.contains("ermission denied"), "{}", o.stderr);
    }
}
