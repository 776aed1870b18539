//! Known-answer tests that pin the ledger to the outside world (see tests/vectors/README.md).

use std::path::{Path, PathBuf};

use auditgate::ledger::checkpoint;
use auditgate::ledger::merkle::{Hash, verify_consistency, verify_inclusion};
use auditgate::ledger::note::{Note, SignerKey, VerifierKey, sign};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn cases(kind: &str) -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    let root = vectors()
        .join("transparency-dev-merkle/testdata")
        .join(kind);
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for item in std::fs::read_dir(dir).unwrap() {
            let path = item.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let case = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                out.push((path, case));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A 32-byte hash, or `None` for anything else (empty, short, long): such cases must fail.
fn hash(v: &Value) -> Option<Hash> {
    STANDARD.decode(v.as_str()?).ok()?.try_into().ok()
}

/// Any base64 bytes: roots are compared as bytes, whatever their length.
fn bytes(v: &Value) -> Option<Vec<u8>> {
    STANDARD.decode(v.as_str()?).ok()
}

fn proof(v: &Value) -> Option<Vec<Hash>> {
    match v {
        Value::Null => Some(vec![]),
        Value::Array(items) => items.iter().map(hash).collect(),
        _ => None,
    }
}

#[test]
fn transparency_dev_inclusion_vectors() {
    let cases = cases("inclusion");
    assert!(cases.len() > 50);
    for (path, c) in cases {
        let result = (|| {
            let (leaf, root, proof) = (
                hash(&c["leafHash"])?,
                bytes(&c["root"])?,
                proof(&c["proof"])?,
            );
            let (index, size) = (c["leafIdx"].as_i64()?, c["treeSize"].as_i64()?);
            if index < 0 || size < 0 {
                return None;
            }
            verify_inclusion(&leaf, index as u64, size as u64, &proof, &root).ok()
        })();
        let want_err = c["wantErr"].as_bool().unwrap();
        assert_eq!(
            result.is_none(),
            want_err,
            "{}: {}",
            path.display(),
            c["desc"]
        );
    }
}

#[test]
fn transparency_dev_consistency_vectors() {
    let cases = cases("consistency");
    assert!(cases.len() > 40);
    for (path, c) in cases {
        let result = (|| {
            let (root1, root2, proof) = (
                bytes(&c["root1"])?,
                bytes(&c["root2"])?,
                proof(&c["proof"])?,
            );
            let (size1, size2) = (c["size1"].as_i64()?, c["size2"].as_i64()?);
            if size1 < 0 || size2 < 0 {
                return None;
            }
            verify_consistency(size1 as u64, size2 as u64, &proof, &root1, &root2).ok()
        })();
        let want_err = c["wantErr"].as_bool().unwrap();
        assert_eq!(
            result.is_none(),
            want_err,
            "{}: {}",
            path.display(),
            c["desc"]
        );
    }
}

const PETER_SIGNER: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";

#[test]
fn go_sumdb_note_example_verifies_and_is_reproduced_byte_for_byte() {
    let dir = vectors().join("signed-note");
    let vkey_text = std::fs::read_to_string(dir.join("PeterNeumann.vkey")).unwrap();
    let note_text = std::fs::read_to_string(dir.join("PeterNeumann.note")).unwrap();
    let vkey = VerifierKey::parse(vkey_text.trim()).unwrap();
    assert_eq!(
        vkey.to_string(),
        vkey_text.trim(),
        "the verifier key prints back identically"
    );
    let note = Note::parse(&note_text).unwrap();
    assert_eq!(note.verify(std::slice::from_ref(&vkey)).unwrap().len(), 1);

    let signer = SignerKey::parse(PETER_SIGNER).unwrap();
    assert_eq!(signer.verifier(), vkey);
    assert_eq!(signer.to_private_text(), PETER_SIGNER);
    assert_eq!(
        sign(&note.text, &[&signer]).unwrap(),
        note_text,
        "Ed25519 is deterministic"
    );

    // A checkpoint needs three lines; this note is prose, so it is not one.
    assert!(checkpoint::open(&note_text, &[vkey]).is_err());
}
