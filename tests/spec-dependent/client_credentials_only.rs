//! Compile-fail cases for an SDK built from `codegen/fixtures/client-credentials-only.json`. Not part
//! of this crate's tests: `scripts/regeneration-test` declares and runs this target in a copy built
//! from that spec.

#[test]
fn only_the_declared_flow_can_log_in() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/spec-dependent/ui/pass/*.rs");
    cases.compile_fail("tests/spec-dependent/ui/fail/*.rs");
}
