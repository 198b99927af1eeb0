//! Tests of the families on tiny random GGUF files written here (F32, a few layers): each
//! family's metadata reading, batched prompts against token-by-token decoding (the sliding
//! window's mask against its narrowed cache), save/restore of the key/value cache, and the
//! `Unsupported` errors. Agreement with llama.cpp itself is tested on helper-made files in
//! tests/local/families.rs.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use candle_core::quantized::gguf_file::{self, Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use mamba_backends::ErrorKind;

use super::{load, Architecture, LoadConfig};
use crate::gguf::Meta;
use crate::weights::Weights;

const DIM: usize = 64;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const FFN: usize = 128;
const VOCAB: usize = 40;

/// A deterministic pseudo-random matrix with entries of size about `1/sqrt(cols)`.
fn matrix(seed: &mut u64, rows: usize, cols: usize, scale: f32) -> Tensor {
    let values: Vec<f32> = (0..rows * cols)
        .map(|_| {
            *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let unit = ((*seed >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0;
            unit * scale * (3.0 / cols as f32).sqrt()
        })
        .collect();
    Tensor::from_vec(values, (rows, cols), &Device::Cpu).unwrap()
}

fn ones(n: usize) -> Tensor {
    Tensor::ones(n, candle_core::DType::F32, &Device::Cpu).unwrap()
}

/// Writes a tiny model of `arch` with the given head size, layer count and extra metadata;
/// `skip` leaves tensors out and `extra` adds some.
fn write_tiny(
    path: &Path,
    arch: &str,
    head_dim: usize,
    layers: usize,
    meta: &[(&str, Value)],
    skip: &[&str],
    extra: &[&str],
) {
    let mut seed = arch.len() as u64 * 7919;
    let (q, kv) = (HEADS * head_dim, KV_HEADS * head_dim);
    let mut tensors: Vec<(String, Tensor)> = vec![
        ("token_embd.weight".into(), matrix(&mut seed, VOCAB, DIM, 1.0)),
        ("output_norm.weight".into(), ones(DIM)),
        ("output.weight".into(), matrix(&mut seed, VOCAB, DIM, 3.0)),
    ];
    for i in 0..layers {
        let p = |n: &str| format!("blk.{i}.{n}");
        tensors.push((p("attn_norm.weight"), ones(DIM)));
        if arch == "phi3" {
            tensors.push((p("attn_qkv.weight"), matrix(&mut seed, q + 2 * kv, DIM, 1.0)));
            tensors.push((p("ffn_up.weight"), matrix(&mut seed, 2 * FFN, DIM, 1.0)));
        } else {
            tensors.push((p("attn_q.weight"), matrix(&mut seed, q, DIM, 1.0)));
            tensors.push((p("attn_k.weight"), matrix(&mut seed, kv, DIM, 1.0)));
            tensors.push((p("attn_v.weight"), matrix(&mut seed, kv, DIM, 1.0)));
            tensors.push((p("ffn_gate.weight"), matrix(&mut seed, FFN, DIM, 1.0)));
            tensors.push((p("ffn_up.weight"), matrix(&mut seed, FFN, DIM, 1.0)));
        }
        if arch == "qwen2" {
            tensors.push((p("attn_q.bias"), matrix(&mut seed, 1, q, 1.0).flatten_all().unwrap()));
            tensors.push((p("attn_k.bias"), matrix(&mut seed, 1, kv, 1.0).flatten_all().unwrap()));
            tensors.push((p("attn_v.bias"), matrix(&mut seed, 1, kv, 1.0).flatten_all().unwrap()));
        }
        if arch == "qwen3" || arch == "gemma3" {
            tensors.push((p("attn_q_norm.weight"), ones(head_dim)));
            tensors.push((p("attn_k_norm.weight"), ones(head_dim)));
        }
        if arch == "gemma3" {
            tensors.push((p("post_attention_norm.weight"), ones(DIM)));
            tensors.push((p("post_ffw_norm.weight"), ones(DIM)));
        }
        tensors.push((p("attn_output.weight"), matrix(&mut seed, DIM, q, 1.0)));
        tensors.push((p("ffn_norm.weight"), ones(DIM)));
        tensors.push((p("ffn_down.weight"), matrix(&mut seed, DIM, FFN, 1.0)));
    }
    for name in extra {
        tensors.push(((*name).into(), ones(DIM)));
    }
    let tensors: Vec<(String, QTensor)> = tensors
        .into_iter()
        .filter(|(n, _)| !skip.contains(&n.as_str()))
        .map(|(n, t)| (n, QTensor::quantize(&t, GgmlDType::F32).unwrap()))
        .collect();
    let mut metadata: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        (format!("{arch}.embedding_length"), Value::U32(DIM as u32)),
        (format!("{arch}.block_count"), Value::U32(layers as u32)),
        (format!("{arch}.feed_forward_length"), Value::U32(FFN as u32)),
        (format!("{arch}.attention.head_count"), Value::U32(HEADS as u32)),
        (format!("{arch}.attention.head_count_kv"), Value::U32(KV_HEADS as u32)),
        (format!("{arch}.attention.layer_norm_rms_epsilon"), Value::F32(1e-5)),
        (format!("{arch}.attention.key_length"), Value::U32(head_dim as u32)),
        (format!("{arch}.attention.value_length"), Value::U32(head_dim as u32)),
    ];
    metadata.extend(meta.iter().map(|(k, v)| (format!("{arch}.{k}"), v.clone())));
    let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut out = File::create(path).unwrap();
    gguf_file::write(&mut out, &metadata, &tensors).unwrap();
}

fn open(path: &Path, context: usize) -> Result<Box<dyn Architecture>, mamba_backends::Error> {
    let mut reader = BufReader::new(File::open(path).unwrap());
    let content = Content::read(&mut reader).unwrap();
    let arch = Meta(&content.metadata).str("general.architecture").unwrap().to_owned();
    let mut weights = Weights::new(&content, &mut reader);
    load(&mut weights, &arch, path, LoadConfig { context, kv: candle_core::DType::F32 })
}

/// Metadata keys (without the family prefix) and values.
type Extra = Vec<(&'static str, Value)>;

/// The tiny model of each family: (arch, head size, layers, metadata).
fn families() -> Vec<(&'static str, usize, usize, Extra)> {
    vec![
        ("llama", 16, 2, vec![]),
        ("qwen2", 16, 2, vec![("rope.freq_base", Value::F32(1e6))]),
        ("qwen3", 32, 2, vec![]),
        // Six layers: five slide over 3 positions, the sixth is global.
        ("gemma3", 32, 6, vec![("attention.sliding_window", Value::U32(3))]),
        ("phi3", 16, 2, vec![]),
        // Phi-4-mini style: rope over the first half of each head only.
        ("phi3", 16, 2, vec![("rope.dimension_count", Value::U32(8))]),
    ]
}

fn close(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn every_family_decodes_a_batch_as_token_by_token_and_restores_its_cache() {
    let dir = tempfile::tempdir().unwrap();
    let tokens: Vec<u32> = vec![3, 17, 5, 29, 11, 2, 38, 7, 19, 23];
    for (i, (arch, head_dim, layers, meta)) in families().into_iter().enumerate() {
        let path = dir.path().join(format!("{i}-{arch}.gguf"));
        write_tiny(&path, arch, head_dim, layers, &meta, &[], &[]);
        let mut model = open(&path, 32).unwrap_or_else(|e| panic!("{arch}: {e}"));
        let batched = model.forward(&tokens, 0).unwrap();
        assert_eq!(batched.len(), VOCAB, "{arch}");
        assert!(batched.iter().all(|x| x.is_finite()), "{arch}");
        model.reset();
        let mut stepped = Vec::new();
        for (i, t) in tokens.iter().enumerate() {
            stepped = model.forward(&[*t], i).unwrap();
        }
        assert!(
            close(&batched, &stepped) < 1e-3,
            "{arch}: batched and stepped differ by {}",
            close(&batched, &stepped)
        );
        // Save 6 positions, overwrite the cache with other tokens, restore and go on.
        let saved = model.save(6).unwrap();
        assert_eq!(saved.len, 6);
        assert_eq!(saved.layers.len(), layers);
        assert!(saved.bytes() > 0);
        model.reset();
        model.forward(&[1, 1, 1, 1, 1, 1, 1, 1], 0).unwrap();
        model.restore(&saved).unwrap();
        let resumed = model.forward(&tokens[6..], 6).unwrap();
        assert!(close(&batched, &resumed) < 1e-3, "{arch}: restored run differs by {}", close(&batched, &resumed));
    }
}

#[test]
fn a_vision_tower_in_the_file_is_left_unread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vision.gguf");
    let meta = [("attention.sliding_window", Value::U32(3))];
    write_tiny(&path, "gemma3", 32, 6, &meta, &[], &["v.blk.0.attn_q.weight", "mm.input_projection.weight"]);
    assert!(open(&path, 8).is_ok());
}

#[test]
fn the_sliding_window_changes_gemma3_logits_only_past_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let narrow = dir.path().join("narrow.gguf");
    let wide = dir.path().join("wide.gguf");
    write_tiny(&narrow, "gemma3", 32, 6, &[("attention.sliding_window", Value::U32(3))], &[], &[]);
    write_tiny(&wide, "gemma3", 32, 6, &[("attention.sliding_window", Value::U32(100))], &[], &[]);
    let (mut a, mut b) = (open(&narrow, 16).unwrap(), open(&wide, 16).unwrap());
    assert!(close(&a.forward(&[4, 9, 2], 0).unwrap(), &b.forward(&[4, 9, 2], 0).unwrap()) < 1e-5);
    assert!(close(&a.forward(&[8, 1], 3).unwrap(), &b.forward(&[8, 1], 3).unwrap()) > 1e-4);
}

#[test]
fn unsupported_models_are_refused_naming_the_file_family_and_cause() {
    let dir = tempfile::tempdir().unwrap();
    // (family, metadata, tensors left out, tensors added, expected cause)
    type Case = (&'static str, Extra, Vec<&'static str>, Vec<&'static str>, &'static str);
    let cases: Vec<Case> = vec![
        ("gpt2", vec![], vec![], vec![], "does not run this model family"),
        ("llama", vec![], vec!["blk.1.ffn_down.weight"], vec![], "no `blk.1.ffn_down.weight` tensor"),
        ("llama", vec![], vec![], vec!["blk.0.attn_output.bias"], "blk.0.attn_output.bias"),
        ("phi3", vec![], vec![], vec!["rope_factors_long.weight"], "only one of `rope_factors_long.weight`"),
        ("qwen2", vec![("rope.scaling.type", Value::String("yarn".into()))], vec![], vec![], "`yarn` rope scaling"),
        ("llama", vec![("rope.dimension_count", Value::U32(18))], vec![], vec![], "over 18 of 16 dimensions"),
        ("llama", vec![("expert_count", Value::U32(8))], vec![], vec![], "mixture-of-experts"),
        ("gemma3", vec![], vec![], vec![], "sliding_window"),
        ("qwen2", vec![], vec!["blk.0.attn_k.bias"], vec![], "attn_k.bias"),
    ];
    for (i, (arch, meta, skip, extra, cause)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("case{i}.gguf"));
        write_tiny(&path, arch, 16, 2, &meta, &skip, &extra);
        let err = open(&path, 8).err().unwrap_or_else(|| panic!("case {i} ({arch}) loaded"));
        let text = err.to_string();
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{text}");
        assert!(text.contains(&format!("case{i}.gguf")) && text.contains(arch), "{text}");
        assert!(text.contains(cause), "case {i}: {text}");
        assert!(!text.contains('\n'), "{text}");
    }
}

