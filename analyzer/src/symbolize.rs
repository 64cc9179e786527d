//! Offline symbolization of return addresses recorded by the shim.
//!
//! The shim records raw return addresses plus the module map (path, load bias, address range,
//! build-id) of the traced process; names are resolved here, after the fact, so the hot path in
//! the traced program never touches symbol tables. Lookup order for a module:
//! `.symtab` (keeps `static` functions such as `ggml_cuda_device_malloc`), then DWARF (file:line
//! and inlined frames, and a name when there is no `.symtab`), then `.dynsym` (stripped release
//! builds), and `module+offset` as the last resort. A file whose build-id differs from the
//! recorded one is not trusted (the binary was rebuilt since the run): its frames fall back to
//! `module+offset`. Everything is pure Rust (object, gimli, addr2line): no shelling out.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use vramtrace_trace::Module;

/// Where a frame's function name came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NameSource {
    Symtab,
    Dwarf,
    Dynsym,
    /// Given by a test or a caller-provided resolver.
    Injected,
    #[default]
    None,
}

/// One symbolized return address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Frame {
    /// The runtime address as recorded.
    pub addr: u64,
    /// Demangled function name.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub function: Option<String>,
    /// Raw (mangled) symbol name, when it differs from `function`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub symbol: Option<String>,
    /// Functions inlined at this address, innermost first, not including `function`.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub inlined: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub line: Option<u32>,
    /// Path of the module containing the address.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub module: Option<String>,
    /// Address relative to the module's load bias (= the ELF virtual address).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub module_offset: Option<u64>,
    pub source: NameSource,
    /// A Python frame (`function` its qualified name, `file` and `line` its source) rather than
    /// a native one.
    #[serde(skip_serializing_if = "FrameKind::is_native", default)]
    pub kind: FrameKind,
}

/// What kind of code a frame runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FrameKind {
    #[default]
    Native,
    /// Python code. `qualified`: `function` is `co_qualname` (3.11+); without it (3.10) it is
    /// the bare `co_name`, and rules naming `Class.method` match by the last component.
    Python { qualified: bool },
}

impl FrameKind {
    pub fn is_native(&self) -> bool {
        *self == FrameKind::Native
    }
}

impl Frame {
    /// A frame known only by its address and (if found) its module: no file access needed.
    pub fn unresolved(addr: u64, modules: &[Module]) -> Frame {
        let m = find_module(modules, addr);
        Frame {
            addr,
            module: m.map(|m| m.path.clone()),
            module_offset: m.map(|m| addr.wrapping_sub(m.base)),
            ..Frame::default()
        }
    }

    /// Every name this frame answers to (inlined functions first, then the function), used by
    /// attribution rules: a rule naming a `static` function that the compiler inlined still fires.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.inlined.iter().map(String::as_str).chain(self.function.as_deref()).chain(self.symbol.as_deref())
    }

    /// Short module name (file name of the module path).
    pub fn module_name(&self) -> Option<&str> {
        self.module.as_deref().map(|p| p.rsplit('/').next().unwrap_or(p))
    }

    /// The name used to group identical call sites across processes and builds: the function
    /// name when known, else `module+0xoffset`, else the raw address.
    pub fn key(&self) -> String {
        if let Some(f) = &self.function {
            return f.clone();
        }
        match (self.module_name(), self.module_offset) {
            (Some(m), Some(o)) => format!("{m}+{o:#x}"),
            _ => format!("{:#x}", self.addr),
        }
    }
}

impl fmt::Display for Frame {
    /// Native: `func (file:line) [module+0xoff]`, leaving out what is unknown. Python:
    /// `path/file.py:LINE in Qualified.name`, as Python's own tracebacks name a frame.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let FrameKind::Python { .. } = self.kind {
            let file = self.file.as_deref().unwrap_or("?");
            let func = self.function.as_deref().unwrap_or("?");
            return match self.line {
                Some(l) => write!(f, "{file}:{l} in {func}"),
                None => write!(f, "{file} in {func}"),
            };
        }
        let mut wrote = false;
        if let Some(inner) = self.inlined.first() {
            write!(f, "{inner}")?;
            if let Some(func) = &self.function {
                write!(f, " (inlined into {func})")?;
            }
            wrote = true;
        } else if let Some(func) = &self.function {
            write!(f, "{func}")?;
            wrote = true;
        }
        if let Some(file) = &self.file {
            if wrote {
                f.write_str(" ")?;
            }
            match self.line {
                Some(l) => write!(f, "({file}:{l})")?,
                None => write!(f, "({file})")?,
            }
            wrote = true;
        }
        match (self.module_name(), self.module_offset) {
            (Some(m), Some(o)) => {
                if wrote {
                    f.write_str(" ")?;
                }
                write!(f, "[{m}+{o:#x}]")
            }
            _ if !wrote => write!(f, "{:#x}", self.addr),
            _ => Ok(()),
        }
    }
}

