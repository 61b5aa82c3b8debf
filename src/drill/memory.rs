//! Drill evidence in memory, for tests and fakes: the same rules as the DynamoDB table (the
//! first write of a key stays; newest first; `before` pages back).

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::EvidenceRecord;
use crate::ports::{DependencyError, DrillEvidence, MAX_DRILL_PAGE};

/// Records by (drill, startedAt).
#[derive(Default)]
pub struct MemoryDrillEvidence {
    records: Mutex<BTreeMap<(String, String), EvidenceRecord>>,
}

impl MemoryDrillEvidence {
    /// Every record, oldest first (for assertions).
    pub fn all(&self) -> Vec<EvidenceRecord> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), EvidenceRecord>> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl DrillEvidence for MemoryDrillEvidence {
    async fn put(&self, record: &EvidenceRecord) -> Result<bool, DependencyError> {
        let key = (record.drill.clone(), record.started_at.clone());
        let mut records = self.lock();
        match records.get(&key) {
            Some(existing) => Ok(existing.request_id == record.request_id),
            None => {
                records.insert(key, record.clone());
                Ok(true)
            }
        }
    }

    async fn list(
        &self,
        drill: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EvidenceRecord>, DependencyError> {
        Ok(self
            .lock()
            .iter()
            .rev()
            .filter(|((name, started), _)| {
                name == drill && before.is_none_or(|b| started.as_str() < b)
            })
            .take(limit.min(MAX_DRILL_PAGE))
            .map(|(_, record)| record.clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::Verdict;
    use crate::drill::tests::record;

    #[tokio::test]
    async fn the_first_write_stays_and_pages_run_newest_first() {
        let store = MemoryDrillEvidence::default();
        let first = record(Verdict::Passed, "2026-12-01T10:00:00Z", Some(60), Some(60));
        assert!(store.put(&first).await.unwrap());
        let mut changed = first.clone();
        changed.rto_seconds = Some(999);
        assert!(
            store.put(&changed).await.unwrap(),
            "the same request: already written"
        );
        assert_eq!(store.all(), vec![first.clone()], "the first write stays");
        let mut other = first.clone();
        other.request_id = Some("another".into());
        assert!(!store.put(&other).await.unwrap());

        for day in 2..=4 {
            let at = format!("2026-12-0{day}T10:00:00Z");
            store
                .put(&record(Verdict::Broken, &at, None, None))
                .await
                .unwrap();
        }
        let mut renamed = first.clone();
        renamed.drill = "other-drill".into();
        store.put(&renamed).await.unwrap();
        let page = store.list("orders-monthly", None, 2).await.unwrap();
        let keys: Vec<&str> = page.iter().map(|r| r.started_at.as_str()).collect();
        assert_eq!(
            keys,
            ["2026-12-04T10:00:00.000000Z", "2026-12-03T10:00:00.000000Z"]
        );
        let back = store
            .list("orders-monthly", Some(keys[1]), 100)
            .await
            .unwrap();
        let keys: Vec<&str> = back.iter().map(|r| r.started_at.as_str()).collect();
        assert_eq!(
            keys,
            ["2026-12-02T10:00:00.000000Z", "2026-12-01T10:00:00.000000Z"]
        );
    }
}
