//! The plane over real TCP on loopback: eight nodes in one runtime.

use super::*;

/// A hang guard, not a timing assertion: the slowest step here is seven
/// hops of a few milliseconds each.
const PATIENCE: Duration = Duration::from_mins(1);

struct Net {
    dir: tempfile::TempDir,
    planes: Vec<MixPlane>,
    inboxes: Vec<mpsc::Receiver<MixMessage>>,
}

fn config(dir: &std::path::Path, i: usize, cover: bool) -> MixPlaneConfig {
    MixPlaneConfig {
        data_dir: dir.join(format!("node-{i}")).join("mix"),
        identity_seed: [i as u8 + 1; 32],
        listen: "127.0.0.1:0".parse().unwrap(),
        advertise: None,
        family: format!("node-{i}"),
        mean_delay: Duration::from_millis(2),
        cover,
        latency_stamps: true,
    }
}

async fn net(n: usize, cover: bool) -> Net {
    let dir = tempfile::tempdir().unwrap();
    let mut planes = Vec::new();
    let mut inboxes = Vec::new();
    for i in 0..n {
        let (plane, inbox) = MixPlane::start(config(dir.path(), i, cover)).await.unwrap();
        planes.push(plane);
        inboxes.push(inbox);
    }
    let descriptors: Vec<Vec<u8>> = planes.iter().map(MixPlane::descriptor).collect();
    for p in &planes {
        p.set_directory(&descriptors);
        assert_eq!(p.stats().directory_size, n as u64);
    }
    Net {
        dir,
        planes,
        inboxes,
    }
}

async fn next(inbox: &mut mpsc::Receiver<MixMessage>) -> MixMessage {
    tokio::time::timeout(PATIENCE, inbox.recv())
        .await
        .expect("a message within the patience")
        .expect("the plane is running")
}

