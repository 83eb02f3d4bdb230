//! Scenario errors, and where in the file they are.
//!
//! Every error names the file, the key as a path (`link[1].delay`, indices
//! counted from 0 in file order) and, when it can be found, the line, so a
//! person can go straight to the mistake.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{}: cannot read the scenario: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// A value, key or the TOML itself is wrong; `problem` says what was expected.
    #[error("{}: {key}: {problem}", Location { file, line: *line })]
    Invalid {
        file: PathBuf,
        /// 1-based line, when the key is in the file.
        line: Option<usize>,
        /// Path of the key, e.g. `event[2].at`; `(document)` for the whole file.
        key: String,
        problem: String,
    },
}

struct Location<'a> {
    file: &'a Path,
    line: Option<usize>,
}

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.file.display()),
            None => write!(f, "{}", self.file.display()),
        }
    }
}

/// One step of a key path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// The path of a key in the scenario, e.g. `link[1].burst_loss.to_bad`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPath(Vec<Segment>);

impl KeyPath {
    /// A top-level key.
    pub fn of(key: &str) -> KeyPath {
        KeyPath(vec![Segment::Key(key.to_owned())])
    }

    /// The element `index` of the array at this path.
    pub fn index(&self, index: usize) -> KeyPath {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }

    /// The key `key` of the table at this path.
    pub fn key(&self, key: &str) -> KeyPath {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_owned()));
        path
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(document)");
        }
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if position == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// The scenario text with its parsed, position-annotated tree, to turn
/// positions into key paths and key paths into lines.
pub struct SourceMap<'a> {
    text: &'a str,
    doc: Spanned<DeTable<'a>>,
}

