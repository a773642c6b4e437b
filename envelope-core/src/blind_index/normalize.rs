//! Normalizers: what a value becomes before it is hashed, so that lookups find the spellings
//! an application considers equal (`docs/FORMAT.md`, "Blind indexes", with the vectors in
//! `testvectors/index.json`).
//!
//! A normalizer is a pipeline of steps written as their names joined by `+`
//! (`nfkc_casefold+trim_collapse`), or `exact` for none. A caller function can be the first
//! step (`custom:NAME+…`): it runs in the caller's language, and the index records its name.
//! The pipeline is part of the index's definition: changing it is a new index version.

use std::borrow::Cow;
use std::fmt;

use unicode_normalization::UnicodeNormalization;

use crate::error::{Error, Result};

/// One step of a [`Normalizer`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// `nfkc_casefold`: Unicode NFKC, full default case folding (CaseFolding.txt C + F), NFKC
    /// again: `"Straße"`, `"STRASSE"` and `"ｓｔｒａｓｓｅ"` become `"strasse"`. UTF-8 only.
    NfkcCasefold,
    /// `trim_collapse`: leading and trailing Unicode white space removed, every inner run of
    /// white space replaced by one U+0020. UTF-8 only.
    TrimCollapse,
    /// `digits`: only the ASCII digits `0`–`9` kept (SSNs, phone numbers: `"123-45-6789"`
    /// becomes `"123456789"`). Any bytes.
    Digits,
    /// `custom:NAME`: a caller function, registered under `NAME` (Rust
    /// [`crate::blind_index::BlindIndexes::register_normalizer`], Python and Go options).
    /// Only as the first step.
    Custom(String),
}

impl Step {
    fn name(&self) -> Cow<'_, str> {
        match self {
            Step::NfkcCasefold => "nfkc_casefold".into(),
            Step::TrimCollapse => "trim_collapse".into(),
            Step::Digits => "digits".into(),
            Step::Custom(name) => format!("custom:{name}").into(),
        }
    }
}

/// A normalization pipeline (`exact` when empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Normalizer {
    steps: Vec<Step>,
}

fn bad(spec: &str, reason: impl fmt::Display) -> Error {
    Error::InvalidConfig(format!("normalizer {spec:?}: {reason}"))
}

fn valid_custom_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        })
}

impl Normalizer {
    /// No normalization: the value's bytes as given.
    pub fn exact() -> Self {
        Normalizer::default()
    }

    /// The pipeline of these steps, in order (checked like [`Normalizer::parse`]).
    pub fn from_steps(steps: Vec<Step>) -> Result<Self> {
        Normalizer::parse(&Normalizer { steps }.spec())
    }

    /// Parses a spec: `exact`, or step names joined by `+` (`nfkc_casefold`,
    /// `trim_collapse`, `digits`, `custom:NAME` first with NAME of 1–64 characters from
    /// `a-z 0-9 _ - .`). A step may appear once.
    pub fn parse(spec: &str) -> Result<Self> {
        if spec == "exact" {
            return Ok(Normalizer::exact());
        }
        let mut steps = Vec::new();
        for (i, part) in spec.split('+').enumerate() {
            let step = match part {
                "nfkc_casefold" => Step::NfkcCasefold,
                "trim_collapse" => Step::TrimCollapse,
                "digits" => Step::Digits,
                "exact" => return Err(bad(spec, "`exact` cannot be combined with other steps")),
                other => match other.strip_prefix("custom:") {
                    Some(name) if i > 0 => {
                        return Err(bad(spec, format!("custom:{name} must be the first step")));
                    }
                    Some(name) if valid_custom_name(name) => Step::Custom(name.to_owned()),
                    Some(name) => {
                        return Err(bad(
                            spec,
                            format!("custom name {name:?}: 1 to 64 characters of a-z, 0-9, _ - ."),
                        ));
                    }
                    None => {
                        return Err(bad(
                            spec,
                            format!(
                                "unknown step {other:?} (steps: nfkc_casefold, trim_collapse, digits, custom:NAME; or exact)"
                            ),
                        ));
                    }
                },
            };
            if steps.contains(&step) {
                return Err(bad(spec, format!("step {} appears twice", step.name())));
            }
            steps.push(step);
        }
        Ok(Normalizer { steps })
    }

