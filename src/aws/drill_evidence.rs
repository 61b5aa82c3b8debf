//! DynamoDB drill evidence (`DRILL_TABLE`, CONTRACT section 7): partition key `drill`, sort key
//! `startedAt`, no TTL. An item holds its keys, `requestId` and `verdict` as attributes of
//! their own, and the whole record as JSON in `record`. A put is conditional on the key being
//! free, so a retried put never changes what was written.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;

use crate::deadline::bounded;
use crate::drill::EvidenceRecord;
use crate::ports::{DependencyError, DrillEvidence, MAX_DRILL_PAGE};

const SERVICE: &str = "DynamoDB";

pub struct DynamoDrillEvidence {
    client: Client,
    table: String,
}

impl DynamoDrillEvidence {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> DynamoDrillEvidence {
        DynamoDrillEvidence {
            client: Client::new(config),
            table,
        }
    }

    fn error<E, R>(&self, doing: &str, error: &SdkError<E, R>) -> DependencyError
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
        R: std::fmt::Debug,
    {
        super::table_error(&self.table, "DRILL_TABLE", doing, error)
    }

    /// The request id of the record stored under the key of `record`, if any.
    async fn stored_request_id(
        &self,
        record: &EvidenceRecord,
    ) -> Result<Option<String>, DependencyError> {
        let answer = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("drill", AttributeValue::S(record.drill.clone()))
            .key("startedAt", AttributeValue::S(record.started_at.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error("reading a drill's evidence", &e))?;
        Ok(answer
            .item
            .and_then(|item| item.get("requestId")?.as_s().ok().cloned()))
    }

    async fn put_record(&self, record: &EvidenceRecord) -> Result<bool, DependencyError> {
        let json = serde_json::to_string(record).map_err(|e| {
            DependencyError::new(
                SERVICE,
                format!("the evidence record did not serialise: {e}"),
            )
        })?;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("drill", AttributeValue::S(record.drill.clone()))
            .item("startedAt", AttributeValue::S(record.started_at.clone()))
            .item("verdict", AttributeValue::S(record.verdict.to_string()))
            .item("record", AttributeValue::S(json))
            .condition_expression("attribute_not_exists(drill)");
        if let Some(id) = &record.request_id {
            put = put.item("requestId", AttributeValue::S(id.clone()));
        }
        match put.send().await {
            Ok(_) => Ok(true),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                // Written before (a retry), or another request's under the same key.
                Ok(self.stored_request_id(record).await? == record.request_id)
            }
            Err(error) => Err(self.error("writing a drill's evidence", &error)),
        }
    }

    async fn query(
        &self,
        drill: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EvidenceRecord>, DependencyError> {
        let limit = limit.clamp(1, MAX_DRILL_PAGE);
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_names("#d", "drill")
            .expression_attribute_values(":d", AttributeValue::S(drill.to_owned()))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(100));
        query = match before {
            Some(before) => query
                .key_condition_expression("#d = :d AND #s < :before")
                .expression_attribute_names("#s", "startedAt")
                .expression_attribute_values(":before", AttributeValue::S(before.to_owned())),
            None => query.key_condition_expression("#d = :d"),
        };
        let answer = query
            .send()
            .await
            .map_err(|e| self.error("reading a drill's evidence", &e))?;
        answer
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                let text = item
                    .get("record")
                    .and_then(|v| v.as_s().ok())
                    .ok_or_else(|| {
                        DependencyError::new(
                            SERVICE,
                            "a drill evidence item has no record attribute",
                        )
                    })?;
                serde_json::from_str(text).map_err(|e| {
                    DependencyError::new(
                        SERVICE,
                        format!("a drill evidence record does not read: {e}"),
                    )
                })
            })
            .collect()
    }
}

impl DrillEvidence for DynamoDrillEvidence {
    async fn put(&self, record: &EvidenceRecord) -> Result<bool, DependencyError> {
        bounded(SERVICE, self.put_record(record)).await
    }

    async fn list(
        &self,
        drill: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EvidenceRecord>, DependencyError> {
        bounded(SERVICE, self.query(drill, before, limit)).await
    }
}
