//! How DingTalk draws a message on a phone, closely enough to judge a layout: the markdown subset it
//! renders (headings, quotes, bold, italic, links, lists; a single newline joins lines, two trailing spaces
//! or a blank line break them), as HTML for `preview`, and as a count of the lines it takes on a screen
//! 375 px wide, for the layout budgets the tests check.
//!
//! The count is a model, not a measurement: the message's text column holds 36 narrow characters (a Latin
//! letter, a digit) or 18 wide ones (Chinese, emoji) per line at body size, fewer in quotes, list items and
//! headings; words wrap whole unless longer than a line. `preview` draws the same markdown in a browser at
//! that width, which is how the model was checked by eye.

use std::fmt::Write;

/// Narrow characters per line at body size on a 375 px screen.
pub const BODY_COLUMNS: usize = 36;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// Level 1 to 6, and its text.
    Heading(u8, String),
    /// Lines (hard breaks between them), each as written (inline markdown kept).
    Paragraph(Vec<String>),
    Quote(Vec<String>),
    /// A list item: its marker (`-` or `1.`) and its lines.
    Item(String, Vec<String>),
}

impl Block {
    fn lines_mut(&mut self) -> Option<&mut Vec<String>> {
        match self {
            Block::Paragraph(l) | Block::Quote(l) | Block::Item(_, l) => Some(l),
            Block::Heading(..) => None,
        }
    }

    /// Narrow characters per line in this block.
    fn columns(&self) -> usize {
        match self {
            Block::Heading(1, _) => 18,
            Block::Heading(2, _) => 22,
            Block::Heading(3, _) => 26,
            Block::Heading(..) => 32,
            Block::Paragraph(_) => BODY_COLUMNS,
            Block::Quote(_) | Block::Item(..) => BODY_COLUMNS - 3,
        }
    }
}

fn heading(line: &str) -> Option<(u8, &str)> {
    let hashes = line.bytes().take_while(|&b| b == b'#').count();
    let rest = &line[hashes..];
    ((1..=6).contains(&hashes) && (rest.is_empty() || rest.starts_with(' '))).then(|| (hashes as u8, rest.trim()))
}

fn list_marker(line: &str) -> Option<(&str, &str)> {
    for bullet in ["- ", "* ", "+ "] {
        if let Some(rest) = line.strip_prefix(bullet) {
            return Some((&line[..1], rest));
        }
    }
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    let rest = &line[digits..];
    if digits > 0 && (rest.starts_with(". ") || rest.starts_with(") ")) {
        return Some((&line[..digits + 1], &rest[2..]));
    }
    None
}

/// The blocks DingTalk makes of `text`.
pub fn parse(text: &str) -> Vec<Block> {
    let mut blocks: Vec<Block> = vec![];
    // Whether the next line continues the current block (false after a blank line or a heading), and
    // whether it starts a new line in it (the previous ended with two spaces).
    let (mut open, mut hard_break) = (false, false);
    for raw in text.split('\n') {
        let line = raw.trim_end_matches('\r');
        let breaks = line.ends_with("  ");
        let line_trimmed = line.trim();
        if line_trimmed.is_empty() {
            open = false;
            continue;
        }
        if let Some((level, rest)) = heading(line_trimmed) {
            blocks.push(Block::Heading(level, rest.to_string()));
            open = false;
            continue;
        }
        let quoted = line_trimmed.strip_prefix('>').map(str::trim_start);
        let (block, content) = match (quoted, list_marker(line_trimmed)) {
            (Some(rest), _) => (Block::Quote(vec![]), rest),
            (None, Some((marker, rest))) => (Block::Item(marker.to_string(), vec![]), rest),
            (None, None) => (Block::Paragraph(vec![]), line_trimmed),
        };
        let continues = open
            && match (blocks.last(), &block) {
                (Some(Block::Quote(_)), Block::Quote(_)) => true,
                // Lazy continuation: a plain line joins the paragraph, quote or item above it.
                (Some(_), Block::Paragraph(_)) => true,
                _ => false,
            };
        if !continues {
            blocks.push(block);
            hard_break = true;
        }
        let lines = blocks.last_mut().and_then(Block::lines_mut).expect("a block with lines was pushed");
        match lines.last_mut() {
            Some(last) if !hard_break => {
                last.push(' ');
                last.push_str(content.trim());
            }
            _ => lines.push(content.trim().to_string()),
        }
        open = true;
        hard_break = breaks;
    }
    blocks
}

