//! Targets that are not tasks (ELBv2's RegisterTargets of an IP address): an `ip`
//! target group may hold addresses berth does not run, registered and deregistered by
//! hand. They are targets like a task's (health checked, routed when healthy, drained
//! on deregistration) but carry no `taskArn`, so the registration reconciler leaves
//! them alone; a drained one is removed by the next call for its group.

use std::net::IpAddr;

use berth_model::elb::{Target, TargetGroup, TargetHealth, TargetHealthState, TargetType};
use berth_model::time;
use berth_store::{Expect, Op};

use crate::db::{self, Db};
use crate::error::ControlError;

/// One target asked for: an IP address and a port (`None`: the group's port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRef {
    pub id: String,
    pub port: Option<u32>,
}

fn checked(tg: &TargetGroup, t: &TargetRef, at: &str) -> Result<(String, u32), ControlError> {
    if tg.target_type != TargetType::Ip {
        return Err(ControlError::invalid(
            format!("{at}.id"),
            format!(
                "target group {:?} has targetType instance: berth registers its services' tasks there; only an ip target group takes addresses",
                tg.target_group_name
            ),
        ));
    }
    let ip: IpAddr = t.id.parse().map_err(|_| {
        ControlError::invalid(
            format!("{at}.id"),
            format!("must be an IP address, got {:?}", t.id),
        )
    })?;
    let port = t.port.unwrap_or(tg.port);
    if !(1..=65535).contains(&port) {
        return Err(ControlError::invalid(
            format!("{at}.port"),
            format!("must be 1 to 65535, got {port}"),
        ));
    }
    Ok((ip.to_string(), port))
}

fn endpoint_key(tg: &TargetGroup, id: &str, port: u32) -> String {
    let probe = Target {
        id: id.to_string(),
        port,
        ..Default::default()
    };
    db::target_key(&tg.target_group_name, &probe.endpoint())
}

/// Deletes of the group's drained targets that are not tasks.
async fn drained(db: &Db, tg: &TargetGroup) -> Result<Vec<(String, Op)>, ControlError> {
    Ok(db
        .targets(Some(&tg.target_group_name))
        .await?
        .into_iter()
        .filter(|t| t.value.task_arn.is_none() && t.value.drained_at.is_some())
        .map(|t| {
            (
                t.key.clone(),
                Op::Delete {
                    key: t.key,
                    expect: Some(Expect::ModRevision(t.mod_revision)),
                },
            )
        })
        .collect())
}

/// Registers `targets` in `tg` as `initial`; one already registered stays as it is (a
/// draining one is registered again). An address a task holds is refused.
pub async fn register(
    db: &Db,
    tg: &TargetGroup,
    targets: &[TargetRef],
) -> Result<(), ControlError> {
    let existing = db.targets(Some(&tg.target_group_name)).await?;
    let mut ops = Vec::new();
    let mut cleanup = drained(db, tg).await?;
    let now = time::now();
    for (i, t) in targets.iter().enumerate() {
        let (id, port) = checked(tg, t, &format!("targets[{i}]"))?;
        let key = endpoint_key(tg, &id, port);
        let target = Target {
            target_group_arn: tg.target_group_arn.clone(),
            id,
            port,
            task_arn: None,
            target_health: TargetHealth {
                state: TargetHealthState::Initial,
                reason: Some("Elb.RegistrationInProgress".into()),
                description: Some("Target registration is in progress".into()),
            },
            registered_at: now,
            deregistering_at: None,
            drained_at: None,
        };
        cleanup.retain(|(k, _)| *k != key);
        match existing.iter().find(|e| e.key == key) {
            Some(e) if e.value.task_arn.is_some() => {
                return Err(ControlError::invalid(
                    format!("targets[{i}]"),
                    format!(
                        "{} is a task's endpoint; berth registers it itself",
                        e.value.endpoint()
                    ),
                ))
            }
            Some(e) if e.value.deregistering_at.is_none() => {}
            Some(e) => ops.push(Op::Put {
                key,
                value: db::encode(&target),
                expect: Some(Expect::ModRevision(e.mod_revision)),
            }),
            None => ops.push(Op::Put {
                key,
                value: db::encode(&target),
                expect: Some(Expect::Absent),
            }),
        }
    }
    ops.extend(cleanup.into_iter().map(|(_, op)| op));
    if !ops.is_empty() {
        db.batch(ops).await?;
    }
    Ok(())
}