fn find_module(modules: &[Module], addr: u64) -> Option<&Module> {
    // Later records win: the shim re-records modules on dlopen, and a re-used range belongs to
    // the module loaded last.
    modules.iter().rev().find(|m| m.start <= addr && addr < m.end)
}

/// Demangles a C++ (Itanium, including GCC's `_ZL` internal-linkage form) or Rust (legacy and
/// v0) symbol; returns `None` when the name is not mangled.
pub fn demangle(raw: &str) -> Option<String> {
    // Versioned symbols (`name@@GLIBC_2.2.5`) and PLT stubs carry a suffix that is not part of
    // the mangled name.
    let name = raw.split('@').next().unwrap_or(raw);
    if let Ok(d) = rustc_demangle::try_demangle(name) {
        // Rust legacy names also start with `_ZN`; only treat them as Rust when they carry the
        // hash suffix, or are v0 (`_R`), so C++ names are not mangled into Rust syntax.
        let s = format!("{d:#}");
        if name.starts_with("_R") || format!("{d}") != s {
            return Some(s);
        }
    }
    if name.starts_with("_Z") {
        if let Ok(sym) = cpp_demangle::Symbol::new(name.as_bytes()) {
            let opts = cpp_demangle::DemangleOptions::default();
            if let Ok(s) = sym.demangle_with_options(&opts) {
                return Some(s);
            }
        }
    }
    None
}

fn demangled_pair(raw: &str) -> (String, Option<String>) {
    match demangle(raw) {
        Some(d) if d != raw => (d, Some(raw.to_string())),
        _ => (raw.split('@').next().unwrap_or(raw).to_string(), None),
    }
}

/// A function symbol: start address (ELF virtual address), size, and name (borrowed from the
/// mapped file).
struct Sym {
    addr: u64,
    size: u64,
    name: &'static str,
}

type Reader = gimli::EndianSlice<'static, gimli::RunTimeEndian>;

/// One opened ELF file. Field order matters: `ctx`, `symtab` and `dynsym` borrow from `map`
/// and `arena` (lifetimes erased to `'static`), and Rust drops fields in declaration order, so
/// the borrowers go first.
struct Elf {
    ctx: Option<addr2line::Context<Reader>>,
    symtab: Vec<Sym>,
    dynsym: Vec<Sym>,
    build_id: Option<Vec<u8>>,
    /// Decompressed debug sections (SHF_COMPRESSED); borrowed by `ctx`.
    _arena: Vec<Box<[u8]>>,
    _map: Arc<memmap2::Mmap>,
    /// A separate debug file (found by build-id), kept alive for `ctx`.
    _debug: Option<Box<Elf>>,
}

