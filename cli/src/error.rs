//! The CLI's one error: a message for one line of stderr, exit status 1.

use std::fmt;

/// An operation that failed or was refused. Shown as one line on stderr.
#[derive(Debug)]
pub struct CliError(String);

impl CliError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, whatever the underlying error printed.
        let mut words = self.0.split_whitespace();
        if let Some(first) = words.next() {
            f.write_str(first)?;
        }
        for word in words {
            write!(f, " {word}")?;
        }
        Ok(())
    }
}

impl From<keygate::Error> for CliError {
    fn from(e: keygate::Error) -> Self {
        Self(e.to_string())
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        Self(e.to_string())
    }
}

/// Results of the CLI's operations.
pub type CliResult<T = ()> = Result<T, CliError>;

#[cfg(test)]
mod tests {
    use super::CliError;

    #[test]
    fn errors_print_on_one_line() {
        let e = CliError::new("a Redis script failed:\n  at line 3\tof x");
        assert_eq!(e.to_string(), "a Redis script failed: at line 3 of x");
    }
}
