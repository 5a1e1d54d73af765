use super::slots::RECHECK_EVERY;
use super::states::MAX_CACHED_UPLOADS;
use super::*;
use bytes::Bytes;
use futures_util::StreamExt;

fn body(parts: Vec<std::io::Result<Bytes>>) -> ByteStream {
    futures_util::stream::iter(parts).boxed()
}

fn chunk(b: &'static [u8]) -> ByteStream {
    body(vec![Ok(Bytes::from_static(b))])
}

#[tokio::test]
async fn a_refused_chunk_keeps_the_hash_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).unwrap();
    let repo: RepoName = "a/b".parse().unwrap();
    let id = store.start_upload(&repo).await.unwrap();
    assert_eq!(
        store
            .append_upload(&repo, &id, Some(0), chunk(b"abc"))
            .await
            .unwrap(),
        3
    );
    assert_eq!(store.hash_states.cached(&id), Some(3));
    let e = store.append_upload(&repo, &id, Some(7), chunk(b"zz")).await;
    assert!(
        matches!(e, Err(StoreError::UploadOffset { size: 3 })),
        "{e:?}"
    );
    assert_eq!(
        store.hash_states.cached(&id),
        Some(3),
        "a 416 dropped the state"
    );
    assert_eq!(
        store
            .append_upload(&repo, &id, Some(3), chunk(b"def"))
            .await
            .unwrap(),
        6
    );
    let d = Digest::of(Algorithm::Sha256, b"abcdef");
    assert_eq!(store.finish_upload(&repo, &id, &d, None).await.unwrap(), 6);
}

#[tokio::test]
async fn a_chunk_failing_midway_leaves_no_bytes_and_a_correct_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).unwrap();
    let repo: RepoName = "r".parse().unwrap();
    let id = store.start_upload(&repo).await.unwrap();
    store
        .append_upload(&repo, &id, None, chunk(b"abc"))
        .await
        .unwrap();
    let broken = body(vec![
        Ok(Bytes::from_static(b"xyz")),
        Err(std::io::Error::other("client went away")),
    ]);
    let e = store.append_upload(&repo, &id, None, broken).await;
    assert!(matches!(e, Err(StoreError::Body(_))), "{e:?}");
    assert_eq!(store.uploaded_size(&repo, &id).await.unwrap(), 3);
    assert_eq!(store.hash_states.cached(&id), Some(3));
    store
        .append_upload(&repo, &id, Some(3), chunk(b"def"))
        .await
        .unwrap();
    let d = Digest::of(Algorithm::Sha256, b"abcdef");
    assert_eq!(store.finish_upload(&repo, &id, &d, None).await.unwrap(), 6);
}

#[test]
fn states_are_evicted_oldest_first_and_only_when_idle() {
    let states = HashStates::default();
    let busy = states.lock("busy");
    for i in 0..MAX_CACHED_UPLOADS - 1 {
        drop(states.lock(&format!("u{i}")));
    }
    drop(states.lock("u0")); // used again: now the most recent
    drop(states.lock("new"));
    let map = states.0.lock().unwrap();
    assert_eq!(map.len(), MAX_CACHED_UPLOADS);
    assert!(map.contains_key("busy") && map.contains_key("u0") && map.contains_key("new"));
    assert!(!map.contains_key("u1"), "the oldest idle state goes first");
    drop(busy);
}

#[tokio::test]
async fn sessions_are_bounded_and_finish_cancel_and_purge_free_slots() {
    let dir = tempfile::tempdir().unwrap();
    let leftover = {
        let store = FsStore::open(dir.path()).unwrap();
        store.start_upload(&"a".parse().unwrap()).await.unwrap()
    };
    let store = FsStore::open(dir.path()).unwrap();
    // What a server does in the background at start-up.
    store.open_uploads.count_on_disk(&store.disk.layout);
    store.limit_uploads(4, 2);
    let (a, b): (RepoName, RepoName) = ("a".parse().unwrap(), "b".parse().unwrap());
    let a2 = store.start_upload(&a).await.unwrap(); // with the leftover: 2 in a
    let e = store.start_upload(&a).await;
    assert!(
        matches!(&e, Err(StoreError::TooManyUploads { repository: Some(r), limit: 2 }) if r == "a"),
        "{e:?}"
    );
    store.cancel_upload(&a, &a2).await.unwrap();
    let a3 = store.start_upload(&a).await.unwrap();
    let b1 = store.start_upload(&b).await.unwrap();
    store.start_upload(&b).await.unwrap();
    let e = store.start_upload(&b).await;
    assert!(
        matches!(&e, Err(StoreError::TooManyUploads { .. })),
        "{e:?}"
    );
    // Finishing frees a slot.
    let d = Digest::of(Algorithm::Sha256, b"x");
    store
        .finish_upload(&b, &b1, &d, Some(chunk(b"x")))
        .await
        .unwrap();
    store.start_upload(&b).await.unwrap();
    // A session removed behind the store's back (a purge) frees its slot.
    let e = store.start_upload(&a).await;
    assert!(
        matches!(&e, Err(StoreError::TooManyUploads { .. })),
        "{e:?}"
    );
    remove_tree(&store.disk.layout.upload(&a, &leftover)).unwrap();
    std::thread::sleep(RECHECK_EVERY);
    store.start_upload(&a).await.unwrap();
    let _ = a3;
}

#[tokio::test]
async fn at_the_limit_a_long_idle_session_is_reclaimed_for_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).unwrap();
    store.limit_uploads(10, 2);
    let a: RepoName = "a".parse().unwrap();
    let idle = store.start_upload(&a).await.unwrap();
    let busy = store.start_upload(&a).await.unwrap();
    assert!(matches!(
        store.start_upload(&a).await,
        Err(StoreError::TooManyUploads { .. })
    ));
    // Two hours without a byte: abandoned.
    let then = std::time::SystemTime::now() - 2 * RECLAIM_IDLE;
    let layout = &store.disk.layout;
    for p in [layout.upload_data(&a, &idle), layout.upload(&a, &idle)] {
        std::fs::File::open(&p).unwrap().set_modified(then).unwrap();
    }
    std::thread::sleep(RECHECK_EVERY);
    store.start_upload(&a).await.unwrap();
    assert!(
        !layout.upload(&a, &idle).exists(),
        "the idle session is gone"
    );
    assert!(layout.upload(&a, &busy).exists(), "a recent session stays");
}
