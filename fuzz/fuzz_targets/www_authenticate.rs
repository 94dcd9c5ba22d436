//! `WWW-Authenticate` header values: any bytes. Parsing must end, and never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    oauth_sdk_runtime::fuzzing::www_authenticate(data);
});
