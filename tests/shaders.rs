//! Every WGSL shader parses and validates with naga, and every file under
//! shaders/ is registered (so none escapes this check).

use wgrnn::kernels::{Shader, PRELUDE};

#[test]
fn every_shader_validates_with_naga() {
    for shader in Shader::all() {
        let source = shader.source();
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{}: {}", shader.label(), e.emit_to_string(&source)));
        // Subgroup kernels validate with the capability the device grants
        // them (only devices with subgroups build them).
        let capabilities = if shader.needs_subgroups() {
            naga::valid::Capabilities::default() | naga::valid::Capabilities::SUBGROUP
        } else {
            naga::valid::Capabilities::default()
        };
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities)
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}: {}", shader.label(), e.emit_to_string(&source)));
        assert!(!module.entry_points.is_empty(), "{} has no entry point", shader.label());
    }
}

/// Files prepended to others rather than compiled on their own.
const INCLUDES: [&str; 7] = [
    "prelude.wgsl",
    "recurrent.wgsl",
    "gemm_params.wgsl",
    "gemm_vec4_common.wgsl",
    "gemm_b_storage.wgsl",
    "gemm_b_uniform.wgsl",
    "gemm_no_continue.wgsl",
];

/// Every file under shaders/ is built: a plain shader, an include, one of
/// the two step-kernel templates, or (under shaders/cells/) a registered
/// cell's equations.
#[test]
fn every_shader_file_is_registered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let list = |dir: &std::path::Path| -> Vec<String> {
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".wgsl"))
            .collect();
        files.sort();
        files
    };
    let mut files: Vec<String> = list(&dir).into_iter().filter(|n| !INCLUDES.contains(&n.as_str())).collect();
    files.sort();
    let mut registered: Vec<String> = Shader::all().iter().map(|s| s.file_name().to_string()).collect();
    registered.sort();
    registered.dedup();
    assert_eq!(files, registered, "shaders/ and Shader::all() disagree");
    let mut cells: Vec<String> = wgrnn::cells::all_cells().iter().map(|c| format!("{}.wgsl", c.name)).collect();
    cells.sort();
    assert_eq!(list(&dir.join("cells")), cells, "shaders/cells/ and the registered cells disagree");
    for cell in wgrnn::cells::all_cells() {
        let file = std::fs::read_to_string(dir.join("cells").join(format!("{}.wgsl", cell.name))).unwrap();
        assert_eq!(cell.wgsl, file, "cell {} embeds another file", cell.name);
    }
    assert!(PRELUDE.contains("fn sigmoid"));
    assert!(wgrnn::kernels::RECURRENT.contains("struct StepParams"));
}

/// Each shader file opens with a header naming its bindings and its
/// workgroup mapping (house style); a cell's file names what it computes
/// forward and backward.
#[test]
fn every_shader_documents_its_bindings() {
    let includes = [wgrnn::kernels::RECURRENT, wgrnn::kernels::GEMM_PARAMS, wgrnn::kernels::GEMM_VEC4_COMMON];
    let cells: Vec<(String, &str)> =
        wgrnn::cells::all_cells().iter().map(|c| (format!("cells/{}.wgsl", c.name), c.wgsl)).collect();
    let plain = Shader::all().into_iter().map(|s| (s.file_name().to_string(), s.file_text()));
    let included = INCLUDES[1..].iter().map(|n| n.to_string()).zip(includes);
    for (name, body) in plain.chain(included).chain(cells) {
        assert!(body.trim_start().starts_with("// "), "{name} has no header comment");
        assert!(body.contains("Bindings"), "{name} header lacks a bindings table");
        assert!(
            body.contains("Workgroup mapping") || name == "recurrent.wgsl",
            "{name} header lacks the workgroup mapping"
        );
        if name.starts_with("cells/") {
            assert!(body.contains("forward:") && body.contains("backward:"), "{name} header lacks its equations");
        }
    }
}

/// Every `#[repr(C)]` params struct has the size and member offsets of the
/// WGSL struct it mirrors, as naga's layouter computes them: a member added,
/// dropped, reordered or retyped on one side only fails here, not as
/// garbage read by a kernel. Padding members (`_…`) may differ in shape
/// (`[u32; 3]` against three `u32`s); the total size covers them.
#[test]
fn params_structs_match_their_wgsl_layout() {
    let layouts = wgrnn::kernels::params_layouts();
    for layout in &layouts {
        let source = layout.shader.source();
        let module = naga::front::wgsl::parse_str(&source).unwrap();
        let (handle, ty) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(layout.wgsl_struct))
            .unwrap_or_else(|| panic!("{} declares no struct {}", layout.shader.file_name(), layout.wgsl_struct));
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        let naga::TypeInner::Struct { members, span } = &ty.inner else {
            panic!("{} is not a struct", layout.wgsl_struct)
        };
        let what = format!("{} (Rust) vs {} in {}", layout.rust_struct, layout.wgsl_struct, layout.shader.file_name());
        assert_eq!(layout.size, *span as usize, "{what}: size");
        assert_eq!(layouter[handle].size, *span, "{what}: naga span");
        let real = |name: &str| !name.starts_with('_');
        let wgsl: Vec<(&str, usize)> = members
            .iter()
            .filter_map(|m| m.name.as_deref().map(|n| (n, m.offset as usize)))
            .filter(|(n, _)| real(n))
            .collect();
        let rust: Vec<(&str, usize)> = layout.members.iter().copied().filter(|(n, _)| real(n)).collect();
        assert_eq!(rust, wgsl, "{what}: (member, offset) pairs differ");
    }

    // Complete: one entry per `shader_params!` declaration, and no
    // `#[repr(C)]` struct declared outside the macro.
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (mut declared, mut bare_repr) = (0, Vec::new());
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                if !path.ends_with("kernels.rs") {
                    declared += text.matches("kernels::shader_params! {").count();
                }
                if text.contains("#[repr(C)]") && !path.ends_with("kernels.rs") {
                    bare_repr.push(path.display().to_string());
                }
            }
        }
    }
    assert_eq!(declared, layouts.len(), "params_layouts() misses a shader_params! struct");
    assert!(bare_repr.is_empty(), "#[repr(C)] outside shader_params!: {bare_repr:?}");
}
