//! The compile errors of `#[ferret::measure]`: each misuse is refused with
//! a message that says what to do, pointing at the offending tokens
//! (expected output in `tests/ui/*.stderr`; regenerate with
//! `TRYBUILD=overwrite cargo test -p ferret --test macro_errors`).

#[test]
fn misuses_are_refused_with_clear_messages() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