    /// The canonical spec (`exact`, or the steps joined by `+`), as the index key store
    /// records it.
    pub fn spec(&self) -> String {
        if self.steps.is_empty() {
            return "exact".into();
        }
        self.steps
            .iter()
            .map(Step::name)
            .collect::<Vec<_>>()
            .join("+")
    }

    /// The steps.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The caller function's name, when the first step is one.
    pub fn custom_name(&self) -> Option<&str> {
        match self.steps.first() {
            Some(Step::Custom(name)) => Some(name),
            _ => None,
        }
    }

    /// Runs the built-in steps on `input`, which the caller function (if the pipeline has
    /// one) has already transformed. Fails with [`Error::Malformed`] when a text step gets
    /// bytes that are not UTF-8.
    pub fn apply_builtin<'a>(&self, input: &'a [u8]) -> Result<Cow<'a, [u8]>> {
        let mut value: Cow<'a, [u8]> = Cow::Borrowed(input);
        for step in &self.steps {
            value = match step {
                Step::Custom(_) => continue,
                Step::Digits => {
                    if value.iter().all(u8::is_ascii_digit) {
                        value
                    } else {
                        Cow::Owned(value.iter().copied().filter(u8::is_ascii_digit).collect())
                    }
                }
                Step::NfkcCasefold => {
                    let text = utf8(&value, "nfkc_casefold")?;
                    let folded = caseless::default_case_fold_str(&text.nfkc().collect::<String>());
                    let normal: String = folded.nfkc().collect();
                    if normal.as_bytes() == &value[..] {
                        value
                    } else {
                        Cow::Owned(normal.into_bytes())
                    }
                }
                Step::TrimCollapse => {
                    let text = utf8(&value, "trim_collapse")?;
                    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
                    if collapsed.as_bytes() == &value[..] {
                        value
                    } else {
                        Cow::Owned(collapsed.into_bytes())
                    }
                }
            };
        }
        Ok(value)
    }
}

fn utf8<'a>(bytes: &'a [u8], step: &'static str) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| {
        Error::malformed(
            "index input",
            format!("the {step} step takes UTF-8 text: {e}"),
        )
    })
}

impl fmt::Display for Normalizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spec())
    }
}

impl std::str::FromStr for Normalizer {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Normalizer::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(spec: &str, input: &str) -> String {
        let n = Normalizer::parse(spec).unwrap();
        String::from_utf8(n.apply_builtin(input.as_bytes()).unwrap().into_owned()).unwrap()
    }

    #[test]
    fn steps_do_what_their_names_say() {
        assert_eq!(run("exact", " A b "), " A b ");
        assert_eq!(run("nfkc_casefold", "Straße"), "strasse");
        assert_eq!(run("nfkc_casefold", "ＳＴＲＡＳＳＥ"), "strasse");
        assert_eq!(run("nfkc_casefold", "ﬁle"), "file");
        assert_eq!(run("trim_collapse", "  Ann \t\n Lee  "), "Ann Lee");
        assert_eq!(run("digits", "123-45-6789"), "123456789");
        assert_eq!(run("nfkc_casefold+digits", "１２３-4"), "1234");
        assert_eq!(
            run("nfkc_casefold+trim_collapse", "  A@B.Example "),
            "a@b.example"
        );
    }

    #[test]
    fn specs_are_checked_and_canonical() {
        for good in [
            "exact",
            "digits",
            "custom:email_v1+nfkc_casefold",
            "trim_collapse+nfkc_casefold",
        ] {
            assert_eq!(Normalizer::parse(good).unwrap().spec(), good);
        }
        for bad in [
            "",
            "lower",
            "digits+digits",
            "exact+digits",
            "digits+custom:x",
            "custom:",
            "custom:UPPER",
            "nfkc_casefold+",
        ] {
            assert!(
                matches!(Normalizer::parse(bad), Err(Error::InvalidConfig(_))),
                "{bad:?} parsed"
            );
        }
        assert_eq!(
            Normalizer::parse("custom:x+digits").unwrap().custom_name(),
            Some("x")
        );
    }

    #[test]
    fn text_steps_refuse_bytes_that_are_not_utf8() {
        let n = Normalizer::parse("nfkc_casefold").unwrap();
        assert!(matches!(
            n.apply_builtin(b"\xff"),
            Err(Error::Malformed { .. })
        ));
        let d = Normalizer::parse("digits").unwrap();
        assert_eq!(&d.apply_builtin(b"\xff1\xfe2").unwrap()[..], b"12");
    }
}
