//! NVIDIA's own driver library (Debian's `libcuda1`) and runtime (cudart 12.9), without a GPU, as
//! `tests/nvidia/fetch.sh` leaves them in target/nvidia/lib. Without a GPU the driver answers
//! `cuInit` with CUDA_ERROR_NO_DEVICE, every call that needs it with CUDA_ERROR_NOT_INITIALIZED,
//! and `cuGetProcAddress` fully. Two things are checked against it:
//! - every route (linked, dlopen + dlsym, cudart's cuGetProcAddress sequence, real cudart) under
//!   the shim: each call to a recorded function is in the trace with the result the program saw,
//!   and the program's output and exit code are those it has without the shim;
//! - the fake driver: every lookup cudart makes, plus unknown names, `""`, odd versions, bad flags
//!   and a sweep over the names the fake implements, answered alike by both drivers (result,
//!   symbolStatus, and which exported function the pointer is).
//!
//! Where the files are absent the tests pass and say so (see [`real_driver`]), unless `.ci/run`
//! fetched them, which makes them required.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use vramtrace_e2e::*;
use vramtrace_trace::Api;

/// Runs `program` on the driver in `lib`, plain and under the shim, and checks that the shim
/// changed nothing the program printed or returned and recorded every call it saw. Returns the
/// plain run and the recorded functions' names with the results the program saw.
fn plain_and_traced(lib: &Path, program: &Path, args: &[&str]) -> (Output, BTreeSet<(String, u32)>) {
    let on_real = || {
        let mut c = command(program, args);
        c.env("LD_LIBRARY_PATH", lib);
        c
    };
    let plain = on_real().output().unwrap();
    let run = traced(on_real());
    let name = program.file_name().unwrap().to_string_lossy();
    assert_eq!(plain.status.code(), run.output.status.code(), "{name}: exit status\n{}", run.stderr());
    assert_eq!(normalized(&plain.stdout), normalized(&run.output.stdout), "{name}: output");
    let events: Vec<_> = run.traces().into_iter().flat_map(|t| t.events).collect();
    let seen = assert_events_match_calls(&run.stdout(), &events);
    (plain, seen.into_iter().map(|c| (c.api, c.result)).collect())
}

/// The runners that need NVIDIA's files to build: `cudart` (linked against libcudart.so.12), and
/// `linked` built for the driver's own CUDA version, so that it calls what that SDK has.
fn nvidia_runners(lib: &Path) -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = env().profile_dir.join("runners-nvidia");
        let version = driver_version(&lookups(&lib.join("libcuda.so.1"), Path::new("/dev/null"), None));
        let build = Command::new("bash")
            .arg(env().repo.join("tests/runners/build.sh"))
            .arg(&dir)
            .arg(lib)
            .args(["linked", "cudart"])
            .env("CFLAGS", format!("-DRUNNER_CUDA_VERSION={version}"))
            .output()
            .unwrap();
        assert!(build.status.success(), "building against NVIDIA's libraries: {}", String::from_utf8_lossy(&build.stderr));
        dir
    })
}

#[test]
fn every_route_under_the_shim_on_nvidias_driver() {
    let Some(lib) = real_driver() else { return };
    let lookups = env().repo.join("tests/runners/cudart12-lookups.txt");
    let linked = nvidia_runners(&lib).join("linked");
    for (program, args) in [(linked, vec![]), (runner("dlsym"), vec![]), (runner("cudart_replay"), vec![lookups.to_str().unwrap()])] {
        let name = program.file_name().unwrap().to_string_lossy().into_owned();
        let (plain, seen) = plain_and_traced(&lib, &program, &args);
        let stderr = String::from_utf8_lossy(&plain.stderr);
        // The runners know what a driver without a device must answer, and say UNEXPECTED
        // (exit 1) otherwise: this is NVIDIA's driver answering as documented.
        assert!(plain.status.success(), "{name}:\n{stderr}");
        assert!(stderr.contains("NO_DEVICE cuInit answered 100"), "{name}: {stderr}");
        // Every memory function the route reaches answered CUDA_ERROR_NOT_INITIALIZED, and all
        // of them are reached but cuCtxCreate_v4 (CUDA 12.5, newer than this driver) and
        // cuCtxDestroy_v2 (no context was created to destroy).
        assert!(seen.iter().all(|(_, r)| *r == 3), "{name}: {seen:?}");
        let reached: BTreeSet<&str> = seen.iter().map(|(a, _)| a.as_str()).collect();
        let mut want: BTreeSet<&str> = Api::ALL.iter().map(|a| a.name()).filter(|n| !["cuCtxCreate_v4", "cuCtxDestroy_v2"].contains(n)).collect();
        if name == "cudart_replay" {
            // cudart asks for these at 7000 and so gets the v1 entry points.
            want.remove("cuDevicePrimaryCtxRelease_v2");
            want.remove("cuDevicePrimaryCtxReset_v2");
        }
        assert_eq!(reached, want, "{name}");
    }
}

