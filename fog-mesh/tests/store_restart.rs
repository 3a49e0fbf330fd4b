//! The bundle store keeps everything across a restart.

use fog_mesh::{
    BundleBuilder, BundleStore, CreationTimestamp, EndpointId, Insert, Priority, StoreConfig,
};

#[test]
fn nothing_is_lost_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bundles.sqlite");
    let bundles: Vec<_> = (0..20)
        .map(|seq| {
            BundleBuilder::new(
                EndpointId::dtn("a", "app").unwrap(),
                EndpointId::dtn("c", "app").unwrap(),
            )
            .created(CreationTimestamp { dtn_ms: 5_000, seq })
            .payload(format!("message {seq}").into_bytes())
            .build()
        })
        .collect();
    {
        let mut store = BundleStore::open(&path, StoreConfig::default()).unwrap();
        for b in &bundles {
            assert!(matches!(
                store.insert(b, Priority::Normal, 4, 5_000).unwrap(),
                Insert::Stored { .. }
            ));
        }
        store.remove(&bundles[0].id()).unwrap();
        store.set_copies(&bundles[1].id(), 2).unwrap();
    }
    let mut store = BundleStore::open(&path, StoreConfig::default()).unwrap();
    assert_eq!(store.len().unwrap(), 19);
    for b in &bundles[1..] {
        assert_eq!(store.get(&b.id()).unwrap().as_ref(), Some(b));
    }
    let meta = store.list().unwrap();
    assert_eq!(
        meta.iter()
            .find(|m| m.id == bundles[1].id())
            .unwrap()
            .copies,
        2
    );
    // The removed bundle is still known as a duplicate after the restart.
    assert_eq!(
        store
            .insert(&bundles[0], Priority::Normal, 1, 5_000)
            .unwrap(),
        Insert::Duplicate
    );
}
