//! The module graph of the component (`src/`) and of the host (`host/src/`):
//! no two files import each other, directly or through others, and every
//! import runs down the layers listed below (docs/design.md draws them).
//!
//! An import is any `use` path or inline path that starts at `crate::`,
//! `super::` or `self::`, and in a `mod.rs` or crate root any path that starts
//! with one of its own child modules. A path is charged to the file of the
//! longest module it names (`crate::mapping::plan::Plan` → `mapping/plan.rs`,
//! `crate::mapping::Table` → `mapping/mod.rs`), so a re-export counts as the
//! import it is. `mod x;` declarations are not imports, and neither is a
//! file's own `#[cfg(test)] mod tests`, which sees its parent by design.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path: `["mapping", "plan"]`; the crate root is `[]`.
type ModPath = Vec<String>;

struct Crate {
    /// Module path → file, relative to the crate's source directory.
    files: BTreeMap<ModPath, String>,
    /// File → the files it imports.
    imports: BTreeMap<String, BTreeSet<String>>,
}

fn module_of(relative: &Path) -> ModPath {
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_string());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments, string and character literals,
/// and its test module.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    let s = text.as_bytes();
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        if rest.starts_with(b"//") {
            while i < s.len() && s[i] != b'\n' {
                i += 1;
            }
        } else if rest.starts_with(b"/*") {
            let mut depth = 0;
            while i < s.len() {
                if s[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if s[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(s, i) {
            // r#"..."#, br"...": up to the quote followed by as many hashes.
            i = s[i..].iter().position(|b| *b == b'"').map_or(s.len(), |q| i + q + 1);
            let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
            i = s[i..]
                .windows(close.len())
                .position(|w| w == close.as_slice())
                .map_or(s.len(), |p| i + p + close.len());
            out.extend_from_slice(b"\"\"");
        } else if s[i] == b'"' {
            i += 1;
            while i < s.len() && s[i] != b'"' {
                i += if s[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.extend_from_slice(b"\"\"");
        } else if s[i] == b'\'' && (rest.get(1) == Some(&b'\\') || rest.get(2) == Some(&b'\'')) {
            // A character literal ('x', '\n', '\''); a lifetime has no closing quote.
            i += 2;
            while i < s.len() && s[i] != b'\'' {
                i += 1;
            }
            i += 1;
            out.extend_from_slice(b"' '");
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The number of hashes of a raw string literal that starts at `i`.
fn raw_string_start(s: &[u8], i: usize) -> Option<usize> {
    if i > 0 && is_ident(s[i - 1] as char) {
        return None;
    }
    let mut j = i;
    if s.get(j) == Some(&b'b') {
        j += 1;
    }
    if s.get(j) != Some(&b'r') {
        return None;
    }
    j += 1;
    let hashes = s[j..].iter().take_while(|b| **b == b'#').count();
    (s.get(j + hashes) == Some(&b'"')).then_some(hashes)
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expands the path or use tree that starts at `at` (`a::b::{c, d::e}`) into
/// its paths, each as a list of segments.
fn paths_at(code: &str, at: usize) -> Vec<Vec<String>> {
    fn tree(s: &[u8], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
        let mut path = prefix;
        loop {
            while *i < s.len() && s[*i].is_ascii_whitespace() {
                *i += 1;
            }
            if *i < s.len() && s[*i] == b'{' {
                *i += 1;
                loop {
                    tree(s, i, path.clone(), out);
                    while *i < s.len() && s[*i].is_ascii_whitespace() {
                        *i += 1;
                    }
                    match s.get(*i) {
                        Some(b',') => *i += 1,
                        Some(b'}') => {
                            *i += 1;
                            break;
                        }
                        _ => break,
                    }
                    while *i < s.len() && s[*i].is_ascii_whitespace() {
                        *i += 1;
                    }
                    if s.get(*i) == Some(&b'}') {
                        *i += 1;
                        break;
                    }
                }
                return;
            }
            let start = *i;
            while *i < s.len() && is_ident(s[*i] as char) {
                *i += 1;
            }
            if *i > start {
                path.push(String::from_utf8_lossy(&s[start..*i]).into_owned());
            }
            if s[*i..].starts_with(b"::") {
                *i += 2;
                continue;
            }
            out.push(path);
            return;
        }
    }
    let mut out = Vec::new();
    let mut i = at;
    tree(code.as_bytes(), &mut i, Vec::new(), &mut out);
    out
}

/// The inline modules of a file's code (`mod name { ... }`): where each
/// one's body starts and ends, and its name, outermost first.
fn inline_modules(code: &str) -> Vec<(usize, usize, String)> {
    let s = code.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(p) = code[at..].find("mod ") {
        let start = at + p;
        at = start + 4;
        if start > 0 && is_ident(s[start - 1] as char) {
            continue;
        }
        let name: String = code[at..].chars().take_while(|c| is_ident(*c)).collect();
        let after = at + name.len();
        let open = after + code[after..].len() - code[after..].trim_start().len();
        if name.is_empty() || s.get(open) != Some(&b'{') {
            continue;
        }
        let mut depth = 0;
        let close = (open..s.len())
            .find(|&i| {
                match s[i] {
                    b'{' => depth += 1,
                    b'}' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .unwrap_or(s.len());
        found.push((open, close, name));
    }
    found
}

impl Crate {
    fn read(dir: &Path) -> Crate {
        let mut paths = Vec::new();
        rust_files(dir, &mut paths);
        let mut files = BTreeMap::new();
        let mut texts = BTreeMap::new();
        for path in paths {
            let relative = path.strip_prefix(dir).unwrap().to_string_lossy().replace('\\', "/");
            files.insert(module_of(Path::new(&relative)), relative.clone());
            texts.insert(relative, std::fs::read_to_string(&path).unwrap());
        }
        let mut krate = Crate {
            files,
            imports: BTreeMap::new(),
        };
        for (file, text) in &texts {
            let imports = krate.imports_of(file, &code_of(text));
            krate.imports.insert(file.clone(), imports);
        }
        krate
    }

    fn imports_of(&self, file: &str, code: &str) -> BTreeSet<String> {
        let me = module_of(Path::new(file));
        let inline = inline_modules(code);
        let owns_children = file.ends_with("mod.rs") || !file.contains('/') && matches!(file, "lib.rs" | "main.rs");
        let children: Vec<String> = self
            .files
            .keys()
            .filter(|m| m.len() == me.len() + 1 && m.starts_with(&me))
            .map(|m| m.last().unwrap().clone())
            .collect();
        let mut found = BTreeSet::new();
        let bytes = code.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if !is_ident(bytes[i] as char) || (i > 0 && (is_ident(bytes[i - 1] as char) || bytes[i - 1] == b':')) {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && is_ident(bytes[i] as char) {
                i += 1;
            }
            let word = &code[start..i];
            if !code[i..].starts_with("::") {
                continue;
            }
            // The module this path is written in: the file's, or an inline
            // module's inside it.
            let mut here = me.clone();
            here.extend(
                inline
                    .iter()
                    .filter(|(from, to, _)| (*from..*to).contains(&start))
                    .map(|(_, _, name)| name.clone()),
            );
            let base: Option<ModPath> = match word {
                "crate" => Some(Vec::new()),
                "super" => Some(here[..here.len().saturating_sub(1)].to_vec()),
                "self" => Some(here.clone()),
                child if owns_children && children.iter().any(|c| c == child) => {
                    let mut m = me.clone();
                    m.push(child.to_string());
                    Some(m)
                }
                _ => None,
            };
            let Some(base) = base else { continue };
            let from = if matches!(word, "crate" | "super" | "self") { i + 2 } else { start };
            for tail in paths_at(code, from) {
                let mut full = base.clone();
                let mut tail = tail;
                if !matches!(word, "crate" | "super" | "self") {
                    tail.remove(0);
                }
                // `super::super::x`
                for seg in tail {
                    if seg == "super" {
                        full.pop();
                    } else if seg != "self" {
                        full.push(seg);
                    }
                }
                let target = (0..=full.len()).rev().find_map(|n| self.files.get(&full[..n]));
                if let Some(target) = target
                    && target != file
                {
                    found.insert(target.clone());
                }
            }
        }
        found
    }

    /// A cycle of imports, if any, as the files around it.
    fn cycle(&self) -> Option<Vec<String>> {
        fn visit<'a>(krate: &'a Crate, file: &'a str, state: &mut BTreeMap<&'a str, u8>, stack: &mut Vec<&'a str>) -> Option<Vec<String>> {
            state.insert(file, 1);
            stack.push(file);
            for next in krate.imports.get(file).into_iter().flatten() {
                match state.get(next.as_str()) {
                    Some(1) => {
                        let from = stack.iter().position(|f| *f == next).unwrap();
                        let mut cycle: Vec<String> = stack[from..].iter().map(|f| f.to_string()).collect();
                        cycle.push(next.clone());
                        return Some(cycle);
                    }
                    Some(_) => {}
                    None => {
                        if let Some(c) = visit(krate, next, state, stack) {
                            return Some(c);
                        }
                    }
                }
            }
            stack.pop();
            state.insert(file, 2);
            None
        }
        let mut state = BTreeMap::new();
        for file in self.imports.keys() {
            if !state.contains_key(file.as_str())
                && let Some(c) = visit(self, file, &mut state, &mut Vec::new())
            {
                return Some(c);
            }
        }
        None
    }

    /// Imports that run up the layers: `(file, imported, why)`.
    fn upward(&self, layers: &[(&str, &[&str])]) -> Vec<String> {
        let layer_of = |file: &str| -> usize {
            layers
                .iter()
                .position(|(_, members)| members.iter().any(|m| *m == file || m.ends_with('/') && file.starts_with(m)))
                .unwrap_or_else(|| panic!("{file} is in no layer: add it to the list in tests/architecture.rs and docs/design.md"))
        };
        let mut wrong = Vec::new();
        for (file, imports) in &self.imports {
            for target in imports {
                let (from, to) = (layer_of(file), layer_of(target));
                if to > from {
                    wrong.push(format!(
                        "{file} (layer `{}`) imports {target} (layer `{}`), which sits above it",
                        layers[from].0, layers[to].0
                    ));
                }
            }
        }
        wrong
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The component's layers, from the bottom. A module imports only from its
/// own layer or those below; within a layer, no cycle.
const COMPONENT_LAYERS: &[(&str, &[&str])] = &[
    (
        "capabilities and leaves",
        &[
            "error.rs",
            "time.rs",
            "bytes.rs",
            "capabilities.rs",
            "description.rs",
            "http.rs",
            "bindings.rs",
            "wasi_http.rs",
            "telemetry.rs",
        ],
    ),
    ("answer", &["answer.rs"]),
    ("mapping", &["mapping/"]),
    (
        "collection parts",
        &["snapshot.rs", "stream_api.rs", "kql.rs", "progress.rs", "budget.rs", "planner/"],
    ),
    ("config", &["config/"]),
    ("graph client", &["auth.rs", "graph.rs"]),
    ("streams and convert", &["streams.rs", "convert.rs"]),
    ("collector", &["collector.rs", "collector/"]),
    ("component", &["component.rs", "lib.rs"]),
];

/// Imports the layers allow that the design forbids all the same.
const COMPONENT_FORBIDDEN: &[(&str, &str, &str)] = &[
    ("mapping/", "telemetry.rs", "the mapping returns errors; its callers report them"),
    (
        "snapshot.rs",
        "telemetry.rs",
        "merging returns what it could not read; the collector reports it",
    ),
    ("answer.rs", "telemetry.rs", "the answer returns what it could not read"),
    ("auth.rs", "bindings.rs", "the signer is handed in (capabilities.rs), not imported"),
    ("graph.rs", "bindings.rs", "the host's capabilities are handed in"),
];

fn forbidden(krate: &Crate, rules: &[(&str, &str, &str)]) -> Vec<String> {
    let matches = |pattern: &str, file: &str| pattern == file || pattern.ends_with('/') && file.starts_with(pattern);
    let mut wrong = Vec::new();
    for (file, imports) in &krate.imports {
        for target in imports {
            for (from, to, why) in rules {
                if matches(from, file) && matches(to, target) {
                    wrong.push(format!("{file} imports {target}: {why}"));
                }
            }
        }
    }
    wrong
}

#[test]
fn the_component_has_no_import_cycle_and_imports_only_downward() {
    let krate = Crate::read(&root().join("src"));
    if let Some(cycle) = krate.cycle() {
        panic!("src/ has an import cycle: {}", cycle.join(" → "));
    }
    let mut wrong = krate.upward(COMPONENT_LAYERS);
    wrong.extend(forbidden(&krate, COMPONENT_FORBIDDEN));
    assert!(wrong.is_empty(), "imports that run the wrong way:\n{}", wrong.join("\n"));
}

/// The host's layers, from the bottom.
const HOST_LAYERS: &[(&str, &[&str])] = &[
    (
        "leaves",
        &[
            "clock.rs",
            "shutdown.rs",
            "msgpack.rs",
            "sink.rs",
            "humantime_serde.rs",
            "credentials.rs",
            "state.rs",
            "telemetry.rs",
            "egress.rs",
        ],
    ),
    (
        "outputs and the network policy",
        &[
            "output.rs",
            "forward.rs",
            "handoff.rs",
            "policy.rs",
            "kafka/settings.rs",
            "kafka/group.rs",
        ],
    ),
    ("runtime", &["runtime/"]),
    ("config", &["config/"]),
    ("launch", &["launch.rs"]),
    ("sources", &["poll.rs", "kafka/"]),
    ("commands", &["app.rs", "replay.rs", "lib.rs", "main.rs"]),
];

#[test]
fn the_host_has_no_import_cycle_and_imports_only_downward() {
    let krate = Crate::read(&root().join("host/src"));
    if let Some(cycle) = krate.cycle() {
        panic!("host/src has an import cycle: {}", cycle.join(" → "));
    }
    let wrong = krate.upward(HOST_LAYERS);
    assert!(wrong.is_empty(), "imports that run the wrong way:\n{}", wrong.join("\n"));
}

/// The checker itself: it sees a cycle through a re-export and a `use`
/// tree, and it charges a path to the file of the module it names.
#[test]
fn the_checker_finds_cycles_through_use_trees_and_re_exports() {
    let dir = std::env::temp_dir().join(format!("defender-ocsf-architecture-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("m")).unwrap();
    std::fs::write(dir.join("lib.rs"), "pub mod a;\npub mod m;\npub use a::Thing;\n").unwrap();
    std::fs::write(dir.join("a.rs"), "// use crate::m::b;\nuse crate::{m::{b::Other}, m::b as _};\n").unwrap();
    std::fs::write(
        dir.join("m/mod.rs"),
        "pub mod b;\npub use b::Other;\nmod inner { use super::b as _; }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("m/b.rs"),
        "pub fn f() -> crate::Thing { todo!() }\n#[cfg(test)]\nmod tests { use crate::a; }\n",
    )
    .unwrap();
    let krate = Crate::read(&dir);
    assert_eq!(krate.imports["a.rs"], BTreeSet::from(["m/b.rs".to_string()]));
    assert_eq!(
        krate.imports["m/b.rs"],
        BTreeSet::from(["lib.rs".to_string()]),
        "the test module is not counted"
    );
    assert_eq!(krate.imports["lib.rs"], BTreeSet::from(["a.rs".to_string()]));
    assert_eq!(
        krate.imports["m/mod.rs"],
        BTreeSet::from(["m/b.rs".to_string()]),
        "`super` in an inline module is the file's own module"
    );
    let cycle = krate.cycle().expect("lib → a → m/b → lib is a cycle");
    assert!(
        cycle.contains(&"a.rs".to_string()) && cycle.contains(&"m/b.rs".to_string()),
        "{cycle:?}"
    );
    let layers: &[(&str, &[&str])] = &[("low", &["a.rs"]), ("high", &["m/", "lib.rs"])];
    assert_eq!(krate.upward(layers).len(), 1, "a.rs imports m/b.rs above it");
    std::fs::remove_dir_all(&dir).unwrap();
}
