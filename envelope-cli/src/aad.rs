//! AAD templates: the associated data each stored value was encrypted with, rebuilt per
//! row or file (`envelope:{table}.{column}`, `{table}.{column}#{id}`, `{path}`).

use crate::exit::CliError;

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AadTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(String),
}

impl AadTemplate {
    /// Parses `{name}` placeholders; `{{` and `}}` are literal braces.
    pub fn parse(template: &str) -> Result<Self, CliError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some('{') | None => {
                                return Err(CliError::new(format!(
                                    "--aad {template:?}: unclosed {{ (write {{{{ for a literal brace)"
                                )));
                            }
                            Some(c) => name.push(c),
                        }
                    }
                    if name.is_empty() {
                        return Err(CliError::new(format!(
                            "--aad {template:?}: empty placeholder {{}}"
                        )));
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Var(name));
                }
                '}' => {
                    return Err(CliError::new(format!(
                        "--aad {template:?}: unmatched }} (write }}}} for a literal brace)"
                    )));
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(AadTemplate { parts })
    }

    /// Whether the template is empty (the AAD is empty).
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The placeholder names, in order of appearance.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// The AAD bytes, each placeholder replaced by `lookup(name)` (UTF-8).
    pub fn render<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.extend_from_slice(s.as_bytes()),
                Part::Var(name) => match lookup(name) {
                    Some(value) => out.extend_from_slice(value.as_bytes()),
                    None => return Err(format!("no value for {{{name}}}")),
                },
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_and_reject_bad_braces() {
        let t = AadTemplate::parse("{table}.{column}#{id} {{x}}").expect("parses");
        assert_eq!(t.variables().collect::<Vec<_>>(), ["table", "column", "id"]);
        let aad = t
            .render(|n| match n {
                "table" => Some("users"),
                "column" => Some("ssn"),
                "id" => Some("42"),
                _ => None,
            })
            .expect("renders");
        assert_eq!(aad, b"users.ssn#42 {x}");
        assert!(t.render(|_| None).is_err());
        for bad in ["{", "{a", "}", "{}", "a{b{c}}"] {
            assert!(AadTemplate::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            AadTemplate::parse("").expect("empty").render(|_| None),
            Ok(vec![])
        );
    }
}
