//! Symbolization against real ELF files compiled at test time with gcc.

mod common;
use common::*;
use object::{Object, ObjectSymbol};
use std::path::{Path, PathBuf};
use std::process::Command;
use vramtrace_analyzer::symbolize::NameSource;
use vramtrace_analyzer::*;
use vramtrace_trace::Module;

const SRC: &str = r#"#include <stdio.h>

static int __attribute__((noinline)) helper_static(int x) {
    return x * 3 + 1;
}

int __attribute__((noinline)) exported_fn(int x) {
    return helper_static(x) + 2;
}

int cpp_named(int x) __asm__("_ZN11llama_model12load_tensorsER18llama_model_loader");
int __attribute__((noinline)) cpp_named(int x) {
    return exported_fn(x) * 2;
}
"#;
const LINE_HELPER: u32 = 3;
const LINE_EXPORTED: u32 = 7;

const BASE: u64 = 0x7f12_3400_0000;

fn build(dir: &Path) -> (PathBuf, PathBuf) {
    let src = dir.join("t.c");
    std::fs::write(&src, SRC).unwrap();
    let lib = dir.join("libt.so");
    let st = Command::new("gcc")
        .args(["-g", "-O0", "-shared", "-fPIC", "-Wl,--build-id", "-o"])
        .arg(&lib)
        .arg(&src)
        .status()
        .expect("gcc");
    assert!(st.success());
    let stripped = dir.join("libt_stripped.so");
    let st = Command::new("strip").arg("--strip-all").arg("-o").arg(&stripped).arg(&lib).status().expect("strip");
    assert!(st.success());
    (lib, stripped)
}

fn symbol_addr(path: &Path, name: &str) -> u64 {
    let data = std::fs::read(path).unwrap();
    let f = object::File::parse(&*data).unwrap();
    f.symbols().find(|s| s.name() == Ok(name)).unwrap_or_else(|| panic!("{name} not in {}", path.display())).address()
}

fn build_id(path: &Path) -> Vec<u8> {
    let data = std::fs::read(path).unwrap();
    object::File::parse(&*data).unwrap().build_id().unwrap().unwrap().to_vec()
}

fn module(path: &Path, build_id: Vec<u8>) -> Module {
    Module { id: 1, base: BASE, start: BASE, end: BASE + 0x10_0000, build_id, path: path.display().to_string() }
}

#[test]
fn resolves_function_file_and_line_from_symtab_and_dwarf() {
    let dir = TempDir::new("sym");
    let (lib, _) = build(dir.path());
    let exported = symbol_addr(&lib, "exported_fn");
    let helper = symbol_addr(&lib, "helper_static");
    let mut s = Symbolizer::new(&[module(&lib, build_id(&lib))]);

    // Return-address semantics: the byte after the call. `resolve_pc` takes exact addresses.
    let f = s.resolve(BASE + exported + 1);
    assert_eq!(f.function.as_deref(), Some("exported_fn"));
    assert_eq!(f.source, NameSource::Symtab);
    assert!(f.file.as_deref().unwrap().ends_with("t.c"), "{f:?}");
    assert_eq!(f.line, Some(LINE_EXPORTED));
    assert_eq!(f.module_offset, Some(exported + 1));
    assert_eq!(f.to_string(), format!("exported_fn ({}:{LINE_EXPORTED}) [libt.so+{:#x}]", f.file.as_deref().unwrap(), exported + 1));

    let h = s.resolve_pc(BASE + helper);
    assert_eq!(h.function.as_deref(), Some("helper_static"), "static functions come from .symtab");
    assert_eq!(h.line, Some(LINE_HELPER));

    let cpp = s.resolve(BASE + symbol_addr(&lib, "_ZN11llama_model12load_tensorsER18llama_model_loader") + 1);
    assert_eq!(cpp.function.as_deref(), Some("llama_model::load_tensors(llama_model_loader&)"));
    assert_eq!(cpp.symbol.as_deref(), Some("_ZN11llama_model12load_tensorsER18llama_model_loader"));

    // Outside every module: the bare address.
    assert_eq!(s.resolve(0x10).to_string(), "0x10");
    assert!(s.warnings().is_empty(), "{:?}", s.warnings());
}

#[test]
fn stripped_library_falls_back_to_dynsym_then_module_offset() {
    let dir = TempDir::new("strip");
    let (lib, stripped) = build(dir.path());
    let exported = symbol_addr(&lib, "exported_fn");
    let helper = symbol_addr(&lib, "helper_static");
    assert_eq!(build_id(&lib), build_id(&stripped), "strip keeps the build-id");
    let mut s = Symbolizer::new(&[module(&stripped, build_id(&stripped))]);
    let f = s.resolve(BASE + exported + 1);
    assert_eq!(f.function.as_deref(), Some("exported_fn"));
    assert_eq!(f.source, NameSource::Dynsym);
    assert_eq!((f.file.as_deref(), f.line), (None, None));
    let h = s.resolve(BASE + helper + 1);
    assert_eq!(h.function, None, "a static function is not in .dynsym");
    assert_eq!(h.source, NameSource::None);
    assert_eq!(h.to_string(), format!("[libt_stripped.so+{:#x}]", helper + 1));
}

#[test]
fn build_id_mismatch_and_missing_file_use_module_offset() {
    let dir = TempDir::new("bid");
    let (lib, _) = build(dir.path());
    let exported = symbol_addr(&lib, "exported_fn");
    let mut s = Symbolizer::new(&[module(&lib, vec![1, 2, 3, 4, 5, 6, 7, 8])]);
    let f = s.resolve(BASE + exported + 1);
    assert_eq!(f.function, None);
    assert_eq!(f.module_offset, Some(exported + 1));
    assert!(s.warnings().iter().any(|w| w.contains("different build-id")), "{:?}", s.warnings());

    let mut s = Symbolizer::new(&[module(&dir.path().join("gone.so"), vec![])]);
    assert_eq!(s.resolve(BASE + 0x1235).to_string(), "[gone.so+0x1235]");
    assert!(s.warnings().iter().any(|w| w.contains("gone.so")), "{:?}", s.warnings());
}

#[test]
fn load_symbolizes_stacks_for_attribution() {
    let dir = TempDir::new("e2e");
    let (lib, _) = build(dir.path());
    let cpp = symbol_addr(&lib, "_ZN11llama_model12load_tensorsER18llama_model_loader");
    let exported = symbol_addr(&lib, "exported_fn");
    let mut t = Tr::new(42);
    t.module(1, &lib.display().to_string(), BASE, BASE, BASE + 0x10_0000, &build_id(&lib));
    let st = t.stack(&[BASE + exported + 1, BASE + cpp + 5]);
    t.alloc(0x10_0000_0000, 64 * MIB, st);
    t.end();
    let traces = TempDir::new("e2e-traces");
    let l = load(&[t.write(traces.path())]).unwrap();
    let r = analyze(&l, &Options::default());
    assert_eq!(r.peak.by_category.weights, 64 * MIB);
    assert_eq!(at_peak(&r, "builtin:llama.model_load_tensors"), 64 * MIB);
    let site = &r.sites[r.peak.top_sites[0].site];
    assert_eq!(site.key, "exported_fn <- llama_model::load_tensors(llama_model_loader&)");
    assert!(site.frames[0].contains("t.c:"), "{:?}", site.frames);
}
