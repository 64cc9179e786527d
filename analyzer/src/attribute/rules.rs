//! Rules on call stacks: patterns, rules, ordered rule lists and the TOML rules file.

use super::Category;
use crate::symbolize::Frame;
use crate::Error;
use serde::Deserialize;

/// A text pattern: a glob (`*`, `?`) matched against the whole text when it contains a
/// wildcard, otherwise a substring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    pub fn new(s: &str) -> Pattern {
        Pattern(s.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, text: &str) -> bool {
        if self.0.contains(['*', '?']) {
            glob(self.0.as_bytes(), text.as_bytes())
        } else {
            text.contains(self.0.as_str())
        }
    }
}

/// Iterative glob matcher with single-star backtracking: linear in practice, no recursion.
fn glob(p: &[u8], t: &[u8]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// One attribution rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Shown in the report beside every byte the rule decided (`builtin:…` or `user:…`).
    pub name: String,
    /// Pattern on a frame's function names (demangled, inlined, and the raw symbol).
    pub pattern: Option<Pattern>,
    /// Pattern on the frame's module path.
    pub module: Option<Pattern>,
    /// When set, some frame *outward* of the matching one must match this function pattern
    /// (e.g. a generic tensor allocator counts as weights only when called under load_tensors).
    pub within: Option<Pattern>,
    pub category: Category,
}

impl Rule {
    fn frame_matches(&self, f: &Frame) -> bool {
        if self.pattern.is_none() && self.module.is_none() {
            return false;
        }
        if let Some(p) = &self.pattern {
            if !f.names().any(|n| p.matches(n)) {
                return false;
            }
        }
        if let Some(m) = &self.module {
            match &f.module {
                Some(path) if m.matches(path) => {}
                _ => return false,
            }
        }
        true
    }

    fn matches_at(&self, frames: &[Frame], i: usize) -> bool {
        self.frame_matches(&frames[i])
            && match &self.within {
                None => true,
                Some(w) => frames[i + 1..].iter().any(|f| f.names().any(|n| w.matches(n))),
            }
    }
}

/// An ordered list of rules; the first rule that matches (frame by frame, innermost first) wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    pub rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rule: Vec<RuleToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleToml {
    name: Option<String>,
    pattern: Option<String>,
    module: Option<String>,
    within: Option<String>,
    category: String,
}

impl Rules {
    /// Parses a rules file (see docs/report-schema.md, "Rules file").
    pub fn from_toml_str(s: &str) -> Result<Rules, Error> {
        let f: RulesFile = toml::from_str(s).map_err(|e| Error::Rules(e.message().replace('\n', " ")))?;
        let mut rules = Vec::new();
        for (i, r) in f.rule.into_iter().enumerate() {
            let n = i + 1;
            let category = Category::from_name(&r.category).ok_or_else(|| {
                let names: Vec<&str> = Category::ALL.iter().map(|c| c.name()).collect();
                Error::Rules(format!("rule {n}: unknown category {:?} (expected one of {})", r.category, names.join(", ")))
            })?;
            if r.pattern.as_deref().is_none_or(str::is_empty) && r.module.as_deref().is_none_or(str::is_empty) {
                return Err(Error::Rules(format!("rule {n}: needs `pattern` or `module`")));
            }
            let name = format!("user:{}", r.name.unwrap_or_else(|| r.pattern.clone().or(r.module.clone()).unwrap_or_default()));
            rules.push(Rule {
                name,
                pattern: r.pattern.filter(|s| !s.is_empty()).map(|s| Pattern::new(&s)),
                module: r.module.filter(|s| !s.is_empty()).map(|s| Pattern::new(&s)),
                within: r.within.filter(|s| !s.is_empty()).map(|s| Pattern::new(&s)),
                category,
            });
        }
        Ok(Rules { rules })
    }

    /// Reads and parses a rules file.
    pub fn load(path: &std::path::Path) -> Result<Rules, Error> {
        let s = std::fs::read_to_string(path).map_err(|e| Error::Rules(format!("{}: {e}", path.display())))?;
        Self::from_toml_str(&s).map_err(|e| match e {
            Error::Rules(m) => Error::Rules(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    /// The first match over `frames` (innermost first): (rule index, frame index).
    pub fn find(&self, frames: &[Frame]) -> Option<(usize, usize)> {
        for i in 0..frames.len() {
            for (ri, r) in self.rules.iter().enumerate() {
                if r.matches_at(frames, i) {
                    return Some((ri, i));
                }
            }
        }
        None
    }
}
