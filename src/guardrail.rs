//! The guardrail of CONTRACT section 2, beside the pure rules it applies (`policy.rs`): a
//! destructive restore onto a protected cluster is accepted only from a verified, approved
//! webhook, so every other trigger asks here first. A target given by id is named through
//! Atlas first; one that cannot be named is refused.

use tokio::time::Instant;

use crate::atlas_api::AtlasError;
use crate::command::{ObjectId, RestoreCommand};
use crate::outcome::Problem;
use crate::policy::{
    ProtectedCluster, TargetName, destructive_target, is_protected, protected_target_problem,
    unresolved_target_problem,
};
use crate::ports::{Atlas, DependencyError};

/// The problem with `command`'s target, if it is protected (`PROTECTED_CLUSTERS`). `Err` is a
/// dependency failure (the Atlas credentials could not be read).
pub async fn check_protected_target(
    atlas: &impl Atlas,
    command: &RestoreCommand,
    protected: &[ProtectedCluster],
    deadline: Instant,
) -> Result<Option<Problem>, DependencyError> {
    if protected.is_empty() {
        return Ok(None);
    }
    let Some((group_id, cluster)) = destructive_target(command) else {
        return Ok(None);
    };
    let name = match cluster {
        TargetName::Name(name) => name.to_owned(),
        TargetName::Id(id) => {
            atlas.load_credentials().await?;
            let group =
                ObjectId::parse(group_id).unwrap_or_else(|| command.source.group_id.clone());
            let listed = match atlas.list_clusters(&group, deadline).await {
                Err(AtlasError::NoCredentials(error)) => return Err(error),
                listed => listed,
            };
            let found =
                listed.map(|clusters| clusters.into_iter().find(|c| c.id.eq_ignore_ascii_case(id)));
            match found {
                Ok(Some(cluster)) => cluster.name,
                Ok(None) => {
                    let why = "no such cluster in the project";
                    return Ok(Some(unresolved_target_problem(group_id, id, why)));
                }
                Err(error) => {
                    let why = error.to_string();
                    return Ok(Some(unresolved_target_problem(group_id, id, &why)));
                }
            }
        }
    };
    Ok(is_protected(protected, group_id, &name).then(|| protected_target_problem(group_id, &name)))
}
