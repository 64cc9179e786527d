//! Python frames in the native stack. The shim records an event's Python stack beside its native
//! one (code objects by id, instruction offsets, entry flags); here they become [`Frame`]s —
//! `path/file.py:LINE in Qualified.name`, each line decoded from its code object's line table —
//! placed where the interpreter's evaluation loop sits in the native stack, innermost first, as
//! py-spy's `--native` mode shows a mixed stack.
//!
//! Placement: the Python frames, innermost first, fall into groups, each ending at an *entry*
//! frame (the first Python frame one C-level call of `_PyEval_EvalFrameDefault` ran). The k-th
//! group takes the place of the k-th native frame inside that function, found by its address
//! range (the trace's PyRuntime record) or, where the range is unknown, by its name. Groups left
//! over (a native stack cut at its depth, an unwinder that stopped inside the interpreter) go
//! outermost.

use crate::load::TraceFile;
use crate::pyline;
use crate::symbolize::{Frame, FrameKind};

/// The evaluation loop's name, for stacks whose trace has no address range for it.
const EVAL_FUNCTION: &str = "_PyEval_EvalFrameDefault";

/// The Python frames of stack `py_stack_id` of `tf`, innermost first, each with its entry flag.
/// Empty for 0 or an id the trace never defined.
pub fn python_frames(tf: &TraceFile, py_stack_id: u32) -> Vec<(Frame, bool)> {
    let Some(stack) = tf.python.stacks.get(&py_stack_id) else { return Vec::new() };
    stack
        .frames
        .iter()
        .map(|f| {
            let frame = match tf.python.codes.get(&f.code_id) {
                Some(code) => {
                    let qualified = !code.qualname.is_empty();
                    Frame {
                        function: Some(if qualified { code.qualname.clone() } else { code.name.clone() }),
                        symbol: qualified.then(|| code.name.clone()).filter(|n| *n != code.qualname),
                        file: Some(code.filename.clone()),
                        line: pyline::line(code, f.offset),
                        kind: FrameKind::Python { qualified },
                        ..Frame::default()
                    }
                }
                None => Frame { function: Some("<unknown code object>".into()), kind: FrameKind::Python { qualified: false }, ..Frame::default() },
            };
            (frame, f.entry)
        })
        .collect()
}

/// Whether native frame `f` of `tf` lies in the interpreter's evaluation loop.
fn in_eval_loop(tf: &TraceFile, f: &Frame) -> bool {
    // A return address points just past its call: look at the byte before it.
    let pc = f.addr.wrapping_sub(1);
    let ranges: Vec<(u64, u64)> = tf.python.runtimes.iter().map(|r| (r.eval_start, r.eval_end)).filter(|&(s, e)| s < e).collect();
    if ranges.is_empty() {
        f.names().any(|n| n == EVAL_FUNCTION || n.starts_with(EVAL_FUNCTION))
    } else {
        ranges.iter().any(|&(s, e)| (s..e).contains(&pc))
    }
}

/// `native` (innermost first) with the Python frames of `py_stack_id` placed in it.
pub fn place(tf: &TraceFile, native: Vec<Frame>, py_stack_id: u32) -> Vec<Frame> {
    let py = python_frames(tf, py_stack_id);
    if py.is_empty() {
        return native;
    }
    merge(native, py, |f| in_eval_loop(tf, f))
}

/// The placement itself (see the module doc), on plain frames.
pub fn merge(native: Vec<Frame>, py: Vec<(Frame, bool)>, is_eval: impl Fn(&Frame) -> bool) -> Vec<Frame> {
    let mut groups: Vec<Vec<Frame>> = Vec::new();
    let mut current = Vec::new();
    for (f, entry) in py {
        current.push(f);
        if entry {
            groups.push(std::mem::take(&mut current));
        }
    }
    let mut groups = groups.into_iter();
    let mut out = Vec::with_capacity(native.len() + current.len());
    for f in native {
        if is_eval(&f) {
            if let Some(g) = groups.next() {
                out.extend(g);
                continue;
            }
        }
        out.push(f);
    }
    out.extend(groups.flatten());
    // Frames after the last entry flag: run by no recorded evaluation call, outermost.
    out.extend(current);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn native(name: &str) -> Frame {
        Frame { function: Some(name.into()), ..Frame::default() }
    }
    fn py(name: &str) -> Frame {
        Frame { function: Some(name.into()), file: Some("x.py".into()), line: Some(1), kind: FrameKind::Python { qualified: true }, ..Frame::default() }
    }
    fn names(frames: &[Frame]) -> Vec<&str> {
        frames.iter().map(|f| f.function.as_deref().unwrap()).collect()
    }

    #[test]
    fn groups_take_the_place_of_the_evaluation_frames_innermost_first() {
        let stack = vec![native("cuMemAlloc"), native("alloc_block"), native(EVAL_FUNCTION), native("PyObject_Call"), native(EVAL_FUNCTION), native("main")];
        // f (entry) run by the inner loop; g, h (entry) by the outer one.
        let pys = vec![(py("f"), true), (py("g"), false), (py("h"), true)];
        let merged = merge(stack, pys, |f| f.function.as_deref() == Some(EVAL_FUNCTION));
        assert_eq!(names(&merged), ["cuMemAlloc", "alloc_block", "f", "PyObject_Call", "g", "h", "main"]);
    }

    #[test]
    fn left_over_groups_and_frames_go_outermost() {
        // The native stack was cut before the second evaluation frame.
        let stack = vec![native("cuMemAlloc"), native(EVAL_FUNCTION)];
        let pys = vec![(py("f"), true), (py("g"), true), (py("h"), false)];
        let merged = merge(stack, pys, |f| f.function.as_deref() == Some(EVAL_FUNCTION));
        assert_eq!(names(&merged), ["cuMemAlloc", "f", "g", "h"]);
        // No evaluation frame found at all: every Python frame outermost, in order.
        let merged = merge(vec![native("cuMemAlloc")], vec![(py("f"), true), (py("g"), true)], |_| false);
        assert_eq!(names(&merged), ["cuMemAlloc", "f", "g"]);
    }

    #[test]
    fn python_frames_print_as_tracebacks_do() {
        assert_eq!(py("GPUModelRunner.load_model").to_string(), "x.py:1 in GPUModelRunner.load_model");
    }
}
