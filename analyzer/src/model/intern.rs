//! Call sites and origins: every distinct symbolized stack is a site, every (site, rule) pair an
//! origin whose bytes the report's audit table lists. Stacks are attributed once, before the
//! replay; the fallbacks may give one site several origins.

use super::{Engine, FastMap, HOST};
use crate::attribute::fallback::Request;
use crate::attribute::{Attributor, Category, RuleSource};
use crate::load::Loaded;
use crate::symbolize::Frame;
use crate::Rules;
use std::collections::HashMap;
use vramtrace_trace::{ApiKind, EventRec};

pub(super) struct SiteInfo {
    pub key: String,
    pub frames: Vec<String>,
}

pub(super) struct OriginInfo {
    pub site: u32,
    pub rule: String,
    pub source: RuleSource,
    pub category: Category,
    pub frame: Option<String>,
    pub allocs: u64,
    pub bytes: u64,
    pub live: u64,
    pub max_live: u64,
    pub leaked: u64,
}

#[derive(Default)]
pub(super) struct Interner {
    pub sites: Vec<SiteInfo>,
    site_ix: HashMap<String, u32>,
    pub origins: Vec<OriginInfo>,
    origin_ix: HashMap<(u32, String), u32>,
}

impl Interner {
    pub fn site(&mut self, key: String, frames: impl FnOnce() -> Vec<String>) -> u32 {
        if let Some(&i) = self.site_ix.get(&key) {
            return i;
        }
        let i = self.sites.len() as u32;
        self.sites.push(SiteInfo { key: key.clone(), frames: frames() });
        self.site_ix.insert(key, i);
        i
    }

    pub fn origin(&mut self, site: u32, rule: &str, source: RuleSource, category: Category, frame: Option<String>) -> u32 {
        if let Some(&i) = self.origin_ix.get(&(site, rule.to_string())) {
            return i;
        }
        let i = self.origins.len() as u32;
        self.origins.push(OriginInfo {
            site,
            rule: rule.to_string(),
            source,
            category,
            frame,
            allocs: 0,
            bytes: 0,
            live: 0,
            max_live: 0,
            leaked: 0,
        });
        self.origin_ix.insert((site, rule.to_string()), i);
        i
    }

    /// Counts one allocation of `size` bytes for `origin`.
    pub fn count_alloc(&mut self, origin: u32, size: u64) {
        let o = &mut self.origins[origin as usize];
        o.allocs += 1;
        o.bytes = o.bytes.saturating_add(size);
    }
}

/// What a stack decided: its site, its origin (site × stack rule) and category.
#[derive(Clone, Copy)]
pub(super) struct StackAttr {
    pub site: u32,
    pub origin: u32,
    pub category: Category,
}

/// The stack decision of every stack id of every trace.
pub(super) struct StackTable {
    files: Vec<FastMap<u32, StackAttr>>,
    /// Events without a stack (or whose stack is only the shim's own frames).
    pub none: StackAttr,
}

impl StackTable {
    pub fn build(loaded: &Loaded, rules: Option<&Rules>, intern: &mut Interner) -> StackTable {
        let att = Attributor::new(rules);
        let site = intern.site("(no stack)".into(), Vec::new);
        let origin = intern.origin(site, "default:no_stack", RuleSource::Default, Category::Unknown, None);
        let none = StackAttr { site, origin, category: Category::Unknown };
        let mut files = Vec::with_capacity(loaded.traces.len());
        for (fi, tf) in loaded.traces.iter().enumerate() {
            let mut map = FastMap::default();
            let mut ids: Vec<&u32> = tf.stacks.keys().collect();
            ids.sort();
            for &id in ids {
                let mut frames = loaded.frames(fi, id);
                // The shim's own frames say nothing about the caller.
                let own = frames.iter().take_while(|f| f.module.as_deref().is_some_and(|m| m.contains("libvramtrace"))).count();
                frames.drain(..own);
                if frames.is_empty() {
                    map.insert(id, none);
                    continue;
                }
                let d = att.decide(&frames);
                let key = frames.iter().map(Frame::key).collect::<Vec<_>>().join(" <- ");
                let site = intern.site(key, || frames.iter().take(24).map(|f| f.to_string()).collect());
                let origin = intern.origin(site, &d.rule, d.source, d.category, d.frame);
                map.insert(id, StackAttr { site, origin, category: d.category });
            }
            files.push(map);
        }
        StackTable { files, none }
    }

    pub fn get(&self, fi: usize, stack_id: u32) -> StackAttr {
        if stack_id == 0 {
            return self.none;
        }
        self.files[fi].get(&stack_id).copied().unwrap_or(self.none)
    }
}

impl Engine<'_> {
    /// The origin and category of a device allocation: what its stack decided, unless a
    /// fallback (`crate::attribute::fallback`) decides for an allocation the stack left open.
    pub(super) fn attribute(&mut self, fi: usize, e: &EventRec, kind: ApiKind, sa: StackAttr, dev: i32) -> (u32, Category) {
        if dev == HOST {
            return (sa.origin, sa.category);
        }
        let req = Request {
            file: fi,
            pid: self.procs[fi].pid,
            t_ns: e.t_ns,
            size: e.size,
            device: dev,
            vmm: kind == ApiKind::Create,
            site: sa.site as usize,
            stack: sa.category,
        };
        match self.fallbacks.decide(&req) {
            Some(d) => (self.intern.origin(sa.site, &d.rule, d.source, d.category, d.frame), d.category),
            None => (sa.origin, sa.category),
        }
    }
}
