#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let size = u64::from_le_bytes(data[..8].try_into().unwrap()) % (1 << 40);
    if let Ok(value) = std::str::from_utf8(&data[8..]) {
        ocloud_server::fuzzing::range(value, size);
    }
});
