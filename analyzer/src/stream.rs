//! One event stream: every event and end of every loaded trace and every marker (recorded in a
//! trace or read from a side file), merged in the one order the memory model replays them and
//! `vramtrace events` prints them.
//!
//! Order: by time; at one time, events before process ends before markers (so a marker sees
//! the allocations stamped in its nanosecond, and a process's end follows its last event); then
//! by source: trace files in load order ([`Loaded::traces`]), side-file markers last; within
//! one source, the order of the file. A file whose clock went backwards keeps its own order:
//! the merge orders the heads of the sources, it never sorts inside a file.
//!
//! Memory is bounded by the number of files, not of events: one pending item per source (two
//! per trace: events then its end, and its markers; one for side-file markers). Events are
//! decoded from the traces' memory maps as they are consumed; markers are borrowed from
//! [`Loaded`].
//!
//! An item names its trace file by index into [`Loaded::traces`]: the file's process is
//! `traces[file].info`, and a stack id of an event or marker resolves with
//! [`Loaded::frames`] (symbolized when the `Loaded` came from [`crate::load()`], module+offset
//! when it came from [`crate::load_traces()`]).
//!
//! ```no_run
//! # use vramtrace_analyzer::{load, StreamItem};
//! let loaded = load(&["run-dir".into()]).unwrap();
//! for item in loaded.stream() {
//!     match item {
//!         StreamItem::Event { file, event } => {
//!             let pid = loaded.traces[file].info.pid;
//!             let frames = loaded.frames(file, event.stack_id);
//!             println!("{} pid {pid} api {} at {:?}", event.t_ns, event.api, frames.first().map(|f| f.to_string()));
//!         }
//!         other => println!("{} {other:?}", other.t_ns()),
//!     }
//! }
//! ```

use crate::load::{EventIter, Loaded};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use vramtrace_trace::side::SideMarker;
use vramtrace_trace::{EventRec, Marker};

/// One item of the merged stream.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamItem<'a> {
    /// A driver call recorded in trace `file`.
    Event { file: usize, event: EventRec },
    /// The end of trace `file`'s process: at its End record when it exited normally (`clean`),
    /// else at its last event or marker (it crashed or was killed).
    End { file: usize, t_ns: u64, clean: bool },
    /// A marker recorded in trace `file`.
    Marker { file: usize, marker: &'a Marker },
    /// A marker from a side file (no process).
    SideMarker(&'a SideMarker),
}

impl StreamItem<'_> {
    pub fn t_ns(&self) -> u64 {
        match self {
            StreamItem::Event { event, .. } => event.t_ns,
            StreamItem::End { t_ns, .. } => *t_ns,
            StreamItem::Marker { marker, .. } => marker.t_ns,
            StreamItem::SideMarker(m) => m.t_ns,
        }
    }

    /// The trace file the item comes from (`None` for a side-file marker).
    pub fn file(&self) -> Option<usize> {
        match self {
            StreamItem::Event { file, .. } | StreamItem::End { file, .. } | StreamItem::Marker { file, .. } => Some(*file),
            StreamItem::SideMarker(_) => None,
        }
    }

    /// Rank among items of the same time.
    fn rank(&self) -> u8 {
        match self {
            StreamItem::Event { .. } => 0,
            StreamItem::End { .. } => 1,
            StreamItem::Marker { .. } | StreamItem::SideMarker(_) => 2,
        }
    }
}

/// Where items come from; sources are numbered so that their number breaks ties in the order
/// of the module doc: trace `f`'s events at `2f`, its markers at `2f + 1`, side markers last.
enum Source<'a> {
    Trace { file: usize, events: EventIter<'a>, end: Option<(u64, bool)> },
    Markers { file: usize, list: &'a [Marker], pos: usize },
    Side { list: &'a [SideMarker], pos: usize },
}

impl<'a> Source<'a> {
    fn pull(&mut self) -> Option<StreamItem<'a>> {
        match self {
            Source::Trace { file, events, end } => match events.next() {
                Some(event) => Some(StreamItem::Event { file: *file, event }),
                None => end.take().map(|(t_ns, clean)| StreamItem::End { file: *file, t_ns, clean }),
            },
            Source::Markers { file, list, pos } => {
                let marker = list.get(*pos)?;
                *pos += 1;
                Some(StreamItem::Marker { file: *file, marker })
            }
            Source::Side { list, pos } => {
                let m = list.get(*pos)?;
                *pos += 1;
                Some(StreamItem::SideMarker(m))
            }
        }
    }
}

/// The merged stream over a [`Loaded`] set of traces (see the module doc); from
/// [`Loaded::stream`].
pub struct EventStream<'a> {
    sources: Vec<Source<'a>>,
    /// The next item of each source.
    heads: Vec<Option<StreamItem<'a>>>,
    /// (time, rank, source) of every source with a head, except `current`'s.
    heap: BinaryHeap<Reverse<(u64, u8, u32)>>,
    /// A source whose head comes before every head in the heap: the common case of a run of
    /// items from one file is served without touching the heap.
    current: Option<usize>,
}

impl<'a> EventStream<'a> {
    pub fn new(loaded: &'a Loaded) -> EventStream<'a> {
        let mut sources = Vec::with_capacity(2 * loaded.traces.len() + 1);
        for (file, tf) in loaded.traces.iter().enumerate() {
            let end = (tf.end_ns.unwrap_or(0).max(tf.last_ns), tf.end_ns.is_some());
            sources.push(Source::Trace { file, events: tf.events(), end: Some(end) });
            sources.push(Source::Markers { file, list: &tf.markers, pos: 0 });
        }
        sources.push(Source::Side { list: &loaded.markers, pos: 0 });
        let mut s = EventStream { heads: Vec::with_capacity(sources.len()), sources, heap: BinaryHeap::new(), current: None };
        for i in 0..s.sources.len() {
            let head = s.sources[i].pull();
            if let Some(it) = &head {
                s.heap.push(Reverse((it.t_ns(), it.rank(), i as u32)));
            }
            s.heads.push(head);
        }
        s
    }
}

impl<'a> Iterator for EventStream<'a> {
    type Item = StreamItem<'a>;

    fn next(&mut self) -> Option<StreamItem<'a>> {
        let src = match self.current.take() {
            Some(s) => s,
            None => self.heap.pop()?.0 .2 as usize,
        };
        let item = self.heads[src].take();
        if let Some(next) = self.sources[src].pull() {
            let key = (next.t_ns(), next.rank(), src as u32);
            self.heads[src] = Some(next);
            if self.heap.peek().is_none_or(|Reverse(top)| key <= *top) {
                self.current = Some(src);
            } else {
                self.heap.push(Reverse(key));
            }
        }
        item
    }
}

impl Loaded {
    /// Every event, process end and marker of the loaded traces, merged (see [`EventStream`]).
    pub fn stream(&self) -> EventStream<'_> {
        EventStream::new(self)
    }
}
