//! The scenarios and courses shipped inside the binary, so `sandbox run <id>` and
//! `sandbox course check <id>` work from any directory.

use include_dir::{Dir, include_dir};

static SCENARIOS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../scenarios");

/// A bundled scenario file; its id is the file name without `.yaml`, which equals its
/// `metadata.id`.
#[derive(Debug, Clone, Copy)]
pub struct Bundled {
    pub id: &'static str,
    pub text: &'static str,
}

/// Every bundled scenario, sorted by id.
pub fn bundled() -> Vec<Bundled> {
    yaml_files(&SCENARIOS)
}

static COURSES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../courses");

/// Every bundled course (`courses/`), sorted by id; the id is the file name without `.yaml`,
/// which equals its `metadata.id`.
pub fn bundled_courses() -> Vec<Bundled> {
    yaml_files(&COURSES)
}

pub fn find_bundled_course(id: &str) -> Option<Bundled> {
    bundled_courses().into_iter().find(|b| b.id == id)
}

fn yaml_files(dir: &'static Dir<'static>) -> Vec<Bundled> {
    let mut out: Vec<Bundled> = dir
        .files()
        .filter(|f| f.path().extension().is_some_and(|e| e == "yaml"))
        .filter_map(|f| {
            Some(Bundled {
                id: f.path().file_stem()?.to_str()?,
                text: f.contents_utf8()?,
            })
        })
        .collect();
    out.sort_by_key(|b| b.id);
    out
}

/// The Go test services' source tree (`scenarios/services`).
pub fn services_source() -> &'static Dir<'static> {
    SCENARIOS.get_dir("services").unwrap_or(&EMPTY)
}

static EMPTY: Dir<'_> = Dir::new("services", &[]);

static KIND_CONFIGS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../kind-configs");

/// `kind-configs/`: cluster layouts, the node image builder and sandbox-cni's sources.
pub fn kind_configs() -> &'static Dir<'static> {
    &KIND_CONFIGS
}

pub fn find_bundled(id: &str) -> Option<Bundled> {
    bundled().into_iter().find(|b| b.id == id)
}
