//! The hash state of each upload in memory, so an append hashes only its
//! own bytes; evicted by age, per upload, when there are too many.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::UploadState;

/// Upload sessions whose hash state is kept in memory; beyond this, the
/// least recently used idle state is dropped (rebuilt from disk if needed).
pub(super) const MAX_CACHED_UPLOADS: usize = 4096;

/// One upload's hash state, behind its own lock (which also serialises the
/// requests of one session), and when it was last used.
pub(super) struct Cached {
    state: Arc<tokio::sync::Mutex<UploadState>>,
    used: Instant,
}

/// Hash states by upload id.
#[derive(Default)]
pub(in crate::storage::fs) struct HashStates(pub(super) Mutex<HashMap<String, Cached>>);

impl HashStates {
    pub(super) fn lock(&self, id: &str) -> Arc<tokio::sync::Mutex<UploadState>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if let Some(c) = map.get_mut(id) {
            c.used = now;
            return c.state.clone();
        }
        if map.len() >= MAX_CACHED_UPLOADS {
            // Evict by age, one at a time: the idle state unused the longest.
            let oldest = map
                .iter()
                .filter(|(_, c)| Arc::strong_count(&c.state) == 1)
                .min_by_key(|(_, c)| c.used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
        let state = Arc::new(tokio::sync::Mutex::new(None));
        map.insert(
            id.to_string(),
            Cached {
                state: state.clone(),
                used: now,
            },
        );
        state
    }

    pub(super) fn forget(&self, id: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(id);
    }

    #[cfg(test)]
    pub(super) fn cached(&self, id: &str) -> Option<u64> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let state = map.get(id)?.state.try_lock().ok()?;
        state.as_ref().map(|(n, _)| *n)
    }
}
