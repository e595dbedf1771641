//! Dates on the wire: `yyyy-MM-ddTHH:mm:ss±hhmm` (spec §3.1), always emitted in UTC (`+0000`)
//! so that output does not depend on the host's time zone.

use time::OffsetDateTime;
use time::macros::format_description;

/// Formats unix milliseconds as `2016-07-30T14:20:26+0000`.
pub fn format_ms(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+0000")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn wire_form() {
        assert_eq!(super::format_ms(1_469_888_426_123), "2016-07-30T14:20:26+0000");
    }
}
