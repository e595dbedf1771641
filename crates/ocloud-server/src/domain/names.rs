//! Item names: what the service accepts, in the form it stores (NFC).

use unicode_normalization::UnicodeNormalization;

use super::error::{Error, Result};

/// The longest name, in UTF-8 bytes (after NFC).
pub const MAX_NAME_BYTES: usize = 255;

/// Checks a name a client sent and returns its NFC form. Empty, `.`, `..`, names with `/` or
/// NUL, and names over 255 bytes are refused; any other Unicode is fine.
pub fn validate(name: &str) -> Result<String> {
    let nfc: String = name.nfc().collect();
    let why = if nfc.is_empty() {
        "empty"
    } else if nfc == "." || nfc == ".." {
        "reserved"
    } else if nfc.contains('/') {
        "contains '/'"
    } else if nfc.contains('\0') {
        "contains NUL"
    } else if nfc.len() > MAX_NAME_BYTES {
        "longer than 255 bytes"
    } else {
        return Ok(nfc);
    };
    Err(Error::InvalidName(name.to_owned(), why))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_unicode_refuses_escapes() {
        assert_eq!(validate("e\u{301}té ☃.txt").unwrap(), "été ☃.txt");
        for bad in ["", ".", "..", "a/b", "../x", "a\0b"] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
        assert!(validate(&"é".repeat(127)).is_ok());
        assert!(validate(&"é".repeat(128)).is_err());
        assert!(validate("..hidden").is_ok());
    }
}
