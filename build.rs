//! Embeds the root demo funnel (embudo.yaml, rules/, templates/, the demo CSVs) so
//! `embudo init` writes exactly what the repository root holds.

use std::path::{Path, PathBuf};

fn collect(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    let dir = root.join(rel);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            collect(root, &rel.join(&name), out);
        } else {
            out.push(rel.join(name));
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let mut files = Vec::new();
    for f in ["embudo.yaml", "leads.csv", "events.csv"] {
        if root.join(f).is_file() {
            files.push(PathBuf::from(f));
        }
    }
    collect(&root, Path::new("rules"), &mut files);
    collect(&root, Path::new("templates"), &mut files);
    let mut code = String::from(
        "/// (path in the folder, contents) of the demo funnel.\npub const FILES: &[(&str, &str)] = &[\n",
    );
    for f in &files {
        code.push_str(&format!(
            "    ({:?}, include_str!({:?})),\n",
            f.to_string_lossy(),
            root.join(f).to_string_lossy()
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("scaffold_files.rs");
    std::fs::write(out, code).unwrap();
    for d in [
        "embudo.yaml",
        "leads.csv",
        "events.csv",
        "rules",
        "templates",
        "rules/tests",
    ] {
        println!("cargo:rerun-if-changed={d}");
    }
}
