//! The HTML and Markdown building blocks every page shares (report and diff): escaping, the
//! stylesheet, inline charts, category swatches, badges, code spans. One definition each, so the
//! report and the diff look and escape alike.

use crate::colors::category_hex;
use std::fmt::Write;
use vramtrace_analyzer::{Category, Verdict};

// --- HTML ----------------------------------------------------------------------------------------

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 8);
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            // Control characters from a hostile command line would make the page invalid.
            c if c.is_control() && c != '\n' && c != '\t' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

use html_escape as esc;

/// The stylesheet of every page (inline: the pages fetch nothing).
pub(crate) const CSS: &str = r#"
:root{--fg:#1d1f23;--muted:#5f6368;--line:#dde1e6;--soft:#f6f8fa;--bad:#b00020;--ok:#1e7e34;--warn:#a15c00}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:#fff;color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 28px 64px}
h1{font-size:26px;margin:0 0 4px;line-height:1.25}
h2{font-size:21px;margin:40px 0 10px;padding-bottom:5px;border-bottom:2px solid var(--line)}
h3{font-size:17px;margin:24px 0 8px}
p{margin:6px 0 10px}
.muted{color:var(--muted)}
nav{margin:14px 0 6px;font-size:14px;line-height:1.9}
nav a{margin-right:14px;color:#1a5fb4;text-decoration:none;white-space:nowrap}
nav a:hover{text-decoration:underline}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:8px 0 16px;font-size:14px}
th,td{padding:5px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600}
tbody tr:nth-child(even){background:#fbfbfc}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
td.n,.nw{white-space:nowrap}
.loc{color:var(--muted);font-size:12px}
table.kv th{background:none;text-align:left;color:var(--muted);font-weight:500;width:1%}
code,.mono{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:13px;overflow-wrap:anywhere}
.sw{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-1px;margin-right:7px;border:1px solid rgba(0,0,0,.15)}
figure{margin:14px 0 26px}
figure svg{display:block;width:100%;height:auto;border:1px solid var(--line);border-radius:6px}
figcaption{color:var(--muted);font-size:13px;margin-top:5px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(210px,1fr));gap:12px;margin:16px 0}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 14px;background:#fff}
.card .k{color:var(--muted);font-size:13px}
.card .v{font-size:21px;font-weight:650;line-height:1.3}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:13px;font-weight:600;color:#fff;vertical-align:1px}
.b-bad{background:var(--bad)}.b-ok{background:var(--ok)}.b-warn{background:var(--warn)}.b-info{background:#55606e}
.oom{border:1px solid var(--line);border-left:5px solid var(--bad);border-radius:6px;padding:4px 16px 8px;margin:14px 0}
details{margin:4px 0}
summary{cursor:pointer;color:#1a5fb4}
ol.frames{margin:4px 0 4px 18px;padding:0}
ol.frames li{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12.5px;overflow-wrap:anywhere}
footer{margin-top:48px;color:var(--muted);font-size:13px;border-top:1px solid var(--line);padding-top:10px}
@media print{main{max-width:none}nav{display:none}}
"#;

/// The start of a self-contained page up to `<main>`: no script, and a policy that forbids
/// every fetch, so a stray reference cannot leak the page's existence.
pub(crate) fn page_head(o: &mut String, title: &str, extra_css: &str) {
    o.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    o.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    o.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n");
    let _ = writeln!(o, "<title>{}</title>", esc(title));
    let _ = writeln!(o, "<style>{CSS}{extra_css}</style>\n</head>\n<body>\n<main>");
}

/// The end of a page: its footer line and the closing tags.
pub(crate) fn page_end(o: &mut String, footer: &str) {
    let _ = writeln!(o, "<footer>{footer}</footer>");
    o.push_str("</main>\n</body>\n</html>\n");
}

/// Prepares a plotters SVG document for inlining: drops the XML prolog and the namespace
/// attribute (an inline `<svg>` in HTML needs neither, and the page then holds no URL at all)
/// and labels it for screen readers.
pub(crate) fn inline_svg(svg: &str, title: &str) -> String {
    let mut s = svg.trim_start();
    if s.starts_with("<?xml") {
        if let Some(i) = s.find("?>") {
            s = s[i + 2..].trim_start();
        }
    }
    let s = s.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1);
    s.replacen("<svg ", &format!("<svg role=\"img\" aria-label=\"{}\" ", esc(title)), 1) + "\n"
}

/// A chart as a `<figure>`: the SVG inline, the caption naming its SVG and PNG files.
pub(crate) fn figure(o: &mut String, name: &str, title: &str, svg: &str) {
    let _ = writeln!(o, "<figure id=\"chart-{}\">", esc(name));
    o.push_str(&inline_svg(svg, title));
    let _ = writeln!(o, "<figcaption>{} — also as {}.svg / {}.png</figcaption>\n</figure>", esc(title), esc(name), esc(name));
}

/// A summary card: a name, a big value, a line under it (all HTML).
pub(crate) fn card(o: &mut String, k: &str, v: &str, sub: &str) {
    let _ = writeln!(o, "<div class=\"card\"><div class=\"k\">{k}</div><div class=\"v\">{v}</div><div class=\"muted\">{sub}</div></div>");
}

pub(crate) fn swatch(c: Category) -> String {
    format!("<span class=\"sw\" style=\"background:{}\"></span>", category_hex(c))
}

/// A category name with its colour swatch, never broken.
pub(crate) fn cat_cell(c: Category) -> String {
    format!("<span class=\"nw\">{}{}</span>", swatch(c), c.name())
}

/// A rule name: never broken inside (`builtin:llama.kv_cache_ctor`).
pub(crate) fn rule_cell(rule: &str) -> String {
    format!("<code class=\"nw\">{}</code>", esc(rule))
}

pub(crate) fn badge(kind: &str, text: &str) -> String {
    format!("<span class=\"badge b-{kind}\">{}</span>", esc(text))
}

pub(crate) fn verdict_badge(v: Verdict) -> String {
    let kind = match v {
        Verdict::Exhausted => "bad",
        Verdict::PoolOrFragmentation => "warn",
        Verdict::NotOutOfMemory => "info",
    };
    badge(kind, v.label())
}

// --- Markdown ------------------------------------------------------------------------------------

/// A coloured square in the category's colour (GitHub renders `$…$` math; `\color` takes the
/// same hex as the charts).
pub(crate) fn md_swatch(c: Category) -> String {
    format!("$\\color{{{}}}\\blacksquare$", category_hex(c))
}

/// An inline code span holding `s` verbatim (fence longer than any backtick run inside).
pub(crate) fn code(s: &str) -> String {
    let s: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let mut run = 0;
    let mut longest = 0;
    for ch in s.chars() {
        if ch == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let fence = "`".repeat(longest + 1);
    if s.starts_with('`') || s.ends_with('`') || longest > 0 {
        format!("{fence} {s} {fence}")
    } else {
        format!("{fence}{s}{fence}")
    }
}

/// A fenced `sh` block holding one line verbatim (fence longer than any backtick run in it).
pub(crate) fn code_block(s: &str) -> String {
    let s: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}sh\n{s}\n{fence}")
}

/// A code span inside a table cell: GFM splits cells on `|` even inside code, so it is escaped.
pub(crate) fn cell_code(s: &str) -> String {
    code(s).replace('|', "\\|")
}

pub(crate) fn cell_text(s: &str) -> String {
    text(s).replace('|', "\\|")
}

/// Plain text with Markdown and HTML metacharacters escaped.
pub(crate) fn text(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|' | '$' | '~' => {
                o.push('\\');
                o.push(ch);
            }
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_spans_hold_backticks_and_pipes() {
        assert_eq!(code("ls -l"), "`ls -l`");
        assert_eq!(code("a`b"), "`` a`b ``");
        assert_eq!(cell_code("a|b"), "`a\\|b`");
        assert_eq!(text("a*b_<x>"), "a\\*b\\_\\<x\\>");
        assert_eq!(code_block("run -- a"), "```sh\nrun -- a\n```");
        assert_eq!(code_block("x ```` y"), "`````sh\nx ```` y\n`````");
    }
}