impl Elf {
    fn open(path: &Path) -> Result<Elf, String> {
        // Only regular files: opening a FIFO or device named by a bogus module record could block.
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!("{}: not a regular file", path.display()));
        }
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        // SAFETY: the file is only read. If another process truncates it while mapped we could
        // fault; that is the standard trade-off every debugger-like tool makes with mmap.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| format!("{}: {e}", path.display()))?;
        let map = Arc::new(map);
        // SAFETY: `data` points into the mapping owned by `map`, which lives in the returned
        // struct and is dropped after every borrower (see the field order above). The mapping's
        // address does not change when the `Arc` moves.
        let data: &'static [u8] = unsafe { std::slice::from_raw_parts(map.as_ptr(), map.len()) };
        let obj = object::File::parse(data).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::from_object(obj, map)
    }

    fn from_object(obj: object::File<'static>, map: Arc<memmap2::Mmap>) -> Result<Elf, String> {
        use object::{Object, ObjectSection, ObjectSymbol};
        let build_id = obj.build_id().ok().flatten().map(<[u8]>::to_vec);
        let collect = |it: &mut dyn Iterator<Item = object::Symbol<'static, '_>>| {
            let mut v: Vec<Sym> = it
                .filter(|s| s.kind() == object::SymbolKind::Text && s.address() != 0 && s.is_definition())
                .filter_map(|s| Some(Sym { addr: s.address(), size: s.size(), name: s.name().ok()? }))
                .filter(|s| !s.name.is_empty())
                .collect();
            // Sort by address, bigger symbol first, so an alias with a size wins over a label.
            v.sort_by(|a, b| a.addr.cmp(&b.addr).then(b.size.cmp(&a.size)));
            v.dedup_by_key(|s| s.addr);
            v
        };
        let symtab = collect(&mut obj.symbols());
        let dynsym = collect(&mut obj.dynamic_symbols());

        let endian = if obj.is_little_endian() { gimli::RunTimeEndian::Little } else { gimli::RunTimeEndian::Big };
        let mut arena: Vec<Box<[u8]>> = Vec::new();
        let has_dwarf = obj.section_by_name(".debug_info").is_some_and(|s| s.size() > 0);
        let ctx = if has_dwarf {
            let dwarf = gimli::Dwarf::load(|id| -> Result<Reader, ()> {
                let data: &'static [u8] = match obj.section_by_name(id.name()) {
                    Some(sec) => match sec.uncompressed_data() {
                        Ok(std::borrow::Cow::Borrowed(b)) => b,
                        Ok(std::borrow::Cow::Owned(v)) => {
                            let b = v.into_boxed_slice();
                            // SAFETY: the box's heap buffer does not move when the box is moved
                            // into `arena`, which outlives `ctx` (field order).
                            let s: &'static [u8] = unsafe { std::slice::from_raw_parts(b.as_ptr(), b.len()) };
                            arena.push(b);
                            s
                        }
                        Err(_) => &[],
                    },
                    None => &[],
                };
                Ok(gimli::EndianSlice::new(data, endian))
            });
            dwarf.ok().and_then(|d| addr2line::Context::from_dwarf(d).ok())
        } else {
            None
        };
        Ok(Elf { ctx, symtab, dynsym, build_id, _arena: arena, _map: map, _debug: None })
    }

    fn lookup_sym(table: &[Sym], pc: u64) -> Option<&Sym> {
        let i = table.partition_point(|s| s.addr <= pc);
        let s = table.get(i.checked_sub(1)?)?;
        // A zero size (hand-written asm, some PLT entries) is accepted up to the next symbol.
        let end = if s.size > 0 { s.addr + s.size } else { table.get(i).map_or(u64::MAX, |n| n.addr) };
        (pc < end).then_some(s)
    }
}

/// Cache of opened ELF files shared by several symbolizers (one per traced process), so a
/// binary used by several processes is parsed once.
#[derive(Default)]
pub struct ElfCache {
    files: HashMap<PathBuf, Result<Rc<Elf>, String>>,
    warnings: Vec<String>,
    /// Where else to look for a module, by file name, when its recorded path is missing or holds
    /// another build (symbolizing on another machine, or after a rebuild).
    search_dirs: Vec<PathBuf>,
}

/// Directories searched for binaries besides their recorded paths: each trace's own directory
/// (copy the binaries next to the traces to symbolize elsewhere) and `$VRAMTRACE_SYMBOL_PATH`
/// (colon-separated).
pub fn search_dirs_for(traces: &[&Path]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut push = |d: PathBuf| {
        if !d.as_os_str().is_empty() && !dirs.contains(&d) {
            dirs.push(d);
        }
    };
    for t in traces {
        push(if t.is_dir() { t.to_path_buf() } else { t.parent().map(Path::to_path_buf).unwrap_or_default() });
    }
    if let Some(v) = std::env::var_os("VRAMTRACE_SYMBOL_PATH") {
        std::env::split_paths(&v).for_each(push);
    }
    dirs
}

impl ElfCache {
    pub fn with_search_dirs(search_dirs: Vec<PathBuf>) -> ElfCache {
        ElfCache { search_dirs, ..ElfCache::default() }
    }