/// A program built with CUDA 12.9 that references cuCtxCreate_v4 weakly finds it absent on the
/// 535 driver (API 12.2) and skips it. Under the shim it must still find it absent: the shim
/// exports every recorded function, and a weak reference (or `dlsym(RTLD_DEFAULT, …)`) then finds
/// the shim's wrapper, which answers CUDA_ERROR_NOT_INITIALIZED for a function the driver lacks.
#[test]
fn a_function_the_driver_lacks_stays_absent_under_the_shim() {
    let Some(lib) = real_driver() else { return };
    plain_and_traced(&lib, &runner("linked"), &[]);
}

#[test]
fn real_cudart_under_the_shim_on_nvidias_driver() {
    let Some(lib) = real_driver() else { return };
    let (plain, seen) = plain_and_traced(&lib, &nvidia_runners(&lib).join("cudart"), &[]);
    let out = String::from_utf8_lossy(&plain.stdout);
    assert!(plain.status.success(), "{out}\n{}", String::from_utf8_lossy(&plain.stderr));
    // cudart 12.9 on the 12.2 driver: it loads, reads both versions, and finds no device.
    for line in ["CUDART cudaRuntimeGetVersion(&v) result=0 value=12090", "CUDART cudaDriverGetVersion(&v) result=0 value=12020", "CUDART cudaGetDeviceCount(&n) result=100", "CUDART cudaMalloc(&d, 64 << 20) result=100"] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    // Without a device cudart never gets as far as a memory call; on a GPU machine the
    // cudaGetDriverEntryPointByVersion calls reach the driver and are compared like the rest.
    assert!(seen.iter().all(|(_, r)| *r == 3), "{seen:?}");
}