fn body(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_at_every_level_arrive_intact_and_replies_come_back() {
    let mut net = net(8, true).await;
    for (k, level) in PrivacyLevel::ALL.into_iter().enumerate() {
        let (from, to) = (k, 7 - k);
        let message = body(k as u8, 10 * 1024);
        let to_address = net.planes[to].address();
        net.planes[from]
            .send(to_address, level, message.clone(), 2)
            .await
            .unwrap();
        let got = next(&mut net.inboxes[to]).await;
        assert_eq!(got.body, message, "{level} message damaged");
        let handle = got.reply.expect("reply blocks attached");
        assert_eq!(handle.blocks(), 2);
        // Kept across a restart as bytes, the blocks still answer.
        let kept = handle.to_bytes();
        let handle = ReplyHandle::from_bytes(&kept).expect("reads back");
        assert_eq!(handle.to_bytes(), kept);
        for torn in [&kept[..3], &kept[..kept.len() - 1], &kept[..4]] {
            assert!(ReplyHandle::from_bytes(torn).is_err());
        }
        let answer = body(100 + k as u8, 3000);
        assert!(handle.capacity() >= answer.len());
        net.planes[to].reply(handle, answer.clone()).await.unwrap();
        let back = next(&mut net.inboxes[from]).await;
        assert_eq!(back.body, answer, "{level} reply damaged");
        assert!(back.reply.is_none());
    }
    // A reply larger than its blocks is refused before anything is sent.
    let to = net.planes[1].address();
    net.planes[0]
        .send(to, PrivacyLevel::Private, b"one block".to_vec(), 1)
        .await
        .unwrap();
    let got = next(&mut net.inboxes[1]).await;
    let mut handle = got.reply.unwrap();
    assert!(
        handle.split_off(1).is_none(),
        "nothing beyond the one block"
    );
    let err = net.planes[1]
        .reply(handle, vec![0; 5000])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs 3 reply blocks"), "{err}");

    // Each receiver measured the messages and replies it completed.
    let stats: Vec<MixPlaneStats> = net.planes.iter().map(MixPlane::stats).collect();
    assert_eq!(stats.iter().map(|s| s.messages_sent).sum::<u64>(), 5);
    assert_eq!(stats.iter().map(|s| s.replies_sent).sum::<u64>(), 4);
    assert_eq!(stats.iter().map(|s| s.messages_received).sum::<u64>(), 9);
    assert_eq!(stats.iter().map(|s| s.latency_samples).sum::<u64>(), 9);
    assert!(stats.iter().all(|s| s.dropped_malformed == 0));
    for (i, s) in stats.iter().enumerate() {
        println!(
            "node {i}: received {} forwarded {} delivered {} cover {} dropped {} latency p50 {:.1} ms p99 {:.1} ms over {}",
            s.received,
            s.forwarded,
            s.delivered,
            s.cover,
            s.dropped,
            s.latency_p50_ms,
            s.latency_p99_ms,
            s.latency_samples
        );
    }
    assert!(stats[7].latency_samples >= 1);
    assert!(stats[7].latency_p99_ms >= stats[7].latency_p50_ms);
    // Cover flows (loop and drop, 0.5/s each per node) and ends somewhere.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let stats: Vec<MixPlaneStats> = net.planes.iter().map(MixPlane::stats).collect();
        let sent: u64 = stats.iter().map(|s| s.cover).sum();
        let ended: u64 = stats.iter().map(|s| s.cover_received).sum();
        if (sent >= 4 && ended >= 1) || Instant::now() > deadline {
            assert!(sent >= 4 && ended >= 1, "cover sent {sent}, ended {ended}");
            println!("cover sent {sent}, ended at a last hop {ended}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for p in net.planes {
        p.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_sender_listens_where_it_did_and_opens_replies_to_what_it_sent_before() {
    let mut net = net(4, false).await;
    let to = net.planes[3].address();
    net.planes[0]
        .send(to, PrivacyLevel::Public, b"answer me later".to_vec(), 1)
        .await
        .unwrap();
    let got = next(&mut net.inboxes[3]).await;
    let handle = got.reply.expect("a reply block");

    // node-0 stops and starts again from its directory.
    let old = net.planes.remove(0);
    let port = old.local_addr().unwrap().port();
    old.shutdown().await;
    drop(net.inboxes.remove(0));
    let (plane, mut inbox) = MixPlane::start(config(net.dir.path(), 0, false))
        .await
        .unwrap();
    assert_eq!(plane.local_addr().unwrap().port(), port);
    let mut descriptors = vec![plane.descriptor()];
    descriptors.extend(net.planes.iter().map(MixPlane::descriptor));
    plane.set_directory(&descriptors);

    // The reply on the block it made before the restart reaches it, and
    // it still opens it; the key is used up then.
    net.planes[2]
        .reply(handle, b"later".to_vec())
        .await
        .unwrap();
    let back = next(&mut inbox).await;
    assert_eq!(back.body, b"later");
    assert_eq!(plane.stats().dropped_unknown_reply, 0);
    plane.shutdown().await;
    for p in net.planes {
        p.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_destinations_sizes_and_directories_are_clear_errors() {
    let net = net(2, false).await;
    let p = &net.planes[0];
    let err = p
        .send([0xab; 32], PrivacyLevel::Public, b"hi".to_vec(), 0)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("no mix with address abab"), "{err}");
    let to = net.planes[1].address();
    let err = p
        .send(to, PrivacyLevel::Secret, b"hi".to_vec(), 0)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "a SECRET route needs 7 distinct mixes, the directory knows 2"
    );
    let err = p
        .send(to, PrivacyLevel::Public, vec![0; MAX_BODY + 1], 0)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("at most 1048576 bytes"), "{err}");

    // Garbage descriptors are skipped and counted; the good ones stay.
    let mut with_garbage = vec![p.descriptor(), net.planes[1].descriptor()];
    with_garbage.push(b"not a descriptor".to_vec());
    let mut flipped = net.planes[1].descriptor();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    with_garbage.push(flipped);
    p.set_directory(&with_garbage);
    let s = p.stats();
    assert_eq!(s.invalid_descriptors, 2);
    assert_eq!(s.directory_size, 2);
    for p in net.planes {
        p.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_inside_valid_packets_is_dropped_and_counted() {
    let mut net = net(2, false).await;
    let (sender, receiver) = (&net.planes[0].inner, &net.planes[1].inner);
    let target = receiver.me;
    let snap = sender.snapshot();
    let nodes = snap.directory.route_nodes(&[target]).unwrap();
    let destination = Destination::new(receiver.my_destination, [0; 16]);
    let mut rng = rand::rng();
    let mut garbage: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![0xff; 30],
        // A well-formed fragment header with an index beyond its count.
        {
            let mut f = vec![wire::FRAGMENT_VERSION];
            f.extend_from_slice(&[1; 16]);
            f.extend_from_slice(&9u16.to_be_bytes());
            f.extend_from_slice(&2u16.to_be_bytes());
            f
        },
        // A whole one-fragment message whose envelope is garbage.
        Fragment {
            id: [2; 16],
            index: 0,
            count: 1,
            data: &[7; 40],
        }
        .encode(),
    ];
    for _ in 0..4 {
        let mut g = vec![0u8; 200];
        rng.fill(&mut g[..]);
        g[0] = 0xee; // never a fragment version
        garbage.push(g);
    }
    let sent = garbage.len() as u64;
    for g in &garbage {
        let out = sender
            .builder
            .build(PrivacyLevel::Public, &nodes, destination, g, &mut rng)
            .unwrap();
        sender.transport.send(out.first_hop, out.packet).unwrap();
    }
    // A real message after the garbage still arrives.
    net.planes[0]
        .send(
            *target.as_bytes(),
            PrivacyLevel::Public,
            b"after".to_vec(),
            0,
        )
        .await
        .unwrap();
    let got = next(&mut net.inboxes[1]).await;
    assert_eq!(got.body, b"after");
    // The garbage may still be in the other worker: wait for the count.
    let deadline = Instant::now() + PATIENCE;
    while net.planes[1].stats().dropped_malformed < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let s = net.planes[1].stats();
    assert_eq!(s.dropped_malformed, sent);
    assert_eq!(s.messages_received, 1);
    for p in net.planes {
        p.shutdown().await;
    }
}
