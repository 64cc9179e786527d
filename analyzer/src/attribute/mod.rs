//! Attribution: which category every traced byte belongs to, and the rule that decided it.
//!
//! Two stages, tried in order for every allocation:
//! 1. The call stack ([`Attributor`]): rules look at the frames of the allocating call — native
//!    frames symbolized, Python frames placed among them (`crate::pyframes`). Within a list of
//!    rules, frames are tried from the innermost outward and, for each frame, rules in order;
//!    the first hit decides. Lists are tried in turn, each over the whole stack: user rules (TOML,
//!    [`Rules::from_toml_str`]), so a user can override any built-in; the built-in *scope* rules
//!    (a CUDA-graph capture owns everything inside it); the built-in *site* rules (a library's
//!    own memory, a framework's weights, KV cache, compute: the innermost decides); and last the
//!    *generic* rules that only say "some framework's cache" ([`Tier`]).
//! 2. Fallbacks (`fallback`), for allocations the stack left undecided (stripped binaries,
//!    generic framework caches): phase markers, vLLM's KV window, runner log lines and ggml
//!    size fingerprints, each with the state it keeps over the replay.
//!
//! Every decision carries the rule's name so the report can be audited.

mod builtin;
mod category;
pub(crate) mod fallback;
pub mod logs;
mod python;
mod rules;

pub use category::Category;
pub use rules::{FrameFilter, Pattern, Rule, Rules, Tier};

use crate::symbolize::{Frame, FrameKind};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

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

/// Built-in plus user rules, and which of them each frame seen so far matches.
#[derive(Clone, Debug)]
pub struct Attributor {
    user: Rules,
    builtin: Rules,
    /// Per distinct frame (all but its address and line), the rules it matches by itself. Deep
    /// stacks share most of their frames, and every rule costs a string match per frame name:
    /// without this, thousands of 60-frame Python stacks cost seconds.
    seen: HashMap<FrameKey, usize>,
    /// Indexed by `seen`'s values.
    hits: Vec<Hits>,
}

/// What a rule can look at in a frame.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct FrameKey {
    kind: FrameKind,
    function: Option<String>,
    symbol: Option<String>,
    inlined: Vec<String>,
    module: Option<String>,
    file: Option<String>,
}

impl FrameKey {
    fn of(f: &Frame) -> FrameKey {
        FrameKey { kind: f.kind, function: f.function.clone(), symbol: f.symbol.clone(), inlined: f.inlined.clone(), module: f.module.clone(), file: f.file.clone() }
    }
}

/// The rules of each list one frame matches by itself ([`Rules::hits`]).
#[derive(Clone, Debug)]
struct Hits {
    user: Vec<u32>,
    builtin: Vec<u32>,
}

impl Attributor {
    pub fn new(user: Option<&Rules>) -> Attributor {
        Attributor { user: user.cloned().unwrap_or_default(), builtin: Rules::builtin(), seen: HashMap::new(), hits: Vec::new() }
    }

