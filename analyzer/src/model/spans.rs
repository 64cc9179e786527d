//! The address-space map: per device, the largest address ranges the program held (pointer
//! allocations and VMM mappings) with when they were held, bounded so a huge trace stays small.

use super::alloc::AllocKind;
use super::Engine;
use crate::attribute::Category;
use crate::report::{AddressMap, AddressSpan};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// (size, ptr, start, end, category, vmm): size first, so the heap orders by it.
type SpanKey = (u64, u64, u64, u64, u8, bool);

const ADDRESS_MAP_SPANS: usize = 4096;

/// The `cap` largest spans of one device (min-heap on size), plus how many were left out.
#[derive(Default)]
pub(super) struct SpanSet {
    heap: BinaryHeap<Reverse<SpanKey>>,
    dropped: u64,
}

impl SpanSet {
    /// A range held from `start` to `end` (`u64::MAX`: still held when the trace ends).
    pub fn push(&mut self, size: u64, ptr: u64, start: u64, end: u64, cat: Category, vmm: bool) {
        // Full and not bigger than the smallest kept: the common case in a long trace, O(1).
        if self.heap.len() >= ADDRESS_MAP_SPANS && self.heap.peek().is_some_and(|m| m.0 .0 >= size) {
            self.dropped += 1;
            return;
        }
        self.heap.push(Reverse((size, ptr, start, end, cat as u8, vmm)));
        if self.heap.len() > ADDRESS_MAP_SPANS {
            self.heap.pop();
            self.dropped += 1;
        }
    }
}

impl Engine<'_> {
    /// Whatever is still allocated or mapped ends with the trace.
    pub(super) fn close_spans(&mut self) {
        for p in &self.procs {
            for (&ptr, a) in p.allocs.iter().filter(|(_, a)| a.kind != AllocKind::Host) {
                self.spans.entry(a.dev).or_default().push(a.size, ptr, a.t, u64::MAX, a.cat, false);
            }
            for (&va, m) in &p.maps {
                if let Some(h) = p.handles.get(&m.handle) {
                    self.spans.entry(h.dev).or_default().push(m.size, va, m.t, u64::MAX, h.cat, true);
                }
            }
        }
    }

    pub(super) fn address_map(&self, dev: i32) -> AddressMap {
        let Some(set) = self.spans.get(&dev) else { return AddressMap::default() };
        let mut spans: Vec<AddressSpan> = set
            .heap
            .iter()
            .map(|Reverse((size, ptr, start, end, cat, vmm))| AddressSpan {
                ptr: *ptr,
                size: *size,
                start_rel_ns: self.rel(*start),
                end_rel_ns: (*end != u64::MAX).then(|| self.rel(*end)),
                category: Category::ALL[*cat as usize],
                vmm: *vmm,
            })
            .collect();
        spans.sort_by_key(|s| (s.start_rel_ns, s.ptr));
        AddressMap { spans, dropped: set.dropped }
    }
}
