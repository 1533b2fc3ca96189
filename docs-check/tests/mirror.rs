//! README.zh-CN.md mirrors README.md: the same headings (level by level, in order) and the
//! same code blocks (byte for byte, in order), so a translation cannot silently fall
//! behind. It also keeps Chinese paragraphs on one line each: a line break between two
//! CJK characters renders as a stray space.

use std::path::Path;

/// What a Markdown file is made of, for this comparison.
#[derive(Debug, Default)]
struct Outline {
    /// Heading levels in order (`## x` is 2), with their text for the failure message.
    headings: Vec<(usize, String)>,
    /// Fenced code blocks in order: the info string and the text.
    blocks: Vec<String>,
    /// Lines (1-based) that end with a CJK character when the next line of the same
    /// paragraph starts with one.
    broken_cjk_lines: Vec<usize>,
}

fn is_cjk(c: char) -> bool {
    matches!(c, '\u{3000}'..='\u{303f}' | '\u{4e00}'..='\u{9fff}' | '\u{ff00}'..='\u{ffef}')
}

fn outline(text: &str) -> Outline {
    let mut out = Outline::default();
    let mut fence: Option<String> = None;
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if let Some(block) = fence.as_mut() {
            if line.trim_start().starts_with("```") {
                out.blocks.push(fence.take().unwrap_or_default());
            } else {
                block.push_str(line);
                block.push('\n');
            }
            continue;
        }
        if let Some(info) = line.trim_start().strip_prefix("```") {
            fence = Some(format!("```{info}\n"));
            continue;
        }
        let level = line.chars().take_while(|c| *c == '#').count();
        if level > 0 && line[level..].starts_with(' ') {
            out.headings.push((level, (*line).to_owned()));
            continue;
        }
        let next = lines.get(i + 1).copied().unwrap_or("");
        let ends_cjk = line.trim_end().chars().last().is_some_and(is_cjk);
        let next_starts_cjk = next.trim_start().chars().next().is_some_and(is_cjk);
        let next_is_text = !next.trim().is_empty()
            && !next.starts_with('#')
            && !next.starts_with('|')
            && !next.trim_start().starts_with("- ")
            && !next.trim_start().starts_with("```");
        if ends_cjk && next_starts_cjk && next_is_text {
            out.broken_cjk_lines.push(i + 1);
        }
    }
    assert!(fence.is_none(), "an unclosed code block");
    out
}

fn read(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_translation_has_the_same_headings_and_code_blocks() {
    let english = outline(&read("README.md"));
    let chinese = outline(&read("README.zh-CN.md"));
    let levels = |o: &Outline| o.headings.iter().map(|(l, _)| *l).collect::<Vec<_>>();
    assert_eq!(
        levels(&english),
        levels(&chinese),
        "heading levels differ:\n{:#?}\n{:#?}",
        english.headings,
        chinese.headings
    );
    assert_eq!(
        english.blocks.len(),
        chinese.blocks.len(),
        "a different number of code blocks"
    );
    for (i, (en, zh)) in english.blocks.iter().zip(&chinese.blocks).enumerate() {
        assert_eq!(en, zh, "code block {} differs", i + 1);
    }
    assert!(
        english.blocks.len() >= 3,
        "the READMEs lost their code blocks"
    );
}

#[test]
fn chinese_paragraphs_have_no_line_breaks_between_cjk_characters() {
    let chinese = outline(&read("README.zh-CN.md"));
    assert!(
        chinese.broken_cjk_lines.is_empty(),
        "README.zh-CN.md breaks a Chinese paragraph after line(s) {:?}",
        chinese.broken_cjk_lines
    );
}

#[test]
fn the_checker_sees_a_difference() {
    let a = outline("# t\n\n## a\n\n```rust\nfn f() {}\n```\n");
    let b = outline("# t\n\n### a\n\n```rust\nfn g() {}\n```\n");
    assert_ne!(a.headings[1].0, b.headings[1].0);
    assert_ne!(a.blocks, b.blocks);
    assert_eq!(outline("中文\n段落\n").broken_cjk_lines, [1]);
    assert!(outline("中文\n\n段落\n").broken_cjk_lines.is_empty());
}
