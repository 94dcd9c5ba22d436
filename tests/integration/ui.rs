//! The typestate's promises, as compile errors a user would meet (`tests/ui/*.rs` and their `.stderr`).

#[test]
fn typestate_mistakes_do_not_compile() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