    /// Opens (once) and caches a file; the error says which file and why.
    fn get(&mut self, path: &Path) -> Result<Rc<Elf>, String> {
        if let Some(e) = self.files.get(path) {
            return e.clone();
        }
        let e = Elf::open(path).map(|mut e| {
            if e.ctx.is_none() {
                // No DWARF in the file: look for a separate debug file by build-id, the way gdb
                // does (`/usr/lib/debug/.build-id/ab/cdef….debug`).
                if let Some(dbg) = e.build_id.as_deref().and_then(debug_file_for) {
                    if let Ok(d) = Elf::open(&dbg) {
                        if d.build_id == e.build_id && d.ctx.is_some() {
                            e._debug = Some(Box::new(d));
                        }
                    }
                }
            }
            Rc::new(e)
        });
        self.files.insert(path.to_path_buf(), e.clone());
        e
    }

    /// A warning for a module, once per message.
    fn warn(&mut self, w: String) {
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }

    /// Problems met while opening files (missing binaries, unparsable files).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

fn debug_file_for(build_id: &[u8]) -> Option<PathBuf> {
    if build_id.len() < 2 {
        return None;
    }
    let hex: String = build_id.iter().map(|b| format!("{b:02x}")).collect();
    let p = PathBuf::from(format!("/usr/lib/debug/.build-id/{}/{}.debug", &hex[..2], &hex[2..]));
    p.exists().then_some(p)
}

/// Maps the return addresses of one traced process to frames, caching per address.
pub struct Symbolizer {
    modules: Vec<Module>,
    /// Per module index: the opened file if it could be used (exists, parses, build-id matches).
    elfs: HashMap<usize, Option<Rc<Elf>>>,
    cache: HashMap<u64, Frame>,
    files: Rc<std::cell::RefCell<ElfCache>>,
    warnings: Vec<String>,
}

impl Symbolizer {
    /// A symbolizer for one process, given the module records of its trace.
    pub fn new(modules: &[Module]) -> Symbolizer {
        Self::with_cache(modules, Rc::new(std::cell::RefCell::new(ElfCache::default())))
    }

    /// Like `new`, sharing opened files with other symbolizers.
    pub fn with_cache(modules: &[Module], files: Rc<std::cell::RefCell<ElfCache>>) -> Symbolizer {
        Symbolizer { modules: modules.to_vec(), elfs: HashMap::new(), cache: HashMap::new(), files, warnings: Vec::new() }
    }

    /// Warnings met so far (a build-id mismatch, a file that could not be read).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = self.warnings.clone();
        w.extend(self.files.borrow().warnings().iter().cloned());
        w
    }

    /// Resolves a *return address* as found in a recorded stack: the call instruction is the
    /// byte before it, so lookups use `addr - 1` (a return address can be the first byte of the
    /// next function when the call was the caller's last instruction).
    pub fn resolve(&mut self, addr: u64) -> Frame {
        if let Some(f) = self.cache.get(&addr) {
            return f.clone();
        }
        let f = self.resolve_uncached(addr, addr.saturating_sub(1));
        self.cache.insert(addr, f.clone());
        f
    }

    /// Resolves an exact instruction address (not a return address).
    pub fn resolve_pc(&mut self, pc: u64) -> Frame {
        self.resolve_uncached(pc, pc)
    }

    fn elf_for(&mut self, idx: usize) -> Option<Rc<Elf>> {
        if let Some(e) = self.elfs.get(&idx) {
            return e.clone();
        }
        let m = &self.modules[idx];
        let recorded = PathBuf::from(&m.path);
        // The recorded path first, then a file of the same name in the search directories; the
        // first whose build-id matches the traced one (or that has none to compare) wins.
        let mut candidates = vec![recorded.clone()];
        if let Some(name) = recorded.file_name() {
            candidates.extend(self.files.borrow().search_dirs.iter().map(|d| d.join(name)).filter(|p| p.is_file()));
        }
        let mut found = None;
        let mut mismatch = false;
        let mut unreadable = None;
        for c in candidates {
            let elf = match self.files.borrow_mut().get(&c) {
                Ok(elf) => elf,
                Err(msg) => {
                    // Only the recorded path is worth a warning, and only if no other file does
                    // (a copy next to the traces is the normal case on another machine).
                    if c == recorded {
                        unreadable = Some(msg);
                    }
                    continue;
                }
            };
            let matches = m.build_id.is_empty() || elf.build_id.as_ref().is_none_or(|id| *id == m.build_id);
            if matches {
                found = Some(elf);
                break;
            }
            mismatch = true;
        }
        if found.is_none() {
            let w = if mismatch {
                format!("symbols: {} has a different build-id than the traced process used (rebuilt since the run?); using module+offset", m.path)
            } else if let Some(msg) = unreadable {
                format!("symbols: cannot read {msg}; using module+offset")
            } else {
                String::new()
            };
            if !w.is_empty() {
                self.files.borrow_mut().warn(w);
            }
        }
        self.elfs.insert(idx, found.clone());
        found
    }

