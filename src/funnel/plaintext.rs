//! The plain-text part of an email whose template has no `.txt` file: derived from the
//! rendered HTML by `html2text`, which parses HTML as a browser does and decodes every
//! character reference (`&eacute;`, `&#8217;`), not just the few templates usually
//! write.
//!
//! The layout is the one people expect in a text email: paragraphs apart, list items
//! bulleted with `- `, headings without markup, and each link written as
//! `text (url)` so the address stays visible and clickable where HTML is not shown.

use html2text::render::{TaggedLine, TextDecorator};

/// Lines wider than this are not wrapped: mail clients wrap text parts themselves,
/// and a wrapped URL stops being clickable.
const NO_WRAP: usize = 100_000;

/// A readable plain-text part from HTML.
pub fn html_to_text(html: &str) -> String {
    let rendered = html2text::config::with_decorator(Links::default())
        .link_footnotes(false)
        .no_link_wrapping()
        .string_from_read(html.as_bytes(), NO_WRAP)
        // Parsing HTML does not fail on any input (html5ever recovers like a browser);
        // the error is only a too-narrow width, which NO_WRAP rules out.
        .unwrap_or_else(|_| html.to_string());
    tidy(&rendered)
}

/// Starts each list item's line. html2text sets a list right under the line before
/// it; in a text email a list stands apart like a paragraph, and this mark is how
/// [`tidy`] tells an item from a line of text that happens to start with `- `.
const ITEM: char = '\u{1}';

/// Around a link's address, written after its text: [`show_links`] keeps it as
/// ` (url)`, or drops it when the text already is the address. Private-use
/// characters: html2text passes them through, unlike control characters.
const LINK_OPEN: char = '\u{E000}';
const LINK_CLOSE: char = '\u{E001}';

/// Spaces inside each line collapsed, links shown, a blank line before each list,
/// runs of blank lines cut to one, a single final newline.
fn tidy(text: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut in_list = false;
    for line in text.lines() {
        let line = show_links(&line.split_whitespace().collect::<Vec<_>>().join(" "));
        let item = line.starts_with(ITEM);
        if item && !in_list {
            lines.push(String::new());
        }
        in_list = item || (in_list && !line.is_empty());
        lines.push(line.replace(ITEM, ""));
    }
    lines.dedup_by(|a, b| a.is_empty() && b.is_empty());
    lines.join("\n").trim().to_string() + "\n"
}

/// Each marked address as ` (url)` after its link's text, unless that text is the
/// address itself.
fn show_links(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find(LINK_OPEN) {
        out.push_str(&rest[..open]);
        let after = &rest[open + LINK_OPEN.len_utf8()..];
        // Without its closing mark the character came from the HTML itself (an icon
        // font's private-use glyph): it stays.
        let Some((url, next)) = after.split_once(LINK_CLOSE) else {
            out.push(LINK_OPEN);
            rest = after;
            continue;
        };
        if !out.trim_end().ends_with(url) {
            out.push_str(&format!(" ({url})"));
        }
        rest = next;
    }
    out.push_str(rest);
    out
}

/// Writes links as `text (url)`; the other markup as its text alone.
#[derive(Clone, Debug, Default)]
struct Links {
    /// The targets of the links being written, innermost last.
    open: Vec<String>,
}

impl TextDecorator for Links {
    type Annotation = ();

    fn decorate_link_start(&mut self, url: &str) -> (String, ()) {
        self.open.push(url.to_string());
        (String::new(), ())
    }

    fn decorate_link_end(&mut self) -> String {
        match self.open.pop() {
            // An in-page anchor leads nowhere outside the HTML.
            Some(url) if !url.is_empty() && !url.starts_with('#') => {
                format!("{LINK_OPEN}{url}{LINK_CLOSE}")
            }
            _ => String::new(),
        }
    }

    fn decorate_em_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_em_end(&self) -> String {
        String::new()
    }
    fn decorate_strong_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_strong_end(&self) -> String {
        String::new()
    }
    fn decorate_strikeout_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_strikeout_end(&self) -> String {
        String::new()
    }
    fn decorate_code_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_code_end(&self) -> String {
        String::new()
    }
    fn decorate_preformat_first(&self) {}
    fn decorate_preformat_cont(&self) {}

    fn decorate_image(&mut self, _src: &str, title: &str) -> (String, ()) {
        (title.to_string(), ())
    }

    fn header_prefix(&self, _level: usize) -> String {
        String::new()
    }
    fn quote_prefix(&self) -> String {
        "> ".into()
    }
    fn unordered_item_prefix(&self) -> String {
        format!("{ITEM}- ")
    }
    fn ordered_item_prefix(&self, i: i64) -> String {
        format!("{ITEM}{i}. ")
    }

    fn make_subblock_decorator(&self) -> Self {
        Links::default()
    }

    fn finalise(&mut self, _urls: Vec<String>) -> Vec<TaggedLine<()>> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::html_to_text;

    #[test]
    fn named_and_numeric_entities_are_decoded() {
        assert_eq!(
            html_to_text("<p>caf&eacute; &amp; t&#233; &#8217;ok&#8217; 5&nbsp;&euro;</p>"),
            "café & té ’ok’ 5 €\n"
        );
    }

    #[test]
    fn a_link_keeps_its_address_beside_its_text() {
        assert_eq!(
            html_to_text("<p>Mira <a href=\"https://t.example/m?a=1&amp;b=2\">mochilas</a>.</p>"),
            "Mira mochilas (https://t.example/m?a=1&b=2).\n"
        );
        // A link whose text is its address shows it once.
        assert_eq!(
            html_to_text("<p>Ver <a href=\"https://x.example/a\">https://x.example/a</a></p>"),
            "Ver https://x.example/a\n"
        );
        // A private-use character of the HTML's own is kept.
        assert_eq!(html_to_text("<p>\u{E000} icono</p>"), "\u{E000} icono\n");
        // An in-page anchor has no address worth showing.
        assert_eq!(html_to_text("<a href=\"#top\">arriba</a>"), "arriba\n");
    }

    #[test]
    fn paragraphs_lists_and_headings_read_as_text() {
        assert_eq!(
            html_to_text(
                "<html><head><title>t</title><style>p{}</style></head><body><h1>Hola</h1><p>uno<br>dos</p><ul><li>a</li><li>b</li></ul></body></html>"
            ),
            "Hola\n\nuno\ndos\n\n- a\n- b\n"
        );
        // Only list items are set apart, not text that starts like one.
        assert_eq!(
            html_to_text("<p>uno<br>- dos</p><ol><li>a</li></ol>"),
            "uno\n- dos\n\n1. a\n"
        );
        assert_eq!(
            html_to_text("<ul><li>a<ul><li>b</li></ul></li><li>c</li></ul>"),
            "- a\n- b\n- c\n"
        );
    }
}
