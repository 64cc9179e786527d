//! Python line numbers, offline. A code object's line table, as the shim recorded it, and the byte
//! offset of a frame's current instruction give the line CPython's own `PyCode_Addr2Line` reports:
//! what `frame.f_lineno` and `traceback` show. Pure: no I/O, no interpreter.
//!
//! Two formats:
//! - 3.10 (PEP 626): pairs of (byte-length delta: u8, line delta: i8); a line delta of -128 means
//!   "no line"; ranges of zero length are skipped.
//! - 3.11 and later (the location table): entries of 1–8 code units. The first byte of an entry has
//!   bit 7 set, a 4-bit form in bits 3–6 and the length in code units minus one in bits 0–2; the
//!   form says how the line moves: 15 no line, 14 (long) and 13 (no columns) a signed varint delta,
//!   10–12 a delta of 0–2, 0–9 the same line. Column bytes follow and are skipped.

use vramtrace_trace::PyCode;

/// The line of the instruction at byte `offset` of `code` (`None` for the offset: a frame that
/// has not started, which reports the first line). `None` when the instruction has no line (as
/// `f_lineno` would be `None`), the offset lies past the table, or the Python version's table
/// format is unknown (before 3.10).
pub fn line(code: &PyCode, offset: Option<u32>) -> Option<u32> {
    addr2line(code.py_version, code.first_line, &code.linetable, offset)
}

/// [`line`] on the raw parts: `py_version` is `PY_VERSION_HEX`.
pub fn addr2line(py_version: u32, first_line: u32, table: &[u8], offset: Option<u32>) -> Option<u32> {
    let Some(offset) = offset else { return Some(first_line) };
    let (major, minor) = (py_version >> 24, (py_version >> 16) & 0xff);
    let line = match (major, minor) {
        (3, 10) => pep626(first_line as i64, table, offset as i64),
        (3, 11..) | (4.., _) => locations(first_line as i64, table, offset as i64),
        _ => None,
    }?;
    u32::try_from(line).ok()
}

/// Python 3.10: `PyLineTable_NextAddressRange` until the range holds `offset`.
fn pep626(first_line: i64, table: &[u8], offset: i64) -> Option<i64> {
    let (mut end, mut computed) = (0i64, first_line);
    let mut pairs = table.chunks_exact(2);
    loop {
        // One address range: advance over zero-length entries (they only move the line).
        let start = end;
        let line = loop {
            let pair = pairs.next()?;
            end += pair[0] as i64;
            let delta = pair[1] as i8;
            let line = if delta == -128 {
                -1
            } else {
                computed += delta as i64;
                computed
            };
            if end != start {
                break line;
            }
        };
        if end > offset {
            return (line >= 0).then_some(line);
        }
    }
}

/// Python 3.11+: walk the location entries until one covers `offset`.
fn locations(first_line: i64, table: &[u8], offset: i64) -> Option<i64> {
    let (mut end, mut computed, mut i) = (0i64, first_line, 0usize);
    while i < table.len() {
        let head = table[i];
        if head & 0x80 == 0 {
            return None; // not at an entry start: a damaged table
        }
        let form = (head >> 3) & 15;
        computed += match form {
            13 | 14 => signed_varint(table.get(i + 1..)?)?,
            11 => 1,
            12 => 2,
            _ => 0,
        };
        end += ((head & 7) as i64 + 1) * 2;
        i += 1;
        while i < table.len() && table[i] & 0x80 == 0 {
            i += 1;
        }
        if end > offset {
            return (form != 15).then_some(computed);
        }
    }
    None
}

/// CPython's 6-bit little-endian varint (bit 6 = more), zigzag-signed by its low bit.
fn signed_varint(b: &[u8]) -> Option<i64> {
    let (mut val, mut shift) = (0u64, 0u32);
    for &byte in b {
        if shift > 60 {
            return None;
        }
        val |= ((byte & 63) as u64) << shift;
        shift += 6;
        if byte & 64 == 0 {
            let v = (val >> 1) as i64;
            return Some(if val & 1 != 0 { -v } else { v });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const V310: u32 = 0x030a0df0;
    const V312: u32 = 0x030c01f0;

    #[test]
    fn pep626_ranges_lines_and_no_line_markers() {
        // [0,6) line 10, [6,6) skipped (+2), [6,10) line 13 (+1 after the skipped +2), [10,12)
        // no line, [12,14) line 12.
        let t = [6, 0, 0, 2, 4, 1, 2, 0x80, 2, 0xff];
        let at = |o| addr2line(V310, 10, &t, Some(o));
        assert_eq!([at(0), at(4), at(6), at(8), at(10), at(12), at(14)], [Some(10), Some(10), Some(13), Some(13), None, Some(12), None]);
        assert_eq!(addr2line(V310, 10, &t, None), Some(10), "a frame that has not started reports its first line");
    }

    #[test]
    fn location_table_forms() {
        let t = [
            0x80 | (13 << 3),      // no columns, 1 unit: delta +3 (zigzag 6)
            6,
            0x80 | (11 << 3) | 1,  // one-line form, 2 units: +1
            0,
            5,
            0x80 | (15 << 3),      // no line, 1 unit
            0x80 | (14 << 3),      // long form: delta -2 (zigzag 5), end line, columns
            5,
            0,
            1,
            1,
            0x80 | 2,              // short form, 3 units: same line
            0x12,
            0x80 | (13 << 3),      // a multi-byte varint: +100 (zigzag 200 = 8 + 3·64)
            64 | 8,
            3,
        ];
        let at = |o| addr2line(V312, 1, &t, Some(o));
        assert_eq!([at(0), at(2), at(4), at(6), at(8), at(10), at(14), at(16)], [Some(4), Some(5), Some(5), None, Some(3), Some(3), Some(3), Some(103)]);
        assert_eq!(at(18), None, "past the table");
    }

    #[test]
    fn damaged_or_unknown_tables_give_no_line_and_never_panic() {
        assert_eq!(addr2line(0x03090000, 1, &[2, 1], Some(0)), None, "3.9 is not a known format");
        assert_eq!(addr2line(V312, 1, &[0x05], Some(0)), None);
        assert_eq!(addr2line(V312, 1, &[0x80 | (13 << 3), 64, 64], Some(0)), None);
        for t in [&[][..], &[0xff; 33][..], &[0x40; 9][..], &[0x80 | (14 << 3), 0x7f, 0x7f, 0x7f][..]] {
            for v in [V310, V312] {
                for o in [0, 2, 64, u32::MAX >> 1] {
                    let _ = addr2line(v, u32::MAX, t, Some(o));
                }
            }
        }
    }
}
