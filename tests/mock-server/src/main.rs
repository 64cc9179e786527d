//! `mock-llama-server`: an OpenAI-compatible HTTP server for testing `vramtrace sweep` without a
//! GPU or a model. It allocates through whatever `libcuda.so.1` it loads (the fake driver in the
//! tests) the way llama-server does (docs/architecture.md, "What runners allocate"):
//!
//! - the driver is reached as cudart reaches it: `dlopen("libcuda.so.1")`, `dlsym` of
//!   `cuGetProcAddress_v2`, then every function through it at cudart's versions;
//! - weights, KV cache and compute buffer up front with `cuMemAlloc_v2`, each followed by
//!   llama.cpp's own `… CUDA0 model/KV/compute buffer size = N MiB` log line;
//! - a scratch pool shaped like `ggml_cuda_pool_vmm`: one `cuMemAddressReserve` of 32 GiB, grown
//!   at its end by `cuMemCreate → cuMemMap → cuMemRelease → cuMemSetAccess` in whole allocation
//!   granules until it holds `prompt_tokens × --bytes-per-token`, never shrunk while serving.
//!
//! Prompt tokens are the whitespace-separated words of the prompt. Endpoints: `GET /health`
//! (503 while loading, as llama-server), `GET /v1/models`, `POST /v1/completions` (answers with
//! `usage.prompt_tokens`), `POST /tokenize` (`{"content"}` → `{"tokens": [...]}`). Listens on
//! 127.0.0.1 only; SIGTERM/SIGINT free everything and exit 0.
//!
//! The functions that allocate carry names the analyzer's built-in rules know
//! (`llama_model::load_tensors`, `llama_kv_cache_init`, `ggml_backend_sched_reserve`,
//! `ggml_cuda_pool_vmm::alloc`), so the stacks attribute even without the log lines.

use clap::{Parser, ValueEnum};
use cudarc::driver::sys::{
    cuuint64_t, CUcontext, CUdevice, CUdeviceptr, CUdriverProcAddressQueryResult, CUmemAccessDesc, CUmemAccess_flags,
    CUmemAllocationGranularity_flags, CUmemAllocationProp, CUmemAllocationType, CUmemGenericAllocationHandle,
    CUmemLocationType, CUresult,
};
use serde_json::{json, Value};
use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void, CString};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const MIB: u64 = 1 << 20;
/// ggml's CUDA_POOL_VMM_MAX_SIZE: the address space reserved once for the pool.
const POOL_VA_SIZE: u64 = 32 << 30;
/// CUDA 12.9, the toolkit version ggml asks for its VMM functions at.
const CUDA_VERSION: c_int = 12090;
use vramtrace_trace::api::cu::ERROR_OUT_OF_MEMORY as OUT_OF_MEMORY;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnOom {
    /// Answer HTTP 500 with the error and keep serving (llama-server catching the failure).
    Error,
    /// Print ggml's CUDA error and abort, as GGML_ABORT does.
    Abort,
}

#[derive(Parser)]
#[command(name = "mock-llama-server", about = "OpenAI-compatible mock server that allocates like llama-server")]
struct Args {
    /// Port on 127.0.0.1; 0 picks a free one. The URL is printed on stdout once listening.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Model id shown by /v1/models and echoed in completions.
    #[arg(long, default_value = "mock-model")]
    model: String,
    /// Scratch-pool bytes per prompt token (suffixes K/M/G or KiB/MiB/GiB).
    #[arg(long, value_parser = vramtrace_trace::units::parse_size, default_value = "32KiB")]
    bytes_per_token: u64,
    /// Weights, one cuMemAlloc_v2.
    #[arg(long, value_parser = vramtrace_trace::units::parse_size, default_value = "1GiB")]
    weights: u64,
    /// KV cache, one cuMemAlloc_v2.
    #[arg(long, value_parser = vramtrace_trace::units::parse_size, default_value = "256MiB")]
    kv: u64,
    /// Compute buffer, one cuMemAlloc_v2.
    #[arg(long, value_parser = vramtrace_trace::units::parse_size, default_value = "64MiB")]
    compute: u64,
    /// What a pool growth that runs out of memory does.
    #[arg(long, value_enum, default_value_t = OnOom::Error)]
    on_oom: OnOom,
    /// The Nth completion request (1-based) answers HTTP 500 without touching memory.
    #[arg(long)]
    error_at: Option<u64>,
    /// The process aborts when the Nth completion request arrives.
    #[arg(long)]
    die_at: Option<u64>,
    /// The Nth completion request waits --hang-ms before it is processed.
    #[arg(long)]
    hang_at: Option<u64>,
    #[arg(long, default_value_t = 10_000)]
    hang_ms: u64,
    /// Prompts longer than this are cut to their last N tokens without an error, as Ollama does
    /// at its context length (num_ctx). 0 = no limit.
    #[arg(long, default_value_t = 0)]
    truncate_at: u64,
    /// Model loading takes this long at least (/health answers 503 meanwhile).
    #[arg(long, default_value_t = 0)]
    load_ms: u64,
}

