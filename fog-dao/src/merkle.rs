//! The RFC 6962 / RFC 9162 Merkle tree: leaf and node hashes, an append-only
//! frontier for the root, audit (inclusion) paths and consistency proofs,
//! and their verification.

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 | data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 | left | right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 65];
    buf[0] = 1;
    buf[1..33].copy_from_slice(left);
    buf[33..].copy_from_slice(right);
    Sha256::digest(buf).into()
}

/// The root of the empty tree, `SHA-256()`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The roots of the perfect subtrees of an append-only tree, largest first:
/// enough to append in O(log n) and compute the root.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    size: u64,
    nodes: Vec<(u64, Hash)>,
}

impl Frontier {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        self.size += 1;
        self.nodes.push((1, leaf));
        while self.nodes.len() >= 2 {
            let n = self.nodes.len();
            if self.nodes[n - 1].0 != self.nodes[n - 2].0 {
                break;
            }
            let (size, right) = self.nodes.pop().unwrap_or_default();
            let (_, left) = self.nodes.pop().unwrap_or_default();
            self.nodes.push((size * 2, node_hash(&left, &right)));
        }
    }

    /// The tree head hash, `MTH(D[n])`.
    pub fn root(&self) -> Hash {
        let mut iter = self.nodes.iter().rev();
        let Some((_, last)) = iter.next() else {
            return empty_root();
        };
        iter.fold(*last, |acc, (_, left)| node_hash(left, &acc))
    }
}

/// `MTH` of a slice of leaf hashes.
pub fn root_of(leaves: &[Hash]) -> Hash {
    let mut f = Frontier::new();
    for l in leaves {
        f.push(*l);
    }
    f.root()
}

/// The largest power of two strictly less than `n` (n >= 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// The audit path for leaf `index` in the tree of `leaves` (RFC 6962 §2.1.1).
/// Returns `None` when `index` is out of range.
pub fn inclusion_path(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    path_rec(leaves, index, &mut path);
    Some(path)
}

fn path_rec(leaves: &[Hash], m: usize, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path_rec(&leaves[..k], m, out);
        out.push(root_of(&leaves[k..]));
    } else {
        path_rec(&leaves[k..], m - k, out);
        out.push(root_of(&leaves[..k]));
    }
}

/// The consistency proof between the tree of the first `old_size` leaves and
/// the tree of all `leaves` (RFC 6962 §2.1.2). `None` when `old_size` is 0 or
/// larger than the tree.
pub fn consistency_proof(leaves: &[Hash], old_size: usize) -> Option<Vec<Hash>> {
    if old_size == 0 || old_size > leaves.len() {
        return None;
    }
    let mut out = Vec::new();
    subproof(leaves, old_size, true, &mut out);
    Some(out)
}

fn subproof(leaves: &[Hash], m: usize, complete: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            out.push(root_of(leaves));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(&leaves[..k], m, complete, out);
        out.push(root_of(&leaves[k..]));
    } else {
        subproof(&leaves[k..], m - k, false, out);
        out.push(root_of(&leaves[..k]));
    }
}

/// Verifies an audit path (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, path: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0 && r == *root
}

/// Verifies a consistency proof between two tree heads (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    old_root: &Hash,
    new_size: u64,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size == 0 || old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut f_n, mut s_n) = (old_size - 1, new_size - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    fr == *old_root && sr == *new_root && s_n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The leaves of the RFC 6962 test vectors used by Certificate
    /// Transparency implementations.
    fn vector_leaves() -> Vec<Hash> {
        let inputs: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        inputs.iter().map(|d| leaf_hash(d)).collect()
    }

    fn h(s: &str) -> Hash {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).unwrap();
        out
    }

    #[test]
    fn roots_match_known_vectors() {
        let leaves = vector_leaves();
        let expected = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        for (n, want) in expected.iter().enumerate() {
            assert_eq!(root_of(&leaves[..=n]), h(want), "size {}", n + 1);
        }
        assert_eq!(
            empty_root(),
            h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
    }

    #[test]
    fn inclusion_matches_known_vector() {
        let leaves = vector_leaves();
        let path = inclusion_path(&leaves, 0).unwrap();
        let want = [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ];
        assert_eq!(path, want.iter().map(|s| h(s)).collect::<Vec<_>>());
    }

    #[test]
    fn consistency_matches_known_vector() {
        let leaves = vector_leaves();
        let proof = consistency_proof(&leaves, 1).unwrap();
        let want = [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ];
        assert_eq!(proof, want.iter().map(|s| h(s)).collect::<Vec<_>>());
        let proof = consistency_proof(&leaves[..6], 4).unwrap();
        assert_eq!(
            proof,
            vec![h(
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"
            )]
        );
    }

    #[test]
    fn every_proof_verifies_and_tampering_fails() {
        let leaves: Vec<Hash> = (0u32..40).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for n in 1..=leaves.len() {
            let root = root_of(&leaves[..n]);
            for m in 0..n {
                let path = inclusion_path(&leaves[..n], m).unwrap();
                assert!(verify_inclusion(
                    &leaves[m], m as u64, n as u64, &path, &root
                ));
                let other = leaves[(m + 1) % n];
                if other != leaves[m] {
                    assert!(!verify_inclusion(&other, m as u64, n as u64, &path, &root));
                }
                let mut bad_root = root;
                bad_root[0] ^= 1;
                assert!(!verify_inclusion(
                    &leaves[m], m as u64, n as u64, &path, &bad_root
                ));
            }
            for old in 1..=n {
                let old_root = root_of(&leaves[..old]);
                let proof = consistency_proof(&leaves[..n], old).unwrap();
                assert!(
                    verify_consistency(old as u64, &old_root, n as u64, &root, &proof),
                    "{old} -> {n}"
                );
                if old < n {
                    let mut bad = proof.clone();
                    bad[0][0] ^= 1;
                    assert!(!verify_consistency(
                        old as u64, &old_root, n as u64, &root, &bad
                    ));
                    let mut bad_root = old_root;
                    bad_root[31] ^= 1;
                    assert!(!verify_consistency(
                        old as u64, &bad_root, n as u64, &root, &proof
                    ));
                }
            }
        }
    }
}
