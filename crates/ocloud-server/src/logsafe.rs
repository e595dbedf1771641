//! Client text in logs: every control character is escaped, so a file name or a header cannot
//! forge a log line (`\n`) or drive the terminal that shows the log (ESC).

use std::fmt;

/// Displays `T` with control characters escaped as `\n`, `\u{1b}`….
pub struct Esc<T>(pub T);

impl<T: fmt::Display> fmt::Display for Esc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        struct Escaper<'a, 'b>(&'a mut fmt::Formatter<'b>);
        impl fmt::Write for Escaper<'_, '_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                for c in s.chars() {
                    if c.is_control() {
                        write!(self.0, "{}", c.escape_default())?;
                    } else {
                        self.0.write_char(c)?;
                    }
                }
                Ok(())
            }
        }
        write!(Escaper(f), "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Esc;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(Esc("a\nb\u{1b}[31m\té").to_string(), "a\\nb\\u{1b}[31m\\té");
        assert_eq!(Esc(format_args!("{}!", "x\r")).to_string(), "x\\r!");
    }
}