/// One `LOOKUP` line of tests/runners/lookups: (the lookup, the driver's answer).
fn answers(out: &Output) -> Vec<(String, String)> {
    assert!(out.status.success(), "lookups failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("LOOKUP "))
        .map(|l| {
            let mut it = l.splitn(4, ' ');
            let key = [it.next().unwrap(), it.next().unwrap(), it.next().unwrap()].join(" ");
            (key, it.next().unwrap().to_string())
        })
        .collect()
}

fn lookups(driver: &Path, list: &Path, driver_version: Option<&str>) -> Output {
    let mut c = command(&runner("lookups"), &[driver.to_str().unwrap(), list.to_str().unwrap()]);
    if let Some(v) = driver_version {
        c.env("FAKE_CUDA_DRIVER_VERSION", v);
    }
    c.output().unwrap()
}

fn driver_version(out: &Output) -> String {
    let s = String::from_utf8_lossy(&out.stdout);
    let v = s.lines().next().and_then(|l| l.strip_prefix("DRIVER version=")).expect("DRIVER line");
    v.split(' ').next().unwrap().to_string()
}

/// The base name of an exact driver symbol: cuMemAlloc_v2 → cuMemAlloc, cuMemFreeAsync_ptsz →
/// cuMemFreeAsync.
fn base_name(sym: &str) -> &str {
    let s = sym.strip_suffix("_ptsz").unwrap_or(sym);
    match s.rsplit_once("_v") {
        Some((b, n)) if n.chars().all(|c| c.is_ascii_digit()) => b,
        _ => s,
    }
}

/// cudart's lookups, the hand-written probes, and a sweep: every name the fake implements at
/// every version where some driver function changed, and more, with each stream flag.
fn all_lookups(dir: &Path, fake: &Path) -> PathBuf {
    let runners = env().repo.join("tests/runners");
    let mut text = std::fs::read_to_string(runners.join("cudart12-lookups.txt")).unwrap();
    text += &std::fs::read_to_string(runners.join("lookup-probes.txt")).unwrap();
    let first = dir.join("first.txt");
    std::fs::write(&first, &text).unwrap();
    let mut names: BTreeSet<String> = answers(&lookups(fake, &first, None)).into_iter().filter(|(_, a)| a.starts_with("exported=1")).map(|(k, _)| base_name(k.split(' ').next().unwrap()).to_string()).collect();
    names.extend(Api::ALL.iter().map(|a| base_name(a.name()).to_string()));
    let versions = [-1, 0, 1000, 2000, 2010, 2020, 3000, 3010, 3020, 3999, 4000, 5000, 6000, 6050, 7000, 9020, 10010, 10020, 11000, 11010, 11020, 11030, 11040, 12000, 12010, 12020, 12030, 12050, 12090, 13000, i32::MAX];
    for n in &names {
        for v in versions {
            for f in 0..4 {
                text += &format!("{n} {v} {f}\n");
            }
        }
    }
    let all = dir.join("all.txt");
    std::fs::write(&all, text).unwrap();
    all
}

#[test]
fn the_fake_answers_every_lookup_as_nvidias_driver_does() {
    let Some(lib) = real_driver() else { return };
    let fake = env().fake_dir.join("libcuda.so.1");
    let dir = tempfile::tempdir().unwrap();
    let list = all_lookups(dir.path(), &fake);
    let real_out = lookups(&lib.join("libcuda.so.1"), &list, None);
    // The fake stands in for a driver of the real one's version: 535 is API 12.2, and cudart
    // 12.9 asks with 12.9's versions, so a 12.9 driver would rightly answer some differently.
    let version = driver_version(&real_out);
    let fake_out = lookups(&fake, &list, Some(&version));
    assert_eq!(driver_version(&fake_out), version);
    let real = answers(&real_out);
    let fake = answers(&fake_out);
    assert_eq!(real.len(), fake.len());
    assert!(real.len() > 5000, "{} lookups", real.len());
    // What the fake says of a name it does not implement: what both say of an unknown name.
    const UNKNOWN: &str = "exported=0 v2=0,1,NULL v1=500,unset";
    let (mut compared, mut not_implemented) = (0, 0);
    let mut mismatches = Vec::new();
    for ((key, r), (key2, f)) in real.iter().zip(&fake) {
        assert_eq!(key, key2);
        let real_finds = r.contains("v2=0,0,");
        if f.starts_with("exported=0") && real_finds && !key.starts_with("\"\"") {
            // NVIDIA's driver has ~600 entry points, the fake the ~50 vramtrace needs. Those it
            // lacks, it must not pretend to have.
            not_implemented += 1;
            if f != UNKNOWN {
                mismatches.push(format!("{key}: real {r}, fake {f} (not implemented, must answer {UNKNOWN})"));
            }
        } else {
            compared += 1;
            if r != f {
                mismatches.push(format!("{key}: real {r}, fake {f}"));
            }
        }
    }
    assert!(mismatches.is_empty(), "{} of {compared} lookups differ:\n{}", mismatches.len(), mismatches.join("\n"));
    assert!(compared > 5000 && not_implemented > 300, "compared {compared}, not implemented {not_implemented}");
}

#[test]
fn the_fake_can_claim_an_older_driver_version() {
    let fake = env().fake_dir.join("libcuda.so.1");
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("l.txt");
    std::fs::write(&list, "cuCtxCreate 12090 0\ncuGetProcAddress 12000 0\n").unwrap();
    let at = |v: Option<&str>| {
        let out = lookups(&fake, &list, v);
        (driver_version(&out), answers(&out).into_iter().map(|(_, a)| a).collect::<Vec<_>>(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (v, a, _) = at(None);
    assert_eq!((v.as_str(), a[0].as_str()), ("12090", "exported=1 v2=0,0,cuCtxCreate_v4 v1=0,cuCtxCreate_v4"));
    let (v, a, _) = at(Some("12020"));
    assert_eq!((v.as_str(), a[0].as_str()), ("12020", "exported=1 v2=0,0,cuCtxCreate_v3 v1=0,cuCtxCreate_v3"));
    let (v, a, _) = at(Some("11020"));
    assert_eq!((v.as_str(), a[1].as_str()), ("11020", "exported=1 v2=0,1,NULL v1=500,unset"), "no cuGetProcAddress lookup before 11.3");
    for bad in ["12100", "12021", "twelve", "-1"] {
        let (v, _, err) = at(Some(bad));
        assert_eq!(v, "12090", "{bad}");
        assert!(err.contains("ignoring FAKE_CUDA_DRIVER_VERSION"), "{bad}: {err}");
    }
}
