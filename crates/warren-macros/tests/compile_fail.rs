//! Compile-fail tests of `#[warren_rpc::service]`: what cannot be a service is an error
//! that points at the user's code. Each `tests/ui/*.rs` has its expected `.stderr`;
//! regenerate them with `TRYBUILD=overwrite` after a deliberate change of wording.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
