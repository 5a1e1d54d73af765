//! The mark: which manifests (per repository) and blobs (globally) are live.

use std::collections::HashSet;
use std::io;

use super::Run;
use crate::oci::Digest;

impl Run<'_> {
    /// Phase 2. Roots: tag targets; every revision unless untagged ones are
    /// garbage (or retention took it); every revision written after the
    /// cutoff. Then the closure over index children and referrers.
    pub(super) fn mark(&mut self) -> io::Result<()> {
        for repo in &mut self.repos {
            self.report.manifests_scanned += repo.revisions.len();
            let mut stack: Vec<Digest> =
                repo.tags.iter().filter_map(|t| t.target.clone()).collect();
            for (d, written) in &repo.revisions {
                let untagged_is_garbage = self.opts.delete_untagged || repo.retired.contains(d);
                if !untagged_is_garbage || *written >= self.cutoff {
                    stack.push(d.clone());
                }
            }
            let mut live: HashSet<Digest> = HashSet::new();
            loop {
                while let Some(d) = stack.pop() {
                    if !live.insert(d.clone()) {
                        continue;
                    }
                    let refs = self.manifests.get(&d)?;
                    self.live_blobs.insert(d);
                    self.live_blobs.extend(refs.blobs.iter().cloned());
                    stack.extend(refs.manifests.iter().cloned());
                }
                // Referrers of live manifests are live: by Berth's index, or by
                // their own `subject` field (data written by other registries).
                for (subject, referrer) in &repo.referrer_links {
                    if live.contains(subject) && !live.contains(referrer) {
                        stack.push(referrer.clone());
                    }
                }
                for (d, _) in &repo.revisions {
                    if !live.contains(d) {
                        if let Some(s) = &self.manifests.get(d)?.subject {
                            if live.contains(s) {
                                stack.push(d.clone());
                            }
                        }
                    }
                }
                if stack.is_empty() {
                    break;
                }
            }
            repo.live = live;
        }
        Ok(())
    }
}
