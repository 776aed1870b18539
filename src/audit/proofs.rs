//! Proofs from the stored tree: plan which perfect-subtree hashes a proof needs (O(log n) of
//! them), fetch those in one round trip, and compute. Nothing here loads the whole log.

use anyhow::Context;

use crate::error::AppError;
use crate::ledger::merkle::{self, CompactRange, Hash, Node, Nodes, Planner};
use crate::store::Store;

/// An entry's inclusion proof, as a caller asked it.
pub struct Inclusion {
    /// The tree size the proof is for.
    pub size: u64,
    /// The entry's leaf hash.
    pub leaf: Hash,
    /// The proof's hashes.
    pub proof: Vec<Hash>,
}

/// The sizes were checked against the log: a proof that still fails lacks stored hashes or
/// the database, which is the service's condition, not the caller's.
fn unavailable(e: anyhow::Error) -> AppError {
    match e.downcast::<crate::store::StoreError>() {
        Ok(store) => AppError::from(store),
        Err(e) => AppError::Unavailable(format!("the proof cannot be built now: {e}")),
    }
}

/// The latest signed checkpoint's tree size (0 before the first).
async fn latest_size(store: &dyn Store) -> Result<u64, AppError> {
    Ok(store.latest_checkpoint().await?.map_or(0, |(s, _)| s))
}

/// Entry `seq`'s inclusion proof in the tree of `size` entries (default: the latest
/// checkpoint's); 400 for an entry or size the log does not have.
pub async fn inclusion(
    store: &dyn Store,
    seq: u64,
    size: Option<u64>,
) -> Result<Inclusion, AppError> {
    let size = match size {
        Some(s) => s,
        None => latest_size(store).await?,
    };
    let head = store.audit_head().await?.size();
    if seq >= size || size > head {
        return Err(AppError::BadRequest(format!(
            "no entry {seq} in a tree of {size} (the log has {head})"
        )));
    }
    let (leaf, proof) = inclusion_proof(store, seq, size)
        .await
        .map_err(unavailable)?;
    Ok(Inclusion { size, leaf, proof })
}

/// The proof that the tree of `to` entries (default: the latest checkpoint's) extends the
/// tree of `from`, with `to`; 400 for sizes the log does not have.
pub async fn consistency(
    store: &dyn Store,
    from: u64,
    to: Option<u64>,
) -> Result<(u64, Vec<Hash>), AppError> {
    let to = match to {
        Some(t) => t,
        None => latest_size(store).await?,
    };
    let head = store.audit_head().await?.size();
    if from == 0 || from > to || to > head {
        return Err(AppError::BadRequest(format!(
            "no consistency proof from {from} to {to} (the log has {head})"
        )));
    }
    let proof = consistency_proof(store, from, to)
        .await
        .map_err(unavailable)?;
    Ok((to, proof))
}

/// The hashes that running `prove` over the stored tree reads.
async fn fetch(
    store: &dyn Store,
    prove: impl Fn(&Planner),
) -> anyhow::Result<std::collections::HashMap<(u32, u64), Hash>> {
    let plan = Planner::default();
    prove(&plan);
    Ok(store.audit_nodes(&plan.needed()).await?)
}

/// The inclusion proof of each entry in `seqs` in the tree of `size` entries.
pub async fn inclusion_proofs(
    store: &dyn Store,
    seqs: &[u64],
    size: u64,
) -> anyhow::Result<Vec<Vec<Hash>>> {
    let nodes = fetch(store, |plan| {
        for seq in seqs {
            let _ = merkle::inclusion_proof(plan, *seq, size);
        }
    })
    .await?;
    seqs.iter()
        .map(|seq| Ok(merkle::inclusion_proof(&nodes, *seq, size)?))
        .collect()
}

/// The leaf hash of entry `seq` and its inclusion proof in the tree of `size` entries.
pub async fn inclusion_proof(
    store: &dyn Store,
    seq: u64,
    size: u64,
) -> anyhow::Result<(Hash, Vec<Hash>)> {
    let nodes = fetch(store, |plan| {
        let _ = plan.node(0, seq);
        let _ = merkle::inclusion_proof(plan, seq, size);
    })
    .await?;
    let leaf = nodes
        .get(&(0, seq))
        .copied()
        .with_context(|| format!("entry {seq} is not stored"))?;
    Ok((leaf, merkle::inclusion_proof(&nodes, seq, size)?))
}

/// The consistency proof from the tree of `size1` entries to that of `size2`.
pub async fn consistency_proof(
    store: &dyn Store,
    size1: u64,
    size2: u64,
) -> anyhow::Result<Vec<Hash>> {
    let nodes = fetch(store, |plan| {
        let _ = merkle::consistency_proof(plan, size1, size2);
    })
    .await?;
    Ok(merkle::consistency_proof(&nodes, size1, size2)?)
}

/// The root of the tree of `size` entries, from the stored tree.
pub async fn root(store: &dyn Store, size: u64) -> anyhow::Result<Hash> {
    let nodes = fetch(store, |plan| {
        let _ = merkle::root_of(plan, size);
    })
    .await?;
    Ok(merkle::root_of(&nodes, size)?)
}

/// The peaks of the tree of `size` entries (a bundle's prefix), largest first.
pub async fn peaks(store: &dyn Store, size: u64) -> anyhow::Result<Vec<Hash>> {
    let ranges: Vec<(u64, u64)> = (0..64u32)
        .rev()
        .filter(|bit| size >> bit & 1 == 1)
        .scan(0u64, |start, bit| {
            let range = (*start, *start + (1 << bit));
            *start += 1 << bit;
            Some(range)
        })
        .collect();
    let nodes = fetch(store, |plan| {
        for (a, b) in &ranges {
            let _ = merkle::subtree_root(plan, *a, *b);
        }
    })
    .await?;
    ranges
        .iter()
        .map(|(a, b)| Ok(merkle::subtree_root(&nodes, *a, *b)?))
        .collect()
}

/// Stores the interior hashes of a log written before they were kept (once, at start-up).
pub async fn fill_in(store: &dyn Store) -> anyhow::Result<()> {
    let size = store.audit_head().await?.size();
    let expected = size - u64::from(size.count_ones());
    if store.audit_node_count().await? >= expected {
        return Ok(());
    }
    tracing::info!(entries = size, "storing the audit tree's interior hashes");
    let mut range = CompactRange::new();
    let mut batch: Vec<Node> = Vec::new();
    for leaf in store.audit_leaves(size).await? {
        range.push_with(leaf, |n| batch.push(n));
        if batch.len() >= 10_000 {
            store.insert_audit_nodes(&batch).await?;
            batch.clear();
        }
    }
    store.insert_audit_nodes(&batch).await?;
    Ok(())
}
