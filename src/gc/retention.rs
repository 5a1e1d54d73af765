//! Tag retention: rules that delete old tags before the mark, so what only
//! they reached becomes garbage in the same run.

use std::io;
use std::time::{Duration, SystemTime};

use regex::Regex;

use super::Run;
use crate::config::RetentionRule as RuleConfig;
use crate::oci::{Digest, RepoPattern};
use crate::storage::GcTag;

/// A retention rule, compiled.
#[derive(Debug, Clone)]
pub struct Retention {
    /// The repositories it applies to (the same globs as access rules).
    pub repositories: RepoPattern,
    pub keep_last: Option<usize>,
    pub keep_tags: Option<Regex>,
    pub delete_older_than: Option<Duration>,
}

impl Retention {
    pub fn from_config(rules: &[RuleConfig]) -> Result<Vec<Retention>, regex::Error> {
        rules
            .iter()
            .map(|r| {
                Ok(Retention {
                    repositories: RepoPattern::new(&r.repositories),
                    keep_last: r.keep_last,
                    keep_tags: r.keep_tags.as_deref().map(Regex::new).transpose()?,
                    delete_older_than: r.delete_older_than,
                })
            })
            .collect()
    }

    /// Tags of a repository this rule removes: not matching `keep_tags`, not
    /// among the `keep_last` most recently pushed, and (when set) pushed more
    /// than `delete_older_than` ago.
    pub fn select<'a>(&self, tags: &'a [GcTag], now: SystemTime) -> Vec<&'a GcTag> {
        let mut by_push: Vec<&GcTag> = tags.iter().filter(|t| t.target.is_some()).collect();
        by_push.sort_by(|a, b| b.pushed.cmp(&a.pushed).then_with(|| a.name.cmp(&b.name)));
        by_push
            .into_iter()
            .enumerate()
            .filter(|(rank, t)| {
                let kept_by_regex = self.keep_tags.as_ref().is_some_and(|r| r.is_match(&t.name));
                let kept_by_rank = self.keep_last.is_some_and(|n| *rank < n);
                let kept_by_age = self
                    .delete_older_than
                    .is_some_and(|max| now.duration_since(t.pushed).unwrap_or_default() <= max);
                !(kept_by_regex || kept_by_rank || kept_by_age)
            })
            .map(|(_, t)| t)
            .collect()
    }
}

impl Run<'_> {
    /// Phase 1: decide (and, unless dry, remove) the tags retention takes;
    /// they stop being roots. What a retired manifest takes with it (an
    /// index's children, the referrers of anything retired) is retired too;
    /// the mark still keeps whatever a remaining tag reaches.
    pub(super) fn apply_retention(&mut self) -> io::Result<()> {
        for repo in &mut self.repos {
            let Some(rule) = self
                .opts
                .retention
                .iter()
                .find(|r| r.repositories.matches(repo.name.as_str()))
            else {
                continue;
            };
            let doomed: Vec<GcTag> = rule
                .select(&repo.tags, self.now)
                .into_iter()
                .cloned()
                .collect();
            for tag in doomed {
                let name = &repo.name;
                if !self
                    .deleter
                    .delete_if(|store| store.gc_delete_tag(name, &tag))?
                {
                    continue; // re-pushed meanwhile
                }
                if let Some(t) = &tag.target {
                    repo.retired.insert(t.clone());
                }
                repo.report.tags_deleted.push(tag.name.clone());
                repo.tags.retain(|t| t.name != tag.name);
            }
            for t in &repo.tags {
                if let Some(d) = &t.target {
                    repo.retired.remove(d);
                }
            }
            let mut stack: Vec<Digest> = repo.retired.iter().cloned().collect();
            while let Some(d) = stack.pop() {
                let mut taken: Vec<Digest> = self.manifests.get(&d)?.manifests.clone();
                taken.extend(
                    repo.referrer_links
                        .iter()
                        .filter(|(subject, _)| *subject == d)
                        .map(|(_, referrer)| referrer.clone()),
                );
                for (r, _) in &repo.revisions {
                    if self.manifests.get(r)?.subject.as_ref() == Some(&d) {
                        taken.push(r.clone());
                    }
                }
                for t in taken {
                    if repo.retired.insert(t.clone()) {
                        stack.push(t);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(name: &str, age_s: u64, now: SystemTime) -> GcTag {
        GcTag {
            name: name.into(),
            target: Some(format!("sha256:{}", "c".repeat(64)).parse().unwrap()),
            pushed: now - Duration::from_secs(age_s),
            index: vec![],
        }
    }

    #[test]
    fn retention_selects() {
        let now = SystemTime::now();
        let tags = vec![
            tag("v1.0.0", 500, now),
            tag("a", 400, now),
            tag("b", 300, now),
            tag("c", 200, now),
            tag("d", 100, now),
        ];
        let rule = |keep_last, re: Option<&str>, older: Option<u64>| Retention {
            repositories: RepoPattern::new("**"),
            keep_last,
            keep_tags: re.map(|r| Regex::new(r).unwrap()),
            delete_older_than: older.map(Duration::from_secs),
        };
        let names = |r: Retention| -> Vec<String> {
            let mut v: Vec<String> = r
                .select(&tags, now)
                .iter()
                .map(|t| t.name.clone())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(rule(Some(2), None, None)), ["a", "b", "v1.0.0"]);
        assert_eq!(names(rule(Some(2), Some(r"^v\d"), None)), ["a", "b"]);
        assert_eq!(names(rule(None, None, Some(250))), ["a", "b", "v1.0.0"]);
        assert_eq!(names(rule(Some(4), None, Some(250))), ["v1.0.0"]);
    }
}
