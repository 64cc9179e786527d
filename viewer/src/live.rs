//! The live view of `vramtrace top`: a [`Snapshot`] drawn into a ratatui frame — per GPU what is
//! in use of its capacity (a bar coloured by category), the peak so far, live bytes by
//! category, the largest call sites live now, growth per token so far and the last OOM with its
//! verdict. Drawing only: the terminal, its events and the refresh loop are the CLI's, every
//! figure is the snapshot's, every phrase the one the other outputs use ([`crate::words`]).

use crate::colors::{category_color, VRAM_CATEGORIES};
use crate::util::{clip, fmt_bytes, live_site_label, secs, shell_join, short_frame, thousands};
use crate::words;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;
use vramtrace_analyzer::live::{LiveDevice, Snapshot};
use vramtrace_analyzer::{device_label, Category};

/// Call sites listed per GPU.
const TOP_SITES: usize = 5;
/// Width of the in-use bar, in cells.
const BAR: usize = 40;

/// What the view says besides the snapshot: a title (what is watched) and notes (where the
/// program's output goes, whether it still runs).
#[derive(Clone, Debug, Default)]
pub struct Header {
    pub title: String,
    pub notes: Vec<String>,
}

/// Draws the snapshot over the whole frame.
pub fn draw(frame: &mut Frame, s: &Snapshot, header: &Header) {
    let area = frame.area();
    render(frame, area, s, header);
}

fn render(frame: &mut Frame, area: Rect, s: &Snapshot, header: &Header) {
    let width = area.width.saturating_sub(2) as usize;
    let lines: Vec<Line> = lines(s, header).into_iter().map(|l| clip_line(l, width)).collect();
    let block = Block::bordered().title(Span::styled(format!(" {} ", header.title), Style::new().add_modifier(Modifier::BOLD))).title_bottom(" q quits ");
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// The view as lines (what [`draw`] shows, unclipped).
pub fn lines(s: &Snapshot, header: &Header) -> Vec<Line<'static>> {
    let mut out = vec![Line::from(format!("+{} · {} events · {} process(es)", secs(s.t_rel_ns), thousands(s.events), s.processes.len()))];
    out.extend(header.notes.iter().map(|n| Line::from(n.clone())));
    for p in &s.processes {
        let cmd = if p.cmdline.is_empty() { p.exe.clone() } else { shell_join(&p.cmdline) };
        out.push(Line::from(format!("pid {} {} ({}): {} now, peak {}", p.pid, clip(&cmd, 50), p.state.label(), fmt_bytes(p.vram_bytes), fmt_bytes(p.peak_bytes))));
    }
    if s.devices.is_empty() {
        out.push(Line::from(""));
        out.push(Line::from("waiting for the first allocation…"));
    }
    for d in &s.devices {
        out.push(Line::from(""));
        device(&mut out, d);
    }
    if let Some(w) = s.warnings.last() {
        out.push(Line::from(""));
        out.push(Line::styled(format!("{} warning(s); latest: {w}", s.warnings.len()), Style::new().fg(Color::Yellow)));
    }
    out
}

fn device(out: &mut Vec<Line<'static>>, d: &LiveDevice) {
    let name = d.name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default();
    out.push(Line::from(vec![
        Span::styled(format!("{}{name}: ", device_label(d.device)), Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(words::in_use(d.used_bytes, d.capacity_bytes, d.used_pct())),
    ]));
    out.push(bar(d));
    out.push(Line::from(format!("  peak {} at +{}{}", fmt_bytes(d.peak.total_bytes), secs(d.peak.t_rel_ns), if d.runtime_included { String::new() } else { format!("; {}", words::runtime_not_included()) })));
    for (c, b) in d.live.sorted() {
        if c != Category::HostPinned {
            out.push(Line::from(words::category_row(c, b, &d.live)));
        }
    }
    if !d.top_sites.is_empty() {
        out.push(Line::from("  Largest call sites live now:"));
        for x in d.top_sites.iter().take(TOP_SITES) {
            out.push(Line::from(format!("    {:>12}  {:<15} [{}] {}", fmt_bytes(x.bytes), x.category.name(), x.rule, short_frame(&live_site_label(x)))));
        }
    }
    if let Some(g) = &d.growth {
        out.push(Line::from(format!("  Growth per token ({} points): {}", g.points.len(), words::growth_fits(g))));
        if let Some(t) = words::growth_total(g) {
            out.push(Line::from(format!("    {t}")));
        }
        if let Some(o) = &g.oom {
            out.push(Line::from(format!("    {}", words::growth_oom(o))));
        }
    }
    if let Some(o) = &d.last_oom {
        let at = o.site.as_ref().map(|x| format!(" at {}", short_frame(&live_site_label(x)))).unwrap_or_default();
        out.push(Line::styled(format!("  Out-of-memory failures: {}; last: {}{at}", thousands(d.ooms), words::oom(&o.oom)), Style::new().fg(Color::Red)));
    }
}

/// The capacity as a bar, each category's share in its colour (all of it when the capacity is
/// unknown: the bar then shows the composition only).
fn bar(d: &LiveDevice) -> Line<'static> {
    let whole = d.capacity_bytes.unwrap_or(d.used_bytes).max(d.used_bytes).max(1);
    let mut spans = vec![Span::raw("  ")];
    let mut used = 0;
    for c in VRAM_CATEGORIES {
        let n = (d.live.get(c) as f64 / whole as f64 * BAR as f64).round() as usize;
        let n = n.min(BAR - used);
        if n > 0 {
            let rgb = category_color(c);
            spans.push(Span::styled("█".repeat(n), Style::new().fg(Color::Rgb(rgb.0, rgb.1, rgb.2))));
            used += n;
        }
    }
    spans.push(Span::styled("░".repeat(BAR - used), Style::new().fg(Color::DarkGray)));
    Line::from(spans)
}

