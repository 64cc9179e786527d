//! Min/max per pixel column: the guard that keeps charts (and so the HTML) small whatever the
//! trace size. The analyzer already bounds its timelines, but a chart must not trust that: a
//! series with more points than the plot has pixel columns is reduced to, per column, the point
//! with the lowest and the one with the highest value (in time order). Spikes survive — a peak
//! or an OOM-causing burst is never averaged away — and nothing finer than a pixel is lost.

/// Indices into `xs`/`ys` to keep: at most two per column plus the first and last point, in
/// ascending order. `xs` must be sorted. Returns all indices when `xs.len() <= columns`.
pub fn minmax_columns(xs: &[f64], ys: &[f64], columns: usize) -> Vec<usize> {
    let n = xs.len().min(ys.len());
    if n <= columns.max(2) {
        return (0..n).collect();
    }
    let columns = columns.max(1);
    let (x0, x1) = (xs[0], xs[n - 1]);
    let span = if x1 > x0 { x1 - x0 } else { 1.0 };
    let col = |x: f64| (((x - x0) / span) * columns as f64).floor().clamp(0.0, (columns - 1) as f64) as usize;

    let mut keep = Vec::with_capacity(2 * columns + 2);
    keep.push(0);
    let mut cur = col(xs[0]);
    let (mut lo, mut hi) = (0usize, 0usize);
    for i in 0..n {
        let c = col(xs[i]);
        if c != cur {
            push_pair(&mut keep, lo, hi);
            cur = c;
            lo = i;
            hi = i;
        }
        if ys[i] < ys[lo] {
            lo = i;
        }
        if ys[i] > ys[hi] {
            hi = i;
        }
    }
    push_pair(&mut keep, lo, hi);
    keep.push(n - 1);
    keep.sort_unstable();
    keep.dedup();
    keep
}

fn push_pair(keep: &mut Vec<usize>, a: usize, b: usize) {
    keep.push(a.min(b));
    keep.push(a.max(b));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_series_untouched() {
        let xs = [0.0, 1.0, 2.0];
        assert_eq!(minmax_columns(&xs, &xs, 10), vec![0, 1, 2]);
    }

    #[test]
    fn keeps_spikes_and_bounds() {
        let n = 100_000;
        let xs: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let mut ys = vec![1.0; n];
        ys[51_234] = 1000.0;
        ys[77_777] = -5.0;
        let k = minmax_columns(&xs, &ys, 500);
        assert!(k.len() <= 2 * 500 + 2, "{}", k.len());
        assert!(k.contains(&51_234) && k.contains(&77_777));
        assert_eq!(k[0], 0);
        assert_eq!(*k.last().unwrap(), n - 1);
        assert!(k.windows(2).all(|w| w[0] < w[1]));
    }
}
