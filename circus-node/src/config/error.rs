//! Configuration errors: each names the file, the line when known, the key
//! and what was expected, so the fix is obvious without reading code.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where in which file a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    /// 1-based line and column, when the problem has a place in the text.
    pub line_column: Option<(usize, usize)>,
}

impl Location {
    pub(super) fn new(file: &Path, line_column: Option<(usize, usize)>) -> Self {
        Location {
            file: file.to_owned(),
            line_column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.line_column {
            write!(f, ":{line}:{column}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read the file: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML at all.
    #[error("{at}: not valid TOML: {message}")]
    Syntax { at: Location, message: String },
    /// Valid TOML, but a key is unknown, missing or of the wrong type.
    #[error("{at}: key `{key}`: {message}")]
    Schema {
        at: Location,
        key: String,
        message: String,
    },
    /// A value of the right type that does not mean anything usable.
    #[error("{at}: key `{key}`: expected {expected}, found {found}")]
    Invalid {
        at: Location,
        key: String,
        expected: String,
        found: String,
    },
    /// A gateway host name that does not resolve.
    #[error("{at}: key `{key}`: cannot resolve host name {host:?}: {source}")]
    Resolve {
        at: Location,
        key: String,
        host: String,
        #[source]
        source: std::io::Error,
    },
    /// A key file that cannot be read or that others may read.
    #[error("{at}: key `{key}`: {source}")]
    KeyFile {
        at: Location,
        key: String,
        #[source]
        source: crate::keys::KeyFileError,
    },
}
