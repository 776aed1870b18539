//! Proofs from the stored tree: plan which perfect-subtree hashes a proof needs (O(log n) of
//! them), fetch those in one round trip, and compute. Nothing here loads the whole log.

use anyhow::Context;

use crate::ledger::merkle::{self, CompactRange, Hash, Node, Nodes, Planner};
use crate::store::Store;

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
