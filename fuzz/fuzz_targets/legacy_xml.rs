#![no_main]
// The legacy XML answers as the client reads them.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = quick_xml::de::from_str::<ocloud_wire::legacy::PhotosAction>(text);
        let _ = quick_xml::de::from_str::<ocloud_wire::legacy::UploadUrlResponse>(text);
        let _ = quick_xml::de::from_str::<ocloud_wire::legacy::Mum>(text);
    }
});
