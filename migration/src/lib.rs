//! Database migrations. They run at start-up (`photon serve`) and on demand (`photon migrate`),
//! on SQLite and Postgres alike.

pub use sea_orm_migration::prelude::*;

mod m20261128_000001_initial;
mod m20261128_000002_realtime;
mod m20261128_000003_oauth;
mod m20261201_000001_storage_limits;
mod m20261201_000002_review_fixes;
mod m20261202_000001_photo_processing;
mod m20261202_000002_oidc_nonce;
mod m20261202_000003_guests;
mod m20261202_000004_owner_controls;
mod m20261202_000005_safety;
mod m20261202_000006_push_pacing;
mod m20261203_000001_shared_size;
mod m20261203_000002_event_seq;
mod m20261203_000003_replicas;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_initial::Migration),
            Box::new(m20261128_000002_realtime::Migration),
            Box::new(m20261128_000003_oauth::Migration),
            Box::new(m20261201_000001_storage_limits::Migration),
            Box::new(m20261201_000002_review_fixes::Migration),
            Box::new(m20261202_000001_photo_processing::Migration),
            Box::new(m20261202_000002_oidc_nonce::Migration),
            Box::new(m20261202_000003_guests::Migration),
            Box::new(m20261202_000004_owner_controls::Migration),
            Box::new(m20261202_000005_safety::Migration),
            Box::new(m20261202_000006_push_pacing::Migration),
            Box::new(m20261203_000001_shared_size::Migration),
            Box::new(m20261203_000002_event_seq::Migration),
            Box::new(m20261203_000003_replicas::Migration),
        ]
    }
}