/// A piece of a line: text, shown bold or not, or a link showing its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inline {
    Text { text: String, bold: bool, italic: bool },
    Link { text: String, url: String },
}

/// The inline markdown of one line: `\x` escapes, `**bold**`, `*italic*`, `[text](url)`.
pub fn inline(line: &str) -> Vec<Inline> {
    let chars: Vec<char> = line.chars().collect();
    let mut out = vec![];
    let (mut text, mut bold, mut italic) = (String::new(), false, false);
    let flush = |out: &mut Vec<Inline>, text: &mut String, bold: bool, italic: bool| {
        if !text.is_empty() {
            out.push(Inline::Text { text: std::mem::take(text), bold, italic });
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if chars.get(i + 1).is_some_and(|n| n.is_ascii_punctuation()) => {
                text.push(chars[i + 1]);
                i += 2;
                continue;
            }
            '*' if chars.get(i + 1) == Some(&'*') => {
                flush(&mut out, &mut text, bold, italic);
                bold = !bold;
                i += 2;
                continue;
            }
            '*' => {
                flush(&mut out, &mut text, bold, italic);
                italic = !italic;
            }
            '[' => {
                if let Some((label, url, next)) = link_at(&chars, i) {
                    flush(&mut out, &mut text, bold, italic);
                    out.push(Inline::Link { text: label, url });
                    i = next;
                    continue;
                }
                text.push(c);
            }
            _ => text.push(c),
        }
        i += 1;
    }
    flush(&mut out, &mut text, bold, italic);
    out
}

/// `[label](url)` starting at `i`: the label, the URL and where the link ends.
fn link_at(chars: &[char], i: usize) -> Option<(String, String, usize)> {
    let close = (i + 1..chars.len()).find(|&j| chars[j] == ']' && chars[j - 1] != '\\')?;
    if chars.get(close + 1) != Some(&'(') {
        return None;
    }
    let end = (close + 2..chars.len()).find(|&j| chars[j] == ')')?;
    let label: String = inline(&chars[i + 1..close].iter().collect::<String>())
        .into_iter()
        .map(|p| match p {
            Inline::Text { text, .. } | Inline::Link { text, .. } => text,
        })
        .collect();
    Some((label, chars[close + 2..end].iter().collect(), end + 1))
}

/// The text a reader sees of one line.
pub fn visible(line: &str) -> String {
    inline(line)
        .into_iter()
        .map(|p| match p {
            Inline::Text { text, .. } | Inline::Link { text, .. } => text,
        })
        .collect()
}

/// How many narrow characters `c` takes: 2 for Chinese, Japanese, Korean, full-width forms and emoji.
pub fn width(c: char) -> usize {
    let u = c as u32;
    let wide = matches!(u,
        0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2B00..=0x2BFF | 0x20000..=0x3FFFD);
    if wide {
        2
    } else if c.is_control() || matches!(u, 0xFE00..=0xFE0F | 0x200B..=0x200D | 0xE000..=0xF8FF) {
        0
    } else {
        1
    }
}

/// Lines `text` takes in a column `columns` narrow characters wide: words wrap whole, a word longer than a
/// line breaks anywhere, wide characters may break anywhere.
pub fn wrapped_lines(text: &str, columns: usize) -> usize {
    let mut lines = 1;
    let mut used = 0;
    let mut word = 0;
    let place = |w: usize, lines: &mut usize, used: &mut usize| {
        if *used > 0 && *used + w > columns {
            *lines += 1;
            *used = 0;
        }
        // A word longer than a line fills lines of its own.
        let mut w = w;
        while w > columns {
            *lines += 1;
            w -= columns;
        }
        *used += w;
    };
    for c in text.chars() {
        if c == ' ' {
            place(word, &mut lines, &mut used);
            word = 0;
            if used > 0 && used < columns {
                used += 1;
            }
        } else if width(c) == 2 {
            place(word, &mut lines, &mut used);
            word = 0;
            place(2, &mut lines, &mut used);
        } else {
            word += width(c);
        }
    }
    place(word, &mut lines, &mut used);
    lines
}

