//! Attribution: which category every traced byte belongs to, and the rule that decided it.
//!
//! Rules look at the symbolized call stack of the allocating call. Frames are tried from the
//! innermost outward and, for each frame, rules in order; the first hit decides. User rules
//! (TOML) are tried over the whole stack before any built-in, so a user can override a built-in
//! even when the built-in would match a frame nearer the allocation. Every decision carries the
//! rule's name so the report can be audited.

use crate::symbolize::Frame;
use crate::Error;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The categories of device (and pinned host) memory, exactly as named in the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Weights,
    KvCache,
    Compute,
    ScratchPool,
    Workspace,
    FrameworkCache,
    HostPinned,
    Runtime,
    #[default]
    Unknown,
}

impl Category {
    pub const ALL: [Category; 9] = [
        Category::Weights,
        Category::KvCache,
        Category::Compute,
        Category::ScratchPool,
        Category::Workspace,
        Category::FrameworkCache,
        Category::HostPinned,
        Category::Runtime,
        Category::Unknown,
    ];
    pub const COUNT: usize = 9;

    pub fn name(self) -> &'static str {
        match self {
            Category::Weights => "weights",
            Category::KvCache => "kv_cache",
            Category::Compute => "compute",
            Category::ScratchPool => "scratch_pool",
            Category::Workspace => "workspace",
            Category::FrameworkCache => "framework_cache",
            Category::HostPinned => "host_pinned",
            Category::Runtime => "runtime",
            Category::Unknown => "unknown",
        }
    }

    pub fn from_name(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.name() == s)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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

    /// The rules vramtrace knows without configuration (DESIGN.md §4 and issue 4).
    pub fn builtin() -> Rules {
        use Category::*;
        let r = |name: &str, pattern: Option<&str>, module: Option<&str>, within: Option<&str>, category| Rule {
            name: format!("builtin:{name}"),
            pattern: pattern.map(Pattern::new),
            module: module.map(Pattern::new),
            within: within.map(Pattern::new),
            category,
        };
        let f = |name: &str, pattern: &str, category| r(name, Some(pattern), None, None, category);
        let rules = vec![
            // ggml scratch pools first: they are the innermost distinguishing frame of any
            // allocation made while computing, whatever called the compute.
            f("ggml.cuda_pool_vmm", "ggml_cuda_pool_vmm", ScratchPool),
            f("ggml.cuda_pool_leg", "ggml_cuda_pool_leg", ScratchPool),
            // KV cache: the llama_kv_cache constructor (older releases: llama_kv_cache_init,
            // llama_kv_cache_unified), including recurrent-state caches.
            f("llama.kv_cache_ctor", "llama_kv_cache::llama_kv_cache(", KvCache),
            f("llama.kv_cache_unified_ctor", "llama_kv_cache_unified::llama_kv_cache_unified(", KvCache),
            f("llama.kv_cache_init", "llama_kv_cache_init", KvCache),
            f("llama.memory_recurrent_ctor", "llama_memory_recurrent::llama_memory_recurrent(", KvCache),
            // Compute buffers: the graph allocator's reserve, and the scheduler's.
            f("ggml.gallocr_reserve", "ggml_gallocr_reserve_n", Compute),
            f("ggml.sched_reserve", "ggml_backend_sched_reserve", Compute),
            f("llama.context_reserve", "llama_context::reserve", Compute),
            f("llama.context_graph_reserve", "llama_context::graph_reserve", Compute),
            // Weights: the model loader, and the generic tensor allocator when called under it.
            r("ggml.alloc_ctx_tensors_under_load", Some("ggml_backend_alloc_ctx_tensors_from_buft"), None, Some("load_tensors"), Weights),
            f("llama.model_base_load_tensors", "llama_model_base::load_tensors", Weights),
            f("llama.model_load_tensors", "llama_model::load_tensors", Weights),
            f("llama.llm_load_tensors", "llm_load_tensors", Weights),
            // Vendor library workspaces and handles.
            f("cublas.create", "cublasCreate", Workspace),
            f("cublas.workspace", "cublasSetWorkspace", Workspace),
            f("cublaslt.create", "cublasLtCreate", Workspace),
            r("cublas.module", None, Some("libcublas"), None, Workspace),
            f("cudnn.create", "cudnnCreate", Workspace),
            r("cudnn.module", None, Some("libcudnn"), None, Workspace),
            f("nccl.symbol", "nccl", Workspace),
            r("nccl.module", None, Some("libnccl"), None, Workspace),
            r("cufft.module", None, Some("libcufft"), None, Workspace),
            // PyTorch's caching allocator (native, expandable segments, cudaMallocAsync backend).
            f("torch.caching_allocator", "CUDACachingAllocator", FrameworkCache),
            f("torch.cuda_malloc_async", "CudaMallocAsync", FrameworkCache),
            r("torch.c10_cuda", None, Some("libc10_cuda"), None, FrameworkCache),
            // JAX / XLA: the BFC allocator over its own device memory.
            f("xla.bfc_allocator", "tsl::BFCAllocator", FrameworkCache),
            f("xla.device_mem_allocator", "DeviceMemAllocator", FrameworkCache),
        ];
        Rules { rules }
    }
}

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
