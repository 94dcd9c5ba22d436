//! The token endpoint's answer: any status, any body. It must be a token set or a typed failure.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let [high, low, body @ ..] = data {
        let status = 100 + u16::from_be_bytes([*high, *low]) % 500;
        oauth_sdk_runtime::fuzzing::token_response(status, body);
    }
});
