//! The C runner programs in `tests/runners/` on the fake driver, without any shim: what they
//! print is what the shim tests compare traces against, so it must be right on its own.

use std::collections::HashSet;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use vramtrace_e2e::{calls, env, Call};
use vramtrace_trace::Api;

struct Built {
    /// The built runner programs.
    bin: PathBuf,
    /// Their sources (and cudart12-lookups.txt).
    runners: PathBuf,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| Built { bin: env().runners.clone(), runners: env().repo.join("tests/runners") })
}

/// A runner command with a clean environment: no preloads, the fake's defaults.
fn cmd(b: &Built, name: &str) -> Command {
    let mut c = Command::new(b.bin.join(name));
    for v in [
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "FAKE_CUDA_CAPACITY",
        "FAKE_CUDA_DEVICES",
        "FAKE_CUDA_RUNTIME_BYTES",
    ] {
        c.env_remove(v);
    }
    c
}

fn run(c: &mut Command) -> (Output, String, String) {
    let out = c.output().expect("run runner");
    let so = String::from_utf8_lossy(&out.stdout).into_owned();
    let se = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, so, se)
}

fn ok_names(cs: &[Call]) -> HashSet<&str> {
    cs.iter()
        .filter(|c| c.result == 0)
        .map(|c| c.api.as_str())
        .collect()
}

#[test]
fn linked_and_dlsym_call_every_recorded_function() {
    let b = built();
    for name in ["linked", "dlsym"] {
        let (out, so, se) = run(&mut cmd(b, name));
        assert!(out.status.success(), "{name}: {se}");
        let cs = calls(&so);
        let ok = ok_names(&cs);
        for api in Api::ALL {
            assert!(
                ok.contains(api.name()),
                "{name} never called {} successfully",
                api.name()
            );
        }
        let failed: Vec<(&str, u32)> = cs
            .iter()
            .filter(|c| c.result != 0)
            .map(|c| (c.api.as_str(), c.result))
            .collect();
        assert_eq!(
            failed,
            [
                ("cuMemAlloc_v2", 2),
                ("cuMemGetInfo_v2", 1),
                ("cuMemFree_v2", 1),
                ("cuMemMap", 1)
            ],
            "{name}: the intended failures, and only those"
        );
    }
}

#[test]
fn cudart_replay_resolves_through_procaddr() {
    let b = built();
    let (out, so, se) = run(cmd(b, "cudart_replay").arg(b.runners.join("cudart12-lookups.txt")));
    assert!(out.status.success(), "{se}");
    assert!(!se.contains("NOTE"), "procaddr and dlsym disagree:\n{se}");
    let cs = calls(&so);
    let lookups = cs
        .iter()
        .filter(|c| c.api == "cuGetProcAddress_v2")
        .count();
    // cudart's 419, then one cudaGetDriverEntryPoint-style lookup for each function it never
    // asks for (VMM, cuCtxDestroy, cuMemAllocHost, cuCtxCreate_v3/_v4, …).
    assert_eq!(lookups, 419 + 12);
    assert_eq!(cs[0].api, "cuGetProcAddress_v2");
    // cudart's "" probe: found nothing, which cuGetProcAddress_v2 answers with CUDA_SUCCESS
    // (the reason is in symbolStatus, which the runner checks), as NVIDIA's driver does.
    assert_eq!(cs[0].result, 0, "the probe");
    let ok = ok_names(&cs);
    for name in [
        "cuMemAlloc_v2",
        "cuMemAllocAsync_ptsz",
        "cuMemFreeAsync_ptsz",
        "cuMemHostAlloc",
    ] {
        assert!(ok.contains(name), "{name} not called");
    }
    // cudart's own versions pick the v1 primary-context release/reset.
    assert!(ok.contains("cuDevicePrimaryCtxRelease"));
    // cudart's list has no VMM function: it comes from the entry-point lookups after it.
    let first_create = cs.iter().position(|c| c.api == "cuMemCreate").expect("cuMemCreate called");
    let last_list_lookup = cs.iter().enumerate().filter(|(_, c)| c.api == "cuGetProcAddress_v2").nth(418).unwrap().0;
    assert!(first_create > last_list_lookup);
}

#[test]
fn a_plain_interposer_sees_linked_calls_only() {
    let b = built();
    let pre = b.bin.join("libinterposer.so");
    let (out, _, se) = run(cmd(b, "linked").env("LD_PRELOAD", &pre));
    assert!(out.status.success(), "{se}");
    assert!(se.contains("INTERPOSER calls=7"), "{se}");
    let (out, _, se) = run(cmd(b, "cudart_replay")
        .arg(b.runners.join("cudart12-lookups.txt"))
        .env("LD_PRELOAD", &pre));
    assert!(out.status.success(), "{se}");
    assert!(se.contains("INTERPOSER calls=0"), "{se}");
    assert!(
        !se.contains("NOTE"),
        "procaddr must return the driver's own functions:\n{se}"
    );
}