    fn resolve_uncached(&mut self, addr: u64, pc_runtime: u64) -> Frame {
        let Some(idx) = self.modules.iter().rposition(|m| m.start <= pc_runtime && pc_runtime < m.end) else {
            return Frame { addr, ..Frame::default() };
        };
        let base = self.modules[idx].base;
        let mut frame = Frame {
            addr,
            module: Some(self.modules[idx].path.clone()),
            module_offset: Some(addr.wrapping_sub(base)),
            ..Frame::default()
        };
        let Some(elf) = self.elf_for(idx) else { return frame };
        let pc = pc_runtime.wrapping_sub(base);

        if let Some(s) = Elf::lookup_sym(&elf.symtab, pc) {
            let (d, raw) = demangled_pair(s.name);
            frame.function = Some(d);
            frame.symbol = raw;
            frame.source = NameSource::Symtab;
        }
        let ctx = elf.ctx.as_ref().or_else(|| elf._debug.as_ref().and_then(|d| d.ctx.as_ref()));
        if let Some(ctx) = ctx {
            if let Ok(mut it) = ctx.find_frames(pc).skip_all_loads() {
                let mut names: Vec<String> = Vec::new();
                let mut first_loc = true;
                while let Ok(Some(fr)) = it.next() {
                    if first_loc {
                        if let Some(loc) = &fr.location {
                            frame.file = loc.file.map(str::to_owned);
                            frame.line = loc.line;
                        }
                        first_loc = false;
                    }
                    if let Some(n) = fr.function.as_ref().and_then(|n| n.raw_name().ok()) {
                        names.push(n.into_owned());
                    }
                }
                // The last DWARF frame is the real (outer) function; the ones before were
                // inlined into it.
                let outer = names.pop();
                frame.inlined = names.iter().map(|n| demangled_pair(n).0).collect();
                if frame.function.is_none() {
                    if let Some(n) = outer {
                        let (d, raw) = demangled_pair(&n);
                        frame.function = Some(d);
                        frame.symbol = raw;
                        frame.source = NameSource::Dwarf;
                    }
                }
            }
        }
        if frame.function.is_none() {
            if let Some(s) = Elf::lookup_sym(&elf.dynsym, pc) {
                let (d, raw) = demangled_pair(s.name);
                frame.function = Some(d);
                frame.symbol = raw;
                frame.source = NameSource::Dynsym;
            }
        }
        frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demangles_cpp_rust_and_internal_linkage() {
        assert_eq!(demangle("_ZN11llama_model12load_tensorsER18llama_model_loader").as_deref(), Some("llama_model::load_tensors(llama_model_loader&)"));
        assert_eq!(demangle("_ZL23ggml_cuda_device_mallocPPvmi").as_deref(), Some("ggml_cuda_device_malloc(void**, unsigned long, int)"));
        assert_eq!(demangle("_ZN14llama_kv_cacheC2ERK11llama_model").as_deref(), Some("llama_kv_cache::llama_kv_cache(llama_model const&)"));
        assert_eq!(demangle("_ZN3foo3bar17h0123456789abcdefE").as_deref(), Some("foo::bar"));
        assert_eq!(demangle("cuMemAlloc_v2"), None);
        assert_eq!(demangle("memcpy@@GLIBC_2.14"), None);
    }

    #[test]
    fn display_and_key() {
        let f = Frame {
            addr: 0x7000_1234,
            function: Some("f".into()),
            file: Some("a.c".into()),
            line: Some(3),
            module: Some("/usr/lib/libx.so".into()),
            module_offset: Some(0x1234),
            ..Frame::default()
        };
        assert_eq!(f.to_string(), "f (a.c:3) [libx.so+0x1234]");
        let u = Frame::unresolved(0x7000_1234, &[Module { id: 1, base: 0x7000_0000, start: 0x7000_0000, end: 0x7001_0000, build_id: vec![], path: "/l/libq.so".into() }]);
        assert_eq!(u.to_string(), "[libq.so+0x1234]");
        assert_eq!(u.key(), "libq.so+0x1234");
        assert_eq!(Frame::unresolved(5, &[]).to_string(), "0x5");
    }
}
