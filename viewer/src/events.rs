//! One line of `vramtrace events` per recorded event or marker, as text or as JSON (schema:
//! docs/events-schema.md). The caller iterates the traces; this only renders.

use serde_json::{json, Map, Value};
use std::fmt::Write;
use vramtrace_trace::side::SideMarker;
use vramtrace_trace::{result_name, Api, EventRec, Fields, Marker};

/// How `vramtrace events` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned, human-readable: time since the trace start, the call, its result, the innermost frame.
    Text,
    /// One JSON object per line.
    Json,
}

fn hex(v: u64) -> Value {
    Value::String(format!("{v:#x}"))
}

/// Seconds since `base_ns` (the trace's start), for the text form.
fn rel(t_ns: u64, base_ns: u64) -> f64 {
    t_ns.saturating_sub(base_ns) as f64 / 1e9
}

/// A marker of process `pid` (trace start `base_ns`).
pub fn marker_line(pid: u32, base_ns: u64, m: &Marker, format: Format) -> String {
    match format {
        Format::Json => json!({"t_ns": m.t_ns, "pid": pid, "tid": m.tid, "api": "marker", "label": m.label, "value": m.value}).to_string(),
        Format::Text => format!("{:>12.6}s pid {pid} tid {} marker {:?} = {}", rel(m.t_ns, base_ns), m.tid, m.label, m.value),
    }
}

/// A marker from a side file (`markers-*.jsonl`): no process, no thread; `base_ns` is the
/// earliest trace start, for the text form.
pub fn side_marker_line(base_ns: u64, m: &SideMarker, format: Format) -> String {
    match format {
        Format::Json => json!({"t_ns": m.t_ns, "pid": null, "api": "marker", "label": m.label, "value": m.value, "source": "sidecar"}).to_string(),
        Format::Text => format!("{:>12.6}s side file marker {:?} = {}", rel(m.t_ns, base_ns), m.label, m.value),
    }
}

/// An event of process `pid` (trace start `base_ns`) with its stack, innermost frame first. The
/// fields shown are those the function fills (`Api::fields`).
pub fn event_line(pid: u32, base_ns: u64, e: &EventRec, stack: &[String], format: Format) -> String {
    // The reader rejects unknown ids; should one get here, it prints without argument fields.
    let api = Api::from_id(e.api);
    let name = api.map_or("unknown", Api::name);
    let none = Fields { size: false, ptr: false, handle: false, offset: false, flags: false, stream: false };
    let f = api.map_or(none, Api::fields);
    match format {
        Format::Json => {
            let mut o = Map::new();
            o.insert("t_ns".into(), e.t_ns.into());
            o.insert("pid".into(), pid.into());
            o.insert("tid".into(), e.tid.into());
            o.insert("device".into(), e.device.into());
            o.insert("api".into(), name.into());
            o.insert("result".into(), e.result.into());
            let fields: [(bool, &str, Value); 6] = [
                (f.size, "size", e.size.into()),
                (f.ptr, "ptr", hex(e.ptr)),
                (f.handle, "handle", hex(e.handle)),
                (f.offset, "offset", e.offset.into()),
                (f.flags, "flags", e.flags.into()),
                (f.stream, "stream", hex(e.stream)),
            ];
            for (shown, key, v) in fields {
                if shown {
                    o.insert(key.into(), v);
                }
            }
            if e.free != 0 || e.total != 0 {
                o.insert("free".into(), e.free.into());
                o.insert("total".into(), e.total.into());
            }
            o.insert("stack".into(), stack.into());
            Value::Object(o).to_string()
        }
        Format::Text => {
            let mut l = format!("{:>12.6}s pid {pid} tid {} dev {:>2} {name}", rel(e.t_ns, base_ns), e.tid, e.device);
            if f.size {
                let _ = write!(l, " size={}", e.size);
            }
            if f.ptr {
                let _ = write!(l, " ptr={:#x}", e.ptr);
            }
            if f.handle {
                let _ = write!(l, " handle={:#x}", e.handle);
            }
            if f.offset && e.offset != 0 {
                let _ = write!(l, " offset={}", e.offset);
            }
            if e.free != 0 || e.total != 0 {
                let _ = write!(l, " free={} total={}", e.free, e.total);
            }
            let _ = write!(l, " -> {}", result_name(e.result).map_or_else(|| e.result.to_string(), str::to_owned));
            if let Some(top) = stack.first() {
                let _ = write!(l, "  at {top}");
            }
            l
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_lines() {
        let e = EventRec { t_ns: 1_500_000_000, api: Api::MemAlloc as u16, device: 0, tid: 7, size: 4096, ptr: 0x7f00, ..EventRec::default() };
        let stack = vec!["f (a.c:1) [m+0x1]".to_string(), "main".to_string()];
        assert_eq!(event_line(7, 500_000_000, &e, &stack, Format::Text), "    1.000000s pid 7 tid 7 dev  0 cuMemAlloc_v2 size=4096 ptr=0x7f00 -> CUDA_SUCCESS  at f (a.c:1) [m+0x1]");
        let v: Value = serde_json::from_str(&event_line(7, 0, &e, &stack, Format::Json)).unwrap();
        assert_eq!((v["api"].as_str(), v["ptr"].as_str(), v["size"].as_u64()), (Some("cuMemAlloc_v2"), Some("0x7f00"), Some(4096)));
        assert_eq!(v["stack"][1], "main");
        assert!(v.get("handle").is_none() && v.get("free").is_none(), "only the fields the call fills: {v}");
        let m = Marker { t_ns: 2_000_000_000, value: 512, tid: 7, stack_id: 0, label: "tokens".into(), py_stack_id: 0 };
        assert_eq!(marker_line(7, 0, &m, Format::Text), "    2.000000s pid 7 tid 7 marker \"tokens\" = 512");
        assert_eq!(marker_line(7, 0, &m, Format::Json), r#"{"api":"marker","label":"tokens","pid":7,"t_ns":2000000000,"tid":7,"value":512}"#);
        let s = SideMarker { t_ns: 3_000_000_000, label: "prompt_tokens".into(), value: 9 };
        assert_eq!(side_marker_line(1_000_000_000, &s, Format::Text), "    2.000000s side file marker \"prompt_tokens\" = 9");
        assert_eq!(side_marker_line(0, &s, Format::Json), r#"{"api":"marker","label":"prompt_tokens","pid":null,"source":"sidecar","t_ns":3000000000,"value":9}"#);
    }
}
