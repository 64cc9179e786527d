//! The categories of device (and pinned host) memory.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The categories of device (and pinned host) memory, exactly as named in the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Weights,
    KvCache,
    Compute,
    /// CUDA graphs: memory allocated while a graph is captured (its private pool, the warmup
    /// and captured forwards), which a framework reports on a line of its own.
    CudaGraphs,
    ScratchPool,
    Workspace,
    FrameworkCache,
    HostPinned,
    Runtime,
    #[default]
    Unknown,
}

impl Category {
    pub const ALL: [Category; 10] = [
        Category::Weights,
        Category::KvCache,
        Category::Compute,
        Category::CudaGraphs,
        Category::ScratchPool,
        Category::Workspace,
        Category::FrameworkCache,
        Category::HostPinned,
        Category::Runtime,
        Category::Unknown,
    ];
    pub const COUNT: usize = 10;

    pub fn name(self) -> &'static str {
        match self {
            Category::Weights => "weights",
            Category::KvCache => "kv_cache",
            Category::Compute => "compute",
            Category::CudaGraphs => "cuda_graphs",
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
