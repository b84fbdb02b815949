//! The manual holds together: every relative link and anchor in README.md and docs/ resolves to a file
//! and a heading that exist, and no chapter is left out of the README's map.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The pages: README.md and every chapter under docs/.
fn pages() -> Vec<PathBuf> {
    let mut out = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    out.extend(docs);
    out
}

/// A page's text without its fenced code blocks (a link there is an example, not a link).
fn prose(text: &str) -> String {
    let mut fenced = false;
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// GitHub's anchor for a heading: lower case, punctuation dropped (but `-` and `_`), spaces as `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(path: &Path) -> BTreeSet<String> {
    prose(&std::fs::read_to_string(path).unwrap())
        .lines()
        .filter_map(|l| l.strip_prefix('#').map(|h| h.trim_start_matches('#')))
        .map(slug)
        .collect()
}

/// Every `[text](target)` of a page, with its line.
fn links(text: &str) -> Vec<(usize, String)> {
    let re = regex::Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    prose(text)
        .lines()
        .enumerate()
        .flat_map(|(i, l)| re.captures_iter(l).map(move |c| (i + 1, c[1].to_string())).collect::<Vec<_>>())
        .collect()
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let mut broken = vec![];
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for (line, target) in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = target.split_once('#').map_or((target.as_str(), None), |(f, a)| (f, Some(a)));
            let resolved = if file.is_empty() { page.clone() } else { page.parent().unwrap().join(file) };
            checked += 1;
            let shown = format!("{}:{line}: {target}", page.strip_prefix(root()).unwrap().display());
            if !resolved.exists() {
                broken.push(format!("{shown} (no such file)"));
                continue;
            }
            if let Some(anchor) = anchor
                && resolved.extension().is_some_and(|e| e == "md")
                && !anchors(&resolved).contains(anchor)
            {
                broken.push(format!("{shown} (no such heading)"));
            }
        }
    }
    assert!(checked > 20, "only {checked} links found: the scan is broken");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_maps_every_chapter_and_stays_an_overview() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for page in pages().into_iter().skip(1) {
        let name = page.file_name().unwrap().to_str().unwrap();
        assert!(readme.contains(&format!("(docs/{name})")), "README's map leaves out docs/{name}");
    }
    let lines = readme.lines().count();
    assert!(lines <= 350, "README.md has {lines} lines: the manual belongs in docs/");
    assert!(readme.contains("cargo test -- --include-ignored"), "README names the test command");
}

#[test]
fn slugs_follow_github() {
    assert_eq!(slug("The seam: a chat tool is one folder"), "the-seam-a-chat-tool-is-one-folder");
    assert_eq!(slug("Feishu, Lark and WeCom"), "feishu-lark-and-wecom");
    assert_eq!(
        slug("Sending only firing, or only resolved: `send_on`"),
        "sending-only-firing-or-only-resolved-send_on"
    );
}
