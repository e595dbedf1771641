//! Item names: what the service accepts, in the form it stores (NFC).

use unicode_normalization::UnicodeNormalization;

use super::error::{Error, Result};

/// The longest name, in UTF-8 bytes (after NFC).
pub const MAX_NAME_BYTES: usize = 255;

/// Checks a name a client sent and returns its NFC form. Empty, `.`, `..`, names with `/`,
/// control characters (C0 and DEL: they break terminals, logs and file systems) and names over
/// 255 bytes are refused; any other Unicode is fine.
pub fn validate(name: &str) -> Result<String> {
    let nfc: String = name.nfc().collect();
    let why = if nfc.is_empty() {
        "empty"
    } else if nfc == "." || nfc == ".." {
        "reserved"
    } else if nfc.contains('/') {
        "contains '/'"
    } else if nfc.chars().any(|c| c < ' ' || c == '\u{7f}') {
        "contains a control character"
    } else if nfc.len() > MAX_NAME_BYTES {
        "longer than 255 bytes"
    } else {
        return Ok(nfc);
    };
    Err(Error::InvalidName(name.to_owned(), why))
}

/// `stem(n).ext`, the clash name of spec §3.9, kept within 255 bytes: the stem is shortened
/// (on a character boundary) to make room for `(n)`; a name whose extension leaves no room is
/// shortened as a whole.
pub fn clash_name(name: &str, n: u32) -> String {
    let suffix = format!("({n})");
    let (stem, ext) = match name.rfind('.') {
        Some(dot) if dot > 0 => name.split_at(dot),
        _ => (name, ""),
    };
    let fit = |s: &str, budget: usize| -> String {
        let mut end = budget.min(s.len());
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_owned()
    };
    match MAX_NAME_BYTES.checked_sub(suffix.len() + ext.len()).map(|budget| fit(stem, budget)) {
        Some(stem) if !stem.is_empty() => format!("{stem}{suffix}{ext}"),
        _ => format!("{}{suffix}", fit(name, MAX_NAME_BYTES - suffix.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_unicode_refuses_escapes() {
        assert_eq!(validate("e\u{301}té ☃.txt").unwrap(), "été ☃.txt");
        for bad in ["", ".", "..", "a/b", "../x", "a\0b", "a\nb", "x\u{1b}[31m", "tab\t", "del\u{7f}"] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
        assert!(validate(&"é".repeat(127)).is_ok());
        assert!(validate(&"é".repeat(128)).is_err());
        assert!(validate("..hidden").is_ok());
    }

    #[test]
    fn clash_names_stay_within_255_bytes() {
        assert_eq!(clash_name("upload.jpg", 1), "upload(1).jpg");
        assert_eq!(clash_name("a.tar.gz", 2), "a.tar(2).gz");
        assert_eq!(clash_name(".bashrc", 1), ".bashrc(1)");
        assert_eq!(clash_name("README", 3), "README(3)");
        let long = format!("{}.jpg", "é".repeat(125)); // 254 bytes
        let c = clash_name(&long, 1);
        assert!(c.len() <= 255 && c.ends_with("(1).jpg") && validate(&c).is_ok(), "{c}");
        let c = clash_name(&"x".repeat(255), 12);
        assert_eq!(c, format!("{}(12)", "x".repeat(251)));
        let all_ext = format!("a.{}", "e".repeat(253));
        let c = clash_name(&all_ext, 1);
        assert!(c.len() <= 255 && c.ends_with("(1)"), "{c}");
    }
}
