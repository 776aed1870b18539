//! The layers of docs/architecture.md, enforced: every `crate::` path in a source file (its
//! tests aside) names a module of a lower layer, or its own module.

use std::path::{Path, PathBuf};

/// Each layer, lowest first, as path prefixes under `src/`. A file belongs to the layer of
/// its longest matching prefix.
const LAYERS: &[&[&str]] = &[
    &["ledger/"],
    &["verify_cli.rs"],
    &["domain/"],
    &["clock.rs", "config.rs"],
    &["telemetry.rs"],
    &["store/"],
    &["access/"],
    &["error.rs"],
    &["audit/"],
    &["auth/"],
    &["projects.rs"],
    &["events/"],
    &["privacy/"],
    &["admin/"],
    &["state.rs"],
    // Request authentication and sign-in read the shared state the routes hand them.
    &["signin/"],
    &["routes/"],
    &["startup.rs"],
    &["cli/"],
];

fn rank(file: &str) -> Option<(usize, &'static str)> {
    let mut best: Option<(usize, &'static str)> = None;
    for (rank, prefixes) in LAYERS.iter().enumerate() {
        for p in prefixes.iter() {
            if file.starts_with(p) && best.is_none_or(|(_, b)| p.len() > b.len()) {
                best = Some((rank, p));
            }
        }
    }
    best
}

/// The module a `crate::` path names, as the file or folder it lives in.
fn target(path: &str) -> String {
    let mut parts = path.split("::");
    let top = parts.next().unwrap_or_default();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(top);
    if dir.is_dir() {
        let sub = parts.next().unwrap_or_default();
        let file = format!("{top}/{sub}.rs");
        if Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src")
            .join(&file)
            .is_file()
        {
            return file;
        }
        format!("{top}/")
    } else {
        format!("{top}.rs")
    }
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every upward import in the tree, as "file -> module".
fn upward_imports() -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    sources(&src, &mut files);
    let mut found = vec![];
    for f in files {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        let Some((own, _)) = rank(&rel) else {
            continue; // lib.rs, main.rs, bin/: the roots.
        };
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        // `super::x` in a file of a module folder (not its mod.rs) is that folder's x.
        let folder = rel
            .split_once('/')
            .filter(|(_, file)| *file != "mod.rs" && !file.contains('/'))
            .map(|(top, _)| top);
        let paths = code
            .match_indices("crate::")
            .map(|(i, m)| (String::new(), i + m.len()))
            .chain(folder.into_iter().flat_map(|top| {
                code.match_indices("super::")
                    .map(move |(i, m)| (format!("{top}::"), i + m.len()))
            }));
        let mut modules = vec![];
        for (prefix, at) in paths {
            let rest = &code[at..];
            // `crate::{a, b::c}` names several modules.
            let named: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group[..group.find('}').unwrap_or(group.len())]
                    .split(',')
                    .map(str::trim)
                    .collect(),
                None => vec![rest],
            };
            for n in named {
                let end = n
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(n.len());
                modules.push(target(&format!("{prefix}{}", &n[..end])));
            }
        }
        for module in modules {
            let Some((theirs, _)) = rank(&module) else {
                found.push(format!("{rel} -> {module} (not in any layer)"));
                continue;
            };
            let same_module = rel.split('/').next() == module.split('/').next();
            if theirs > own || (theirs == own && !same_module) {
                found.push(format!("{rel} -> {module}"));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn no_module_imports_from_a_layer_above_its_own() {
    let up = upward_imports();
    assert!(
        up.is_empty(),
        "imports from a higher layer (docs/architecture.md):\n{}",
        up.join("\n")
    );
}

#[test]
fn every_source_file_is_in_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    sources(&src, &mut files);
    let roots = ["lib.rs", "main.rs", "build.rs", "bin/"];
    for f in files {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        assert!(
            rank(&rel).is_some() || roots.iter().any(|r| rel.starts_with(r)),
            "{rel} is in no layer: add it to LAYERS and docs/architecture.md"
        );
    }
}

#[test]
fn the_check_sees_an_upward_import() {
    // The store may not name the routes; the check must say so.
    assert_eq!(
        rank("store/sql.rs").map(|r| r.0),
        Some(5),
        "layers were renumbered"
    );
    let routes = rank(&target("routes::query")).unwrap().0;
    let store = rank("store/sql.rs").unwrap().0;
    assert!(routes > store);
    assert_eq!(target("signin::caller::session_of"), "signin/caller.rs");
    assert_eq!(target("auth::tokens"), "auth/tokens.rs");
    assert_eq!(target("domain::ProjectId"), "domain/");
    assert_eq!(target("error::AppError"), "error.rs");
}
