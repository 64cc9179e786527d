//! Charts: SVGs are well-formed XML with the expected titles, labels and series; PNGs decode
//! at the expected size and are not blank; every chart, the HTML and the Markdown use the same
//! colour per category; series are bounded however large the report.

mod common;
use common::*;
use quick_xml::events::Event;
use std::collections::HashSet;
use vramtrace_analyzer::{Category, Report};
use vramtrace_viewer::charts::{DEFAULT_HEIGHT, DEFAULT_WIDTH};
use vramtrace_viewer::*;

/// What a test needs from an SVG: all text content (unescaped) and all fill colours.
struct Svg {
    texts: Vec<String>,
    fills: HashSet<String>,
    polygons: usize,
}

impl Svg {
    fn has_text(&self, t: &str) -> bool {
        self.texts.iter().any(|x| x.trim() == t)
    }
    fn text_containing(&self, t: &str) -> bool {
        self.texts.iter().any(|x| x.contains(t))
    }
}

/// Parses `s` as XML (panics on any error) and checks the root is a sized `<svg>` with a viewBox.
fn parse_svg(s: &str) -> Svg {
    let mut rd = quick_xml::Reader::from_str(s);
    let mut out = Svg { texts: Vec::new(), fills: HashSet::new(), polygons: 0 };
    let mut depth = 0i32;
    let mut root_seen = false;
    let mut cur: Option<String> = None;
    loop {
        let ev = rd.read_event().unwrap_or_else(|e| panic!("SVG is not well-formed XML at {}: {e}", rd.buffer_position()));
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let name = e.name().as_ref().to_string();
                if !root_seen {
                    assert_eq!(name, "svg", "root element");
                    let vb = e.try_get_attribute("viewBox").unwrap().expect("viewBox").normalized_value(quick_xml::XmlVersion::Implicit1_0).unwrap().into_owned();
                    assert!(vb.starts_with("0 0 "), "{vb}");
                    root_seen = true;
                }
                if name == "polygon" {
                    out.polygons += 1;
                }
                for a in e.attributes() {
                    let a = a.unwrap();
                    if a.key.as_ref() == "fill" {
                        out.fills.insert(a.normalized_value(quick_xml::XmlVersion::Implicit1_0).unwrap().into_owned());
                    }
                }
                if matches!(ev, Event::Start(_)) {
                    depth += 1;
                    if name == "text" {
                        cur = Some(String::new());
                    }
                }
            }
            Event::End(ref e) => {
                depth -= 1;
                if e.name().as_ref() == "text" {
                    out.texts.push(cur.take().unwrap_or_default());
                }
            }
            Event::Text(ref t) => {
                if let Some(c) = cur.as_mut() {
                    c.push_str(t);
                }
            }
            Event::GeneralRef(ref r) => {
                if let Some(c) = cur.as_mut() {
                    let ch = if r.is_char_ref() {
                        r.resolve_char_ref().unwrap().unwrap()
                    } else {
                        match &**r {
                            "lt" => '<',
                            "gt" => '>',
                            "amp" => '&',
                            "quot" => '"',
                            "apos" => '\'',
                            other => panic!("unknown entity &{other};"),
                        }
                    };
                    c.push(ch);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(root_seen, "no <svg> root");
    assert_eq!(depth, 0, "unbalanced elements");
    out
}

fn svg_of(r: &Report, name: &str) -> Svg {
    let c = charts(r).into_iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no chart {name}"));
    parse_svg(&chart_svg(r, &c, (DEFAULT_WIDTH, DEFAULT_HEIGHT)).unwrap())
}

const DEVICE_CATS: [Category; 6] = [Category::Weights, Category::KvCache, Category::Compute, Category::ScratchPool, Category::Workspace, Category::Runtime];

#[test]
fn chart_list_and_names() {
    let r = fixed_report();
    let names: Vec<(String, String)> = charts(&r).into_iter().map(|c| (c.name, c.title)).collect();
    assert_eq!(
        names,
        [
            ("timeline-gpu0", "Live VRAM over time by category — GPU 0"),
            ("peak-composition", "VRAM at the peak by category"),
            ("top-sites", "Top call sites at the peak"),
            ("fragmentation-gpu0", "Fragmentation over time — GPU 0"),
            ("address-map-gpu0", "Address space over time — GPU 0"),
            ("growth-gpu0", "Growth per context token — GPU 0"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert!(charts(&Report::default()).is_empty(), "an empty report has no chart");
}

#[test]
fn timeline_svg_has_stack_capacity_peak_oom_and_legend() {
    let r = fixed_report();
    let s = svg_of(&r, "timeline-gpu0");
    for t in ["Live VRAM over time by category — GPU 0", "live VRAM (GiB)", "time since trace start (s)", "capacity 12.00 GiB", "peak 11.39 GiB", "OOM: cuMemCreate 1.00 GiB", "markers (32)"] {
        assert!(s.has_text(t), "missing text {t:?} in {:?}", s.texts);
    }
    for c in DEVICE_CATS {
        assert!(s.has_text(c.name()), "legend entry {c}");
        assert!(s.fills.contains(&category_hex(c)), "series of {c} filled with its colour");
    }
    // host_pinned is host memory: never a VRAM series.
    assert!(!s.fills.contains(&category_hex(Category::HostPinned)));
    assert!(!s.has_text("host_pinned"));
    assert!(s.polygons >= DEVICE_CATS.len(), "one area per category");
    assert_eq!(timeline_svg(&r, 0).unwrap().map(|x| x.len()), Some(chart_svg(&r, &charts(&r)[0], (DEFAULT_WIDTH, DEFAULT_HEIGHT)).unwrap().len()));
    assert!(timeline_svg(&r, 3).unwrap().is_none(), "no such GPU");
}

#[test]
fn composition_top_sites_fragmentation_growth_svgs() {
    let r = fixed_report();
    let s = svg_of(&r, "peak-composition");
    for t in ["VRAM at the peak by category", "7.50 GiB (65.9%)", "7.50 GiB logged", "480.00 MiB logged", "runner's own log lines", "kv_cache", "bytes live at the peak (GiB)"] {
        assert!(s.has_text(t), "composition: missing {t:?} in {:?}", s.texts);
    }
    for c in DEVICE_CATS {
        assert!(s.fills.contains(&category_hex(c)), "composition bar of {c}");
    }

    let s = svg_of(&r, "top-sites");
    assert!(s.has_text("llama_kv_cache::llama_kv_cache(llama_model const&)"), "{:?}", s.texts);
    assert!(s.has_text("rule builtin:llama.kv_cache_ctor"));
    // A symbol full of XML metacharacters survives escaping (clipped to the label width).
    assert!(s.text_containing("std::vector<float, my_alloc<float>>::reserve("), "{:?}", s.texts);
    assert!(s.fills.contains(&category_hex(Category::Weights)) && s.fills.contains(&category_hex(Category::ScratchPool)));

    let s = svg_of(&r, "fragmentation-gpu0");
    for t in ["VMM address reserved", "VMM physically mapped", "in use (traced, live)", "pool retained (freed, held)", "BFC metric (0–1)", "BFC: 1 − largest/total free"] {
        assert!(s.has_text(t), "fragmentation: missing {t:?} in {:?}", s.texts);
    }

    // The address-space map: one rectangle per span in its category's colour, real addresses
    // at the start of each run of used space, the count of spans left out.
    let s = svg_of(&r, "address-map-gpu0");
    for t in ["Address space over time — GPU 0", "0x7f0000000000", "0x7e0000000000", "outlined: VMM mapping"] {
        assert!(s.has_text(t), "address map: missing {t:?} in {:?}", s.texts);
    }
    assert!(s.text_containing("5 address ranges (2 VMM mappings), 3 smaller ones not drawn"), "{:?}", s.texts);
    for c in [Category::Weights, Category::KvCache, Category::Compute, Category::ScratchPool] {
        assert!(s.fills.contains(&category_hex(c)), "address map rectangle of {c}");
    }
    assert!(address_map_svg(&r, 0).unwrap().is_some() && address_map_svg(&r, 1).unwrap().is_none());

    let s = svg_of(&r, "growth-gpu0");
    for t in ["Growth per context token — GPU 0", "context tokens (marker 'tokens')", "predicted OOM ≈ 51,681 tokens", "OOM in the step to 33,792 tokens", "scratch_pool", "34.0 KiB/token (R² 1.000)"] {
        assert!(s.has_text(t), "growth: missing {t:?} in {:?}", s.texts);
    }
    assert!(s.fills.contains(&category_hex(Category::ScratchPool)), "growth points in the category colour");
    assert!(growth_svg(&r, 0).unwrap().is_some() && growth_svg(&r, 1).unwrap().is_none());
    assert!(fragmentation_svg(&r, 0).unwrap().is_some());
    assert!(peak_composition_svg(&r).unwrap().is_some() && top_sites_svg(&r).unwrap().is_some());
    let empty = Report::default();
    assert!(peak_composition_svg(&empty).unwrap().is_none() && top_sites_svg(&empty).unwrap().is_none());
}

#[test]
fn category_colours_identical_across_charts_html_and_markdown() {
    // One table, nine distinct colours.
    let all: HashSet<String> = Category::ALL.iter().map(|&c| category_hex(c)).collect();
    assert_eq!(all.len(), Category::ALL.len());
    for c in Category::ALL {
        let rgb = category_color(c);
        assert_eq!(category_hex(c), format!("#{:02X}{:02X}{:02X}", rgb.0, rgb.1, rgb.2));
    }
    let r = fixed_report();
    let dir = TempDir::new("colours");
    let w = render_all(&r, dir.path(), &RenderOptions::default()).unwrap();
    let html = std::fs::read_to_string(&w.html).unwrap();
    let md = std::fs::read_to_string(&w.markdown).unwrap();
    for c in DEVICE_CATS {
        let hex = category_hex(c);
        // Every chart that names the category in its legend fills it with this colour.
        let mut shown_in = 0;
        for wc in &w.charts {
            let s = parse_svg(&std::fs::read_to_string(&wc.svg).unwrap());
            if s.has_text(c.name()) {
                assert!(s.fills.contains(&hex), "{} shows {c} but not in {hex}", wc.chart.name);
                shown_in += 1;
            }
        }
        assert!(shown_in >= 2, "{c} appears in {shown_in} charts");
        assert!(html.contains(&format!("background:{hex}")), "HTML swatch of {c}");
        assert!(md.contains(&format!("\\color{{{hex}}}")), "Markdown swatch of {c}");
    }
    // The PNG uses the very same RGB values.
    let png = std::fs::read(w.charts[0].png.clone().unwrap()).unwrap();
    let (_, _, px) = decode(&png);
    let rgb = category_color(Category::KvCache);
    assert!(px.chunks(3).any(|p| p == [rgb.0, rgb.1, rgb.2]), "kv_cache colour in the timeline PNG");
}

/// (width, height, RGB pixels).
fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut d = png::Decoder::new(std::io::Cursor::new(bytes));
    d.set_transformations(png::Transformations::EXPAND);
    let mut rd = d.read_info().expect("PNG header");
    let mut buf = vec![0; rd.output_buffer_size().unwrap()];
    let info = rd.next_frame(&mut buf).expect("PNG data");
    buf.truncate(info.buffer_size());
    assert_eq!(info.color_type, png::ColorType::Rgb, "RGB, no alpha");
    (info.width, info.height, buf)
}

#[test]
fn pngs_decode_at_size_and_are_not_blank() {
    let r = fixed_report();
    for c in charts(&r) {
        let png = chart_png(&r, &c, (DEFAULT_WIDTH, DEFAULT_HEIGHT)).unwrap();
        let (w, h, px) = decode(&png);
        assert_eq!((w, h), (DEFAULT_WIDTH, DEFAULT_HEIGHT), "{}", c.name);
        let colours: HashSet<&[u8]> = px.chunks(3).collect();
        let ink = px.chunks(3).filter(|p| p != &[255, 255, 255]).count();
        assert!(colours.len() > 20, "{}: only {} colours", c.name, colours.len());
        assert!(ink * 100 > (w * h) as usize * 3, "{}: {ink} non-white pixels", c.name);
        // The title band holds text drawn with the embedded font: dark, anti-aliased pixels.
        let dark_in_title = (0..44u32).flat_map(|y| (0..600u32).map(move |x| (x, y))).filter(|&(x, y)| {
            let i = ((y * w + x) * 3) as usize;
            px[i] < 80 && px[i + 1] < 80 && px[i + 2] < 80
        });
        assert!(dark_in_title.count() > 300, "{}: no title text drawn", c.name);
    }
    let c = &charts(&r)[0];
    let (w, h, _) = decode(&chart_png(&r, c, (640, 360)).unwrap());
    assert_eq!((w, h), (640, 360));
}

#[test]
fn series_are_bounded_for_huge_reports() {
    let r = huge_report();
    assert_eq!(r.devices[0].timeline.len(), 1_000_000);
    let t0 = std::time::Instant::now();
    for name in ["timeline-gpu0", "fragmentation-gpu0", "growth-gpu0"] {
        let c = charts(&r).into_iter().find(|c| c.name == name).unwrap();
        let svg = chart_svg(&r, &c, (DEFAULT_WIDTH, DEFAULT_HEIGHT)).unwrap();
        assert!(svg.len() < 600_000, "{name}: {} bytes", svg.len());
        parse_svg(&svg);
        // No polygon or path has more vertices than ~2 per pixel column (plus steps).
        let most = svg.split("points=\"").skip(1).chain(svg.split(" d=\"").skip(1)).map(|p| p.split('"').next().unwrap().matches(',').count()).max().unwrap_or(0);
        eprintln!("{name}: {} bytes, longest series {most} vertices", svg.len());
        assert!(most <= 4 * DEFAULT_WIDTH as usize + 8, "{name}: a series of {most} vertices");
    }
    // The rare spikes of the huge timeline survive min/max downsampling: the y axis reaches them.
    let s = svg_of(&r, "timeline-gpu0");
    assert!(s.has_text("12"), "{:?}", s.texts);
    assert!(t0.elapsed().as_secs() < 60, "{:?}", t0.elapsed());
}

#[test]
fn empty_and_minimal_reports_render() {
    let dir = TempDir::new("empty");
    let w = render_all(&Report::default(), dir.path(), &RenderOptions::default()).unwrap();
    assert!(w.charts.is_empty());
    let html = std::fs::read_to_string(&w.html).unwrap();
    assert!(html.contains("No allocation failed."));
    // A device without capacity, a single timeline point, no OOM: still one chart.
    let mut r = fixed_report();
    r.ooms.clear();
    r.growth.clear();
    r.markers.clear();
    r.log_lines.clear();
    r.devices[0].capacity_bytes = None;
    r.devices[0].timeline.truncate(1);
    r.devices[0].timeline[0].total_bytes = 5 * MIB;
    r.devices[0].timeline[0].by_category.weights = 5 * MIB;
    render_all(&r, dir.path(), &RenderOptions::default()).unwrap();
    let s = svg_of(&r, "timeline-gpu0");
    assert!(s.has_text("weights"));
}