fn mib(b: u64) -> f64 {
    b as f64 / MIB as f64
}

// ---- the driver, reached the way cudart reaches it ----------------------------------------------

type GetProcAddress =
    unsafe extern "C" fn(*const c_char, *mut *mut c_void, c_int, cuuint64_t, *mut CUdriverProcAddressQueryResult) -> CUresult;

struct Driver {
    init: unsafe extern "C" fn(c_uint) -> CUresult,
    primary_ctx_retain: unsafe extern "C" fn(*mut CUcontext, CUdevice) -> CUresult,
    primary_ctx_release: unsafe extern "C" fn(CUdevice) -> CUresult,
    ctx_set_current: unsafe extern "C" fn(CUcontext) -> CUresult,
    mem_get_info: unsafe extern "C" fn(*mut usize, *mut usize) -> CUresult,
    mem_alloc: unsafe extern "C" fn(*mut CUdeviceptr, usize) -> CUresult,
    mem_free: unsafe extern "C" fn(CUdeviceptr) -> CUresult,
    granularity: unsafe extern "C" fn(*mut usize, *const CUmemAllocationProp, CUmemAllocationGranularity_flags) -> CUresult,
    address_reserve: unsafe extern "C" fn(*mut CUdeviceptr, usize, usize, CUdeviceptr, c_ulonglong) -> CUresult,
    address_free: unsafe extern "C" fn(CUdeviceptr, usize) -> CUresult,
    create: unsafe extern "C" fn(*mut CUmemGenericAllocationHandle, usize, *const CUmemAllocationProp, c_ulonglong) -> CUresult,
    map: unsafe extern "C" fn(CUdeviceptr, usize, usize, CUmemGenericAllocationHandle, c_ulonglong) -> CUresult,
    release: unsafe extern "C" fn(CUmemGenericAllocationHandle) -> CUresult,
    set_access: unsafe extern "C" fn(CUdeviceptr, usize, *const CUmemAccessDesc, usize) -> CUresult,
    unmap: unsafe extern "C" fn(CUdeviceptr, usize) -> CUresult,
}

/// A CUresult as a number (cudarc's enum is not repr-transparent over every value).
fn code(r: CUresult) -> u32 {
    r as u32
}

fn check(what: &str, r: CUresult) -> Result<(), String> {
    if code(r) == 0 {
        Ok(())
    } else {
        Err(format!("CUDA error {} in {what}", code(r)))
    }
}

