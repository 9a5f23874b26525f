//! `embudo init DIR`: writes the demo funnel embedded in the binary.

use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/scaffold_files.rs"));

const GITIGNORE: &str = "# embudo's local state\n*.db\n*.db-shm\n*.db-wal\noutbox-mail/\n";

/// Writes the starter folder into `dir`; refuses to overwrite a file unless `force`.
/// Returns the files written.
pub fn init(dir: &Path, force: bool) -> Result<Vec<PathBuf>, String> {
    let mut all: Vec<(&str, &str)> = FILES.to_vec();
    all.push((".gitignore", GITIGNORE));
    if !force {
        let existing: Vec<String> = all
            .iter()
            .filter(|(p, _)| dir.join(p).exists())
            .map(|(p, _)| p.to_string())
            .collect();
        if !existing.is_empty() {
            return Err(format!(
                "{} already holds {}; choose an empty folder or pass --force to overwrite",
                dir.display(),
                existing.join(", ")
            ));
        }
    }
    let mut written = Vec::new();
    for (rel, contents) in all {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, contents)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
