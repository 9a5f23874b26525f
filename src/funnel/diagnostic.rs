//! A problem at a place in a file, shown the way rustc shows one: the message, the
//! position, the line of source with a caret under the spot, and a hint.
//!
//! Logs keep the one-line `file:line:col: message` form (`Display`); `embudo check`
//! prints `render()`, which a person reads without opening the file.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the user would type it (relative to the working folder).
    pub file: String,
    /// 1-based; 0 when the problem is the whole file.
    pub line: usize,
    /// 1-based; 0 when only the line is known.
    pub col: usize,
    /// How many characters the caret underlines (at least 1).
    pub len: usize,
    pub message: String,
    pub hint: Option<String>,
    /// The text the line and column point into (the file's, or a campaign audience
    /// written inline in embudo.yaml); without it no snippet is shown.
    pub source: Option<String>,
}

impl Diagnostic {
    pub fn new(
        file: impl Into<String>,
        line: usize,
        col: usize,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            file: file.into(),
            line,
            col,
            len: 1,
            message: message.into(),
            hint: None,
            source: None,
        }
    }

    /// A problem with a whole file or with no position at all.
    pub fn whole(file: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic::new(file, 0, 0, message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_len(mut self, len: usize) -> Self {
        self.len = len.max(1);
        self
    }

    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    fn position(&self) -> String {
        match (self.line, self.col) {
            (0, _) => self.file.clone(),
            (l, 0) => format!("{}:{l}", self.file),
            (l, c) => format!("{}:{l}:{c}", self.file),
        }
    }

    /// The rustc-style block: `error: …`, ` --> file:line:col`, the source line and a
    /// caret, then `= help: …`.
    pub fn render(&self) -> String {
        self.render_as("error")
    }

    /// The same block under another label (`warning`).
    pub fn render_as(&self, label: &str) -> String {
        let mut out = format!("{label}: {}\n", self.message);
        let line_text = self
            .source
            .as_deref()
            .filter(|_| self.line > 0)
            .and_then(|s| s.lines().nth(self.line - 1));
        let gutter = " ".repeat(self.line.to_string().len());
        out.push_str(&format!("{gutter}--> {}\n", self.position()));
        if let Some(text) = line_text {
            let text = text.replace('\t', "    ");
            out.push_str(&format!("{gutter} |\n{} | {}\n", self.line, text));
            let col = if self.col > 0 {
                self.col
            } else {
                // Only the line is known: point at its first non-blank character.
                text.chars().take_while(|c| c.is_whitespace()).count() + 1
            };
            let pad = " ".repeat(col.saturating_sub(1));
            out.push_str(&format!("{gutter} | {pad}{}\n", "^".repeat(self.len)));
        }
        if let Some(h) = &self.hint {
            out.push_str(&format!("{gutter} = help: {h}\n"));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.position(), self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "; {h}")?;
        }
        Ok(())
    }
}

impl From<&crate::rules::RuleError> for Diagnostic {
    fn from(e: &crate::rules::RuleError) -> Self {
        Diagnostic::new(&e.file, e.line, e.col, &e.message)
    }
}

/// "did you mean `x`?" for the candidate nearest to `name`, when it is close (a typo,
/// not another word): edit distance at most a third of the name's length, and at
/// least one.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let lower = name.to_lowercase();
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

/// Edit distance by characters (Levenshtein, with a swap of two neighbours counting
/// as one edit: `smpt` is one edit from `smtp`).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_line_and_a_caret_under_the_column() {
        let d = Diagnostic::new("rules/x.rhai", 2, 9, "unknown stage `limbo`")
            .with_len(7)
            .with_hint("the funnel's stages are: a, b")
            .with_source("// x\nmove_to(\"limbo\");\n");
        assert_eq!(
            d.render(),
            "error: unknown stage `limbo`\n --> rules/x.rhai:2:9\n  |\n2 | move_to(\"limbo\");\n  |         ^^^^^^^\n  = help: the funnel's stages are: a, b\n"
        );
        assert_eq!(
            d.to_string(),
            "rules/x.rhai:2:9: unknown stage `limbo`; the funnel's stages are: a, b"
        );
    }

    #[test]
    fn a_close_name_is_suggested_and_a_far_one_is_not() {
        let names = ["edu-welcome", "edu-benefits", "interest", "evaluation"];
        assert_eq!(
            did_you_mean("edu-welcom", names).as_deref(),
            Some("did you mean `edu-welcome`?")
        );
        assert_eq!(
            did_you_mean("evalution", names).as_deref(),
            Some("did you mean `evaluation`?")
        );
        assert_eq!(did_you_mean("limbo", names), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("smpt", "smtp"), 1);
    }

    #[test]
    fn without_a_column_the_caret_points_at_the_first_word() {
        let d = Diagnostic::new("t.html", 1, 0, "undefined value").with_source("   <p>{{ x }}</p>");
        assert!(
            d.render().contains("1 |    <p>{{ x }}</p>\n  |    ^\n"),
            "{}",
            d.render()
        );
        let whole = Diagnostic::whole("templates", "cannot read");
        assert_eq!(whole.render(), "error: cannot read\n --> templates\n");
    }
}
