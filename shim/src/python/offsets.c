/* Prints, for the CPython whose headers it is compiled against, the structure offsets the shim's
 * Python stack capture uses (shim/src/python/layout.rs). The shim's unit tests compile it against
 * every CPython 3.10-3.13 found on the machine and compare. Output: one `name value` per line. */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#if PY_VERSION_HEX >= 0x030b0000
#include "internal/pycore_frame.h"
#else
#include <frameobject.h>
#endif
#include "internal/pycore_runtime.h"
#include "internal/pycore_interp.h"

#define P(name, value) printf("%s %lu\n", name, (unsigned long)(value))

int main(void) {
    P("version_hex", PY_VERSION_HEX);
    P("runtime.finalizing", offsetof(_PyRuntimeState, _finalizing));
    P("runtime.interpreters_head", offsetof(_PyRuntimeState, interpreters.head));
    P("interp.next", offsetof(PyInterpreterState, next));
    P("tstate.size", sizeof(PyThreadState));
    P("tstate.interp", offsetof(PyThreadState, interp));
#if PY_VERSION_HEX >= 0x030d0000
    P("tstate.frame", offsetof(PyThreadState, current_frame));
#elif PY_VERSION_HEX >= 0x030b0000
    P("tstate.frame", offsetof(PyThreadState, cframe));
    P("cframe.current_frame", offsetof(_PyCFrame, current_frame));
#else
    P("tstate.frame", offsetof(PyThreadState, frame));
#endif
#if PY_VERSION_HEX >= 0x030b0000
    P("frame.size", offsetof(_PyInterpreterFrame, localsplus));
    P("frame.previous", offsetof(_PyInterpreterFrame, previous));
#if PY_VERSION_HEX >= 0x030d0000
    P("frame.code", offsetof(_PyInterpreterFrame, f_executable));
    P("frame.instr", offsetof(_PyInterpreterFrame, instr_ptr));
#else
    P("frame.code", offsetof(_PyInterpreterFrame, f_code));
    P("frame.instr", offsetof(_PyInterpreterFrame, prev_instr));
#endif
    P("frame.owner", offsetof(_PyInterpreterFrame, owner));
#if PY_VERSION_HEX < 0x030c0000
    P("frame.is_entry", offsetof(_PyInterpreterFrame, is_entry));
#endif
    P("code.qualname", offsetof(PyCodeObject, co_qualname));
    P("code.code_adaptive", offsetof(PyCodeObject, co_code_adaptive));
    P("code.firsttraceable", offsetof(PyCodeObject, _co_firsttraceable));
#if PY_VERSION_HEX >= 0x030c0000
    P("code.version", offsetof(PyCodeObject, co_version));
#endif
#else
    P("frame.size", sizeof(PyFrameObject));
    P("frame.previous", offsetof(PyFrameObject, f_back));
    P("frame.code", offsetof(PyFrameObject, f_code));
    P("frame.instr", offsetof(PyFrameObject, f_lasti));
#endif
    P("code.filename", offsetof(PyCodeObject, co_filename));
    P("code.name", offsetof(PyCodeObject, co_name));
    P("code.linetable", offsetof(PyCodeObject, co_linetable));
    P("code.firstlineno", offsetof(PyCodeObject, co_firstlineno));
    P("object.type", offsetof(PyObject, ob_type));
    P("bytes.size", offsetof(PyBytesObject, ob_base.ob_size));
    P("bytes.data", offsetof(PyBytesObject, ob_sval));
    P("unicode.length", offsetof(PyASCIIObject, length));
    P("unicode.state", offsetof(PyASCIIObject, state));
    P("unicode.ascii_size", sizeof(PyASCIIObject));
    P("unicode.compact_size", sizeof(PyCompactUnicodeObject));
    return 0;
}
