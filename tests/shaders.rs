//! Every WGSL shader parses and validates with naga, and every file under
//! shaders/ is registered (so none escapes this check).

use wgrnn::kernels::{Shader, PRELUDE};

#[test]
fn every_shader_validates_with_naga() {
    for shader in Shader::ALL {
        let source = shader.source();
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{}: {}", shader.file_name(), e.emit_to_string(&source)));
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::default())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}: {}", shader.file_name(), e.emit_to_string(&source)));
        assert!(!module.entry_points.is_empty(), "{} has no entry point", shader.file_name());
    }
}

/// Files prepended to others rather than compiled on their own.
const INCLUDES: [&str; 5] =
    ["prelude.wgsl", "recurrent.wgsl", "lstm_step.wgsl", "lstm_backward_step.wgsl", "gemm_params.wgsl"];

#[test]
fn every_shader_file_is_registered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wgsl") && !INCLUDES.contains(&n.as_str()))
        .collect();
    files.sort();
    let mut registered: Vec<String> = Shader::ALL.iter().map(|s| s.file_name().to_string()).collect();
    registered.sort();
    assert_eq!(files, registered, "shaders/ and Shader::ALL disagree");
    assert!(PRELUDE.contains("fn sigmoid"));
    assert!(wgrnn::kernels::RECURRENT.contains("struct StepParams"));
}

/// Each shader file opens with a header naming its bindings (house style).
#[test]
fn every_shader_documents_its_bindings() {
    let includes = [
        wgrnn::kernels::RECURRENT,
        wgrnn::kernels::LSTM_STEP,
        wgrnn::kernels::LSTM_BACKWARD_STEP,
        wgrnn::kernels::GEMM_PARAMS,
    ];
    for (name, body) in
        Shader::ALL.iter().map(|s| (s.file_name(), s.file_text())).chain(INCLUDES[1..].iter().copied().zip(includes))
    {
        let shader = name;
        assert!(body.trim_start().starts_with("// "), "{shader} has no header comment");
        assert!(body.contains("Bindings"), "{shader} header lacks a bindings table");
        assert!(
            body.contains("Workgroup mapping") || shader == "recurrent.wgsl",
            "{shader} header lacks the workgroup mapping"
        );
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
                declared += text.matches("kernels::shader_params! {").count();
                if text.contains("#[repr(C)]") && !path.ends_with("kernels.rs") {
                    bare_repr.push(path.display().to_string());
                }
            }
        }
    }
    assert_eq!(declared, layouts.len(), "params_layouts() misses a shader_params! struct");
    assert!(bare_repr.is_empty(), "#[repr(C)] outside shader_params!: {bare_repr:?}");
}