impl Driver {
    // Each transmute's target is the field's declared function type.
    #[allow(clippy::missing_transmute_annotations)]
    fn load() -> Result<Driver, String> {
        // SAFETY: plain dlopen/dlsym; the pointers are cast to the driver API's documented types.
        unsafe {
            let h = libc::dlopen(c"libcuda.so.1".as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
            if h.is_null() {
                return Err("cannot load libcuda.so.1 (set LD_LIBRARY_PATH to the fake driver's directory)".into());
            }
            let gpa = libc::dlsym(h, c"cuGetProcAddress_v2".as_ptr());
            if gpa.is_null() {
                return Err("libcuda.so.1 has no cuGetProcAddress_v2".into());
            }
            let gpa: GetProcAddress = std::mem::transmute(gpa);
            let lookup = |name: &str, version: c_int| -> Result<*mut c_void, String> {
                let c = CString::new(name).unwrap();
                let mut p = std::ptr::null_mut();
                let mut st = CUdriverProcAddressQueryResult::CU_GET_PROC_ADDRESS_SUCCESS;
                let r = gpa(c.as_ptr(), &mut p, version, 0, &mut st);
                if code(r) != 0 || p.is_null() {
                    return Err(format!("driver lookup {name}@{version} failed: {}", code(r)));
                }
                Ok(p)
            };
            macro_rules! get {
                ($name:literal, $ver:expr) => {
                    std::mem::transmute(lookup($name, $ver)?)
                };
            }
            Ok(Driver {
                init: get!("cuInit", 2000),
                primary_ctx_retain: get!("cuDevicePrimaryCtxRetain", 7000),
                primary_ctx_release: get!("cuDevicePrimaryCtxRelease", 11000),
                ctx_set_current: get!("cuCtxSetCurrent", 4000),
                mem_get_info: get!("cuMemGetInfo", 3020),
                mem_alloc: get!("cuMemAlloc", 3020),
                mem_free: get!("cuMemFree", 3020),
                granularity: get!("cuMemGetAllocationGranularity", CUDA_VERSION),
                address_reserve: get!("cuMemAddressReserve", CUDA_VERSION),
                address_free: get!("cuMemAddressFree", CUDA_VERSION),
                create: get!("cuMemCreate", CUDA_VERSION),
                map: get!("cuMemMap", CUDA_VERSION),
                release: get!("cuMemRelease", CUDA_VERSION),
                set_access: get!("cuMemSetAccess", CUDA_VERSION),
                unmap: get!("cuMemUnmap", CUDA_VERSION),
            })
        }
    }
}

fn device_prop() -> CUmemAllocationProp {
    // SAFETY: a plain C struct; all-zero is its documented "unset" state.
    let mut prop: CUmemAllocationProp = unsafe { std::mem::zeroed() };
    prop.type_ = CUmemAllocationType::CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type_ = CUmemLocationType::CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = 0;
    prop
}

// ---- what llama.cpp allocates -----------------------------------------------------------------

struct Model {
    weights: CUdeviceptr,
    kv: CUdeviceptr,
    compute: CUdeviceptr,
}

/// `cudaMalloc`: a primary-context cuMemAlloc_v2.
fn device_malloc(d: &Driver, size: u64) -> Result<CUdeviceptr, CUresult> {
    let mut p: CUdeviceptr = 0;
    // SAFETY: valid out-pointer.
    let r = unsafe { (d.mem_alloc)(&mut p, size as usize) };
    if code(r) == 0 {
        Ok(p)
    } else {
        Err(r)
    }
}

mod llama_model {
    /// llama_model::load_tensors: the weights, then llama.cpp's log line.
    #[inline(never)]
    pub fn load_tensors(d: &super::Driver, size: u64) -> Result<super::CUdeviceptr, String> {
        let p = super::device_malloc(d, size).map_err(|r| format!("unable to allocate CUDA0 buffer ({})", super::code(r)))?;
        eprintln!("load_tensors:        CUDA0 model buffer size = {:8.2} MiB", super::mib(size));
        Ok(p)
    }
}

/// llama_kv_cache_init (older llama.cpp's name for the KV cache constructor).
#[inline(never)]
fn llama_kv_cache_init(d: &Driver, size: u64) -> Result<CUdeviceptr, String> {
    let p = device_malloc(d, size).map_err(|r| format!("failed to allocate buffer for kv cache ({})", code(r)))?;
    eprintln!("llama_kv_cache:      CUDA0 KV buffer size = {:8.2} MiB", mib(size));
    Ok(p)
}

/// ggml_backend_sched_reserve: the compute buffer.
#[inline(never)]
fn ggml_backend_sched_reserve(d: &Driver, size: u64) -> Result<CUdeviceptr, String> {
    let p = device_malloc(d, size).map_err(|r| format!("failed to allocate compute buffers ({})", code(r)))?;
    eprintln!("llama_context:      CUDA0 compute buffer size = {:8.2} MiB", mib(size));
    Ok(p)
}

fn load_model(d: &Driver, a: &Args) -> Result<Model, String> {
    // SAFETY: driver calls with valid out-pointers.
    unsafe {
        check("cuInit", (d.init)(0))?;
        let mut ctx: CUcontext = std::ptr::null_mut();
        check("cuDevicePrimaryCtxRetain", (d.primary_ctx_retain)(&mut ctx, 0))?;
        check("cuCtxSetCurrent", (d.ctx_set_current)(ctx))?;
        // llama.cpp reads free memory before loading (cudaMemGetInfo): this reading is also what
        // lets the analyzer count the runtime's own bytes.
        let (mut free, mut total) = (0usize, 0usize);
        check("cuMemGetInfo", (d.mem_get_info)(&mut free, &mut total))?;
        eprintln!("llama_model_load_from_file_impl: using device CUDA0 (Mock CUDA Device) - {} MiB free", free as u64 / MIB);
        let weights = llama_model::load_tensors(d, a.weights)?;
        let kv = llama_kv_cache_init(d, a.kv)?;
        let compute = ggml_backend_sched_reserve(d, a.compute)?;
        Ok(Model { weights, kv, compute })
    }
}

// ---- ggml's VMM scratch pool ------------------------------------------------------------------

#[derive(Default)]
struct Pool {
    addr: CUdeviceptr,
    size: u64,
    granularity: u64,
}

/// A pool growth that failed: which call, and its CUresult.
struct PoolError {
    call: &'static str,
    result: u32,
}

mod ggml_cuda_pool_vmm {
    use super::*;