/// `text` cut to at most `max` lines of `columns` (its own line breaks kept), with `…` if anything was cut.
pub fn clip(text: &str, max: usize, columns: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    for line in text.split('\n').map(str::trim).filter(|l| !l.is_empty()) {
        let needs = wrapped_lines(line, columns);
        if used + needs <= max {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(line);
            used += needs;
            continue;
        }
        // What fits of this line, word by word, then the mark.
        let room = max - used;
        let mut kept = String::new();
        for word in line.split(' ') {
            let candidate = if kept.is_empty() { word.to_string() } else { format!("{kept} {word}") };
            if room == 0 || wrapped_lines(&format!("{candidate} …"), columns) > room {
                break;
            }
            kept = candidate;
        }
        if !kept.is_empty() {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&kept);
        }
        out.push_str(" …");
        return out;
    }
    out
}

/// Lines a markdown message takes on a 375 px screen.
pub fn markdown_lines(text: &str) -> usize {
    parse(text)
        .iter()
        .map(|b| match b {
            Block::Heading(_, t) => wrapped_lines(&visible(t), b.columns()),
            Block::Paragraph(ls) | Block::Quote(ls) | Block::Item(_, ls) => {
                ls.iter().map(|l| wrapped_lines(&visible(l), b.columns())).sum()
            }
        })
        .sum()
}

/// Lines a text with line breaks takes in a column `columns` wide (empty lines left out).
pub fn text_lines_in(text: &str, columns: usize) -> usize {
    text.split('\n').filter(|l| !l.trim().is_empty()).map(|l| wrapped_lines(l.trim(), columns)).sum()
}

/// Lines markdown takes in a tool that keeps every line break (Feishu's cards and posts, WeCom): each
/// line as its block would wrap it, links shown by their text. An empty line separates paragraphs, which
/// [`markdown_lines`] does not count either.
pub fn kept_markdown_lines(text: &str) -> usize {
    text.trim()
        .split('\n')
        .map(|line| match parse(line).first() {
            None => 0,
            Some(b @ Block::Heading(_, t)) => wrapped_lines(&visible(t), b.columns()),
            Some(b @ (Block::Paragraph(ls) | Block::Quote(ls) | Block::Item(_, ls))) => {
                ls.iter().map(|l| wrapped_lines(&visible(l), b.columns())).sum::<usize>().max(1)
            }
        })
        .sum()
}

