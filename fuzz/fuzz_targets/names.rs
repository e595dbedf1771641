#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(name) = std::str::from_utf8(data) {
        ocloud_server::fuzzing::names(name);
    }
});