    /// ggml_cuda_pool_vmm::alloc: grows the mapped range at its end by whole granules until it
    /// holds `need` bytes. A failure leaves the pool as it was (ggml checks every call).
    #[inline(never)]
    pub fn alloc(d: &Driver, pool: &mut Pool, need: u64) -> Result<(), PoolError> {
        if need <= pool.size {
            return Ok(());
        }
        let g = pool.granularity;
        let grow = (need - pool.size).div_ceil(g) * g;
        if pool.size + grow > POOL_VA_SIZE {
            return Err(PoolError { call: "GGML_ASSERT(pool_size + reserve_size <= CUDA_POOL_VMM_MAX_SIZE)", result: OUT_OF_MEMORY });
        }
        let prop = device_prop();
        let fail = |call, r: CUresult| PoolError { call, result: code(r) };
        // SAFETY: driver calls with valid arguments; the mapped range lies inside the reservation.
        unsafe {
            let mut handle: CUmemGenericAllocationHandle = 0;
            let r = (d.create)(&mut handle, grow as usize, &prop, 0);
            if code(r) != 0 {
                return Err(fail("cuMemCreate(&handle, reserve_size, &prop, 0)", r));
            }
            if pool.addr == 0 {
                let r = (d.address_reserve)(&mut pool.addr, POOL_VA_SIZE as usize, 0, 0, 0);
                if code(r) != 0 {
                    (d.release)(handle);
                    return Err(fail("cuMemAddressReserve(&pool_addr, CUDA_POOL_VMM_MAX_SIZE, 0, 0, 0)", r));
                }
            }
            let start = pool.addr + pool.size;
            let r = (d.map)(start, grow as usize, 0, handle, 0);
            if code(r) != 0 {
                (d.release)(handle);
                return Err(fail("cuMemMap(start_ptr, reserve_size, 0, handle, 0)", r));
            }
            // ggml releases the handle at once: the mapping keeps the memory alive.
            let r = (d.release)(handle);
            if code(r) != 0 {
                return Err(fail("cuMemRelease(handle)", r));
            }
            let access = CUmemAccessDesc { location: prop.location, flags: CUmemAccess_flags::CU_MEM_ACCESS_FLAGS_PROT_READWRITE };
            let r = (d.set_access)(start, grow as usize, &access, 1);
            if code(r) != 0 {
                return Err(fail("cuMemSetAccess(start_ptr, reserve_size, &access, 1)", r));
            }
        }
        pool.size += grow;
        Ok(())
    }