/// Deregisters `targets` from `tg`: each drains (no new requests; the group's
/// deregistration delay bounds the wait) and is removed once drained. A target that is
/// not registered, or is a task's, is refused.
pub async fn deregister(
    db: &Db,
    tg: &TargetGroup,
    targets: &[TargetRef],
) -> Result<(), ControlError> {
    let existing = db.targets(Some(&tg.target_group_name)).await?;
    let mut ops = Vec::new();
    let mut cleanup = drained(db, tg).await?;
    let now = time::now();
    for (i, t) in targets.iter().enumerate() {
        let (id, port) = checked(tg, t, &format!("targets[{i}]"))?;
        let key = endpoint_key(tg, &id, port);
        let Some(e) = existing.iter().find(|e| e.key == key) else {
            return Err(ControlError::invalid(
                format!("targets[{i}]"),
                format!(
                    "{id}:{port} is not registered in target group {:?}",
                    tg.target_group_name
                ),
            ));
        };
        if e.value.task_arn.is_some() {
            return Err(ControlError::invalid(
                format!("targets[{i}]"),
                format!(
                    "{} is a task's endpoint; stop the task or scale its service instead",
                    e.value.endpoint()
                ),
            ));
        }
        if e.value.deregistering_at.is_some() {
            continue;
        }
        cleanup.retain(|(k, _)| *k != key);
        let mut v = e.value.clone();
        v.deregistering_at = Some(now);
        v.target_health = TargetHealth {
            state: TargetHealthState::Draining,
            reason: Some("Target.DeregistrationInProgress".into()),
            description: Some("Target deregistration is in progress".into()),
        };
        ops.push(Op::Put {
            key,
            value: db::encode(&v),
            expect: Some(Expect::ModRevision(e.mod_revision)),
        });
    }
    ops.extend(cleanup.into_iter().map(|(_, op)| op));
    if !ops.is_empty() {
        db.batch(ops).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::db_with_default_cluster;

    fn ip_group() -> TargetGroup {
        let mut tg: TargetGroup = serde_json::from_value(serde_json::json!({
            "targetGroupName": "ext", "protocol": "HTTP", "port": 80, "targetType": "ip"
        }))
        .unwrap();
        tg.target_group_arn = berth_model::arn::target_group("ext");
        tg
    }

    fn at(id: &str, port: Option<u32>) -> TargetRef {
        TargetRef {
            id: id.into(),
            port,
        }
    }

    #[tokio::test]
    async fn addresses_register_drain_and_go() {
        let db = db_with_default_cluster().await;
        let tg = ip_group();
        register(
            &db,
            &tg,
            &[at("10.0.0.1", None), at("10.0.0.2", Some(8080))],
        )
        .await
        .unwrap();
        let ts = db.targets(Some("ext")).await.unwrap();
        assert_eq!(ts.len(), 2);
        assert!(ts.iter().all(|t| t.value.task_arn.is_none()
            && t.value.target_health.state == TargetHealthState::Initial));
        assert!(ts.iter().any(|t| t.value.port == 80));

        deregister(&db, &tg, &[at("10.0.0.1", None)]).await.unwrap();
        let t = db.targets(Some("ext")).await.unwrap();
        let one = t.iter().find(|t| t.value.id == "10.0.0.1").unwrap();
        assert!(one.value.deregistering_at.is_some());
        assert_eq!(one.value.target_health.state, TargetHealthState::Draining);

        // Once the data plane reports it drained, the next call removes it.
        let mut v = one.value.clone();
        v.drained_at = Some(time::now());
        db.put(&one.key, &v).await.unwrap();
        register(&db, &tg, &[at("10.0.0.2", Some(8080))])
            .await
            .unwrap();
        let left = db.targets(Some("ext")).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].value.id, "10.0.0.2");
    }

    #[tokio::test]
    async fn bad_targets_are_refused_and_change_nothing() {
        let db = db_with_default_cluster().await;
        let tg = ip_group();
        let rev = db.store.revision().await.unwrap();
        let e = register(&db, &tg, &[at("10.0.0.1", None), at("web-1", None)])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("targets[1].id"), "{e}");
        let e = deregister(&db, &tg, &[at("10.0.0.9", None)])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not registered"), "{e}");
        let mut instance = ip_group();
        instance.target_type = TargetType::Instance;
        let e = register(&db, &instance, &[at("10.0.0.1", None)])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("targetType instance"), "{e}");
        assert_eq!(db.store.revision().await.unwrap(), rev);
    }
}
