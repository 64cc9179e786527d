//! Attribution: which category every traced byte belongs to, and the rule that decided it.
//!
//! Two stages, tried in order for every allocation:
//! 1. The call stack ([`Attributor`]): rules look at the symbolized frames of the allocating
//!    call. Frames are tried from the innermost outward and, for each frame, rules in order; the
//!    first hit decides. User rules (TOML, [`Rules::from_toml_str`]) are tried over the whole
//!    stack before any built-in ([`Rules::builtin`]), so a user can override a built-in even
//!    when the built-in would match a frame nearer the allocation.
//! 2. Fallbacks (`fallback`), for allocations the stack left undecided (stripped binaries,
//!    generic framework caches): phase markers, vLLM's KV window, runner log lines and ggml
//!    size fingerprints, each with the state it keeps over the replay.
//!
//! Every decision carries the rule's name so the report can be audited.

mod builtin;
mod category;
pub(crate) mod fallback;
pub mod logs;
mod rules;

pub use category::Category;
pub use rules::{Pattern, Rule, Rules};

use crate::symbolize::Frame;
use serde::{Deserialize, Serialize};

/// Where an attribution came from, for the audit table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleSource {
    User,
    Builtin,
    /// A `phase:<category>` marker was open.
    Phase,
    /// Matched to a runner's log line.
    Log,
    /// A documented heuristic (allocation kind and phase).
    Heuristic,
    /// Nothing matched.
    Default,
}

/// The decision for one stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub category: Category,
    pub rule: String,
    pub source: RuleSource,
    /// The frame that matched, displayed.
    pub frame: Option<String>,
}

/// Built-in plus user rules.
#[derive(Clone, Debug)]
pub struct Attributor {
    user: Rules,
    builtin: Rules,
}

impl Attributor {
    pub fn new(user: Option<&Rules>) -> Attributor {
        Attributor { user: user.cloned().unwrap_or_default(), builtin: Rules::builtin() }
    }

    /// Decides the category of an allocation from its stack (innermost first).
    pub fn decide(&self, frames: &[Frame]) -> Decision {
        for (rules, source) in [(&self.user, RuleSource::User), (&self.builtin, RuleSource::Builtin)] {
            if let Some((ri, fi)) = rules.find(frames) {
                let r = &rules.rules[ri];
                return Decision { category: r.category, rule: r.name.clone(), source, frame: Some(frames[fi].to_string()) };
            }
        }
        let rule = if frames.is_empty() { "default:no_stack" } else { "default:no_match" };
        Decision { category: Category::Unknown, rule: rule.into(), source: RuleSource::Default, frame: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fr(name: &str) -> Frame {
        Frame { function: Some(name.into()), ..Frame::default() }
    }

    #[test]
    fn glob_and_substring() {
        assert!(Pattern::new("pool").matches("my_pool_alloc"));
        assert!(!Pattern::new("pool").matches("my_alloc"));
        assert!(Pattern::new("my_*_alloc").matches("my_pool_alloc"));
        assert!(!Pattern::new("my_*_alloc").matches("xmy_pool_alloc"));
        assert!(Pattern::new("*pool*").matches("ggml_cuda_pool_vmm::alloc"));
        assert!(Pattern::new("a?c").matches("abc"));
        assert!(!Pattern::new("a?c").matches("abbc"));
    }

    #[test]
    fn within_needs_an_outer_frame() {
        let a = Attributor::new(None);
        let kv = [fr("ggml_backend_cuda_buffer_type_alloc_buffer"), fr("ggml_backend_alloc_ctx_tensors_from_buft"), fr("llama_kv_cache::llama_kv_cache(llama_model const&)")];
        assert_eq!(a.decide(&kv).category, Category::KvCache);
        let w = [fr("ggml_backend_alloc_ctx_tensors_from_buft"), fr("llama_model::load_tensors(llama_model_loader&)")];
        let d = a.decide(&w);
        assert_eq!((d.category, d.rule.as_str()), (Category::Weights, "builtin:ggml.alloc_ctx_tensors_under_load"));
        assert_eq!(a.decide(&[fr("ggml_backend_alloc_ctx_tensors_from_buft")]).category, Category::Unknown);
    }

    #[test]
    fn rules_file_errors_are_one_line() {
        let e = Rules::from_toml_str("[[rule]]\npattern = \"x\"\ncategory = \"bogus\"\n").unwrap_err().to_string();
        assert!(e.contains("unknown category") && !e.contains('\n'), "{e}");
        let e = Rules::from_toml_str("[[rule]]\ncategory = \"weights\"\n").unwrap_err().to_string();
        assert!(e.contains("needs `pattern` or `module`"), "{e}");
        let e = Rules::from_toml_str("[[rule]]\npatern = \"x\"\ncategory = \"weights\"\n").unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
    }
}
