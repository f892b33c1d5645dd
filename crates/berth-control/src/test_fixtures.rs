//! Fixtures the control plane's unit tests share.

use std::sync::Arc;

use berth_model::arn;
use berth_model::ecs::Cluster;

use crate::db::{self, Db};

/// An in-memory store holding the ACTIVE `default` cluster.
pub(crate) async fn db_with_default_cluster() -> Db {
    let db = Db::new(Arc::new(berth_store::MemoryStore::new()));
    let c = Cluster {
        cluster_name: "default".into(),
        cluster_arn: arn::cluster("default"),
        status: "ACTIVE".into(),
        ..Default::default()
    };
    db.put(&db::cluster_key("default"), &c).await.unwrap();
    db
}
