//! Typed access to berth's resources in the store: the key layout and JSON encoding.
//!
//! Key layout (every value is the resource's JSON):
//! - `/clusters/<name>`
//! - `/taskdefs/<family>/<revision, 10 digits>`
//! - `/services/<cluster>/<name>`
//! - `/tasks/<cluster>/<task id>`
//! - `/instances/<cluster>/<instance id>`
//! - `/targetgroups/<name>`
//! - `/targets/<target group name>/<ip:port>`
//! - `/loadbalancers/<name>`
//! - `/namespaces/<name>` (Cloud Map namespaces)
//! - `/scalabletargets/<cluster>/<service>`
//! - `/scalingpolicies/<cluster>/<service>/<policy name>`
//! - `/scheduledactions/<cluster>/<service>/<action name>`
//! - `/scalingactivities/<cluster>/<service>/<activity id>` (ids sort by time; the newest
//!   [`MAX_ACTIVITIES_PER_SERVICE`] per service are kept)

use berth_model::autoscaling::activity::MAX_ACTIVITIES_PER_SERVICE;
use berth_model::autoscaling::{ScalableTarget, ScalingActivity, ScalingPolicy, ScheduledAction};
use berth_model::ecs::{Cluster, ContainerInstance, Service, Task, TaskDefinition};
use berth_model::elb::{LoadBalancer, Target, TargetGroup};
use berth_model::servicediscovery::Namespace;
use berth_store::{DynStore, Entry, Expect, Op, Revision, StoreError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ControlError;

pub fn cluster_key(name: &str) -> String {
    format!("/clusters/{name}")
}
pub fn taskdef_prefix(family: &str) -> String {
    format!("/taskdefs/{family}/")
}
pub fn taskdef_key(family: &str, revision: u32) -> String {
    format!("/taskdefs/{family}/{revision:010}")
}
pub fn service_prefix(cluster: &str) -> String {
    format!("/services/{cluster}/")
}
pub fn service_key(cluster: &str, name: &str) -> String {
    format!("/services/{cluster}/{name}")
}
pub fn task_prefix(cluster: &str) -> String {
    format!("/tasks/{cluster}/")
}
pub fn task_key(cluster: &str, id: &str) -> String {
    format!("/tasks/{cluster}/{id}")
}
pub fn instance_key(cluster: &str, id: &str) -> String {
    format!("/instances/{cluster}/{id}")
}
pub fn target_group_key(name: &str) -> String {
    format!("/targetgroups/{name}")
}
pub fn target_prefix(tg: &str) -> String {
    format!("/targets/{tg}/")
}
pub fn target_key(tg: &str, endpoint: &str) -> String {
    format!("/targets/{tg}/{endpoint}")
}
pub fn namespace_key(name: &str) -> String {
    format!("/namespaces/{name}")
}
pub fn load_balancer_key(name: &str) -> String {
    format!("/loadbalancers/{name}")
}
pub fn scalable_target_key(cluster: &str, service: &str) -> String {
    format!("/scalabletargets/{cluster}/{service}")
}
pub fn scaling_policy_prefix(cluster: &str, service: &str) -> String {
    format!("/scalingpolicies/{cluster}/{service}/")
}
pub fn scaling_policy_key(cluster: &str, service: &str, name: &str) -> String {
    format!("/scalingpolicies/{cluster}/{service}/{name}")
}
pub fn scheduled_action_prefix(cluster: &str, service: &str) -> String {
    format!("/scheduledactions/{cluster}/{service}/")
}
pub fn scheduled_action_key(cluster: &str, service: &str, name: &str) -> String {
    format!("/scheduledactions/{cluster}/{service}/{name}")
}
pub fn scaling_activity_prefix(cluster: &str, service: &str) -> String {
    format!("/scalingactivities/{cluster}/{service}/")
}
pub fn scaling_activity_key(cluster: &str, service: &str, activity_id: &str) -> String {
    format!("/scalingactivities/{cluster}/{service}/{activity_id}")
}

/// The operations that write `activity` under its id (guarded by `expect`) and delete the
/// service's oldest activities beyond [`MAX_ACTIVITIES_PER_SERVICE`]; `stored` are the
/// keys of the activities the service has now. Activity ids sort by time, so the oldest
/// are the smallest keys; an activity that would itself be among the surplus is not
/// written.
pub fn scaling_activity_ops(
    cluster: &str,
    service: &str,
    stored: impl IntoIterator<Item = String>,
    activity: &ScalingActivity,
    expect: Option<Expect>,
) -> Vec<Op> {
    let key = scaling_activity_key(cluster, service, &activity.activity_id);
    let mut keys: Vec<String> = stored.into_iter().filter(|k| *k != key).collect();
    keys.push(key.clone());
    keys.sort();
    let surplus = keys.len().saturating_sub(MAX_ACTIVITIES_PER_SERVICE);
    let mut ops: Vec<Op> = keys[..surplus]
        .iter()
        .filter(|k| **k != key)
        .map(|k| Op::Delete {
            key: k.clone(),
            expect: None,
        })
        .collect();
    if keys[surplus..].contains(&key) {
        ops.push(Op::Put {
            key,
            value: encode(activity),
            expect,
        });
    }
    ops
}

/// A new scaling activity id: UUID-shaped, its first 48 bits the milliseconds of `at`
/// (as in a version 7 UUID), so ids and the keys holding them sort by time.
pub fn new_activity_id(at: berth_model::time::Timestamp) -> String {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    let ms = (at.max(0.0) * 1000.0) as u64;
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6] = (bytes[6] & 0x0f) | 0x70;
    uuid::Uuid::from_bytes(bytes).hyphenated().to_string()
}

