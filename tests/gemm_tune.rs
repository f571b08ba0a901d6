//! Choosing the GEMM kernel: a forced variant runs (and one the adapter
//! cannot run is refused), and the tuner times a big product once, keeps
//! its choice in the cache file and computes the default's bits. One test:
//! it sets the tuner's cache file in the environment and makes its own
//! devices, so nothing else in this binary may run beside it.

mod common;

use common::random;
use wgrnn::ops::gemm_tune::GEMM_TUNE_MIN_WORK;
use wgrnn::ops::{gemm, gemm_with_variant, GemmOptions, GemmVariant};
use wgrnn::{Device, Error, Tensor};

/// `C = A·B` through [`gemm`] (the variant chosen by the device), as bits.
fn product(dev: &Device, a: &[f32], b: &[f32], [m, n, k]: [usize; 3]) -> Vec<u32> {
    let ta = Tensor::from_slice(dev, a, &[m, k]).unwrap();
    let tb = Tensor::from_slice(dev, b, &[k, n]).unwrap();
    let c = Tensor::zeros(dev, &[m, n]).unwrap();
    gemm(&ta, &tb, None, &c, GemmOptions::default()).unwrap();
    c.to_vec().unwrap().iter().map(|x| x.to_bits()).collect()
}

/// The GEMM entry points `dev` dispatched while running `f`.
fn entries(dev: &Device, f: impl FnOnce()) -> Vec<&'static str> {
    dev.start_profile().unwrap();
    f();
    dev.finish_profile().unwrap().kernels.iter().map(|k| k.entry).filter(|e| e.starts_with("gemm")).collect()
}

#[test]
fn gemm_variants_are_forced_and_tuned() {
    let dir = std::env::temp_dir().join(format!("wgrnn-gemm-tune-test-{}", std::process::id()));
    let path = dir.join("tune.json");
    // The only test of this binary: nothing else reads the environment.
    std::env::set_var("WGRNN_TUNE_CACHE", &path);
    let [m, n, k] = [256, 256, 256];
    assert!((m * n * k) as u64 >= GEMM_TUNE_MIN_WORK);
    let (a, b) = (random(m * k, 1), random(k * n, 2));

    // Forced: the kernel that runs is the one asked for, with its bits.
    let dev = Device::new().unwrap();
    let default = GemmVariant::for_device(&dev);
    let forced = if default == GemmVariant::Vec4 { GemmVariant::Register } else { GemmVariant::Vec4 };
    dev.set_gemm_variant(Some(forced)).unwrap();
    let mut got = Vec::new();
    let ran = entries(&dev, || got = product(&dev, &a, &b, [m, n, k]));
    let want_entry = if forced == GemmVariant::Vec4 { "gemm_vec4" } else { "gemm_register" };
    assert_eq!(ran, [want_entry], "forced {forced}");
    let (ta, tb) = (Tensor::from_slice(&dev, &a, &[m, k]).unwrap(), Tensor::from_slice(&dev, &b, &[k, n]).unwrap());
    let c = Tensor::zeros(&dev, &[m, n]).unwrap();
    gemm_with_variant(&ta, &tb, None, &c, GemmOptions::default(), forced).unwrap();
    assert_eq!(got, c.to_vec().unwrap().iter().map(|x| x.to_bits()).collect::<Vec<_>>());
    // A variant this adapter cannot run is refused, and the force stays.
    if let Some(missing) = GemmVariant::ALL.into_iter().find(|v| !v.runs_on(&dev)) {
        let err = dev.set_gemm_variant(Some(missing)).unwrap_err();
        assert!(matches!(&err, Error::Config(text) if text.contains(missing.name())), "{err}");
        assert_eq!(entries(&dev, || drop(product(&dev, &a, &b, [m, n, k]))), [want_entry]);
    }
    dev.set_gemm_variant(None).unwrap();

    // Tuned: where the adapter runs more than one variant with the
    // default's bits, the first product of a big shape times them and the
    // choice lands in the cache file; the result is the default's bits.
    let candidates: Vec<GemmVariant> =
        GemmVariant::ALL.into_iter().filter(|v| v.same_bits(default) && v.runs_on(&dev)).collect();
    let tuned = product(&dev, &a, &b, [m, n, k]);
    let c = Tensor::zeros(&dev, &[m, n]).unwrap();
    gemm_with_variant(&ta, &tb, None, &c, GemmOptions::default(), default).unwrap();
    assert_eq!(tuned, c.to_vec().unwrap().iter().map(|x| x.to_bits()).collect::<Vec<_>>(), "tuned vs {default}");
    let file: Option<serde_json::Value> =
        std::fs::read_to_string(&path).ok().map(|text| serde_json::from_str(&text).unwrap());
    let choice = file.as_ref().and_then(|f| f.as_object().unwrap().values().next().cloned());
    let choice = choice.as_ref().and_then(|entries| entries["gemm M256 N256 K256 NN"].as_str());
    if candidates.len() > 1 {
        let choice = GemmVariant::parse(choice.expect("the tuner wrote its choice")).unwrap();
        assert!(candidates.contains(&choice), "{choice} is not among {candidates:?}");
        // Every candidate was timed.
        let timed = wgrnn::ops::gemm_tune::time_gemm_variants(&dev, [m, n, k], false, false, false).unwrap();
        assert_eq!(timed.len(), candidates.len(), "{timed:?}");
        // A fresh device reads the choice back and runs it.
        let again = Device::new().unwrap();
        let ran = entries(&again, || assert_eq!(product(&again, &a, &b, [m, n, k]), tuned));
        assert!(!ran.is_empty(), "no GEMM ran");
    } else {
        assert_eq!(choice, None, "one candidate ({candidates:?}) needs no timing");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
