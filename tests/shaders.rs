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

#[test]
fn every_shader_file_is_registered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wgsl") && n != "prelude.wgsl" && n != "recurrent.wgsl")
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
    for shader in Shader::ALL {
        let body = shader.file_text();
        assert!(body.trim_start().starts_with("// "), "{} has no header comment", shader.file_name());
        assert!(body.contains("Bindings"), "{} header lacks a bindings table", shader.file_name());
        assert!(body.contains("Workgroup mapping"), "{} header lacks the workgroup mapping", shader.file_name());
    }
}
