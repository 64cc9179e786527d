//! Byte sizes as people type them (`24GiB`, `512M`, `1.5G`) and as reports print them
//! (`1.50 GiB`). One parser and one formatter for every crate and command: binary units only
//! (a GPU's "80 GB" is 80 GiB of address space in every driver API).

const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];

/// Human-readable bytes in binary units, two decimals above 1 KiB (`512 B`, `1.50 GiB`).
pub fn fmt_bytes(b: u64) -> String {
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.2} {}", UNITS[i])
    }
}

/// Parses a size: a non-negative number (a fraction is allowed: `1.5G`) and an optional binary
/// unit, case-insensitive: `B`, `K`/`KB`/`KiB`, `M`/`MB`/`MiB`, `G`/`GB`/`GiB`, `T`/`TB`/`TiB`.
/// The error is one line saying what was wrong.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("{s:?} is not a size (examples: 24GiB, 512M, 1.5G, 1073741824)");
    if num.is_empty() {
        return Err(bad());
    }
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{s:?}: unknown unit {:?} (use B, KiB, MiB, GiB or TiB)", unit.trim())),
    };
    // Whole numbers exactly (a byte count may need all 64 bits); fractions through f64.
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(1u64 << shift).ok_or_else(|| format!("{s:?} is too large"));
    }
    let v: f64 = num.parse().map_err(|_| bad())?;
    let bytes = (v * (1u64 << shift) as f64).round();
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("{s:?} is too large"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("1073741824"), Ok(1 << 30));
        assert_eq!(parse_size("24GiB"), Ok(24 << 30));
        assert_eq!(parse_size(" 512m "), Ok(512 << 20));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("4096B"), Ok(4096));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("1TB"), Ok(1 << 40));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        assert!(parse_size("20000000T").unwrap_err().contains("too large"));
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
        assert!(parse_size("-3G").unwrap_err().contains("not a size"));
        assert!(parse_size("1.2.3G").is_err());
        assert!(parse_size("5 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse_size("").is_err());
        assert_eq!(fmt_bytes(512), "512 B");
        assert_eq!(fmt_bytes(3 << 29), "1.50 GiB");
    }
}
