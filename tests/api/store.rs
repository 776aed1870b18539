//! One storage suite, run against SQLite and PostgreSQL.

use auditgate::auth::tokens::ApiSecret;
use auditgate::clock::{Clock, ManualClock};
use auditgate::domain::{DistinctId, ProjectId, Timestamp};
use auditgate::events::profile::{ProfileOp, ProfileUpdate};
use auditgate::projects;
use auditgate::store::{
    self, CountGroup, EventCursor, EventFilter, NewEvent, SharedStore, StoreError,
};
use serde_json::{Map, json};

use crate::helpers::{Backend, fresh_db, test_settings};

const T0: i64 = 1_700_000_000_000;

fn event(name: &str, who: &str, t: i64, insert_id: Option<&str>) -> NewEvent {
    let mut properties = Map::new();
    properties.insert("n".into(), json!(t));
    NewEvent {
        event: name.into(),
        distinct_id: DistinctId::parse(who).unwrap(),
        time: Timestamp::from_millis(t),
        insert_id: insert_id.map(str::to_owned),
        properties,
    }
}

fn filter(project: &ProjectId) -> EventFilter {
    EventFilter {
        project: project.clone(),
        distinct_id: None,
        event: None,
        from: None,
        to: None,
    }
}

async fn storage_suite(store: SharedStore) {
    let clock = ManualClock::new(Timestamp::from_millis(T0));
    let shop = ProjectId::parse("shop").unwrap();

    // Projects and tokens.
    let created = projects::create(store.as_ref(), &clock, shop.clone(), Some("Shop".into()))
        .await
        .unwrap();
    let again = projects::create(store.as_ref(), &clock, shop.clone(), None).await;
    assert!(
        matches!(again, Err(StoreError::Conflict(_))),
        "a project id is unique"
    );
    let found = store
        .project_by_ingest_token(&created.project.ingest_token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, created.project);
    assert_eq!(
        store.list_projects().await.unwrap(),
        vec![created.project.clone()]
    );
    let token = store
        .token_by_hash(&created.secret.hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(token.service_account.project_id, shop);
    assert!(
        store
            .token_by_hash(&ApiSecret::generate().hash())
            .await
            .unwrap()
            .is_none()
    );
    let (second, secret2) = projects::create_token(store.as_ref(), &clock, &shop)
        .await
        .unwrap();
    assert_eq!(store.tokens(&shop).await.unwrap().len(), 2);
    assert!(store.revoke_token(&second, clock.now()).await.unwrap());
    assert!(
        !store.revoke_token(&second, clock.now()).await.unwrap(),
        "revoking twice changes nothing"
    );
    assert!(
        store
            .token_by_hash(&secret2.hash())
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );

    // Events, deduplicated on $insert_id per project.
    let batch = vec![
        event("Buy", "alice", T0, Some("a")),
        event("View", "bob", T0 + 1, Some("b")),
        event("Buy", "alice", T0 + 2, Some("a")),
        event("View", "alice", T0 + 86_400_000, None),
        event("View", "alice", T0 + 86_400_000, None),
    ];
    let out = store
        .insert_events(&shop, &batch, clock.now())
        .await
        .unwrap();
    assert_eq!((out.inserted, out.duplicates), (4, 1));
    let out = store
        .insert_events(&shop, &batch[..2], clock.now())
        .await
        .unwrap();
    assert_eq!((out.inserted, out.duplicates), (0, 2));

    // Reads: order, filters and keyset pages.
    let all = store.query_events(&filter(&shop), None, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.time.millis()).collect::<Vec<_>>(),
        vec![T0, T0 + 1, T0 + 86_400_000, T0 + 86_400_000]
    );
    assert_eq!(all[0].properties["n"], json!(T0));
    let first = store.query_events(&filter(&shop), None, 3).await.unwrap();
    let last = first.last().unwrap();
    let rest = store
        .query_events(
            &filter(&shop),
            Some(EventCursor {
                time: last.time,
                id: last.id,
            }),
            3,
        )
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(
        rest[0], all[3],
        "the page after a tie on time continues by id"
    );
    let mut f = filter(&shop);
    f.distinct_id = Some(DistinctId::parse("alice").unwrap());
    f.event = Some("View".into());
    assert_eq!(store.query_events(&f, None, 100).await.unwrap().len(), 2);
    let mut f = filter(&shop);
    f.from = Some(Timestamp::from_millis(T0 + 1));
    f.to = Some(Timestamp::from_millis(T0 + 86_400_000));
    assert_eq!(store.query_events(&f, None, 100).await.unwrap().len(), 1);

    // Counts.
    let total = store
        .count_events(&filter(&shop), CountGroup::Total)
        .await
        .unwrap();
    assert_eq!(total, vec![("total".to_owned(), 4)]);
    let by_event = store
        .count_events(&filter(&shop), CountGroup::Event)
        .await
        .unwrap();
    assert_eq!(
        by_event,
        vec![("Buy".to_owned(), 1), ("View".to_owned(), 3)]
    );
    let by_day = store
        .count_events(&filter(&shop), CountGroup::Day)
        .await
        .unwrap();
    assert_eq!(
        by_day,
        vec![("2023-11-14".to_owned(), 2), ("2023-11-15".to_owned(), 2)]
    );

    // Another project sees none of it.
    let bank = ProjectId::parse("bank").unwrap();
    projects::create(store.as_ref(), &clock, bank.clone(), None)
        .await
        .unwrap();
    assert!(
        store
            .query_events(&filter(&bank), None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let out = store
        .insert_events(&bank, &batch[..1], clock.now())
        .await
        .unwrap();
    assert_eq!(out.inserted, 1, "insert ids are per project");

    // Profiles.
    let alice = DistinctId::parse("alice").unwrap();
    let op = |op: &str, arg: serde_json::Value| ProfileUpdate {
        distinct_id: alice.clone(),
        op: ProfileOp::parse(op, &arg).unwrap(),
    };
    let updates = [
        op("$set", json!({"plan": "free"})),
        op("$add", json!({"visits": 3})),
        op("$set", json!({"plan": "pro"})),
    ];
    assert_eq!(
        store
            .apply_profile_updates(&shop, &updates, clock.now())
            .await
            .unwrap(),
        3
    );
    let p = store.profile(&shop, &alice).await.unwrap().unwrap();
    assert_eq!(
        serde_json::Value::Object(p.properties),
        json!({"plan": "pro", "visits": 3})
    );
    assert!(store.profile(&bank, &alice).await.unwrap().is_none());
    store
        .apply_profile_updates(&shop, &[op("$delete", json!(""))], clock.now())
        .await
        .unwrap();
    assert!(store.profile(&shop, &alice).await.unwrap().is_none());

    // Foreign keys hold: no events for a project that does not exist.
    let ghost = ProjectId::parse("ghost").unwrap();
    assert!(
        store
            .insert_events(&ghost, &batch[..1], clock.now())
            .await
            .is_err()
    );

    store.ping().await.unwrap();
}

async fn open(backend: Backend, test: &str) -> Option<(SharedStore, crate::helpers::TestDb)> {
    let db = fresh_db(backend, test).await?;
    let store = store::connect(&test_settings(&db).database).await.unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap(); // migrating twice is harmless
    Some((store, db))
}

#[tokio::test]
async fn storage_suite_on_sqlite() {
    let (store, _db) = open(Backend::Sqlite, "storage_suite_on_sqlite")
        .await
        .unwrap();
    assert_eq!(store.backend(), "sqlite");
    storage_suite(store).await;
}

#[tokio::test]
async fn storage_suite_on_postgres() {
    let Some((store, _db)) = open(Backend::Postgres, "storage_suite_on_postgres").await else {
        return;
    };
    assert_eq!(store.backend(), "postgres");
    storage_suite(store).await;
}
