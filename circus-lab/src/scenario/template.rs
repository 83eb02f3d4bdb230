//! Shell lines with `{name}` placeholders that the lab fills in at run time
//! (the server's address, the client's, a scratch folder), checked when the
//! scenario loads so a misspelt name fails before anything is built.
//!
//! The syntax is Rust's and Python's format strings without the format
//! specs: `{name}` is a placeholder, `{{` and `}}` are literal braces. Shell
//! braces (`${HOME}`, `awk '{print}'`) must be doubled; the environment
//! variables the lab exports alongside need no braces at all (`$HOME`).

use std::fmt;

use serde::{Serialize, Serializer};

/// A checked template: its text split into literal pieces and placeholders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    /// As written, for messages and the scenario's content hash.
    text: String,
    pieces: Vec<Piece>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Literal(String),
    /// Index into the `known` names the template was parsed against.
    Value(usize),
}

/// Why a template does not parse: the problem, and the byte where it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{problem} (at byte {at})")]
pub struct TemplateError {
    pub at: usize,
    pub problem: String,
}

impl Template {
    /// Parses `text` whose placeholders must be among `known`.
    pub fn parse(text: &str, known: &[&str]) -> Result<Template, TemplateError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text.char_indices().peekable();
        let braces = "write {{ or }} for a literal brace";
        while let Some((at, c)) = rest.next() {
            match c {
                '{' if rest.next_if(|&(_, next)| next == '{').is_some() => literal.push('{'),
                '}' if rest.next_if(|&(_, next)| next == '}').is_some() => literal.push('}'),
                '}' => {
                    return Err(TemplateError {
                        at,
                        problem: format!("a lone '}}': {braces}"),
                    });
                }
                '{' => {
                    let start = at + 1;
                    let name_len = text[start..]
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(text.len() - start);
                    let end = start + name_len;
                    if name_len == 0 || !text[end..].starts_with('}') {
                        return Err(TemplateError {
                            at,
                            problem: format!(
                                "a '{{' that opens no placeholder such as {{{}}}: {braces}",
                                known.first().copied().unwrap_or("name")
                            ),
                        });
                    }
                    let name = &text[start..end];
                    let Some(index) = known.iter().position(|k| *k == name) else {
                        let expected: Vec<String> =
                            known.iter().map(|k| format!("{{{k}}}")).collect();
                        return Err(TemplateError {
                            at,
                            problem: format!(
                                "expected one of the values {}, found {{{name}}} ({braces})",
                                expected.join(", ")
                            ),
                        });
                    };
                    while rest.next_if(|&(i, _)| i <= end).is_some() {}
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Value(index));
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Template {
            text: text.to_owned(),
            pieces,
        })
    }

    /// The text with each placeholder replaced by `values[i]`, `i` being
    /// the placeholder's position in the `known` names it was parsed with.
    pub fn render(&self, values: &[&str]) -> String {
        let mut out = String::with_capacity(self.text.len());
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Value(index) => out.push_str(values.get(*index).copied().unwrap_or("")),
            }
        }
        out
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: [&str; 2] = ["server", "dir"];

    #[test]
    fn placeholders_are_filled_and_doubled_braces_are_literal() {
        let template = Template::parse(
            "curl http://{server}:8000/ -o {dir}/f; awk '{{print}}'",
            &KNOWN,
        )
        .unwrap();
        assert_eq!(
            template.render(&["198.19.0.2", "/tmp/x"]),
            "curl http://198.19.0.2:8000/ -o /tmp/x/f; awk '{print}'"
        );
        assert_eq!(template.to_string(), template.as_str());
    }

    #[test]
    fn errors_say_where_and_what_was_expected() {
        let unknown = Template::parse("echo {srever}", &KNOWN).unwrap_err();
        assert_eq!(unknown.at, 5);
        assert!(
            unknown
                .problem
                .starts_with("expected one of the values {server}, {dir}, found {srever}"),
            "{unknown}"
        );
        for text in ["echo ${HOME", "echo ${ x }", "echo ${}"] {
            let open = Template::parse(text, &KNOWN).unwrap_err();
            assert_eq!(open.at, 6);
            assert!(
                open.problem
                    .starts_with("a '{' that opens no placeholder such as {server}"),
                "{open}"
            );
        }
        let lone = Template::parse("echo }", &KNOWN).unwrap_err();
        assert_eq!(lone.at, 5);
        assert!(lone.problem.contains("lone '}'"), "{lone}");
        // `${HOME}` is a placeholder named HOME, which is not known.
        assert!(Template::parse("echo ${HOME}", &KNOWN).is_err());
    }
}