/// `/<kind>/` or `/<kind>/<cluster>/` or `/<kind>/<cluster>/<service>/`.
fn scoped_prefix(kind: &str, cluster: Option<&str>, service: Option<&str>) -> String {
    match (cluster, service) {
        (Some(c), Some(s)) => format!("/{kind}/{c}/{s}/"),
        (Some(c), None) => format!("/{kind}/{c}/"),
        _ => format!("/{kind}/"),
    }
}

/// A value read from the store with the revision to compare against when writing it back.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub value: T,
    pub key: String,
    pub mod_revision: Revision,
}

/// The typed view of the store the control plane and agent share.
#[derive(Clone)]
pub struct Db {
    pub store: DynStore,
}

fn decode<T: DeserializeOwned>(e: &Entry) -> Result<T, ControlError> {
    serde_json::from_slice(&e.value).map_err(|err| ControlError::Decode {
        key: e.key.clone(),
        message: err.to_string(),
    })
}

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("resources always serialize")
}

impl Db {
    pub fn new(store: DynStore) -> Self {
        Self { store }
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<Versioned<T>>, ControlError> {
        match self.store.get(key).await? {
            Some(e) => Ok(Some(Versioned {
                value: decode(&e)?,
                key: e.key,
                mod_revision: e.mod_revision,
            })),
            None => Ok(None),
        }
    }

    pub async fn list<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<Versioned<T>>, ControlError> {
        let mut out = Vec::new();
        for e in self.store.list(prefix).await? {
            out.push(Versioned {
                value: decode(&e)?,
                key: e.key.clone(),
                mod_revision: e.mod_revision,
            });
        }
        Ok(out)
    }

    pub async fn list_values<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<T>, ControlError> {
        Ok(self
            .list(prefix)
            .await?
            .into_iter()
            .map(|v| v.value)
            .collect())
    }

    pub async fn put<T: Serialize>(&self, key: &str, v: &T) -> Result<Revision, ControlError> {
        Ok(self.store.put(key, encode(v)).await?)
    }

    /// Writes `v` back only if nobody changed the key since it was read.
    pub async fn put_if<T: Serialize>(
        &self,
        old: &Versioned<T>,
        v: &T,
    ) -> Result<Revision, StoreError> {
        self.store
            .compare_and_put(&old.key, Expect::ModRevision(old.mod_revision), encode(v))
            .await
    }

    /// Creates `key` only if it does not exist.
    pub async fn create<T: Serialize>(&self, key: &str, v: &T) -> Result<Revision, StoreError> {
        self.store
            .compare_and_put(key, Expect::Absent, encode(v))
            .await
    }

    pub async fn batch(&self, ops: Vec<Op>) -> Result<Revision, ControlError> {
        Ok(self.store.batch(ops).await?)
    }

    /// Read-modify-write with retries on conflict. `f` returns false to write nothing.
    /// Returns the value as written (or as found, when `f` declined), or None if absent.
    pub async fn update<T, F>(&self, key: &str, mut f: F) -> Result<Option<T>, ControlError>
    where
        T: Serialize + DeserializeOwned + Clone,
        F: FnMut(&mut T) -> bool,
    {
        for _ in 0..64 {
            let Some(cur) = self.get::<T>(key).await? else {
                return Ok(None);
            };
            let mut next = cur.value.clone();
            if !f(&mut next) {
                return Ok(Some(cur.value));
            }
            match self.put_if(&cur, &next).await {
                Ok(_) => return Ok(Some(next)),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ControlError::Contended {
            key: key.to_string(),
        })
    }

    // ---- typed helpers ----

    pub async fn clusters(&self) -> Result<Vec<Cluster>, ControlError> {
        self.list_values("/clusters/").await
    }

    pub async fn namespaces(&self) -> Result<Vec<Namespace>, ControlError> {
        self.list_values("/namespaces/").await
    }

    pub async fn cluster(&self, name: &str) -> Result<Option<Cluster>, ControlError> {
        Ok(self.get(&cluster_key(name)).await?.map(|v| v.value))
    }

    /// Every revision of `family`, oldest first.
    pub async fn task_definitions(
        &self,
        family: &str,
    ) -> Result<Vec<TaskDefinition>, ControlError> {
        self.list_values(&taskdef_prefix(family)).await
    }

    pub async fn all_task_definitions(&self) -> Result<Vec<TaskDefinition>, ControlError> {
        self.list_values("/taskdefs/").await
    }

    /// Resolves `family`, `family:revision` or an ARN to a registered task definition;
    /// a bare family means its latest ACTIVE revision.
    pub async fn resolve_task_definition(
        &self,
        s: &str,
    ) -> Result<Option<TaskDefinition>, ControlError> {
        let Some((family, rev)) = berth_model::arn::parse_family_revision(s) else {
            return Ok(None);
        };
        match rev {
            Some(r) => Ok(self.get(&taskdef_key(family, r)).await?.map(|v| v.value)),
            None => Ok(self
                .task_definitions(family)
                .await?
                .into_iter()
                .rev()
                .find(|t| t.status == "ACTIVE")),
        }
    }

    pub async fn services(
        &self,
        cluster: Option<&str>,
    ) -> Result<Vec<Versioned<Service>>, ControlError> {
        match cluster {
            Some(c) => self.list(&service_prefix(c)).await,
            None => self.list("/services/").await,
        }
    }

    pub async fn tasks(&self, cluster: Option<&str>) -> Result<Vec<Versioned<Task>>, ControlError> {
        match cluster {
            Some(c) => self.list(&task_prefix(c)).await,
            None => self.list("/tasks/").await,
        }
    }

    pub async fn instances(
        &self,
        cluster: Option<&str>,
    ) -> Result<Vec<ContainerInstance>, ControlError> {
        match cluster {
            Some(c) => self.list_values(&format!("/instances/{c}/")).await,
            None => self.list_values("/instances/").await,
        }
    }

    pub async fn target_groups(&self) -> Result<Vec<TargetGroup>, ControlError> {
        self.list_values("/targetgroups/").await
    }

    pub async fn target_group(&self, name: &str) -> Result<Option<TargetGroup>, ControlError> {
        Ok(self.get(&target_group_key(name)).await?.map(|v| v.value))
    }

    /// Finds a target group by name or ARN.
    pub async fn target_group_by_ref(&self, r: &str) -> Result<Option<TargetGroup>, ControlError> {
        let name = berth_model::arn::last_segment(r);
        Ok(self
            .target_group(name)
            .await?
            .filter(|t| !r.starts_with("arn:") || t.target_group_arn == r))
    }

    pub async fn targets(&self, tg: Option<&str>) -> Result<Vec<Versioned<Target>>, ControlError> {
        match tg {
            Some(t) => self.list(&target_prefix(t)).await,
            None => self.list("/targets/").await,
        }
    }

    pub async fn load_balancers(&self) -> Result<Vec<LoadBalancer>, ControlError> {
        self.list_values("/loadbalancers/").await
    }

    // ---- autoscaling ----

    /// Scalable targets, of one cluster or all.
    pub async fn scalable_targets(
        &self,
        cluster: Option<&str>,
    ) -> Result<Vec<Versioned<ScalableTarget>>, ControlError> {
        self.list(&scoped_prefix("scalabletargets", cluster, None))
            .await
    }

    pub async fn scalable_target(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Option<Versioned<ScalableTarget>>, ControlError> {
        self.get(&scalable_target_key(cluster, service)).await
    }

    /// Scaling policies of one service (cluster and service given), one cluster, or all.
    pub async fn scaling_policies(
        &self,
        cluster: Option<&str>,
        service: Option<&str>,
    ) -> Result<Vec<Versioned<ScalingPolicy>>, ControlError> {
        self.list(&scoped_prefix("scalingpolicies", cluster, service))
            .await
    }

    /// Scheduled actions of one service (cluster and service given), one cluster, or all.
    pub async fn scheduled_actions(
        &self,
        cluster: Option<&str>,
        service: Option<&str>,
    ) -> Result<Vec<Versioned<ScheduledAction>>, ControlError> {
        self.list(&scoped_prefix("scheduledactions", cluster, service))
            .await
    }

    /// A service's scaling activities, newest first.
    pub async fn scaling_activities(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Vec<ScalingActivity>, ControlError> {
        let mut all: Vec<ScalingActivity> = self
            .list_values(&scaling_activity_prefix(cluster, service))
            .await?;
        all.reverse();
        Ok(all)
    }

    /// Writes (creates or updates) a service's scaling activity under its `activityId`
    /// (see [`new_activity_id`]) and removes the oldest beyond
    /// [`MAX_ACTIVITIES_PER_SERVICE`], in one batch.
    pub async fn put_scaling_activity(
        &self,
        cluster: &str,
        service: &str,
        activity: &ScalingActivity,
    ) -> Result<Revision, ControlError> {
        let stored: Vec<String> = self
            .store
            .list(&scaling_activity_prefix(cluster, service))
            .await?
            .into_iter()
            .map(|e| e.key)
            .collect();
        self.batch(scaling_activity_ops(
            cluster, service, stored, activity, None,
        ))
        .await
    }

    /// Deletes everything autoscaling holds for a service, in one batch: its scalable
    /// target, scaling policies, scheduled actions and scaling activities.
    pub async fn delete_autoscaling(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<(), ControlError> {
        let mut ops = vec![Op::Delete {
            key: scalable_target_key(cluster, service),
            expect: None,
        }];
        for prefix in [
            scaling_policy_prefix(cluster, service),
            scheduled_action_prefix(cluster, service),
            scaling_activity_prefix(cluster, service),
        ] {
            for e in self.store.list(&prefix).await? {
                ops.push(Op::Delete {
                    key: e.key,
                    expect: None,
                });
            }
        }
        self.batch(ops).await?;
        Ok(())
    }
}
