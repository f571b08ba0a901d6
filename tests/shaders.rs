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
