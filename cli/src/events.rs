//! `vramtrace events`: every event of one or more traces, merged in time order, one per line.

use std::collections::{BinaryHeap, HashMap};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::cell::RefCell;
use std::rc::Rc;
use vramtrace_analyzer::symbolize::{search_dirs_for, ElfCache, Symbolizer};
use vramtrace_trace::{Info, Reader, Record, Tail};
use vramtrace_viewer::events::{event_line, marker_line, Format};

/// One open trace: its reader, the stacks and modules seen so far, its symbolizer.
struct Source<'a> {
    path: String,
    reader: Reader<'a>,
    info: Info,
    stacks: HashMap<u32, Vec<u64>>,
    symbolizer: Option<Symbolizer>,
    modules: Vec<vramtrace_trace::Module>,
    /// Opened ELF files, shared by every source.
    files: Rc<RefCell<ElfCache>>,
    failed: bool,
}

enum Item {
    Event(vramtrace_trace::EventRec),
    Marker(vramtrace_trace::Marker),
}

impl Item {
    fn t_ns(&self) -> u64 {
        match self {
            Item::Event(e) => e.t_ns,
            Item::Marker(m) => m.t_ns,
        }
    }
}

impl Source<'_> {
    /// Advances to the next event or marker, absorbing stack/module/info records on the way.
    fn next_item(&mut self) -> Option<Item> {
        while !self.failed {
            match self.reader.next()? {
                Ok(Record::Event(e)) => return Some(Item::Event(e)),
                Ok(Record::Marker(m)) => return Some(Item::Marker(m)),
                Ok(Record::Stack { id, frames }) => {
                    self.stacks.insert(id, frames);
                }
                Ok(Record::Module(m)) => {
                    self.modules.push(m);
                    self.symbolizer = None; // rebuilt with the new module list on next use
                }
                Ok(Record::Info(i)) => self.info = i,
                Ok(Record::End(_)) | Ok(Record::Device(_)) => {}
                Err(e) => {
                    eprintln!("vramtrace: warning: {}: {e}; events after this point are lost", self.path);
                    self.failed = true;
                }
            }
        }
        None
    }

    fn frames(&mut self, stack_id: u32, symbols: bool) -> Vec<String> {
        let Some(frames) = self.stacks.get(&stack_id) else { return vec![] };
        if !symbols {
            return frames.iter().map(|&a| vramtrace_analyzer::symbolize::Frame::unresolved(a, &self.modules).to_string()).collect();
        }
        let (modules, files) = (&self.modules, &self.files);
        let sym = self.symbolizer.get_or_insert_with(|| Symbolizer::with_cache(modules, files.clone()));
        frames.iter().map(|&a| sym.resolve(a).to_string()).collect()
    }
}

pub fn events(paths: &[PathBuf], json: bool, symbols: bool) -> Result<ExitCode, String> {
    let files = crate::trace_files(paths)?;
    let maps: Vec<(String, memmap2::Mmap)> = files
        .iter()
        .map(|p| {
            let f = std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
            // SAFETY: read-only map; a trace still being written only grows.
            let m = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| format!("{}: {e}", p.display()))?;
            Ok((p.display().to_string(), m))
        })
        .collect::<Result<_, String>>()?;
    let dirs = search_dirs_for(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>());
    let elf_files = Rc::new(RefCell::new(ElfCache::with_search_dirs(dirs)));
    let mut sources = Vec::new();
    for (path, map) in &maps {
        let reader = Reader::new(map).map_err(|e| format!("{path}: {e}"))?;
        sources.push(Source {
            path: path.clone(),
            reader,
            info: Info::default(),
            stacks: HashMap::new(),
            symbolizer: None,
            modules: vec![],
            files: elf_files.clone(),
            failed: false,
        });
    }
    // k-way merge by time: memory stays bounded by the number of files, not events.
    let mut heap = BinaryHeap::new();
    let mut pending: Vec<Option<Item>> = Vec::new();
    for (i, s) in sources.iter_mut().enumerate() {
        let item = s.next_item();
        if let Some(it) = &item {
            heap.push(std::cmp::Reverse((it.t_ns(), i)));
        }
        pending.push(item);
    }
    let out = std::io::stdout().lock();
    let mut out = BufWriter::new(out);
    while let Some(std::cmp::Reverse((_, i))) = heap.pop() {
        let item = pending[i].take().expect("queued source has an item");
        let line = render(&mut sources[i], &item, json, symbols);
        if writeln!(out, "{line}").is_err() {
            return Ok(ExitCode::SUCCESS); // stdout closed (e.g. piped into head): not an error
        }
        pending[i] = sources[i].next_item();
        if let Some(it) = &pending[i] {
            heap.push(std::cmp::Reverse((it.t_ns(), i)));
        }
    }
    let _ = out.flush();
    for s in &sources {
        if let Tail::Truncated { offset } = s.reader.tail() {
            if !s.failed {
                eprintln!("vramtrace: note: {}: the last record was cut short at byte {offset} (the process died mid-write)", s.path);
            }
        }
    }
    Ok(if sources.iter().any(|s| s.failed) { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// One line per item; the rendering is the viewer's.
fn render(s: &mut Source, item: &Item, json: bool, symbols: bool) -> String {
    let format = if json { Format::Json } else { Format::Text };
    let (pid, base) = (s.info.pid, s.info.mono_ns);
    match item {
        Item::Marker(m) => marker_line(pid, base, m, format),
        Item::Event(e) => {
            let stack = s.frames(e.stack_id, symbols);
            event_line(pid, base, e, &stack, format)
        }
    }
}