    /// Decides the category of an allocation from its stack (innermost first).
    pub fn decide(&mut self, frames: &[Frame]) -> Decision {
        let at: Vec<usize> = frames
            .iter()
            .map(|f| {
                *self.seen.entry(FrameKey::of(f)).or_insert_with(|| {
                    self.hits.push(Hits { user: self.user.hits(f), builtin: self.builtin.hits(f) });
                    self.hits.len() - 1
                })
            })
            .collect();
        let user: Vec<&[u32]> = at.iter().map(|&i| self.hits[i].user.as_slice()).collect();
        let builtin: Vec<&[u32]> = at.iter().map(|&i| self.hits[i].builtin.as_slice()).collect();
        let found = self.user.first(frames, &user, |_| true).map(|m| (&self.user, m, RuleSource::User)).or_else(|| {
            [Tier::Scope, Tier::Site, Tier::Generic].into_iter().find_map(|t| self.builtin.first(frames, &builtin, |r| r.tier == t).map(|m| (&self.builtin, m, RuleSource::Builtin)))
        });
        if let Some((rules, (ri, fi), source)) = found {
            let r = &rules.rules[ri];
            return Decision { category: r.category, rule: r.name.clone(), source, frame: Some(frames[fi].to_string()) };
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
        let mut a = Attributor::new(None);
        let kv = [fr("ggml_backend_cuda_buffer_type_alloc_buffer"), fr("ggml_backend_alloc_ctx_tensors_from_buft"), fr("llama_kv_cache::llama_kv_cache(llama_model const&)")];
        assert_eq!(a.decide(&kv).category, Category::KvCache);
        let w = [fr("ggml_backend_alloc_ctx_tensors_from_buft"), fr("llama_model::load_tensors(llama_model_loader&)")];
        let d = a.decide(&w);
        assert_eq!((d.category, d.rule.as_str()), (Category::Weights, "builtin:ggml.alloc_ctx_tensors_under_load"));
        assert_eq!(a.decide(&[fr("ggml_backend_alloc_ctx_tensors_from_buft")]).category, Category::Unknown);
    }

    fn c10() -> Frame {
        fr("c10::cuda::CUDACachingAllocator::Native::DeviceCachingAllocator::malloc(unsigned long, CUstream_st*)")
    }
    fn pyf(qual: &str, file: &str, qualified: bool) -> Frame {
        let function = if qualified { qual.to_string() } else { qual.rsplit('.').next().unwrap().to_string() };
        Frame { function: Some(function), file: Some(file.into()), line: Some(1), kind: crate::symbolize::FrameKind::Python { qualified }, ..Frame::default() }
    }
    const RUNNER: &str = "/srv/venv/lib/python3.12/site-packages/vllm/v1/worker/gpu_model_runner.py";

    #[test]
    fn a_python_frame_that_decides_wins_over_the_framework_cache() {
        let mut a = Attributor::new(None);
        let d = a.decide(&[c10(), pyf("GPUModelRunner.load_model", RUNNER, true)]);
        assert_eq!((d.category, d.rule.as_str()), (Category::Weights, "builtin:vllm.load_model"));
        // No Python frame decides: the caching allocator's generic answer.
        let d = a.decide(&[c10(), pyf("main", "/home/me/train.py", true)]);
        assert_eq!((d.category, d.rule.as_str()), (Category::FrameworkCache, "builtin:torch.caching_allocator"));
    }

    #[test]
    fn a_graph_capture_owns_the_forwards_run_inside_it() {
        let mut a = Attributor::new(None);
        let stack = [c10(), pyf("GPUModelRunner._dummy_run", RUNNER, true), pyf("GPUModelRunner.capture_model", RUNNER, true)];
        assert_eq!(a.decide(&stack).category, Category::CudaGraphs);
        assert_eq!(a.decide(&stack[..2]).category, Category::Compute, "without the capture, the dummy run is compute");
    }

    #[test]
    fn python_3_10_names_match_only_in_the_rule_file() {
        let mut a = Attributor::new(None);
        assert_eq!(a.decide(&[c10(), pyf("GPUModelRunner.load_model", RUNNER, false)]).category, Category::Weights);
        let elsewhere = pyf("Other.load_model", "/home/me/app.py", false);
        assert_eq!(a.decide(&[c10(), elsewhere]).category, Category::FrameworkCache);
        // Built-in Python rules name whole functions: a longer name is another function.
        assert_eq!(a.decide(&[c10(), pyf("GPUModelRunner.load_model_twice", RUNNER, true)]).category, Category::FrameworkCache);
    }

    #[test]
    fn user_rules_match_python_frames_by_name_and_file() {
        let user = Rules::from_toml_str("[[rule]]\npattern = \"Trainer.build\"\nfile = \"*/proj/train.py\"\ncategory = \"kv_cache\"\n").unwrap();
        let mut a = Attributor::new(Some(&user));
        let d = a.decide(&[c10(), pyf("Trainer.build", "/home/me/proj/train.py", true), pyf("GPUModelRunner.capture_model", RUNNER, true)]);
        assert_eq!((d.category, d.rule.as_str()), (Category::KvCache, "user:Trainer.build"), "user rules come before every built-in");
        assert_eq!(a.decide(&[c10(), pyf("Trainer.build", "/home/me/other/train.py", true)]).category, Category::FrameworkCache);
    }

    #[test]
    fn rules_file_errors_are_one_line() {
        let e = Rules::from_toml_str("[[rule]]\npattern = \"x\"\ncategory = \"bogus\"\n").unwrap_err().to_string();
        assert!(e.contains("unknown category") && !e.contains('\n'), "{e}");
        let e = Rules::from_toml_str("[[rule]]\ncategory = \"weights\"\n").unwrap_err().to_string();
        assert!(e.contains("needs `pattern`, `module` or `file`"), "{e}");
        let e = Rules::from_toml_str("[[rule]]\npatern = \"x\"\ncategory = \"weights\"\n").unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
    }
}