/// Lines a plain-text message takes (its newlines are kept, so an empty line is a line too).
pub fn text_lines(text: &str) -> usize {
    text.trim().split('\n').map(|l| wrapped_lines(l.trim(), BODY_COLUMNS)).sum()
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One line's inline markdown as HTML; `mentions` (`@138...`) are highlighted as DingTalk does.
fn line_html(line: &str, mentions: &[String]) -> String {
    let mut out = String::new();
    for part in inline(line) {
        match part {
            Inline::Text { text, bold, italic } => {
                let mut html = escape_html(&text);
                for m in mentions {
                    let m = escape_html(m);
                    html = html.replace(&m, &format!("<span class=\"at\">{m}</span>"));
                }
                let (open, close) = match (bold, italic) {
                    (true, true) => ("<strong><em>", "</em></strong>"),
                    (true, false) => ("<strong>", "</strong>"),
                    (false, true) => ("<em>", "</em>"),
                    (false, false) => ("", ""),
                };
                let _ = write!(out, "{open}{html}{close}");
            }
            // Only http(s) links are drawn as links; anything else would not open on a phone.
            Inline::Link { text, url } if url.starts_with("http://") || url.starts_with("https://") => {
                let _ = write!(out, "<a href=\"{}\">{}</a>", escape_html(&url), escape_html(&text));
            }
            Inline::Link { text, url } => {
                let _ = write!(out, "[{}]({})", escape_html(&text), escape_html(&url));
            }
        }
    }
    out
}

/// A markdown message as DingTalk draws it, as HTML.
pub fn markdown_html(text: &str, mentions: &[String]) -> String {
    let mut out = String::new();
    let lines = |ls: &[String]| ls.iter().map(|l| line_html(l, mentions)).collect::<Vec<_>>().join("<br>");
    for block in parse(text) {
        let _ = match &block {
            Block::Heading(level, t) => writeln!(out, "<h{level}>{}</h{level}>", line_html(t, mentions)),
            Block::Paragraph(ls) => writeln!(out, "<p>{}</p>", lines(ls)),
            Block::Quote(ls) => writeln!(out, "<blockquote>{}</blockquote>", lines(ls)),
            Block::Item(marker, ls) => {
                let marker = if marker.len() == 1 { "•".to_string() } else { escape_html(marker) };
                writeln!(out, "<div class=\"li\"><span class=\"mark\">{marker}</span><span>{}</span></div>", lines(ls))
            }
        };
    }
    out
}

/// Markdown whose line breaks are all kept (Feishu's and WeCom's), as HTML: each line its own block (a
/// heading, a quote, an item or a paragraph), as [`kept_markdown_lines`] counts them; an empty line the
/// space between paragraphs.
pub fn lines_html(text: &str, mentions: &[String]) -> String {
    let lines: String =
        text.trim()
            .split('\n')
            .map(|line| {
                if line.trim().is_empty() {
                    "<div class=\"gap\"></div>\n".into()
                } else {
                    markdown_html(line, mentions)
                }
            })
            .collect();
    format!("<div class=\"kept\">\n{lines}</div>")
}

/// A plain-text message as HTML (its newlines kept).
pub fn text_html(text: &str, mentions: &[String]) -> String {
    let mut html = escape_html(text).replace('\n', "<br>");
    for m in mentions {
        let m = escape_html(m);
        html = html.replace(&m, &format!("<span class=\"at\">{m}</span>"));
    }
    format!("<p class=\"plain\">{html}</p>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_newlines_join_and_two_spaces_break() {
        let blocks =
            parse("#### 🔴 Title\nfirst\nsame line  \nnext line\n\n> **a**  \n> b\n> c\n- one\n- two\ncontinued");
        assert_eq!(
            blocks,
            vec![
                Block::Heading(4, "🔴 Title".into()),
                Block::Paragraph(vec!["first same line".into(), "next line".into()]),
                Block::Quote(vec!["**a**".into(), "b c".into()]),
                Block::Item("-".into(), vec!["one".into()]),
                Block::Item("-".into(), vec!["two continued".into()]),
            ]
        );
    }

    #[test]
    fn links_show_their_text_and_escapes_their_character() {
        assert_eq!(visible("[Runbook](https://x.example/a) · node\\_exporter \\*"), "Runbook · node_exporter *");
        assert_eq!(
            inline("**bold** [l](http://a)"),
            vec![
                Inline::Text { text: "bold".into(), bold: true, italic: false },
                Inline::Text { text: " ".into(), bold: false, italic: false },
                Inline::Link { text: "l".into(), url: "http://a".into() },
            ]
        );
    }

    #[test]
    fn lines_wrap_by_width() {
        assert_eq!(wrapped_lines("short", 36), 1);
        assert_eq!(wrapped_lines(&"word ".repeat(20), 36), 3);
        assert_eq!(wrapped_lines(&"磁".repeat(20), 36), 2, "18 wide characters a line");
        assert_eq!(wrapped_lines(&"x".repeat(80), 36), 3, "a long word breaks anywhere");
        assert_eq!(markdown_lines("#### Title\n\n> a  \n> b\n\n- c\n- d"), 5);
    }

    #[test]
    fn clipping_keeps_whole_words_and_says_so() {
        assert_eq!(clip("a b\nc", 3, 36), "a b\nc");
        let long = "word ".repeat(30);
        let cut = clip(&format!("first\n{long}"), 2, 36);
        assert!(cut.starts_with("first\nword") && cut.ends_with(" …"), "{cut}");
        assert_eq!(wrapped_lines(cut.lines().nth(1).unwrap(), 36), 1);
    }

    #[test]
    fn html_draws_the_subset_and_escapes_the_rest() {
        let html = markdown_html(
            "#### T\n> **s**  \n> <b>x</b>\n\n[ok](https://a.example) [no](javascript:x) @138",
            &["@138".into()],
        );
        assert!(html.contains("<h4>T</h4>"), "{html}");
        assert!(html.contains("<blockquote><strong>s</strong><br>&lt;b&gt;x&lt;/b&gt;</blockquote>"), "{html}");
        assert!(html.contains("<a href=\"https://a.example\">ok</a>"), "{html}");
        assert!(!html.contains("href=\"javascript"), "{html}");
        assert!(html.contains("<span class=\"at\">@138</span>"), "{html}");
    }
}
