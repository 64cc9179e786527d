//! Rules on call stacks: patterns, rules, ordered rule lists and the TOML rules file.

use super::Category;
use crate::symbolize::{Frame, FrameKind};
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

    /// Like [`Pattern::matches`], but a plain pattern must equal the whole text.
    pub fn matches_whole(&self, text: &str) -> bool {
        if self.0.contains(['*', '?']) {
            glob(self.0.as_bytes(), text.as_bytes())
        } else {
            text == self.0
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

/// Which frames a rule looks at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FrameFilter {
    #[default]
    Any,
    Native,
    Python,
}

/// When a built-in rule is tried (user rules come before all of them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tier {
    /// Dominant over the whole stack: anything allocated while such a frame is on the stack is
    /// its category (a CUDA-graph capture owns its warmup and captured forwards).
    Scope,
    /// The innermost matching frame decides: a library's own memory, a framework's weights,
    /// KV cache or compute.
    #[default]
    Site,
    /// "Some framework's cache" (PyTorch's caching allocator, XLA's BFC): the answer only when
    /// no site rule decides anywhere on the stack.
    Generic,
}

/// One attribution rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Shown in the report beside every byte the rule decided (`builtin:…` or `user:…`).
    pub name: String,
    /// Pattern on a frame's function names (demangled, inlined, and the raw symbol; for a Python
    /// frame its qualified name and its name).
    pub pattern: Option<Pattern>,
    /// Pattern on the frame's module path.
    pub module: Option<Pattern>,
    /// Pattern on the frame's source file (a Python frame's `.py` path, a native frame's DWARF
    /// file).
    pub file: Option<Pattern>,
    /// When set, some frame *outward* of the matching one must match this function pattern
    /// (e.g. a generic tensor allocator counts as weights only when called under load_tensors).
    pub within: Option<Pattern>,
    pub frames: FrameFilter,
    pub tier: Tier,
    pub category: Category,
}

impl Rule {
    fn frame_matches(&self, f: &Frame) -> bool {
        if self.pattern.is_none() && self.module.is_none() && self.file.is_none() {
            return false;
        }
        let python = match f.kind {
            FrameKind::Native => None,
            FrameKind::Python { qualified } => Some(qualified),
        };
        match (self.frames, python) {
            (FrameFilter::Native, Some(_)) | (FrameFilter::Python, None) => return false,
            _ => {}
        }
        if let Some(p) = &self.pattern {
            let named = match python {
                // Python 3.10 records no qualified name: `Class.method` is matched by `method`,
                // and only together with the rule's file (`__init__` alone is everywhere).
                Some(false) if p.as_str().contains('.') => {
                    self.file.is_some() && f.names().any(|n| Pattern::new(p.as_str().rsplit('.').next().unwrap_or("")).matches_whole(n))
                }
                // Built-in Python rules name whole functions (`Module.to` must not take
                // `Module.to_empty`'s frames by substring); other rules match substrings.
                _ if self.frames == FrameFilter::Python => f.names().any(|n| p.matches_whole(n)),
                _ => f.names().any(|n| p.matches(n)),
            };
            if !named {
                return false;
            }
        }
        if let Some(m) = &self.module {
            match &f.module {
                Some(path) if m.matches(path) => {}
                _ => return false,
            }
        }
        if let Some(file) = &self.file {
            match &f.file {
                Some(path) if file.matches(path) => {}
                _ => return false,
            }
        }
        true
    }

    /// Whether the rule's `within`, if any, holds outward of frame `i`.
    fn within_holds(&self, frames: &[Frame], i: usize) -> bool {
        match &self.within {
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
    file: Option<String>,
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
            let given = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.is_empty());
            if !given(&r.pattern) && !given(&r.module) && !given(&r.file) {
                return Err(Error::Rules(format!("rule {n}: needs `pattern`, `module` or `file`")));
            }
            let name = format!("user:{}", r.name.unwrap_or_else(|| r.pattern.clone().or(r.module.clone()).or(r.file.clone()).unwrap_or_default()));
            let pat = |o: Option<String>| o.filter(|s| !s.is_empty()).map(|s| Pattern::new(&s));
            rules.push(Rule {
                name,
                pattern: pat(r.pattern),
                module: pat(r.module),
                file: pat(r.file),
                within: pat(r.within),
                frames: FrameFilter::Any,
                tier: Tier::Site,
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

    /// The rules (indices, in order) that frame `f` matches by itself, before any `within`:
    /// what depends on the frame alone, so a caller may keep it per distinct frame.
    pub(crate) fn hits(&self, f: &Frame) -> Vec<u32> {
        (0..self.rules.len() as u32).filter(|&ri| self.rules[ri as usize].frame_matches(f)).collect()
    }

    /// The first match over `frames` (innermost first) among the rules `keep` accepts, given
    /// `hits[i]`, the rules frame `i` matches by itself ([`Rules::hits`]): (rule index, frame
    /// index). For each frame, rules are tried in order.
    pub(crate) fn first(&self, frames: &[Frame], hits: &[&[u32]], keep: impl Fn(&Rule) -> bool) -> Option<(usize, usize)> {
        for (i, frame_hits) in hits.iter().enumerate() {
            for &ri in frame_hits.iter() {
                let r = &self.rules[ri as usize];
                if keep(r) && r.within_holds(frames, i) {
                    return Some((ri as usize, i));
                }
            }
        }
        None
    }
}
