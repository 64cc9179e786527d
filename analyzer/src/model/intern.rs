//! Call sites and origins: every distinct symbolized stack is a site, every (site, rule) pair an
//! origin whose bytes the report's audit table lists. Each stack is attributed once, on first
//! use (a batch analysis decides the native stacks before the replay, so site numbers follow the
//! trace); the fallbacks may give one site several origins.

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

/// The stack decision of every (native stack, Python stack) pair of every trace, made when an
/// event first has the pair ([`StackTable::decide_native`] decides native-only stacks ahead).
pub(super) struct StackTable {
    att: Attributor,
    files: Vec<FastMap<(u32, u32), StackAttr>>,
    /// Events without a stack (or whose stack is only the shim's own frames).
    pub none: StackAttr,
}

impl StackTable {
    /// A table for no trace file yet (see [`StackTable::add_file`]).
    pub fn new(rules: Option<&Rules>, intern: &mut Interner) -> StackTable {
        let att = Attributor::new(rules);
        let site = intern.site("(no stack)".into(), Vec::new);
        let origin = intern.origin(site, "default:no_stack", RuleSource::Default, Category::Unknown, None);
        let none = StackAttr { site, origin, category: Category::Unknown };
        StackTable { att, files: Vec::new(), none }
    }

    pub fn add_file(&mut self) {
        self.files.push(FastMap::default());
    }

    /// Decides every native-only stack of every trace now, in stack-id order, so site numbers
    /// follow the traces.
    pub fn decide_native(&mut self, loaded: &Loaded, intern: &mut Interner) {
        for (fi, tf) in loaded.traces.iter().enumerate() {
            let mut ids: Vec<u32> = tf.stacks.keys().copied().collect();
            ids.sort_unstable();
            for id in ids {
                self.get(loaded, intern, fi, id, 0);
            }
        }
    }

    /// The decision for an event's stacks, made on first use.
    pub fn get(&mut self, loaded: &Loaded, intern: &mut Interner, fi: usize, stack_id: u32, py_stack_id: u32) -> StackAttr {
        if stack_id == 0 && py_stack_id == 0 {
            return self.none;
        }
        if let Some(&sa) = self.files.get(fi).and_then(|m| m.get(&(stack_id, py_stack_id))) {
            return sa;
        }
        let mut frames = loaded.event_frames(fi, stack_id, py_stack_id);
        // The shim's own frames say nothing about the caller.
        let own = frames.iter().take_while(|f| f.module.as_deref().is_some_and(|m| m.contains("libvramtrace"))).count();
        frames.drain(..own);
        let sa = if frames.is_empty() {
            self.none
        } else {
            let d = self.att.decide(&frames);
            let key = frames.iter().map(Frame::key).collect::<Vec<_>>().join(" <- ");
            let site = intern.site(key, || frames.iter().take(SITE_FRAMES).map(|f| f.to_string()).collect());
            let origin = intern.origin(site, &d.rule, d.source, d.category, d.frame);
            StackAttr { site, origin, category: d.category }
        };
        if let Some(m) = self.files.get_mut(fi) {
            m.insert((stack_id, py_stack_id), sa);
        }
        sa
    }
}

/// Frames kept per site for display: enough for a native stack with its Python frames placed.
const SITE_FRAMES: usize = 48;

impl Engine<'_> {
    /// What the stacks of event `e` of trace `fi` decided.
    pub(super) fn stack_attr(&mut self, src: &Loaded, fi: usize, e: &EventRec) -> StackAttr {
        self.stacks.get(src, &mut self.intern, fi, e.stack_id, e.py_stack_id)
    }

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
