//! Growth per token: least-squares line through (tokens, bytes) samples, its fit
//! quality, and the context length at which the fitted total reaches the device's capacity.

use crate::report::Fit;

/// Ordinary least squares `y = a + b·x`. `None` with fewer than two distinct x values.
/// R² is 1 for a perfect fit, including a flat series fitted exactly.
pub fn fit(xs: &[f64], ys: &[f64]) -> Option<Fit> {
    let n = xs.len().min(ys.len());
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    let mx = xs[..n].iter().sum::<f64>() / nf;
    let my = ys[..n].iter().sum::<f64>() / nf;
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for i in 0..n {
        let dx = xs[i] - mx;
        sxx += dx * dx;
        sxy += dx * (ys[i] - my);
    }
    if sxx == 0.0 {
        return None;
    }
    let b = sxy / sxx;
    let a = my - b * mx;
    let (mut ss_res, mut ss_tot) = (0.0, 0.0);
    for i in 0..n {
        let r = ys[i] - (a + b * xs[i]);
        ss_res += r * r;
        let d = ys[i] - my;
        ss_tot += d * d;
    }
    // Relative tolerance: integer byte counts fitted exactly still leave rounding residue.
    let r2 = if ss_tot == 0.0 { if ss_res <= 1e-9 { 1.0 } else { 0.0 } } else { 1.0 - ss_res / ss_tot };
    // Absurd inputs (sums past f64 range) give no fit rather than NaN in the report.
    (a.is_finite() && b.is_finite() && r2.is_finite()).then_some(Fit { intercept_bytes: a, slope_bytes_per_token: b, r2 })
}

/// Tokens at which `intercept + slope·tokens` reaches `capacity`; `None` when memory does not
/// grow with tokens, `Some(0)` when the intercept alone exceeds the capacity.
pub fn predict_max_tokens(f: &Fit, capacity: u64) -> Option<u64> {
    if f.slope_bytes_per_token.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) || !f.slope_bytes_per_token.is_finite() || !f.intercept_bytes.is_finite() {
        return None;
    }
    let t = (capacity as f64 - f.intercept_bytes) / f.slope_bytes_per_token;
    // The tiny bias keeps an exact answer (n.0 computed as n − 1e-12) from flooring to n − 1.
    Some(if t <= 0.0 { 0 } else { (t + 1e-6).floor().min(u64::MAX as f64) as u64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_line_and_prediction() {
        let xs = [256.0, 512.0, 1024.0, 4096.0];
        let ys: Vec<f64> = xs.iter().map(|x| 1e9 + 34816.0 * x).collect();
        let f = fit(&xs, &ys).unwrap();
        assert!((f.slope_bytes_per_token - 34816.0).abs() < 1e-6);
        assert!((f.intercept_bytes - 1e9).abs() < 1e-3);
        assert!((f.r2 - 1.0).abs() < 1e-12);
        assert_eq!(predict_max_tokens(&f, 1_000_000_000 + 34816 * 10_000), Some(10_000));
        assert_eq!(fit(&[1.0, 1.0], &[2.0, 3.0]), None);
        let flat = fit(&[1.0, 2.0], &[5.0, 5.0]).unwrap();
        assert_eq!((flat.slope_bytes_per_token, flat.r2), (0.0, 1.0));
        assert_eq!(predict_max_tokens(&flat, 10), None);
    }
}