#[test]
fn specs_read_the_family_traits_and_gemma3_layer_kinds() {
    let mut meta: HashMap<String, Value> = HashMap::new();
    for (k, v) in [
        ("embedding_length", 640u32),
        ("block_count", 18),
        ("feed_forward_length", 2048),
        ("attention.head_count", 4),
        ("attention.head_count_kv", 1),
        ("attention.key_length", 256),
        ("attention.sliding_window", 512),
    ] {
        meta.insert(format!("gemma3.{k}"), Value::U32(v));
    }
    meta.insert("gemma3.rope.freq_base".into(), Value::F32(1e6));
    meta.insert("gemma3.rope.scaling.type".into(), Value::String("linear".into()));
    meta.insert("gemma3.rope.scaling.factor".into(), Value::F32(8.0));
    let spec = super::gemma3::spec(Meta(&meta), "gemma3").unwrap();
    assert_eq!((spec.head_dim, spec.heads, spec.kv_heads), (256, 4, 1));
    let globals: Vec<usize> = (0..18).filter(|i| spec.layers[*i].window.is_none()).collect();
    assert_eq!(globals, vec![5, 11, 17]);
    assert_eq!(spec.layers[0].window, Some(512));
    assert_eq!(spec.ropes[spec.layers[5].rope].base, 1e6);
    assert_eq!(spec.ropes[spec.layers[5].rope].scale, 0.125);
    assert_eq!(spec.ropes[spec.layers[0].rope].base, 10_000.0);
    assert_eq!(spec.ropes[spec.layers[0].rope].scale, 1.0);
    assert!((spec.attention_scale - 1.0 / 16.0).abs() < 1e-12);
    assert!((spec.embedding_scale.unwrap() - 640f64.sqrt()).abs() < 1e-4);

    let mut llama: HashMap<String, Value> = HashMap::new();
    for (k, v) in [("embedding_length", 576u32), ("block_count", 30), ("feed_forward_length", 1536)] {
        llama.insert(format!("llama.{k}"), Value::U32(v));
    }
    llama.insert("llama.attention.head_count".into(), Value::U32(9));
    llama.insert("llama.attention.head_count_kv".into(), Value::U32(3));
    let spec = super::llama::spec(Meta(&llama), "llama").unwrap();
    assert_eq!(spec.head_dim, 64);
    assert_eq!(spec.ropes.len(), 1);
    assert_eq!(spec.ropes[0].factors, Some("rope_freqs.weight"));
    assert!(spec.layers.iter().all(|l| l.window.is_none() && l.rope == 0));
    assert_eq!(spec.rope_style, super::decoder::RopeStyle::Normal);
    llama.remove("llama.block_count");
    assert!(super::llama::spec(Meta(&llama), "llama").unwrap_err().contains("llama.block_count"));
}
