#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ocloud_server::fuzzing::description(data));
