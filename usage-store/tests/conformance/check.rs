//! A failure collector: a test checks everything it can and then fails once, listing every
//! mismatch, so one run tells the backend author all that is wrong, not just the first thing.

use std::collections::BTreeSet;
use std::fmt::{Debug, Display};

use usage_core::event::UsageEvent;

use usage_core::query::Totals;
use usage_core::query::engine::RollupDifference;

/// Collects mismatches; [`Check::finish`] panics if there were any.
pub struct Check {
    what: String,
    failures: Vec<String>,
    checks: usize,
}

impl Check {
    /// A collector for the test `what` on `backend`.
    pub fn new(backend: &str, what: &str) -> Self {
        Check {
            what: format!("[{backend}] {what}"),
            failures: Vec::new(),
            checks: 0,
        }
    }

    /// `actual == expected`.
    pub fn eq<T: PartialEq + Debug>(&mut self, label: impl Display, actual: T, expected: T) {
        self.checks += 1;
        if actual != expected {
            self.failures.push(format!(
                "{label}:\n      actual:   {actual:?}\n      expected: {expected:?}"
            ));
        }
    }

    /// Two totals equal, reporting only the fields that differ.
    pub fn totals(&mut self, label: impl Display, actual: &Totals, expected: &Totals) {
        self.checks += 1;
        if actual != expected {
            self.failures.push(format!(
                "{label}: totals differ: {}",
                totals_diff(actual, expected)
            ));
        }
    }

    /// Two event lists equal, reporting the count and the first differing pair.
    pub fn events(&mut self, label: impl Display, actual: &[UsageEvent], expected: &[UsageEvent]) {
        self.checks += 1;
        if actual.len() != expected.len() {
            let a: BTreeSet<&str> = actual.iter().map(|e| e.id.as_str()).collect();
            let b: BTreeSet<&str> = expected.iter().map(|e| e.id.as_str()).collect();
            let extra: Vec<_> = a.difference(&b).take(5).collect();
            let missing: Vec<_> = b.difference(&a).take(5).collect();
            self.failures.push(format!(
                "{label}: {} events, expected {} (unexpected ids e.g. {extra:?}, missing e.g. {missing:?})",
                actual.len(),
                expected.len()
            ));
            return;
        }
        if let Some((a, b)) = actual.iter().zip(expected).find(|(a, b)| a != b) {
            self.failures.push(format!(
                "{label}: first differing event:\n      actual:   {a:?}\n      expected: {b:?}"
            ));
        }
    }

    /// `verify_rollups` found nothing; otherwise the first differing cells.
    pub fn verified(
        &mut self,
        label: impl Display,
        diffs: usage_core::Result<Vec<RollupDifference>>,
    ) {
        self.checks += 1;
        match diffs {
            Ok(d) if d.is_empty() => {}
            Ok(d) => {
                let first: Vec<String> = d
                    .iter()
                    .take(3)
                    .map(|x| {
                        format!(
                            "{} hour {:?} group {:?}: raw {} requests, rollup {}",
                            x.rollup, x.hour, x.group, x.raw.requests, x.rollup_totals.requests
                        )
                    })
                    .collect();
                self.failures.push(format!(
                    "{label}: verify_rollups found {} differing cells, e.g. {first:?}",
                    d.len()
                ));
            }
            Err(e) => self
                .failures
                .push(format!("{label}: verify_rollups failed: {e}")),
        }
    }

    /// A condition.
    pub fn that(&mut self, label: impl Display, ok: bool) {
        self.checks += 1;
        if !ok {
            self.failures.push(label.to_string());
        }
    }

    /// Records a failure outright.
    pub fn fail(&mut self, label: impl Display) {
        self.checks += 1;
        self.failures.push(label.to_string());
    }

    /// Every failure (the first 40 in full), or `None` when all passed.
    pub fn message(&self) -> Option<String> {
        if self.failures.is_empty() {
            return None;
        }
        let mut msg = format!(
            "{}: {} of {} checks failed\n",
            self.what,
            self.failures.len(),
            self.checks
        );
        for f in self.failures.iter().take(40) {
            msg.push_str("  - ");
            msg.push_str(f);
            msg.push('\n');
        }
        if self.failures.len() > 40 {
            msg.push_str(&format!("  … and {} more\n", self.failures.len() - 40));
        }
        Some(msg)
    }

    /// Panics with every failure.
    pub fn finish(self) {
        assert!(self.checks > 0, "{}: nothing was checked", self.what);
        if let Some(msg) = self.message() {
            panic!("{msg}");
        }
    }
}

/// `field: actual vs expected` for each differing field.
pub fn totals_diff(a: &Totals, b: &Totals) -> String {
    let (ja, jb) = (
        serde_json::to_value(a).unwrap_or_default(),
        serde_json::to_value(b).unwrap_or_default(),
    );
    let mut out = Vec::new();
    if let (Some(ma), Some(mb)) = (ja.as_object(), jb.as_object()) {
        for (k, va) in ma {
            let vb = &mb[k];
            if va != vb {
                out.push(format!("{k}: {va} vs expected {vb}"));
            }
        }
    }
    out.join(", ")
}
