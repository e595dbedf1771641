//! Byte sizes on the command line: `5GiB`, `500M`, `1024`.

/// Parses a size: a number with an optional unit (B, K/KB/KiB, M, G, T; powers of 1024).
pub fn parse(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a size (examples: 5GiB, 500M, 1024)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        u => return Err(format!("unknown size unit {u:?} in {s:?}")),
    };
    Ok((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse("5GiB"), Ok(5 << 30));
        assert_eq!(super::parse("1.5k"), Ok(1536));
        assert_eq!(super::parse("42"), Ok(42));
        assert!(super::parse("x").is_err());
        assert!(super::parse("3 parsecs").is_err());
    }
}