/// A line cut to `width` cells (the frame would cut it anyway; cutting keeps an ellipsis).
fn clip_line(l: Line<'static>, width: usize) -> Line<'static> {
    if l.width() <= width {
        return l;
    }
    let text: String = l.spans.iter().map(|s| s.content.as_ref()).collect();
    Line::styled(clip(&text, width), l.style)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    use vramtrace_analyzer::live::{LivePeak, LiveProcess, LiveSite, ProcessState};
    use vramtrace_analyzer::Categories;

    fn sample() -> Snapshot {
        let gib = 1u64 << 30;
        let live = Categories { weights: 2 * gib, kv_cache: gib, runtime: gib / 2, ..Categories::default() };
        Snapshot {
            t_ns: 0,
            t_rel_ns: 12_500_000_000,
            events: 12345,
            processes: vec![LiveProcess { pid: 7, cmdline: vec!["llama-server".into(), "-m".into(), "m.gguf".into()], state: ProcessState::Running, vram_bytes: 3 * gib, peak_bytes: 3 * gib, ..LiveProcess::default() }],
            devices: vec![LiveDevice {
                device: 0,
                name: Some("Fake GPU".into()),
                used_bytes: live.vram_total(),
                capacity_bytes: Some(8 * gib),
                capacity_source: "cuMemGetInfo".into(),
                runtime_included: true,
                live,
                peak: LivePeak { t_rel_ns: 10_000_000_000, total_bytes: 4 * gib, ..LivePeak::default() },
                top_sites: vec![LiveSite { key: "k".into(), frames: vec!["llama_model::load_tensors [libllama.so+0x10]".into()], frame: None, rule: "builtin:llama.model_load_tensors".into(), category: Category::Weights, bytes: 2 * gib }],
                ..LiveDevice::default()
            }],
            warnings: vec![],
        }
    }

    #[test]
    fn the_view_shows_use_of_capacity_categories_and_sites() {
        let mut t = Terminal::new(TestBackend::new(110, 24)).unwrap();
        t.draw(|f| draw(f, &sample(), &Header { title: "vramtrace top — run".into(), notes: vec!["program output: output-7.jsonl".into()] })).unwrap();
        let screen: String = t.backend().buffer().content().chunks(110).map(|row| row.iter().map(|c| c.symbol()).collect::<String>() + "\n").collect();
        for want in ["vramtrace top — run", "+12.500 s · 12,345 events", "program output: output-7.jsonl", "pid 7 llama-server -m m.gguf (running): 3.00 GiB now", "GPU 0 (Fake GPU): 3.50 GiB of 8.00 GiB (43.8%) in use", "peak 4.00 GiB at +10.000 s", "weights              2.00 GiB  57.1%", "2.00 GiB  weights", "q quits"] {
            assert!(screen.contains(want), "{want:?} not in\n{screen}");
        }
        // The bar: 2 + 1 + 0.5 of 8 GiB in use are 10 + 5 + 3 of 40 cells.
        let bar = screen.lines().find(|l| l.contains('░')).unwrap();
        assert_eq!((bar.matches('█').count(), bar.matches('░').count()), (18, 22), "{screen}");
    }

    #[test]
    fn nothing_yet_and_tiny_terminals_do_not_panic() {
        let mut t = Terminal::new(TestBackend::new(10, 3)).unwrap();
        t.draw(|f| draw(f, &sample(), &Header::default())).unwrap();
        let l = lines(&Snapshot::default(), &Header::default());
        assert!(l.iter().any(|l| l.to_string().contains("waiting for the first allocation")));
    }
}
