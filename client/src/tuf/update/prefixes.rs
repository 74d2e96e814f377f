//! [`Prefixes`]: a role's target path prefixes, as Notary checks and restricts them.

/// A role's target path prefixes, checked as Notary's `checkPaths` does (plain string
/// prefixes; `""` allows everything) in O(log n) per name rather than against every prefix:
/// sorted, with every path that another one starts dropped.
#[derive(Clone, Debug)]
pub(super) struct Prefixes(Vec<String>);

impl Prefixes {
    pub(super) fn new(paths: &[String]) -> Self {
        let mut sorted: Vec<&String> = paths.iter().collect();
        sorted.sort_unstable();
        let mut kept: Vec<String> = Vec::with_capacity(sorted.len());
        for path in sorted {
            // Everything between a prefix and a path it starts also starts with it.
            if kept.last().is_none_or(|k| !path.starts_with(k.as_str())) {
                kept.push(path.clone());
            }
        }
        Self(kept)
    }

    /// Whether one of the prefixes starts `target`.
    pub(super) fn allows(&self, target: &str) -> bool {
        // No kept path starts another, so only the greatest one not above `target` can.
        let above = self.0.partition_point(|p| p.as_str() <= target);
        above > 0 && target.starts_with(self.0[above - 1].as_str())
    }

    /// Notary's `RestrictDelegationPathPrefixes`: the child's paths that one of these starts,
    /// in the child's order.
    pub(super) fn restrict(&self, child: &[String]) -> Vec<String> {
        child.iter().filter(|c| self.allows(c)).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn allows(paths: &[&str], target: &str) -> bool {
        Prefixes::new(&strings(paths)).allows(target)
    }

    #[test]
    fn paths_are_plain_prefixes() {
        assert!(allows(&[""], "v1"));
        assert!(allows(&["lib/", "app/"], "app/v1"));
        assert!(!allows(&["app/"], "app"));
        assert!(!allows(&[], "v1"));
        assert!(allows(&["a", "ab0", "zz"], "abc"));
        assert!(allows(&["app/x", "app/", "b"], "app/y"));
        assert!(!allows(&["app/x", "app/y", "b"], "app/z"));
        assert!(allows(&["app/x", "app/y", "b"], "app/yes"));
        // Byte order, not character order, as Go compares.
        assert!(allows(&["é", "e"], "ée"));
        assert!(!allows(&["é"], "e"));
    }

    #[test]
    fn prefix_checks_agree_with_a_plain_scan() {
        let paths = strings(&["", "a", "ab", "abc", "b/", "b/c", "ba", "c", "cd/e"]);
        let targets = [
            "", "a", "aa", "abd", "b", "b/", "b/cc", "bb", "c/", "cd/", "cd/ef", "d",
        ];
        for n in 0..(1 << paths.len()) {
            let subset: Vec<String> = (0..paths.len())
                .filter(|i| n & (1 << i) != 0)
                .map(|i| paths[i].clone())
                .collect();
            let set = Prefixes::new(&subset);
            for t in targets {
                let scan = subset.iter().any(|p| t.starts_with(p.as_str()));
                assert_eq!(set.allows(t), scan, "{subset:?} {t:?}");
            }
        }
    }

    #[test]
    fn child_paths_are_restricted_to_the_parent() {
        let restrict = |parent: &[&str], child: &[&str]| {
            Prefixes::new(&strings(parent)).restrict(&strings(child))
        };
        assert_eq!(
            restrict(&["app/"], &["app/x", "lib/", "app/"]),
            strings(&["app/x", "app/"])
        );
        assert_eq!(restrict(&[""], &["a"]), strings(&["a"]));
        assert!(restrict(&["a"], &[]).is_empty());
    }
}
