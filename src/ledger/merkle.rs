//! RFC 6962 / RFC 9162 Merkle trees: hashing, a compact range that grows one leaf at a time,
//! proofs from a tree held in memory, and proof verification.

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 || data)`: the hash of one leaf.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: `SHA-256()` of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The index is not inside the tree, or the sizes are out of order.
    #[error("{0}")]
    Range(String),
    /// The proof has the wrong number of hashes for these sizes.
    #[error("the proof has {got} hashes, {want} are needed")]
    Length {
        /// Hashes given.
        got: usize,
        /// Hashes required.
        want: usize,
    },
    /// The proof leads to a different root.
    #[error("the proof does not lead to the expected root")]
    Mismatch,
}

/// The perfect subtrees covering leaves `[0, size)`, largest first: enough to compute the
/// root and to keep appending. At most 64 hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    peaks: Vec<Hash>,
}

impl CompactRange {
    /// The range of an empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a range from its size and peaks (as stored or exported).
    pub fn from_parts(size: u64, peaks: Vec<Hash>) -> Result<Self, ProofError> {
        if peaks.len() != size.count_ones() as usize {
            return Err(ProofError::Range(format!(
                "a tree of {size} leaves has {} peaks, not {}",
                size.count_ones(),
                peaks.len()
            )));
        }
        Ok(Self { size, peaks })
    }

    /// Leaves covered.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The peaks, largest subtree first.
    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    /// Appends one leaf hash, merging equal-sized subtrees as binary addition carries.
    pub fn push(&mut self, leaf: Hash) {
        self.push_with(leaf, |_| {});
    }

    /// Appends one leaf hash and hands over every perfect subtree it completes, smallest
    /// first: what a store keeps so that proofs need only O(log n) hashes.
    pub fn push_with(&mut self, leaf: Hash, mut completed: impl FnMut(Node)) {
        let index = self.size;
        let mut hash = leaf;
        let mut size = self.size;
        let mut level = 0;
        while size & 1 == 1 {
            let left = self.peaks.pop().expect("one peak per set bit");
            hash = node_hash(&left, &hash);
            size >>= 1;
            level += 1;
            completed(Node {
                level,
                index: index >> level,
                hash,
            });
        }
        self.peaks.push(hash);
        self.size += 1;
    }

    /// The root hash of the tree of `size()` leaves.
    pub fn root(&self) -> Hash {
        let mut iter = self.peaks.iter().rev();
        match iter.next() {
            None => empty_root(),
            Some(last) => iter.fold(*last, |acc, peak| node_hash(peak, &acc)),
        }
    }
}

/// A perfect subtree: the `2^level` leaves from `index * 2^level`, and their hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    /// Height above the leaves (0 for a leaf).
    pub level: u32,
    /// Position among the subtrees of this height.
    pub index: u64,
    /// Its hash.
    pub hash: Hash,
}

/// Where proofs read perfect-subtree hashes from: a tree in memory, or hashes fetched from a
/// store. `None` means the source lacks that hash.
pub trait Nodes {
    /// The hash of the perfect subtree `(level, index)`; level 0 is a leaf hash.
    fn node(&self, level: u32, index: u64) -> Option<Hash>;
}

impl Nodes for std::collections::HashMap<(u32, u64), Hash> {
    fn node(&self, level: u32, index: u64) -> Option<Hash> {
        self.get(&(level, index)).copied()
    }
}

/// A source that answers every request with zeros and remembers what was asked: running a
/// proof over it plans which hashes to fetch (O(log n) of them) before fetching them.
#[derive(Debug, Default)]
pub struct Planner(std::cell::RefCell<std::collections::BTreeSet<(u32, u64)>>);

impl Planner {
    /// The `(level, index)` pairs asked for so far.
    pub fn needed(self) -> Vec<(u32, u64)> {
        self.0.into_inner().into_iter().collect()
    }
}

impl Nodes for Planner {
    fn node(&self, level: u32, index: u64) -> Option<Hash> {
        self.0.borrow_mut().insert((level, index));
        Some([0; 32])
    }
}

fn missing(start: u64, end: u64) -> ProofError {
    ProofError::Range(format!(
        "the hashes of leaves {start}..{end} are not stored"
    ))
}

/// The hash of leaves `[start, end)`, per RFC 6962's recursive definition, from perfect
/// subtrees only: at most two per level.
pub fn subtree_root(nodes: &impl Nodes, start: u64, end: u64) -> Result<Hash, ProofError> {
    let n = end - start;
    if n.is_power_of_two() && start.is_multiple_of(n) {
        let level = n.trailing_zeros();
        return nodes
            .node(level, start >> level)
            .ok_or_else(|| missing(start, end));
    }
    let k = split(n);
    Ok(node_hash(
        &subtree_root(nodes, start, start + k)?,
        &subtree_root(nodes, start + k, end)?,
    ))
}

/// The root of the tree of `size` leaves.
pub fn root_of(nodes: &impl Nodes, size: u64) -> Result<Hash, ProofError> {
    match size {
        0 => Ok(empty_root()),
        s => subtree_root(nodes, 0, s),
    }
}

/// The RFC 9162 inclusion proof of leaf `index` in the tree of `size` leaves.
pub fn inclusion_proof(nodes: &impl Nodes, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::Range(format!(
            "no leaf {index} in a tree of {size}"
        )));
    }
    let mut proof = Vec::new();
    path(nodes, index, 0, size, &mut proof)?;
    Ok(proof)
}

fn path(
    nodes: &impl Nodes,
    m: u64,
    start: u64,
    end: u64,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    let n = end - start;
    if n == 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(nodes, m, start, start + k, out)?;
        out.push(subtree_root(nodes, start + k, end)?);
    } else {
        path(nodes, m - k, start + k, end, out)?;
        out.push(subtree_root(nodes, start, start + k)?);
    }
    Ok(())
}

/// The RFC 9162 consistency proof from the tree of `size1` leaves to that of `size2`.
pub fn consistency_proof(
    nodes: &impl Nodes,
    size1: u64,
    size2: u64,
) -> Result<Vec<Hash>, ProofError> {
    if size1 > size2 {
        return Err(ProofError::Range(format!(
            "no consistency from {size1} to {size2}"
        )));
    }
    let mut proof = Vec::new();
    if size1 > 0 && size1 < size2 {
        subproof(nodes, size1, 0, size2, true, &mut proof)?;
    }
    Ok(proof)
}

fn subproof(
    nodes: &impl Nodes,
    m: u64,
    start: u64,
    end: u64,
    whole: bool,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    let n = end - start;
    if m == n {
        if !whole {
            out.push(subtree_root(nodes, start, end)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(nodes, m, start, start + k, whole, out)?;
        out.push(subtree_root(nodes, start + k, end)?);
    } else {
        subproof(nodes, m - k, start + k, end, false, out)?;
        out.push(subtree_root(nodes, start, start + k)?);
    }
    Ok(())
}

/// Largest power of two strictly less than `n` (n > 1).
fn split(n: u64) -> u64 {
    debug_assert!(n > 1);
    1 << (63 - (n - 1).leading_zeros())
}

/// A whole tree in memory, level by level, for building proofs.
#[derive(Debug, Clone, Default)]
pub struct MerkleTree {
    /// `levels[0]` are the leaf hashes; `levels[k][i]` is the perfect subtree of 2^k leaves
    /// starting at leaf `i * 2^k`.
    levels: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// A tree over these leaf hashes.
    pub fn from_leaves(leaves: Vec<Hash>) -> Self {
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let below = levels.last().expect("non-empty");
            let up = below
                .chunks_exact(2)
                .map(|p| node_hash(&p[0], &p[1]))
                .collect();
            levels.push(up);
        }
        Self { levels }
    }

    /// Leaves held.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    fn check(&self, size: u64) -> Result<(), ProofError> {
        if size > self.size() {
            return Err(ProofError::Range(format!(
                "the tree has only {} leaves",
                self.size()
            )));
        }
        Ok(())
    }

    /// The root of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, ProofError> {
        self.check(size)?;
        root_of(self, size)
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check(size)?;
        inclusion_proof(self, index, size)
    }

    /// The consistency proof between the trees of the first `size1` and `size2` leaves.
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Hash>, ProofError> {
        self.check(size2)?;
        consistency_proof(self, size1, size2)
    }
}

impl Nodes for MerkleTree {
    fn node(&self, level: u32, index: u64) -> Option<Hash> {
        self.levels
            .get(level as usize)?
            .get(index as usize)
            .copied()
    }
}

/// Checks that `leaf` is leaf `index` of the tree of `size` leaves with root `root` (RFC 9162 2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &[u8],
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::Range(format!(
            "index {index} is not below tree size {size}"
        )));
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(ProofError::Length {
                got: proof.len(),
                want: inclusion_len(index, size),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::Length {
            got: proof.len(),
            want: inclusion_len(index, size),
        });
    }
    if r.as_slice() == root {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

fn inclusion_len(index: u64, size: u64) -> usize {
    let (mut fn_, mut sn, mut n) = (index, size - 1, 0);
    while sn != 0 {
        if fn_ & 1 == 0 && fn_ == sn {
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        }
        fn_ >>= 1;
        sn >>= 1;
        n += 1;
    }
    n
}

/// Checks that the tree of `size2` leaves with `root2` extends the tree of `size1` leaves
/// with `root1` (RFC 9162 2.1.4.2). Roots are compared as bytes.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &[u8],
    root2: &[u8],
) -> Result<(), ProofError> {
    if size1 > size2 {
        return Err(ProofError::Range(format!(
            "size {size1} is larger than size {size2}"
        )));
    }
    if size1 == 0 {
        // Every tree extends the empty tree: a claim about it proves nothing, so none is accepted.
        return Err(ProofError::Range(
            "a consistency proof from the empty tree proves nothing".into(),
        ));
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::Length {
                got: proof.len(),
                want: 0,
            });
        }
        return if root1 == root2 {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    if proof.is_empty() {
        return Err(ProofError::Length { got: 0, want: 1 });
    }
    let mut path: Vec<Hash> = proof.to_vec();
    if size1.is_power_of_two() {
        path.insert(0, root1.try_into().map_err(|_| ProofError::Mismatch)?);
    }
    let (mut fn_, mut sn) = (size1 - 1, size2 - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if sn == 0 {
            return Err(ProofError::Length {
                got: proof.len(),
                want: proof.len() - 1,
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::Length {
            got: proof.len(),
            want: proof.len() + 1,
        });
    }
    if fr.as_slice() == root1 && sr.as_slice() == root2 {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn stored_nodes_give_the_same_proofs_from_o_log_n_hashes() {
        let n = 1000u64;
        let all = leaves(n);
        let tree = MerkleTree::from_leaves(all.clone());
        let mut stored: std::collections::HashMap<(u32, u64), Hash> = Default::default();
        let mut range = CompactRange::new();
        for (i, leaf) in all.iter().enumerate() {
            stored.insert((0, i as u64), *leaf);
            range.push_with(*leaf, |node| {
                stored.insert((node.level, node.index), node.hash);
            });
        }
        assert_eq!(stored.len() as u64, n + n - u64::from(n.count_ones()));
        for size in [1, 2, 3, 7, 8, 9, 255, 256, 257, 640, 999, 1000] {
            assert_eq!(root_of(&stored, size).unwrap(), tree.root(size).unwrap());
            for index in [0, size / 3, size / 2, size - 1] {
                let plan = Planner::default();
                inclusion_proof(&plan, index, size).unwrap();
                assert!(plan.needed().len() <= 2 * 11, "O(log n) hashes");
                assert_eq!(
                    inclusion_proof(&stored, index, size).unwrap(),
                    tree.inclusion_proof(index, size).unwrap()
                );
            }
            for older in [1, size / 2, size] {
                assert_eq!(
                    consistency_proof(&stored, older, size).unwrap(),
                    tree.consistency_proof(older, size).unwrap()
                );
            }
        }
        stored.remove(&(1, 0));
        assert!(
            inclusion_proof(&stored, 5, 10).is_ok(),
            "leaf 5 needs no node (1, 0)"
        );
        assert!(
            inclusion_proof(&stored, 2, 10).is_err(),
            "a missing hash is an error"
        );
    }

    #[test]
    fn rfc6962_empty_and_single_leaf_roots() {
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // RFC 6962 test vector: the leaf hash of the empty string.
        assert_eq!(
            hex::encode(leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    #[test]
    fn compact_range_matches_the_recursive_definition() {
        for n in 0..70u64 {
            let ls = leaves(n);
            let mut range = CompactRange::new();
            ls.iter().for_each(|l| range.push(*l));
            let tree = MerkleTree::from_leaves(ls);
            assert_eq!(range.root(), tree.root(n).unwrap(), "size {n}");
            assert_eq!(range.peaks().len(), n.count_ones() as usize);
            let rebuilt = CompactRange::from_parts(n, range.peaks().to_vec()).unwrap();
            assert_eq!(rebuilt, range);
        }
        assert!(CompactRange::from_parts(3, vec![[0; 32]]).is_err());
    }

    #[test]
    fn every_generated_proof_verifies_and_mutations_fail() {
        let ls = leaves(37);
        let tree = MerkleTree::from_leaves(ls.clone());
        for size in 1..=37u64 {
            let root = tree.root(size).unwrap();
            for i in 0..size {
                let proof = tree.inclusion_proof(i, size).unwrap();
                verify_inclusion(&ls[i as usize], i, size, &proof, &root).unwrap();
                assert!(
                    verify_inclusion(&ls[i as usize], (i + 1) % size, size, &proof, &root).is_err()
                        || size == 1
                );
                if let Some(first) = proof.first() {
                    let mut bad = proof.clone();
                    bad[0][0] ^= 1;
                    assert!(
                        verify_inclusion(&ls[i as usize], i, size, &bad, &root).is_err(),
                        "{first:?}"
                    );
                }
            }
            for size1 in 1..=size {
                let proof = tree.consistency_proof(size1, size).unwrap();
                let root1 = tree.root(size1).unwrap();
                verify_consistency(size1, size, &proof, &root1, &root).unwrap();
                if size1 < size {
                    let mut other = root1;
                    other[5] ^= 1;
                    assert!(verify_consistency(size1, size, &proof, &other, &root).is_err());
                }
            }
        }
    }
}