#[test]
fn llama_shaped_vmm_pool_grows_by_granules() {
    let b = built();
    for bin in ["llama_shaped", "llama_shaped_stripped"] {
        let (out, so, se) = run(cmd(b, bin)
            .env("LLAMA_STEPS", "4")
            .env("LLAMA_TOKENS_PER_STEP", "100"));
        assert!(out.status.success(), "{bin}: {se}");
        for line in [
            "load_tensors:        CUDA0 model buffer size =  2048.00 MiB",
            "llama_kv_cache:      CUDA0 KV buffer size =   512.00 MiB",
            "llama_context:      CUDA0 compute buffer size =   300.00 MiB",
        ] {
            assert!(se.contains(line), "{bin}: missing {line:?} in\n{se}");
        }
        let cs = calls(&so);
        assert_eq!(
            (cs[0].api.as_str(), cs[0].result),
            ("cuGetProcAddress_v2", 0),
            "probe"
        );
        assert!(
            cs[1..].iter().all(|c| c.result == 0),
            "{bin}: a call failed"
        );
        // Step k needs k × 100 tokens × 32 KiB; the pool grows to the next granule each time
        // (4, 8, 10, 14 MiB) and ends at the smallest multiple of 2 MiB above the last need.
        let creates: Vec<u64> = cs
            .iter()
            .filter(|c| c.api == "cuMemCreate")
            .map(|c| c.size)
            .collect();
        let total: u64 = creates.iter().sum();
        assert_eq!(
            total,
            (400u64 * 32 * 1024).div_ceil(2 << 20) * (2 << 20),
            "{creates:?}"
        );
        assert!(creates.iter().all(|s| s % (2 << 20) == 0));
        let reserves: Vec<&Call> = cs
            .iter()
            .filter(|c| c.api == "cuMemAddressReserve")
            .collect();
        assert_eq!(reserves.len(), 1);
        assert_eq!(reserves[0].size, 32 << 30);
        let unmaps: Vec<&Call> = cs.iter().filter(|c| c.api == "cuMemUnmap").collect();
        assert_eq!(unmaps.len(), 1, "one unmap of the whole pool");
        assert_eq!((unmaps[0].ptr, unmaps[0].size), (reserves[0].ptr, total));
        // Every device allocation is freed at teardown.
        let allocs: Vec<u64> = cs
            .iter()
            .filter(|c| c.api == "cuMemAlloc_v2")
            .map(|c| c.ptr)
            .collect();
        let frees: HashSet<u64> = cs
            .iter()
            .filter(|c| c.api == "cuMemFree_v2")
            .map(|c| c.ptr)
            .collect();
        assert_eq!(allocs.len(), 4, "weights, KV, compute, cuBLAS workspace");
        assert!(allocs.iter().all(|p| frees.contains(p)));
    }
}

#[test]
fn llama_shaped_legacy_pool_and_oom_abort() {
    let b = built();
    let (out, so, se) = run(cmd(b, "llama_shaped")
        .env("LLAMA_NO_VMM", "1")
        .env("LLAMA_STEPS", "3"));
    assert!(out.status.success(), "{se}");
    let cs = calls(&so);
    assert!(!cs.iter().any(|c| c.api.starts_with("cuMemCreate")));
    // weights, KV, compute, 3 pool buffers (each step needs more than any cached one), cuBLAS.
    assert_eq!(cs.iter().filter(|c| c.api == "cuMemAlloc_v2").count(), 7);

    for vmm in [true, false] {
        let mut c = cmd(b, "llama_shaped");
        c.env("LLAMA_OOM_AT_END", "1").env("LLAMA_STEPS", "2");
        if !vmm {
            c.env("LLAMA_NO_VMM", "1");
        }
        let (out, so, se) = run(&mut c);
        assert_eq!(out.status.signal(), Some(libc::SIGABRT), "vmm={vmm}: {se}");
        assert!(se.contains("CUDA error: out of memory"), "{se}");
        let failing = if vmm { "cuMemCreate" } else { "cuMemAlloc_v2" };
        let cs = calls(&so);
        assert!(
            cs.iter().any(|c| c.api == failing && c.result == 2),
            "vmm={vmm}"
        );
    }
}

#[test]
fn fork_exec_crash_and_threads() {
    let b = built();
    let (out, so, se) = run(&mut cmd(b, "forker"));
    assert!(out.status.success(), "{se}");
    assert!(so.contains("FORK child=") && so.contains("CHILD pid="));
    assert_eq!(
        calls(&so)
            .iter()
            .filter(|c| c.api == "cuMemAlloc_v2")
            .count(),
        3
    );

    let linked = b.bin.join("linked");
    let (out, so, se) = run(cmd(b, "forker").arg("exec").arg(&linked));
    assert!(out.status.success(), "{se}");
    assert!(
        so.contains("CALL cuCtxCreate_v4 result=0"),
        "the exec'd linked runner ran"
    );

    let (out, so, _) = run(cmd(b, "crasher").args(["3", "abort"]));
    assert_eq!(out.status.signal(), Some(libc::SIGABRT));
    assert!(so.contains("READY"));
    assert_eq!(
        calls(&so)
            .iter()
            .filter(|c| c.api == "cuMemAlloc_v2")
            .count(),
        3
    );

    let mut child = cmd(b, "crasher")
        .args(["2", "hang"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        child.try_wait().unwrap().is_none(),
        "hang mode must not exit"
    );
    child.kill().unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.signal(), Some(libc::SIGKILL));
    let so = reader.join().unwrap();
    assert!(so.contains("READY"), "{so}");
    assert!(start.elapsed() < Duration::from_secs(30));

    let (out, so, se) = run(cmd(b, "threads").args(["8", "2000"]));
    assert!(out.status.success(), "{se}");
    assert!(
        so.contains("THREADS threads=8 iterations=2000 allocs=16000 frees=16000 failures=0"),
        "{so}"
    );
}
