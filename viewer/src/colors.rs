//! The one category → colour table. Every chart, the HTML report and the Markdown summary take
//! their colours from [`category_color`], so "kv_cache" is the same orange everywhere and a
//! reader can match a table row to a chart band at a glance.

use plotters::style::RGBColor;
use vramtrace_analyzer::Category;

/// Device-memory categories in stacking order (bottom to top of the timeline). `host_pinned` is
/// host memory and never part of a VRAM chart. `runtime` sits on top: it is the estimate
/// "driver-reported used − traced", so it is the part that moves at each driver reading.
pub const VRAM_CATEGORIES: [Category; 9] = [
    Category::Weights,
    Category::KvCache,
    Category::Compute,
    Category::CudaGraphs,
    Category::ScratchPool,
    Category::Workspace,
    Category::FrameworkCache,
    Category::Unknown,
    Category::Runtime,
];

/// The colour of a category (Tableau 10, chosen because its hues stay distinguishable for the
/// common colour-vision deficiencies and on grey-scale prints).
pub fn category_color(cat: Category) -> RGBColor {
    match cat {
        Category::Weights => RGBColor(0x4E, 0x79, 0xA7),
        Category::KvCache => RGBColor(0xF2, 0x8E, 0x2B),
        Category::Compute => RGBColor(0x59, 0xA1, 0x4F),
        Category::CudaGraphs => RGBColor(0xE1, 0x57, 0x59),
        Category::ScratchPool => RGBColor(0xB0, 0x7A, 0xA1),
        Category::Workspace => RGBColor(0xED, 0xC9, 0x48),
        Category::FrameworkCache => RGBColor(0x76, 0xB7, 0xB2),
        Category::HostPinned => RGBColor(0x9C, 0x75, 0x5F),
        Category::Runtime => RGBColor(0xBA, 0xB0, 0xAC),
        Category::Unknown => RGBColor(0xFF, 0x9D, 0xA7),
    }
}

/// `#RRGGBB` (upper-case hex) of [`category_color`]: the exact string plotters writes into SVG
/// `fill` attributes, so HTML swatches and chart fills compare equal as text.
pub fn category_hex(cat: Category) -> String {
    hex(category_color(cat))
}

pub(crate) fn hex(c: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

/// Colours of the non-category series (capacity, OOMs, fragmentation lines). Kept apart from
/// the category hues so a line is never mistaken for a category band.
pub mod marks {
    use plotters::style::RGBColor;
    pub const CAPACITY: RGBColor = RGBColor(0x20, 0x20, 0x20);
    pub const OOM: RGBColor = RGBColor(0xC0, 0x00, 0x1A);
    pub const PEAK: RGBColor = RGBColor(0x10, 0x10, 0x10);
    pub const MARKER: RGBColor = RGBColor(0x6A, 0x6A, 0x6A);
    pub const GRID: RGBColor = RGBColor(0xE0, 0xE0, 0xE0);
    pub const GRID_LIGHT: RGBColor = RGBColor(0xF2, 0xF2, 0xF2);
    pub const VMM_RESERVED: RGBColor = RGBColor(0x1B, 0x3A, 0x6B);
    pub const VMM_MAPPED: RGBColor = RGBColor(0x2C, 0x7F, 0xB8);
    pub const IN_USE: RGBColor = RGBColor(0x30, 0x30, 0x30);
    pub const POOL_RETAINED: RGBColor = RGBColor(0xD9, 0x5F, 0x0E);
    pub const BFC: RGBColor = RGBColor(0x7B, 0x32, 0x94);
    pub const TOTAL: RGBColor = RGBColor(0x20, 0x20, 0x20);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacking_order_has_every_device_category_once_and_distinct_colours() {
        let mut want: Vec<Category> = Category::ALL.into_iter().filter(|&c| c != Category::HostPinned).collect();
        let mut got = VRAM_CATEGORIES.to_vec();
        want.sort_by_key(|c| c.name());
        got.sort_by_key(|c| c.name());
        assert_eq!(got, want, "a new category needs its place in the stacking order");
        let mut colours: Vec<String> = Category::ALL.iter().map(|&c| category_hex(c)).collect();
        colours.sort();
        colours.dedup();
        assert_eq!(colours.len(), Category::ALL.len(), "every category its own colour");
    }
}
