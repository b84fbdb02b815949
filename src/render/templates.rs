//! The template sets: the built-in one, and users' sets read from `templates_dir`, each file checked.

use std::collections::BTreeSet;
use std::path::Path;

use handlebars::Handlebars;

use super::message::TemplateError;

/// The template set every installation has; users may override its files.
pub const DEFAULT_SET: &str = "default";
/// The files every set may hold whatever the tools: the title, DingTalk's markdown, plain text.
const COMMON: [(&str, &str); 3] = [
    ("title", include_str!("../../templates/default/title.hbs")),
    ("markdown", include_str!("../../templates/default/markdown.hbs")),
    ("text", include_str!("../../templates/default/text.hbs")),
];

/// The built-in set: the common files and each protocol's own (where its markup differs).
pub(super) fn builtin() -> impl Iterator<Item = (&'static str, &'static str)> {
    COMMON.into_iter().chain(crate::channel::PROTOCOLS.iter().filter_map(|k| k.template))
}

/// The files a template set may hold.
pub fn kinds() -> Vec<&'static str> {
    builtin().map(|(name, _)| name).collect()
}

pub(super) fn load_sets(
    hb: &mut Handlebars<'static>,
    dir: &Path,
    sets: &mut BTreeSet<String>,
    errors: &mut Vec<TemplateError>,
) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(TemplateError::Dir { path: dir.display().to_string(), message: e.to_string() });
            return;
        }
    };
    let mut set_dirs: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect();
    set_dirs.sort();
    for set_dir in set_dirs {
        let Some(set) = set_dir.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
        if set.starts_with('.') {
            continue;
        }
        let files = match std::fs::read_dir(&set_dir) {
            Ok(f) => f,
            Err(e) => {
                errors.push(TemplateError::Dir { path: set_dir.display().to_string(), message: e.to_string() });
                continue;
            }
        };
        let mut found = false;
        for file in files.filter_map(Result::ok).map(|e| e.path()) {
            if file.extension().and_then(|e| e.to_str()) != Some("hbs") {
                continue;
            }
            let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
            let shown = file.display().to_string();
            let kinds = kinds();
            if !kinds.contains(&stem.as_str()) {
                errors.push(TemplateError::Compile {
                    file: shown,
                    message: format!(
                        "unknown template file; a set holds {}",
                        kinds.iter().map(|k| format!("{k}.hbs")).collect::<Vec<_>>().join(", ")
                    ),
                });
                continue;
            }
            match std::fs::read_to_string(&file) {
                Ok(text) => match hb.register_template_string(&format!("{set}/{stem}"), text) {
                    Ok(()) => found = true,
                    Err(e) => errors.push(TemplateError::Compile { file: shown, message: e.to_string() }),
                },
                Err(e) => errors.push(TemplateError::Compile { file: shown, message: e.to_string() }),
            }
        }
        if found {
            sets.insert(set);
        }
    }
}