    /// ~ggml_cuda_pool_vmm: one unmap of everything mapped, one address free.
    #[inline(never)]
    pub fn destroy(d: &Driver, pool: &mut Pool) {
        if pool.addr != 0 {
            // SAFETY: the range is exactly what was mapped and reserved.
            unsafe {
                (d.unmap)(pool.addr, pool.size as usize);
                (d.address_free)(pool.addr, POOL_VA_SIZE as usize);
            }
        }
        *pool = Pool::default();
    }
}

// ---- HTTP ---------------------------------------------------------------------------------------

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn respond(req: tiny_http::Request, status: u16, body: Value) {
    let header = tiny_http::Header::from_bytes("Content-Type", "application/json").expect("static header");
    let _ = req.respond(tiny_http::Response::from_string(body.to_string()).with_status_code(status).with_header(header));
}

/// llama-server's error body.
fn error_body(status: u16, kind: &str, message: &str) -> Value {
    json!({"error": {"code": status, "message": message, "type": kind}})
}

struct Server {
    args: Args,
    driver: Driver,
    model: Model,
    pool: Pool,
    completions: u64,
}

impl Server {
    fn handle(&mut self, mut req: tiny_http::Request) {
        let path = req.url().split('?').next().unwrap_or("").to_string();
        let method = req.method().as_str().to_ascii_uppercase();
        match (method.as_str(), path.as_str()) {
            ("GET", "/health") => respond(req, 200, json!({"status": "ok"})),
            ("GET", "/v1/models") => {
                respond(req, 200, json!({"object": "list", "data": [{"id": self.args.model, "object": "model", "owned_by": "vramtrace"}]}))
            }
            ("POST", "/v1/completions") | ("POST", "/tokenize") => {
                let mut body = String::new();
                let parsed = req.as_reader().read_to_string(&mut body).map_err(|e| e.to_string()).and_then(|_| {
                    serde_json::from_str::<Value>(&body).map_err(|e| format!("invalid JSON: {e}"))
                });
                match parsed {
                    Err(e) => respond(req, 400, error_body(400, "invalid_request_error", &e)),
                    Ok(v) if path == "/tokenize" => self.tokenize(req, &v),
                    Ok(v) => self.complete(req, &v),
                }
            }
            _ => respond(req, 404, error_body(404, "not_found_error", "File Not Found")),
        }
    }

    fn tokenize(&self, req: tiny_http::Request, v: &Value) {
        let Some(text) = v["content"].as_str() else {
            return respond(req, 400, error_body(400, "invalid_request_error", "\"content\" must be a string"));
        };
        // Stable ids for words, like a vocabulary would give.
        let ids: Vec<u64> = text.split_whitespace().map(|w| w.bytes().fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)) % 32000).collect();
        respond(req, 200, json!({"tokens": ids}))
    }

    fn complete(&mut self, req: tiny_http::Request, v: &Value) {
        self.completions += 1;
        let k = self.completions;
        if self.args.die_at == Some(k) {
            eprintln!("mock-llama-server: request {k}: dying as asked (--die-at)");
            std::process::abort();
        }
        if self.args.hang_at == Some(k) {
            std::thread::sleep(Duration::from_millis(self.args.hang_ms));
        }
        if self.args.error_at == Some(k) {
            let msg = format!("simulated server error at request {k} (--error-at)");
            return respond(req, 500, error_body(500, "server_error", &msg));
        }
        let prompt = match &v["prompt"] {
            Value::String(s) => s.clone(),
            Value::Array(a) if a.len() == 1 && a[0].is_string() => a[0].as_str().unwrap_or("").to_string(),
            _ => return respond(req, 400, error_body(400, "invalid_request_error", "\"prompt\" must be a string")),
        };
        let mut n = prompt.split_whitespace().count() as u64;
        if self.args.truncate_at > 0 {
            n = n.min(self.args.truncate_at);
        }
        if n == 0 {
            return respond(req, 400, error_body(400, "invalid_request_error", "empty prompt"));
        }
        let need = n.saturating_mul(self.args.bytes_per_token);
        if let Err(e) = ggml_cuda_pool_vmm::alloc(&self.driver, &mut self.pool, need) {
            eprintln!("CUDA error: {}", if e.result == OUT_OF_MEMORY { "out of memory" } else { "unknown error" });
            eprintln!("  current device: 0, in function alloc at /llama.cpp/ggml/src/ggml-cuda/ggml-cuda.cu:447");
            eprintln!("  {}", e.call);
            if self.args.on_oom == OnOom::Abort {
                eprintln!("/llama.cpp/ggml/src/ggml-cuda/ggml-cuda.cu:88: CUDA error");
                std::process::abort();
            }
            let msg = format!("CUDA error: out of memory (growing the compute pool to {} MiB for {n} prompt tokens: {})", need.div_ceil(MIB), e.call);
            return respond(req, 500, error_body(500, "server_error", &msg));
        }
        let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        respond(
            req,
            200,
            json!({
                "id": format!("cmpl-{k}"),
                "object": "text_completion",
                "created": created,
                "model": self.args.model,
                "choices": [{"index": 0, "text": " the", "logprobs": null, "finish_reason": "length"}],
                "usage": {"prompt_tokens": n, "completion_tokens": 1, "total_tokens": n + 1},
            }),
        );
    }

    /// llama-server's orderly shutdown: pool, compute, KV, weights, then the context.
    fn shutdown(mut self) {
        let d = &self.driver;
        ggml_cuda_pool_vmm::destroy(d, &mut self.pool);
        // SAFETY: pointers this process allocated and has not freed.
        unsafe {
            for p in [self.model.compute, self.model.kv, self.model.weights] {
                (d.mem_free)(p);
            }
            (d.primary_ctx_release)(0);
        }
    }
}

