//! Environment configuration, read once per process. Sizes use vramtrace's one size parser.

use vramtrace_trace::units::parse_size;

/// Bytes per GiB, the unit most defaults are written in.
const GIB: u64 = 1 << 30;
/// The fake reports no more devices than this (each one gets its own address region).
pub const MAX_DEVICES: u32 = 8;
/// The newest driver API version the fake models (CUDA 12.9): its default claim, and the most
/// it can claim, since it knows no entry point introduced after it.
pub const NEWEST_DRIVER_VERSION: i32 = 12090;
/// The oldest version it can claim: CUDA 2.0, where the driver API's lookup versions start.
const OLDEST_DRIVER_VERSION: i32 = 2000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Device memory per device, in bytes.
    pub capacity: u64,
    /// Number of devices.
    pub devices: u32,
    /// Bytes the "runtime" (context, modules) occupies on a device once a context exists there.
    pub runtime_bytes: u64,
    /// What `cuDriverGetVersion` answers, and the newest entry points `cuGetProcAddress` knows:
    /// a driver of an older version has none of the variants introduced after it.
    pub driver_version: i32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            capacity: 24 * GIB,
            devices: 1,
            runtime_bytes: 256 << 20,
            driver_version: NEWEST_DRIVER_VERSION,
        }
    }
}

impl Config {
    /// Reads `FAKE_CUDA_CAPACITY`, `FAKE_CUDA_DEVICES`, `FAKE_CUDA_RUNTIME_BYTES` and
    /// `FAKE_CUDA_DRIVER_VERSION` (1000 × major + 10 × minor, e.g. 12020). A value that
    /// does not parse gets one line on stderr and the default: a test that mistypes a variable
    /// should still run, and say why its numbers look wrong.
    pub fn from_env() -> Config {
        let d = Config::default();
        let get = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut c = d;
        if let Some(v) = get("FAKE_CUDA_CAPACITY") {
            match parse_size(&v).ok() {
                Some(n) if n > 0 => c.capacity = n,
                _ => warn("FAKE_CUDA_CAPACITY", &v, &d.capacity.to_string()),
            }
        }
        if let Some(v) = get("FAKE_CUDA_DEVICES") {
            match v.trim().parse::<u32>() {
                Ok(n) if (1..=MAX_DEVICES).contains(&n) => c.devices = n,
                _ => warn("FAKE_CUDA_DEVICES", &v, &d.devices.to_string()),
            }
        }
        if let Some(v) = get("FAKE_CUDA_RUNTIME_BYTES") {
            match parse_size(&v).ok() {
                Some(n) => c.runtime_bytes = n,
                None => warn("FAKE_CUDA_RUNTIME_BYTES", &v, &d.runtime_bytes.to_string()),
            }
        }
        if let Some(v) = get("FAKE_CUDA_DRIVER_VERSION") {
            let modelled = OLDEST_DRIVER_VERSION..=NEWEST_DRIVER_VERSION;
            match v.trim().parse::<i32>() {
                Ok(n) if modelled.contains(&n) && n % 10 == 0 => c.driver_version = n,
                _ => warn(
                    "FAKE_CUDA_DRIVER_VERSION",
                    &v,
                    &d.driver_version.to_string(),
                ),
            }
        }
        c
    }
}

fn warn(name: &str, value: &str, default: &str) {
    eprintln!("fake libcuda: ignoring {name}={value:?} (not a valid value), using {default}");
}