impl<'a> SourceMap<'a> {
    /// Parses the TOML; a syntax error comes back with its position.
    pub fn parse(file: &Path, text: &'a str) -> Result<SourceMap<'a>, ScenarioError> {
        match DeTable::parse(text) {
            Ok(doc) => Ok(SourceMap { text, doc }),
            Err(error) => Err(ScenarioError::Invalid {
                file: file.to_owned(),
                line: error.span().map(|span| line_of(text, span.start)),
                key: KeyPath::default().to_string(),
                problem: format!("invalid TOML: {}", error.message().trim_end()),
            }),
        }
    }

    /// An error about the key at `path`.
    pub fn error(&self, file: &Path, path: &KeyPath, problem: impl Into<String>) -> ScenarioError {
        ScenarioError::Invalid {
            file: file.to_owned(),
            line: self
                .span_of(path)
                .map(|span| line_of(self.text, span.start)),
            key: path.to_string(),
            problem: problem.into(),
        }
    }

    /// `value`, or an error saying the required key at `path` (which
    /// should hold `form`) is missing.
    pub fn required<T>(
        &self,
        file: &Path,
        value: Option<T>,
        path: &KeyPath,
        form: &str,
    ) -> Result<T, ScenarioError> {
        value.ok_or_else(|| {
            self.missing_key_error(
                file,
                path,
                format!("expected {form}, found nothing (the key is required)"),
            )
        })
    }

    /// An error about the missing key at `path`, on the line of the
    /// nearest table that is written (the key itself has no line).
    fn missing_key_error(
        &self,
        file: &Path,
        path: &KeyPath,
        problem: impl Into<String>,
    ) -> ScenarioError {
        let mut table = path.0.clone();
        let span = loop {
            if table.pop().is_none() {
                break None;
            }
            if let Some(span) = self.span_of(&KeyPath(table.clone())) {
                break Some(span);
            }
        };
        ScenarioError::Invalid {
            file: file.to_owned(),
            line: span.map(|span| line_of(self.text, span.start)),
            key: path.to_string(),
            problem: problem.into(),
        }
    }

    /// An error reported by serde while reading the structure.
    pub fn serde_error(&self, file: &Path, error: &toml::de::Error) -> ScenarioError {
        let offset = error.span().map(|span| span.start);
        ScenarioError::Invalid {
            file: file.to_owned(),
            line: offset.map(|offset| line_of(self.text, offset)),
            key: offset
                .map(|offset| self.path_at(offset))
                .unwrap_or_default()
                .to_string(),
            problem: error.message().trim_end().to_owned(),
        }
    }

    /// The deepest key whose name or value covers byte `offset`.
    fn path_at(&self, offset: usize) -> KeyPath {
        let mut best = KeyPath::default();
        find_in_table(self.doc.get_ref(), offset, &KeyPath::default(), &mut best);
        best
    }

    /// Where the key at `path` is written (its name, or the array element).
    fn span_of(&self, path: &KeyPath) -> Option<Range<usize>> {
        let mut table = self.doc.get_ref();
        let mut value: Option<&Spanned<DeValue<'_>>> = None;
        let mut span = None;
        for segment in &path.0 {
            match segment {
                Segment::Key(key) => {
                    if let Some(current) = value {
                        table = current.get_ref().as_table()?;
                    }
                    let (name, found) = table.get_key_value(key.as_str())?;
                    span = Some(name.span());
                    value = Some(found);
                }
                Segment::Index(index) => {
                    let element = value?.get_ref().as_array()?.get(*index)?;
                    span = Some(element.span());
                    value = Some(element);
                }
            }
        }
        span
    }
}

fn covers(span: &Range<usize>, offset: usize) -> bool {
    span.start <= offset && offset < span.end.max(span.start + 1)
}

fn find_in_table(table: &DeTable<'_>, offset: usize, path: &KeyPath, best: &mut KeyPath) {
    for (name, value) in table {
        let here = path.key(name.get_ref());
        if covers(&name.span(), offset) || covers(&value.span(), offset) {
            *best = here.clone();
        }
        find_in_value(value, offset, &here, best);
    }
}

fn find_in_value(value: &Spanned<DeValue<'_>>, offset: usize, path: &KeyPath, best: &mut KeyPath) {
    match value.get_ref() {
        DeValue::Table(table) => find_in_table(table, offset, path, best),
        DeValue::Array(array) => {
            for (index, element) in array.iter().enumerate() {
                let here = path.index(index);
                if covers(&element.span(), offset) {
                    *best = here.clone();
                }
                find_in_value(element, offset, &here, best);
            }
        }
        _ => {}
    }
}

/// 1-based line of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "name = 'a'\n[[link]]\nname = 'x'\n[[link]]\nname = 'y'\ndelay = '5ms'\n\
                        [traffic]\nprobe = { rate = '1pps', size = 3 }\nsystems = ['a', 'b']\n";

    #[test]
    fn key_paths_display_like_toml_access() {
        let path = KeyPath::of("link").index(1).key("burst_loss").key("to_bad");
        assert_eq!(path.to_string(), "link[1].burst_loss.to_bad");
        assert_eq!(KeyPath::default().to_string(), "(document)");
    }

    #[test]
    fn positions_map_to_key_paths_and_back() {
        let map = SourceMap::parse(Path::new("s.toml"), TEXT).unwrap();
        let delay = TEXT.find("'5ms'").unwrap();
        assert_eq!(map.path_at(delay).to_string(), "link[1].delay");
        let size = TEXT.find("3 }").unwrap();
        assert_eq!(map.path_at(size).to_string(), "traffic.probe.size");
        let second_system = TEXT.find("'b'").unwrap();
        assert_eq!(map.path_at(second_system).to_string(), "traffic.systems[1]");

        let path = KeyPath::of("link").index(1).key("delay");
        let span = map.span_of(&path).unwrap();
        assert_eq!(line_of(TEXT, span.start), 6);
        assert_eq!(map.span_of(&KeyPath::of("link").index(5)), None);
    }

    #[test]
    fn syntax_errors_give_the_line() {
        let error = SourceMap::parse(Path::new("s.toml"), "name = 'a'\nduration = \n")
            .err()
            .unwrap();
        let message = error.to_string();
        assert!(
            message.starts_with("s.toml:2: (document): invalid TOML"),
            "{message}"
        );
    }
}