fn main() {
    let args = Args::parse();
    // SAFETY: the handler only stores an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    let http = match tiny_http::Server::http(("127.0.0.1", args.port)) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("mock-llama-server: cannot listen on 127.0.0.1:{}: {e}", args.port);
            std::process::exit(1);
        }
    };
    let port = http.server_addr().to_ip().map(|a| a.port()).unwrap_or(args.port);
    println!("mock-llama-server: listening on http://127.0.0.1:{port}");
    let _ = std::io::stdout().flush();

    // Like llama-server: listening before the model is loaded, answering 503 meanwhile.
    let loaded = Arc::new(AtomicBool::new(false));
    let loading_answerer = {
        let (http, loaded) = (http.clone(), loaded.clone());
        std::thread::spawn(move || {
            while !loaded.load(Ordering::SeqCst) {
                if let Ok(Some(req)) = http.recv_timeout(Duration::from_millis(20)) {
                    respond(req, 503, error_body(503, "unavailable_error", "Loading model"));
                }
            }
        })
    };
    let started = std::time::Instant::now();
    let driver = Driver::load().unwrap_or_else(|e| fail(&e));
    let model = load_model(&driver, &args).unwrap_or_else(|e| fail(&format!("failed to load model: {e}")));
    let mut g = 0usize;
    // SAFETY: valid out-pointer and property struct.
    let r = unsafe { (driver.granularity)(&mut g, &device_prop(), CUmemAllocationGranularity_flags::CU_MEM_ALLOC_GRANULARITY_RECOMMENDED) };
    check("cuMemGetAllocationGranularity", r).unwrap_or_else(|e| fail(&e));
    let rest = Duration::from_millis(args.load_ms).saturating_sub(started.elapsed());
    std::thread::sleep(rest);
    loaded.store(true, Ordering::SeqCst);
    let _ = loading_answerer.join();
    eprintln!("main: server is listening on http://127.0.0.1:{port} - starting the main loop");

    let mut server = Server { args, driver, model, pool: Pool { granularity: g.max(1) as u64, ..Pool::default() }, completions: 0 };
    while !STOP.load(Ordering::SeqCst) {
        match http.recv_timeout(Duration::from_millis(50)) {
            Ok(Some(req)) => server.handle(req),
            Ok(None) => {}
            Err(e) => fail(&format!("accept: {e}")),
        }
    }
    eprintln!("main: shutting down");
    server.shutdown();
}

fn fail(msg: &str) -> ! {
    eprintln!("mock-llama-server: {msg}");
    std::process::exit(1);
}
