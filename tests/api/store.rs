//! One storage suite, run against SQLite and PostgreSQL.

use auditgate::auth::tokens::ApiSecret;
use auditgate::clock::{Clock, ManualClock};
use auditgate::domain::profile::{
    GroupRef, GroupUpdate, IdentityLink, MAX_IDS_PER_PERSON, ProfileOp, ProfileUpdate,
};
use auditgate::domain::{AllowedOrigins, DistinctId, ProjectId, Timestamp};
use auditgate::projects;
use auditgate::store::{
    self, Claim, CountGroup, EventCursor, EventFilter, Factor, NewEvent, SharedStore, StoreError,
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
        distinct_ids: vec![],
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
        .insert_events(&shop, &batch, &[], clock.now())
        .await
        .unwrap();
    assert_eq!((out.inserted, out.duplicates), (4, 1));
    let out = store
        .insert_events(&shop, &batch[..2], &[], clock.now())
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
    f.distinct_ids = vec![DistinctId::parse("alice").unwrap()];
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
        .insert_events(&bank, &batch[..1], &[], clock.now())
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

    // Group profiles: the same operations, keyed by group key and id, per project.
    let acme = GroupRef {
        key: "company".into(),
        id: "acme".into(),
    };
    let gop = |group: &GroupRef, op: &str, arg: serde_json::Value| GroupUpdate {
        group: group.clone(),
        op: ProfileOp::parse(op, &arg).unwrap(),
    };
    let other = GroupRef {
        key: "team".into(),
        id: "acme".into(),
    };
    let updates = [
        gop(&acme, "$set", json!({"plan": "free", "tags": ["a"]})),
        gop(&acme, "$set_once", json!({"plan": "gold", "since": 2020})),
        gop(&acme, "$union", json!({"tags": ["a", "b"]})),
        gop(&acme, "$remove", json!({"tags": "a"})),
        gop(&other, "$set", json!({"size": 4})),
    ];
    assert_eq!(
        store
            .apply_group_updates(&shop, &updates, clock.now())
            .await
            .unwrap(),
        5
    );
    let g = store.group_profile(&shop, &acme).await.unwrap().unwrap();
    assert_eq!(
        serde_json::Value::Object(g.properties),
        json!({"plan": "free", "since": 2020, "tags": ["b"]})
    );
    assert_eq!(g.updated_at, clock.now());
    assert!(store.group_profile(&bank, &acme).await.unwrap().is_none());
    store
        .apply_group_updates(&shop, &[gop(&acme, "$delete", json!(""))], clock.now())
        .await
        .unwrap();
    assert!(store.group_profile(&shop, &acme).await.unwrap().is_none());
    assert!(store.group_profile(&shop, &other).await.unwrap().is_some());

    // Identity links: a star per person; an alias joins once, two people are never joined.
    let id = |s: &str| DistinctId::parse(s).unwrap();
    let link = |alias: &str, canonical: &str| IdentityLink {
        alias: id(alias),
        canonical: id(canonical),
    };
    let cluster = |who: &'static str| {
        let store = store.clone();
        let shop = shop.clone();
        async move {
            store
                .identity_cluster(&shop, &DistinctId::parse(who).unwrap())
                .await
                .unwrap()
                .iter()
                .map(|d| d.as_str().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(cluster("nobody-yet").await, ["nobody-yet"]);
    let made = store
        .insert_events(
            &shop,
            &[],
            &[
                link("$device:d1", "u1"),
                link("$device:d1", "u1"), // the same link again is no new link
                link("anon-2", "$device:d1"), // through an alias: joins its person
                link("$device:d3", "u3"),
                link("u3", "u1"), // u3 has ids of its own: two people stay two
                link("$device:d1", "u3"), // taken by u1 already
                link("u1", "$device:d1"), // a person never becomes their own alias
            ],
            clock.now(),
        )
        .await
        .unwrap()
        .linked;
    assert_eq!(made, 3);
    assert_eq!(cluster("u1").await, ["u1", "$device:d1", "anon-2"]);
    assert_eq!(cluster("anon-2").await, ["u1", "$device:d1", "anon-2"]);
    assert_eq!(cluster("u3").await, ["u3", "$device:d3"]);
    // Links are per project.
    assert_eq!(
        store.identity_cluster(&bank, &id("u1")).await.unwrap(),
        [id("u1")]
    );
    // A person has at most MAX_IDS_PER_PERSON ids, however many links are asked for.
    let many: Vec<_> = (0..MAX_IDS_PER_PERSON + 5)
        .map(|i| link(&format!("dev-{i:03}"), "crowd"))
        .collect();
    let made = store
        .insert_events(&shop, &[], &many, clock.now())
        .await
        .unwrap()
        .linked;
    assert_eq!(made as usize, MAX_IDS_PER_PERSON - 1);
    assert_eq!(cluster("crowd").await.len(), MAX_IDS_PER_PERSON);
    // A filter on a person's ids finds every one of their events.
    store
        .insert_events(
            &shop,
            &[
                event("Linked", "u1", T0 + 1, None),
                event("Linked", "$device:d1", T0 + 2, None),
                event("Linked", "anon-2", T0 + 3, None),
                event("Linked", "u3", T0 + 4, None),
            ],
            &[],
            clock.now(),
        )
        .await
        .unwrap();
    let mut f = filter(&shop);
    f.event = Some("Linked".into());
    f.distinct_ids = store.identity_cluster(&shop, &id("anon-2")).await.unwrap();
    assert_eq!(store.query_events(&f, None, 10).await.unwrap().len(), 3);
    assert_eq!(
        store.count_events(&f, CountGroup::Total).await.unwrap()[0].1,
        3
    );

    // Foreign keys hold: no events for a project that does not exist.
    let ghost = ProjectId::parse("ghost").unwrap();
    assert!(
        store
            .insert_events(&ghost, &batch[..1], &[], clock.now())
            .await
            .is_err()
    );
    // Events and their links are one transaction: a batch that cannot be stored leaves no
    // link behind, and one that can keeps both.
    let with_link = [event("Signed in", "u9", T0 + 5, Some("ghost-1"))];
    let asked = [link("$device:d9", "u9")];
    assert!(
        store
            .insert_events(&ghost, &with_link, &asked, clock.now())
            .await
            .is_err()
    );
    assert_eq!(
        store.identity_cluster(&ghost, &id("u9")).await.unwrap(),
        [id("u9")]
    );
    let out = store
        .insert_events(&shop, &with_link, &asked, clock.now())
        .await
        .unwrap();
    assert_eq!((out.inserted, out.linked), (1, 1));
    assert_eq!(cluster("u9").await, ["u9", "$device:d9"]);

    // Concurrent batches are committed together, each in a savepoint of its own: the one that
    // cannot be stored fails alone, and the others keep their events, links and counts.
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let (store, now) = (store.clone(), clock.now());
            let to = ProjectId::parse(if i == 11 { "ghost" } else { "shop" }).unwrap();
            let events: Vec<_> = (0..20)
                .map(|j| {
                    let key = format!("crowd-{i}-{j}");
                    event("Crowd", &format!("c{i}"), T0 + 10 + j, Some(&key))
                })
                .collect();
            let links = [link(&format!("$device:cd{i}"), &format!("c{i}"))];
            tokio::spawn(async move { store.insert_events(&to, &events, &links, now).await })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Err(_) if i == 11 => {}
            Ok(out) if i != 11 => assert_eq!((out.inserted, out.linked), (20, 1), "batch {i}"),
            other => panic!("batch {i}: {other:?}"),
        }
    }
    let mut crowd = filter(&shop);
    crowd.event = Some("Crowd".into());
    assert_eq!(
        store.count_events(&crowd, CountGroup::Total).await.unwrap()[0].1,
        23 * 20
    );
    assert_eq!(
        store.query_events(&crowd, None, 1000).await.unwrap().len(),
        23 * 20
    );
    assert_eq!(cluster("c3").await, ["c3", "$device:cd3"]);
    assert_eq!(
        store.identity_cluster(&ghost, &id("c11")).await.unwrap(),
        [id("c11")]
    );

    // Jobs by kind and state, as /metrics reads them (none made here).
    assert!(store.subject_request_states().await.unwrap().is_empty());

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

/// People, sessions, 2-step state and personal tokens: the same answers on both backends.
async fn people_suite(store: SharedStore) {
    use auditgate::auth::totp::TotpState;
    use auditgate::store::{
        EndReason, Notice, PersonalToken, SessionRecord, SsoProfile, User, UserKind,
    };
    let t = |ms: i64| Timestamp::from_millis(T0 + ms);
    let profile = SsoProfile {
        provider: "corp".into(),
        issuer: "https://login.example".into(),
        subject: "s-1".into(),
        email: "a@example.com".into(),
        name: Some("A".into()),
        groups: vec!["analysts".into()],
    };
    let (user, created) = store.upsert_sso_user(&profile, "u-1", t(0)).await.unwrap();
    assert!(created);
    assert_eq!(user.kind, UserKind::Sso);
    // The same (issuer, subject) is the same person, whatever the email now says.
    let moved = SsoProfile {
        email: "a.new@example.com".into(),
        groups: vec!["auditors".into()],
        ..profile.clone()
    };
    let (again, created) = store.upsert_sso_user(&moved, "u-2", t(1)).await.unwrap();
    assert!(!created);
    assert_eq!(again.id, "u-1");
    assert_eq!(again.email, "a.new@example.com");
    let (_, groups) = store.user("u-1").await.unwrap().unwrap();
    assert_eq!(groups, vec!["auditors".to_owned()]);
    // Another issuer with the same subject is another person.
    let other = SsoProfile {
        issuer: "https://other.example".into(),
        ..profile
    };
    assert!(store.upsert_sso_user(&other, "u-3", t(2)).await.unwrap().1);
    assert_eq!(
        store
            .user_by_identity("https://login.example", "s-1")
            .await
            .unwrap(),
        Some("u-1".into())
    );

    let local = User {
        id: "l-1".into(),
        email: "root@example.com".into(),
        name: None,
        kind: UserKind::Local,
        created_at: t(0),
        last_signin_at: None,
        disabled_at: None,
    };
    store.create_local_user(&local, "hash").await.unwrap();
    let dup = User {
        id: "l-2".into(),
        ..local.clone()
    };
    assert!(matches!(
        store.create_local_user(&dup, "hash").await,
        Err(StoreError::Conflict(_))
    ));
    // Attempts are counted before they are checked: the third of three sets the lock, and
    // claims while it holds are refused, however many arrive at once.
    let claims = futures_util::future::join_all(
        (0..8).map(|_| store.claim_attempt(Factor::Password, "l-1", 3, t(100), t(5))),
    )
    .await;
    let granted: Vec<_> = claims
        .iter()
        .filter_map(|c| match c.as_ref().unwrap() {
            Claim::Granted { locks_until } => Some(*locks_until),
            Claim::Refused { .. } => None,
        })
        .collect();
    assert_eq!(granted.len(), 3, "{claims:?}");
    assert_eq!(granted.iter().filter(|l| l.is_some()).count(), 1);
    assert!(claims.iter().any(|c| matches!(
        c.as_ref().unwrap(),
        Claim::Refused { until: Some(u) } if *u == t(100)
    )));
    let (_, hash, failures, lock) = store.local_user("root@example.com").await.unwrap().unwrap();
    assert_eq!((hash.as_str(), failures, lock), ("hash", 3, Some(t(100))));
    // The lock ends by itself and the count starts again; a success clears it.
    assert_eq!(
        store
            .claim_attempt(Factor::Password, "l-1", 3, t(200), t(100))
            .await
            .unwrap(),
        Claim::Granted { locks_until: None }
    );
    store.clear_attempts(Factor::Password, "l-1").await.unwrap();
    let (_, _, failures, lock) = store.local_user("root@example.com").await.unwrap().unwrap();
    assert_eq!((failures, lock), (0, None));
    assert_eq!(
        store
            .claim_attempt(Factor::Totp, "nobody", 3, t(200), t(100))
            .await
            .unwrap(),
        Claim::Refused { until: None }
    );
    assert!(
        store
            .local_user("a.new@example.com")
            .await
            .unwrap()
            .is_none()
    );

    let session = |hash: &str, public: &str, sid: Option<&str>| SessionRecord {
        id_hash: hash.into(),
        public_id: public.into(),
        user_id: "u-1".into(),
        method: "oidc".into(),
        provider: Some("corp".into()),
        idp_sid: sid.map(Into::into),
        acr: None,
        amr: vec!["pwd".into()],
        auth_time: Some(t(0)),
        csrf: "c".into(),
        second_factor_at: None,
        created_at: t(0),
        last_seen_at: t(0),
        expires_at: t(1000),
        ended_at: None,
        client_ip: None,
        user_agent: None,
    };
    store
        .create_session(&session("h1", "p1", Some("sid-1")))
        .await
        .unwrap();
    store
        .create_session(&session("h2", "p2", Some("sid-2")))
        .await
        .unwrap();
    store
        .create_session(&session("h3", "p3", None))
        .await
        .unwrap();
    store.touch_session("h1", t(5)).await.unwrap();
    assert_eq!(
        store.session("h1").await.unwrap().unwrap().last_seen_at,
        t(5)
    );
    assert!(store.rotate_session("h1", "h1b", "c2", t(6)).await.unwrap());
    assert!(store.session("h1").await.unwrap().is_none());
    let rotated = store.session("h1b").await.unwrap().unwrap();
    assert_eq!(
        (rotated.csrf.as_str(), rotated.second_factor_at),
        ("c2", Some(t(6)))
    );
    assert_eq!(rotated.amr, vec!["pwd".to_owned()]);
    assert_eq!(store.live_sessions("u-1", t(7)).await.unwrap().len(), 3);
    for (public, sealed) in [("p1", "s1"), ("p2", "s2"), ("p3", "s3")] {
        store
            .put_provider_tokens(public, sealed, t(7))
            .await
            .unwrap();
    }
    assert!(store.groups_confirmed_at("u-1").await.unwrap().is_some());
    assert_eq!(store.groups_confirmed_at("nobody").await.unwrap(), None);
    let ended = store
        .end_provider_sessions("corp", Some("sid-2"), None, t(8))
        .await
        .unwrap();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].public_id, "p2");
    assert!(
        store
            .end_session("u-1", "p3", EndReason::Ended, t(8))
            .await
            .unwrap()
    );
    assert!(
        !store
            .end_session("u-1", "p3", EndReason::Ended, t(8))
            .await
            .unwrap()
    );
    // Sessions the provider or an administrator ended lend their tokens to nobody.
    assert_eq!(
        store.latest_provider_tokens("u-1").await.unwrap(),
        Some(("p1".into(), "corp".into(), "s1".into()))
    );
    assert_eq!(
        store
            .end_user_sessions("u-1", EndReason::Disabled, t(9))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.latest_provider_tokens("u-1").await.unwrap(), None);
    assert!(store.live_sessions("u-1", t(10)).await.unwrap().is_empty());

    assert!(store.begin_totp("u-1", "sealed-1", t(0)).await.unwrap());
    assert!(
        store.begin_totp("u-1", "sealed-2", t(1)).await.unwrap(),
        "pending: replaced"
    );
    let state = TotpState {
        last_step: Some(42),
        failures: 0,
        locked_until: None,
    };
    store
        .claim_attempt(Factor::Totp, "u-1", 5, t(100), t(2))
        .await
        .unwrap();
    // A step is accepted once, whichever of two parallel requests comes first.
    let (a, b) = tokio::join!(
        store.accept_totp_step("u-1", 42, Some(t(2))),
        store.accept_totp_step("u-1", 42, Some(t(2)))
    );
    assert!(a.unwrap() ^ b.unwrap());
    assert!(!store.accept_totp_step("u-1", 41, None).await.unwrap());
    assert!(
        !store.begin_totp("u-1", "sealed-3", t(3)).await.unwrap(),
        "active: kept"
    );
    let totp = store.totp("u-1").await.unwrap().unwrap();
    assert_eq!(
        (totp.secret_sealed.as_str(), totp.state, totp.activated_at),
        ("sealed-2", state, Some(t(2)))
    );
    store
        .replace_recovery_codes("u-1", &["a".into(), "b".into()])
        .await
        .unwrap();
    assert!(store.use_recovery_code("u-1", "a", t(3)).await.unwrap());
    assert!(!store.use_recovery_code("u-1", "a", t(3)).await.unwrap());
    assert_eq!(
        store.unused_recovery_codes("u-1").await.unwrap(),
        vec!["b".to_owned()]
    );
    assert!(store.reset_totp("u-1").await.unwrap());
    assert!(store.totp("u-1").await.unwrap().is_none());
    assert!(store.unused_recovery_codes("u-1").await.unwrap().is_empty());

    let token = PersonalToken {
        id: "pt-1".into(),
        user_id: "u-1".into(),
        name: "nb".into(),
        created_at: t(0),
        expires_at: t(100),
        revoked_at: None,
        last_used_at: None,
    };
    store.create_personal_token(&token, "th").await.unwrap();
    store.touch_personal_token("pt-1", t(4)).await.unwrap();
    let found = store.personal_token("th").await.unwrap().unwrap();
    assert_eq!(found.last_used_at, Some(t(4)));
    let second = PersonalToken {
        id: "pt-2".into(),
        ..token.clone()
    };
    store.create_personal_token(&second, "th2").await.unwrap();
    store.touch_personal_token("pt-2", t(2)).await.unwrap();
    // Everyone at once: groups, and the latest use of any of their tokens.
    let overview = store.people_overview().await.unwrap();
    let ids: Vec<_> = overview.iter().map(|p| p.user.id.as_str()).collect();
    assert_eq!(ids, ["l-1", "u-1", "u-3"], "oldest first, then by id");
    assert_eq!(
        (overview[0].groups.len(), overview[0].token_last_used),
        (0, None)
    );
    assert_eq!(overview[1].groups, ["auditors"]);
    assert_eq!(overview[1].token_last_used, Some(t(4)));
    assert_eq!(overview[2].groups, ["analysts"]);
    assert!(
        store
            .revoke_personal_token("u-1", "pt-1", t(5))
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_personal_token("u-1", "pt-1", t(5))
            .await
            .unwrap()
    );
    assert_eq!(
        store.personal_tokens("u-1").await.unwrap()[0].revoked_at,
        Some(t(5))
    );

    let notice = Notice {
        at: t(3),
        kind: "totp_replay".into(),
        detail: "d".into(),
    };
    store.add_notice("u-1", &notice).await.unwrap();
    assert_eq!(store.notices("u-1").await.unwrap(), vec![notice]);
    assert!(store.set_user_disabled("u-1", Some(t(9))).await.unwrap());
    assert_eq!(
        store.user("u-1").await.unwrap().unwrap().0.disabled_at,
        Some(t(9))
    );
    assert!(!store.set_user_disabled("nobody", None).await.unwrap());
}

#[tokio::test]
async fn people_suite_on_sqlite() {
    let (store, _db) = open(Backend::Sqlite, "people_suite_on_sqlite")
        .await
        .unwrap();
    people_suite(store).await;
}

#[tokio::test]
async fn people_suite_on_postgres() {
    let Some((store, _db)) = open(Backend::Postgres, "people_suite_on_postgres").await else {
        return;
    };
    people_suite(store).await;
}

/// Grants, access requests, custom roles and sensitive marks: the same answers on both backends.
async fn access_suite(store: SharedStore) {
    use auditgate::access::{
        AccessRequest, CustomRole, Effect, GrantRecord, GrantStatus, Permission, RequestStatus,
        SubjectKind,
    };
    use auditgate::store::PropertyKind;
    let t = |ms: i64| Timestamp::from_millis(T0 + ms);
    let clock = ManualClock::new(t(0));
    let shop = ProjectId::parse("shop").unwrap();
    projects::create(store.as_ref(), &clock, shop.clone(), None)
        .await
        .unwrap();
    let grant = |id: &str, kind: SubjectKind, subject: &str, status: GrantStatus| GrantRecord {
        id: id.into(),
        subject_kind: kind,
        subject: subject.into(),
        effect: Effect::Allow,
        role: Some("analyst".into()),
        permission: None,
        project: "shop".into(),
        reason: "r".into(),
        granted_by: "admin".into(),
        created_at: t(1),
        expires_at: Some(t(100)),
        status,
        decided_by: None,
        decided_at: None,
        review_every_days: Some(30),
        reviewed_at: None,
        locked_at: None,
    };
    store
        .create_grant(&grant("g1", SubjectKind::User, "u1", GrantStatus::Active))
        .await
        .unwrap();
    store
        .create_grant(&grant(
            "g2",
            SubjectKind::Group,
            "team",
            GrantStatus::Active,
        ))
        .await
        .unwrap();
    store
        .create_grant(&grant("g3", SubjectKind::User, "u1", GrantStatus::Pending))
        .await
        .unwrap();
    let deny = GrantRecord {
        effect: Effect::Deny,
        role: None,
        permission: Some(Permission::EventsExport),
        project: "*".into(),
        ..grant("g4", SubjectKind::User, "u1", GrantStatus::Active)
    };
    store.create_grant(&deny).await.unwrap();
    assert_eq!(store.grant("g4").await.unwrap().unwrap(), deny);
    let active = store
        .active_grants(SubjectKind::User, &["u1".into(), "u9".into()])
        .await
        .unwrap();
    let mut ids: Vec<_> = active.iter().map(|g| g.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["g1", "g4"]);
    assert_eq!(
        store
            .active_grants(SubjectKind::Group, &["team".into()])
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .active_grants(SubjectKind::Group, &[])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.grants(Some("shop")).await.unwrap().len(),
        4,
        "shop and *"
    );
    assert!(
        store
            .decide_grant("g3", GrantStatus::Pending, GrantStatus::Active, "b", t(2))
            .await
            .unwrap()
    );
    assert!(
        !store
            .decide_grant("g3", GrantStatus::Pending, GrantStatus::Active, "b", t(2))
            .await
            .unwrap()
    );
    assert!(store.review_grant("g1", "b", "ok", t(3)).await.unwrap());
    assert!(!store.review_grant("nope", "b", "ok", t(3)).await.unwrap());
    assert!(store.lock_grant("g1", Some(t(4))).await.unwrap());
    let g1 = store.grant("g1").await.unwrap().unwrap();
    assert_eq!((g1.reviewed_at, g1.locked_at), (Some(t(3)), Some(t(4))));
    let sa = store.service_accounts(&shop).await.unwrap()[0].id.clone();
    assert!(store.lock_service_account(&sa, Some(t(5))).await.unwrap());
    assert_eq!(store.service_account_locked(&sa).await.unwrap(), Some(t(5)));
    projects::create(
        store.as_ref(),
        &clock,
        ProjectId::parse("bank").unwrap(),
        None,
    )
    .await
    .unwrap();
    let all = store.all_service_accounts().await.unwrap();
    assert_eq!(all.len(), 2, "every project's accounts: {all:?}");
    assert_eq!(all[0].0.project_id.as_str(), "bank");
    assert!(
        all.windows(2)
            .all(|w| w[0].0.project_id.as_str() <= w[1].0.project_id.as_str())
    );
    assert_eq!(
        all.iter()
            .find(|(a, _)| a.id == sa)
            .map(|(_, locked)| *locked),
        Some(Some(t(5)))
    );
    assert!(
        all.iter()
            .filter(|(a, _)| a.id != sa)
            .all(|(_, l)| l.is_none())
    );
    assert!(store.lock_service_account(&sa, None).await.unwrap());
    assert_eq!(store.service_account_locked(&sa).await.unwrap(), None);

    let request = AccessRequest {
        id: "r1".into(),
        requester: "u1".into(),
        project: "shop".into(),
        role: "analyst".into(),
        reason: "INC".into(),
        duration_ms: 3_600_000,
        approvals_needed: 2,
        created_at: t(0),
        lapses_at: t(60),
        status: RequestStatus::Pending,
        grant_id: None,
        decided_at: None,
    };
    // Requests reference people.
    let profile = auditgate::store::SsoProfile {
        provider: "p".into(),
        issuer: "https://i".into(),
        subject: "s".into(),
        email: "e@example.com".into(),
        name: None,
        groups: vec![],
    };
    store.upsert_sso_user(&profile, "u1", t(0)).await.unwrap();
    store.create_request(&request).await.unwrap();
    store.approve_request("r1", "a1", t(1)).await.unwrap();
    assert!(matches!(
        store.approve_request("r1", "a1", t(1)).await,
        Err(StoreError::Conflict(_))
    ));
    store.approve_request("r1", "a2", t(2)).await.unwrap();
    let (got, approvals) = store.request("r1").await.unwrap().unwrap();
    assert_eq!(
        (got, approvals),
        (request.clone(), vec!["a1".to_owned(), "a2".to_owned()])
    );
    let g = request.to_grant("g5".into(), "a2", t(3));
    assert!(
        store
            .close_request("r1", RequestStatus::Granted, Some(&g), t(3))
            .await
            .unwrap()
    );
    assert!(
        !store
            .close_request("r1", RequestStatus::Rejected, None, t(3))
            .await
            .unwrap()
    );
    assert_eq!(
        store.grant("g5").await.unwrap().unwrap().expires_at,
        Some(t(3 + 3_600_000))
    );
    assert!(
        store.requests(None).await.unwrap().is_empty(),
        "no pending ones left"
    );
    assert_eq!(
        store.requests(Some("u1")).await.unwrap()[0]
            .grant_id
            .as_deref(),
        Some("g5")
    );

    let role = CustomRole {
        name: "counter".into(),
        permissions: vec![Permission::EventsRead],
        description: "d".into(),
    };
    store.create_role(&role, "a", t(0)).await.unwrap();
    assert!(matches!(
        store.create_role(&role, "a", t(0)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.custom_roles().await.unwrap(), vec![role]);
    assert!(store.delete_role("counter", t(1)).await.unwrap());
    assert!(store.custom_roles().await.unwrap().is_empty());

    assert!(
        store
            .classify(&shop, PropertyKind::Event, "email", "a", t(0))
            .await
            .unwrap()
    );
    assert!(
        !store
            .classify(&shop, PropertyKind::Event, "email", "a", t(0))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .sensitive_properties(&shop, PropertyKind::Event)
            .await
            .unwrap(),
        vec!["email".to_owned()]
    );
    assert!(
        store
            .sensitive_properties(&shop, PropertyKind::Profile)
            .await
            .unwrap()
            .is_empty()
    );
    // Unmarking takes two people: one asks, another confirms; marking again withdraws it.
    let ev = PropertyKind::Event;
    assert_eq!(
        store.classification(&shop, ev, "email").await.unwrap(),
        Some(None)
    );
    assert!(
        !store
            .confirm_declassify(&shop, ev, "email", "b")
            .await
            .unwrap()
    );
    assert!(
        store
            .request_declassify(&shop, ev, "email", "a", t(1))
            .await
            .unwrap()
    );
    assert!(
        !store
            .request_declassify(&shop, ev, "email", "b", t(1))
            .await
            .unwrap()
    );
    assert_eq!(
        store.classification(&shop, ev, "email").await.unwrap(),
        Some(Some("a".into()))
    );
    assert!(
        !store
            .confirm_declassify(&shop, ev, "email", "a")
            .await
            .unwrap()
    );
    assert!(store.classify(&shop, ev, "email", "c", t(2)).await.unwrap());
    assert_eq!(
        store.classification(&shop, ev, "email").await.unwrap(),
        Some(None)
    );
    assert!(
        store
            .request_declassify(&shop, ev, "email", "a", t(3))
            .await
            .unwrap()
    );
    assert!(
        store
            .confirm_declassify(&shop, ev, "email", "b")
            .await
            .unwrap()
    );
    assert_eq!(
        store.classification(&shop, ev, "email").await.unwrap(),
        None
    );
    assert!(store.classify(&shop, ev, "email", "a", t(4)).await.unwrap());
    assert!(
        store
            .declassify(&shop, PropertyKind::Event, "email")
            .await
            .unwrap()
    );
    assert!(
        !store
            .declassify(&shop, PropertyKind::Event, "email")
            .await
            .unwrap()
    );
    // Retention deletes oldest first, in bounded batches, only before the cutoff.
    let batch: Vec<NewEvent> = (0..7).map(|i| event("e", "u", T0 + i, None)).collect();
    store.insert_events(&shop, &batch, &[], t(0)).await.unwrap();
    assert_eq!(store.count_events_before(&shop, t(5)).await.unwrap(), 5);
    assert_eq!(store.delete_events_before(&shop, t(5), 3).await.unwrap(), 3);
    assert_eq!(store.delete_events_before(&shop, t(5), 3).await.unwrap(), 2);
    assert_eq!(store.delete_events_before(&shop, t(5), 3).await.unwrap(), 0);
    assert_eq!(store.count_events_before(&shop, t(100)).await.unwrap(), 2);
}

#[tokio::test]
async fn access_suite_on_sqlite() {
    let (store, _db) = open(Backend::Sqlite, "access_suite_on_sqlite")
        .await
        .unwrap();
    access_suite(store).await;
}

#[tokio::test]
async fn access_suite_on_postgres() {
    let Some((store, _db)) = open(Backend::Postgres, "access_suite_on_postgres").await else {
        return;
    };
    access_suite(store).await;
}

/// Subject requests, opt-outs, consent and the project lifecycle: the same on both backends.
async fn privacy_suite(store: SharedStore) {
    use auditgate::privacy::request::{ComplianceType, JobState, RequestKind, SubjectRequest};
    use auditgate::store::{Affected, ConsentRecord, ProjectSettings};
    let clock = ManualClock::new(Timestamp::from_millis(T0));
    let shop = ProjectId::parse("shop").unwrap();
    projects::create(store.as_ref(), &clock, shop.clone(), None)
        .await
        .unwrap();
    let mut e = event("Buy", "p1", T0, Some("a"));
    e.properties.insert("email".into(), json!("p1@example.com"));
    store
        .insert_events(
            &shop,
            &[
                e,
                event("Buy", "p1", T0 + 1, Some("b")),
                event("Buy", "p2", T0 + 2, Some("c")),
            ],
            &[],
            clock.now(),
        )
        .await
        .unwrap();
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        store
            .count_subject_data(&shop, &ids(&["p1", "p2", "p9"]))
            .await
            .unwrap(),
        Affected {
            events: 3,
            profiles: 0,
            groups: 0
        }
    );

    // A request's life: created, staged, cancelled only before it starts.
    let request = SubjectRequest {
        id: "r1".into(),
        project: shop.clone(),
        kind: RequestKind::Erase,
        compliance_type: ComplianceType::Ccpa,
        state: JobState::Pending,
        requested_by: "user:a".into(),
        reason: "T-1".into(),
        subject_count: 2,
        property: None,
        drop_properties: vec!["x".into()],
        needs_approval: true,
        approved_by: None,
        approved_at: None,
        created_at: clock.now(),
        updated_at: clock.now(),
        completed_at: None,
        events_affected: 0,
        profiles_affected: 0,
        error: None,
    };
    let people: Vec<DistinctId> = ["p1", "p2"]
        .iter()
        .map(|d| DistinctId::parse(d).unwrap())
        .collect();
    store
        .create_subject_request(&request, &people)
        .await
        .unwrap();
    assert_eq!(
        store.subject_request(&shop, "r1").await.unwrap().unwrap(),
        request
    );
    assert_eq!(store.subject_request_ids("r1").await.unwrap(), ["p1", "p2"]);
    assert_eq!(store.open_subject_requests().await.unwrap().len(), 1);
    assert!(
        store
            .approve_subject_request("r1", "user:b", clock.now())
            .await
            .unwrap()
    );
    assert!(
        !store
            .approve_subject_request("r1", "user:c", clock.now())
            .await
            .unwrap()
    );
    assert!(
        store
            .move_subject_request("r1", &[JobState::Pending], JobState::Started, clock.now())
            .await
            .unwrap()
    );
    assert!(
        !store
            .move_subject_request("r1", &JobState::CANCELLABLE, JobState::Revoked, clock.now())
            .await
            .unwrap(),
        "a started request is not cancellable"
    );

    // Erasing one person removes their events and their id from every request.
    assert_eq!(
        store
            .erase_subject_property(&shop, "p1", "email")
            .await
            .unwrap(),
        Affected {
            events: 1,
            profiles: 0,
            groups: 0
        }
    );
    assert_eq!(
        store.erase_subject(&shop, "p1").await.unwrap(),
        Affected {
            events: 2,
            profiles: 0,
            groups: 0
        }
    );
    assert_eq!(store.subject_request_ids("r1").await.unwrap(), ["p2"]);
    assert_eq!(
        store
            .anonymize_subject(&shop, "p2", "anon-1", &["n".into()])
            .await
            .unwrap(),
        Affected {
            events: 1,
            profiles: 0,
            groups: 0
        }
    );
    let left = store.query_events(&filter(&shop), None, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].distinct_id, "anon-1");
    assert!(left[0].properties.get("n").is_none());
    store.after_erasure().await.unwrap();
    store
        .finish_subject_request(
            "r1",
            JobState::Success,
            Affected {
                events: 3,
                profiles: 0,
                groups: 0,
            },
            None,
            clock.now(),
        )
        .await
        .unwrap();
    let done = store.subject_request(&shop, "r1").await.unwrap().unwrap();
    assert_eq!((done.state, done.events_affected), (JobState::Success, 3));
    assert!(done.completed_at.is_some());
    assert!(store.open_subject_requests().await.unwrap().is_empty());

    // Opt-outs and consent, by lookup only.
    let (a, b) = ([1u8; 32], [2u8; 32]);
    assert!(
        store
            .set_opt_out(&shop, &a, "api", clock.now())
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_opt_out(&shop, &a, "sdk", clock.now())
            .await
            .unwrap()
    );
    assert_eq!(store.opted_out(&shop, &[a, b]).await.unwrap(), [a]);
    assert_eq!(store.opt_out(&shop, &a).await.unwrap().unwrap().0, "api");
    assert!(store.clear_opt_out(&shop, &a).await.unwrap());
    assert!(store.opted_out(&shop, &[a, b]).await.unwrap().is_empty());
    // A project with more opt-outs than the memo keeps is asked about each batch's people;
    // either way a change made here is seen at the next question, and projects stay apart.
    let kept = auditgate::store::cache::OPT_OUTS_KEPT;
    let other = ProjectId::parse("other").unwrap();
    projects::create(store.as_ref(), &clock, other.clone(), None)
        .await
        .unwrap();
    let many: Vec<[u8; 32]> = (0..=kept)
        .map(|i| {
            let mut l = [7u8; 32];
            l[..8].copy_from_slice(&(i as u64).to_be_bytes());
            l
        })
        .collect();
    for l in &many {
        store
            .set_opt_out(&shop, l, "api", clock.now())
            .await
            .unwrap();
    }
    let asked = [many[0], b, many[kept]];
    let mut found = store.opted_out(&shop, &asked).await.unwrap();
    found.sort();
    assert_eq!(found, [many[0], many[kept]]);
    assert!(store.clear_opt_out(&shop, &many[kept]).await.unwrap());
    assert_eq!(store.opted_out(&shop, &asked).await.unwrap(), [many[0]]);
    assert!(store.opted_out(&other, &asked).await.unwrap().is_empty());
    assert!(
        store
            .set_opt_out(&other, &b, "api", clock.now())
            .await
            .unwrap()
    );
    assert_eq!(store.opted_out(&other, &asked).await.unwrap(), [b]);
    for l in many.iter().take(kept) {
        assert!(store.clear_opt_out(&shop, l).await.unwrap());
    }
    assert!(store.clear_opt_out(&other, &b).await.unwrap());
    assert!(store.opted_out(&shop, &asked).await.unwrap().is_empty());
    for (given, source) in [(true, "banner"), (false, "ticket")] {
        let r = ConsentRecord {
            given,
            source: source.into(),
            at: clock.now(),
        };
        store.record_consent(&shop, &b, &r).await.unwrap();
    }
    assert_eq!(
        store.consent_states(&shop, &[a, b]).await.unwrap(),
        [(b, false)]
    );
    assert_eq!(store.consent_history(&shop, &b).await.unwrap().len(), 2);

    // Settings, soft delete, restore, purge.
    let settings = ProjectSettings {
        retention_days: 30,
        consent_required: true,
        consent_property: "ok".into(),
        allowed_origins: AllowedOrigins::parse_list(&["https://shop.example".into()]).unwrap(),
        record_client_ip: true,
    };
    assert!(
        store
            .update_project_settings(&shop, &settings)
            .await
            .unwrap()
    );
    let p = store.project(&shop).await.unwrap().unwrap();
    assert!(p.consent_required && p.consent_property == "ok" && p.retention_days == 30);
    assert_eq!(p.allowed_origins.to_list(), ["https://shop.example"]);
    assert!(p.record_client_ip);
    assert!(
        store
            .set_project_deleted(&shop, Some(clock.now()))
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_project_deleted(&shop, Some(clock.now()))
            .await
            .unwrap()
    );
    assert!(store.set_project_deleted(&shop, None).await.unwrap());
    assert!(
        store
            .set_project_deleted(&shop, Some(clock.now()))
            .await
            .unwrap()
    );
    let acme = GroupRef {
        key: "company".into(),
        id: "acme".into(),
    };
    let set = GroupUpdate {
        group: acme.clone(),
        op: ProfileOp::parse("$set", &json!({"plan": "pro"})).unwrap(),
    };
    store
        .apply_group_updates(&shop, &[set], clock.now())
        .await
        .unwrap();
    store.purge_project(&shop, clock.now()).await.unwrap();
    assert!(store.group_profile(&shop, &acme).await.unwrap().is_none());
    let p = store.project(&shop).await.unwrap().unwrap();
    assert!(p.purged_at.is_some());
    assert!(
        !store.set_project_deleted(&shop, None).await.unwrap(),
        "a purged project stays gone"
    );
    assert!(
        store
            .query_events(&filter(&shop), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .tokens(&shop)
            .await
            .unwrap()
            .iter()
            .all(|t| t.revoked_at.is_some())
    );
}

#[tokio::test]
async fn privacy_suite_on_sqlite() {
    let (store, _db) = open(Backend::Sqlite, "privacy_suite_on_sqlite")
        .await
        .unwrap();
    privacy_suite(store).await;
}

#[tokio::test]
async fn privacy_suite_on_postgres() {
    let Some((store, _db)) = open(Backend::Postgres, "privacy_suite_on_postgres").await else {
        return;
    };
    privacy_suite(store).await;
}

/// The audit tree's storage: appends store the interior hashes, proofs read them back, rows
/// are append-only, and a rotation's hand-over is found: the same on both backends.
async fn audit_tree_suite(store: SharedStore) {
    use auditgate::audit::{proofs, system_draft};
    use auditgate::ledger::entry::Action;
    use auditgate::ledger::merkle::MerkleTree;
    let now = Timestamp::from_millis(T0);
    let mut size = 0u64;
    for group in [1usize, 2, 5, 64, 200] {
        let drafts = (0..group)
            .map(|i| system_draft(Action::EventsQuery, serde_json::json!({"i": i})))
            .collect::<Vec<_>>();
        let appended = store
            .append_audit(drafts, vec![[3; 16]; group], now, None, &[])
            .await
            .unwrap();
        assert_eq!(appended.base.size(), size);
        size += group as u64;
        assert_eq!(appended.head.size(), size);
    }

    // New people's salts go in with a group; the same salt again is harmless, another salt
    // for the same person fails the whole group (its entries were sealed with the first).
    let key = |salt: u8| auditgate::store::NewSubjectKey {
        project: "shop".into(),
        lookup: [salt; 32],
        salt: [salt; 32],
    };
    let mut other = key(9);
    other.lookup = [1; 32];
    let draft = || vec![system_draft(Action::EventsQuery, serde_json::json!({}))];
    store
        .append_audit(draft(), vec![[3; 16]], now, None, &[key(1), key(2)])
        .await
        .unwrap();
    assert_eq!(
        store.subject_salt("shop", &[1; 32]).await.unwrap(),
        Some(vec![1; 32])
    );
    assert_eq!(store.subject_salt("shop", &[7; 32]).await.unwrap(), None);
    store
        .append_audit(draft(), vec![[3; 16]], now, None, &[key(2), key(3)])
        .await
        .unwrap();
    size += 2;
    let refused = store
        .append_audit(draft(), vec![[3; 16]], now, None, &[key(4), other])
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(store.audit_head().await.unwrap().size(), size);
    assert_eq!(store.subject_salt("shop", &[4; 32]).await.unwrap(), None);
    assert_eq!(
        store.subject_salt("shop", &[1; 32]).await.unwrap(),
        Some(vec![1; 32])
    );
    assert_eq!(
        store.audit_node_count().await.unwrap(),
        size - u64::from(size.count_ones())
    );
    let tree = MerkleTree::from_leaves(store.audit_leaves(size).await.unwrap());
    for n in [1, 2, 3, 8, 71, 200, size] {
        assert_eq!(
            proofs::root(store.as_ref(), n).await.unwrap(),
            tree.root(n).unwrap()
        );
    }
    let seqs: Vec<u64> = vec![0, 1, 7, 100, size - 1];
    let got = proofs::inclusion_proofs(store.as_ref(), &seqs, size)
        .await
        .unwrap();
    for (seq, proof) in seqs.iter().zip(got) {
        assert_eq!(proof, tree.inclusion_proof(*seq, size).unwrap());
    }
    assert_eq!(
        proofs::consistency_proof(store.as_ref(), 9, size)
            .await
            .unwrap(),
        tree.consistency_proof(9, size).unwrap()
    );
    let peaks = proofs::peaks(store.as_ref(), 71).await.unwrap();
    assert_eq!(peaks.len(), 71u64.count_ones() as usize);
    store.insert_audit_nodes(&[]).await.unwrap();
    // Filling in what is already there changes nothing; a different hash is refused.
    proofs::fill_in(store.as_ref()).await.unwrap();
    let forged = auditgate::ledger::merkle::Node {
        level: 1,
        index: 0,
        hash: [9; 32],
    };
    assert!(
        store.insert_audit_nodes(&[forged]).await.is_err() || {
            // PostgreSQL's ON CONFLICT skips the row: the stored hash must be unchanged.
            store.audit_nodes(&[(1, 0)]).await.unwrap()[&(1, 0)] != [9; 32]
        }
    );
    store.insert_checkpoint(3, "cp3", now).await.unwrap();
    store.insert_checkpoint(8, "cp8", now).await.unwrap();
    assert_eq!(store.checkpoint_covering(2).await.unwrap().unwrap().0, 3);
    assert_eq!(store.checkpoint_covering(3).await.unwrap().unwrap().0, 8);
    assert!(store.checkpoint_covering(8).await.unwrap().is_none());
    assert_eq!(
        store
            .audit_entries_with_action(Action::EventsQuery.as_str())
            .await
            .unwrap()
            .len() as u64,
        size
    );
    // Pages of entries, newest first, selected by the log's own columns.
    use auditgate::store::EntryFilter;
    let seqs = |page: Vec<auditgate::store::StoredEntry>| -> Vec<u64> {
        page.into_iter().map(|e| e.seq).collect()
    };
    let all = EntryFilter::default();
    let newest = seqs(store.audit_entries_page(&all, None, 3).await.unwrap());
    assert_eq!(newest, [size - 1, size - 2, size - 3]);
    let older = seqs(store.audit_entries_page(&all, Some(3), 10).await.unwrap());
    assert_eq!(older, [2, 1, 0]);
    let queries = EntryFilter {
        action: Some(Action::EventsQuery.as_str().into()),
        from_ms: Some(T0),
        ..Default::default()
    };
    let page = store
        .audit_entries_page(&queries, None, 1000)
        .await
        .unwrap();
    assert_eq!(page.len() as u64, size);
    for nothing in [
        EntryFilter {
            action: Some(Action::SignIn.as_str().into()),
            ..Default::default()
        },
        EntryFilter {
            project: Some("shop".into()),
            ..Default::default()
        },
        EntryFilter {
            to_ms: Some(T0),
            ..Default::default()
        },
    ] {
        assert!(
            store
                .audit_entries_page(&nothing, None, 10)
                .await
                .unwrap()
                .is_empty(),
            "{nothing:?}"
        );
    }

    // A project's pages follow its own index; a cursor from another project still finds
    // every older entry of this one.
    let mut shop = Vec::new();
    let mut bank = Vec::new();
    for (at, i) in (size..).zip(0..9u64) {
        let mut d = system_draft(Action::EventsQuery, serde_json::json!({"i": i}));
        d.project = Some(if i % 3 == 2 { "bank" } else { "shop" }.into());
        if i % 3 == 2 {
            bank.push(at)
        } else {
            shop.push(at)
        }
        store
            .append_audit(vec![d], vec![[3; 16]], now, None, &[])
            .await
            .unwrap();
    }
    let of_shop = EntryFilter {
        project: Some("shop".into()),
        ..Default::default()
    };
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = seqs(store.audit_entries_page(&of_shop, cursor, 2).await.unwrap());
        cursor = page.last().copied();
        pages.extend(page.iter().copied());
        if page.len() < 2 {
            break;
        }
    }
    shop.reverse();
    assert_eq!(pages, shop);
    let below_bank = seqs(
        store
            .audit_entries_page(&of_shop, Some(bank[1]), 10)
            .await
            .unwrap(),
    );
    assert_eq!(
        below_bank,
        shop.iter()
            .copied()
            .filter(|s| *s < bank[1])
            .collect::<Vec<_>>()
    );
    store.probe_write(now).await.unwrap();
}

/// Two processes appending to one log (two stores on one database): each seals onto the head
/// it finds, even where a backend writes a group without reading the head first (PostgreSQL,
/// which checks the head it last wrote is still the stored one): one chain, no gap, each
/// project's entries numbered without a hole or a repeat.
async fn two_writers_suite(one: SharedStore, other: SharedStore) {
    use auditgate::audit::system_draft;
    use auditgate::ledger::entry::{Action, Entry, chain_link};
    let now = Timestamp::from_millis(T0);
    let drafts = |n: usize| {
        (0..n)
            .map(|i| {
                let mut d = system_draft(Action::EventsQuery, serde_json::json!({"i": i}));
                d.project = Some("shop".into());
                d
            })
            .collect::<Vec<_>>()
    };
    let mut size = 0;
    for (store, n) in [
        (&one, 2),
        (&one, 1),
        (&other, 3),
        (&one, 2),
        (&one, 1),
        (&other, 1),
    ] {
        let appended = store
            .append_audit(drafts(n), vec![[3; 16]; n], now, None, &[])
            .await
            .unwrap();
        assert_eq!(appended.base.size(), size, "sealed onto the stored head");
        size += n as u64;
        assert_eq!(appended.head, one.audit_head().await.unwrap());
    }
    // Every entry chains onto the one before it, whichever store wrote it, and the head's
    // link is the last entry's.
    let stored = one.audit_entries(0, size).await.unwrap();
    let mut link = [0u8; 32];
    for (i, e) in stored.iter().enumerate() {
        let entry = Entry::decode(&e.bytes).unwrap();
        assert_eq!(entry.seq, i as u64);
        assert_eq!(entry.project_seq, i as u64, "project numbering in order");
        assert_eq!(entry.prev, link, "entry {i} chains onto the one before");
        link = chain_link(&e.bytes);
    }
    assert_eq!(one.audit_head().await.unwrap().last_link, link);
}

#[tokio::test]
async fn two_writers_suite_on_sqlite() {
    let (one, db) = open(Backend::Sqlite, "two_writers_suite_on_sqlite")
        .await
        .unwrap();
    let other = store::connect(&test_settings(&db).database).await.unwrap();
    two_writers_suite(one, other).await;
}

#[tokio::test]
async fn two_writers_suite_on_postgres() {
    let Some((one, db)) = open(Backend::Postgres, "two_writers_suite_on_postgres").await else {
        return;
    };
    let other = store::connect(&test_settings(&db).database).await.unwrap();
    two_writers_suite(one, other).await;
}

#[tokio::test]
async fn audit_tree_suite_on_sqlite() {
    let (store, _db) = open(Backend::Sqlite, "audit_tree_suite_on_sqlite")
        .await
        .unwrap();
    audit_tree_suite(store).await;
}

#[tokio::test]
async fn audit_tree_suite_on_postgres() {
    let Some((store, _db)) = open(Backend::Postgres, "audit_tree_suite_on_postgres").await else {
        return;
    };
    audit_tree_suite(store).await;
}

/// Every (filter, grouping) a count can be asked, answered from the events themselves.
async fn counted_by_hand(
    store: &SharedStore,
    f: &EventFilter,
    group: CountGroup,
) -> Vec<(String, i64)> {
    let mut all = std::collections::BTreeMap::<String, i64>::new();
    let mut after = None;
    loop {
        let page = store.query_events(f, after, 1000).await.unwrap();
        for e in &page {
            let day = chrono::DateTime::from_timestamp_millis(e.time.millis())
                .unwrap()
                .format("%Y-%m-%d")
                .to_string();
            let key = match group {
                CountGroup::Total => "total".to_owned(),
                CountGroup::Event => e.event.clone(),
                CountGroup::Day => day,
                CountGroup::EventDay => format!("{day}/{}", e.event),
            };
            *all.entry(key).or_default() += 1;
        }
        match page.last() {
            Some(last) if page.len() == 1000 => {
                after = Some(EventCursor {
                    time: last.time,
                    id: last.id,
                })
            }
            _ => return all.into_iter().collect(),
        }
    }
}

/// Counts (from per-day counts where whole days are asked for) agree with the events.
async fn assert_counts_agree(store: &SharedStore, project: &ProjectId, when: &str) {
    const DAY: i64 = 86_400_000;
    let start = T0 - T0 % DAY;
    let mut filters = vec![filter(project)];
    // Aligned and ragged ranges, one day or less, open at either end.
    for (from, to) in [
        (Some(start), Some(start + 3 * DAY)),
        (Some(start + 5), Some(start + 3 * DAY - 7)),
        (Some(start + DAY / 2), Some(start + DAY - 1)),
        (Some(start + DAY / 2), Some(start + DAY + 1)),
        (None, Some(start + 2 * DAY + 12_345)),
        (Some(start + DAY + 999), None),
        (Some(start + 4 * DAY), Some(start + 4 * DAY)),
    ] {
        let mut f = filter(project);
        f.from = from.map(Timestamp::from_millis);
        f.to = to.map(Timestamp::from_millis);
        filters.push(f.clone());
        f.event = Some("view".into());
        filters.push(f);
    }
    let mut one = filter(project);
    one.distinct_ids = vec![DistinctId::parse("p3").unwrap()];
    filters.push(one);
    for f in &filters {
        for group in [
            CountGroup::Total,
            CountGroup::Event,
            CountGroup::Day,
            CountGroup::EventDay,
        ] {
            let mut counted = store.count_events(f, group).await.unwrap();
            if group == CountGroup::Total {
                // A total over nothing is no row, as by hand.
                counted.retain(|(_, n)| *n != 0);
            }
            assert_eq!(
                counted,
                counted_by_hand(store, f, group).await,
                "{when}: {group:?} over {f:?}"
            );
        }
    }
}

/// A clock at T0 and two new projects, "shop" and "other".
async fn shop_and_other(store: &SharedStore) -> (ManualClock, ProjectId, ProjectId) {
    let clock = ManualClock::new(Timestamp::from_millis(T0));
    let shop = ProjectId::parse("shop").unwrap();
    let other = ProjectId::parse("other").unwrap();
    for p in [&shop, &other] {
        projects::create(store.as_ref(), &clock, p.clone(), None)
            .await
            .unwrap();
    }
    (clock, shop, other)
}

/// Per-day counts follow ingestion (with duplicates), retention, erasure, property
/// deletion, anonymisation and purge.
async fn counts_suite(store: SharedStore) {
    const DAY: i64 = 86_400_000;
    let (clock, shop, other) = shop_and_other(&store).await;
    let start = T0 - T0 % DAY;
    let names = ["view", "buy", "sign up"];
    let batch: Vec<NewEvent> = (0..1500i64)
        .map(|i| {
            // Exactly at midnight every 100th event, otherwise spread over five days.
            let t = if i % 100 == 0 {
                start + (i % 5) * DAY
            } else {
                start + (i * 4_321_987) % (5 * DAY)
            };
            event(
                names[i as usize % 3],
                &format!("p{}", i % 20),
                t,
                Some(&format!("i{i}")),
            )
        })
        .collect();
    store
        .insert_events(&shop, &batch, &[], clock.now())
        .await
        .unwrap();
    store
        .insert_events(&other, &batch[..100], &[], clock.now())
        .await
        .unwrap();
    assert_counts_agree(&store, &shop, "after ingestion").await;
    // Resent batches overlap what is stored: only new events count.
    let outcome = store
        .insert_events(&shop, &batch[1400..], &[], clock.now())
        .await
        .unwrap();
    assert_eq!(outcome.inserted, 0);
    let more: Vec<NewEvent> = (0..50)
        .map(|i| event("view", "late", start + 2 * DAY + i, None))
        .collect();
    store
        .insert_events(&shop, &more, &[], clock.now())
        .await
        .unwrap();
    assert_counts_agree(&store, &shop, "after duplicates").await;

    // Retention in two bounded batches.
    let cutoff = Timestamp::from_millis(start + DAY + DAY / 3);
    store
        .delete_events_before(&shop, cutoff, 100)
        .await
        .unwrap();
    assert_counts_agree(&store, &shop, "after part of a retention sweep").await;
    while store
        .delete_events_before(&shop, cutoff, 100)
        .await
        .unwrap()
        > 0
    {}
    assert_counts_agree(&store, &shop, "after a retention sweep").await;

    store.erase_subject(&shop, "p3").await.unwrap();
    assert_counts_agree(&store, &shop, "after erasure").await;
    store
        .erase_subject_property(&shop, "p4", "n")
        .await
        .unwrap();
    store
        .anonymize_subject(&shop, "p5", "anon-5", &["n".to_owned()])
        .await
        .unwrap();
    assert_counts_agree(&store, &shop, "after anonymisation").await;

    assert_counts_agree(&store, &other, "the other project").await;
    store.purge_project(&other, clock.now()).await.unwrap();
    assert!(
        store
            .count_events(&filter(&other), CountGroup::Day)
            .await
            .unwrap()
            .is_empty()
    );
    assert_counts_agree(&store, &shop, "after another project's purge").await;
}

#[tokio::test]
async fn counts_suite_on_sqlite() {
    let (store, _db) = open(Backend::Sqlite, "counts_suite_on_sqlite")
        .await
        .unwrap();
    counts_suite(store).await;
}

#[tokio::test]
async fn counts_suite_on_postgres() {
    let Some((store, _db)) = open(Backend::Postgres, "counts_suite_on_postgres").await else {
        return;
    };
    counts_suite(store).await;
}

/// Runs raw SQL on a test database, as an operator (or an older build) might have left it.
async fn raw_sql(db: &crate::helpers::TestDb, sql: &str) {
    use sqlx::Connection;
    if db.url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut c)
            .await
            .unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut c)
            .await
            .unwrap();
    }
}

/// Which entries name a pseudonym: indexed with the entries, in either order, within a range;
/// rebuilt at start-up for entries written before the index; erasure leaves a tombstone.
async fn subject_index_suite(store: SharedStore, db: crate::helpers::TestDb) {
    use auditgate::audit::{report, system_draft};
    use auditgate::ledger::entry::Action;
    let now = Timestamp::from_millis(T0);
    let (ann, bob) = ([0xa1; 32], [0xb2; 32]);
    // Entries 0..30: every third names ann, every fifth bob, some both, in groups of 4.
    let names = |i: u64| {
        let mut s = Vec::new();
        if i.is_multiple_of(3) {
            s.push(ann);
        }
        if i.is_multiple_of(5) {
            s.push(bob);
        }
        s
    };
    for group in (0..30u64).collect::<Vec<_>>().chunks(4) {
        let drafts = group
            .iter()
            .map(|i| {
                let mut d = system_draft(Action::ProfilesRead, serde_json::json!({"i": i}));
                d.project = Some("shop".into());
                d.subjects = names(*i);
                d
            })
            .collect::<Vec<_>>();
        store
            .append_audit(drafts, vec![[3; 16]; group.len()], now, None, &[])
            .await
            .unwrap();
    }
    let seqs = |v: Vec<auditgate::store::StoredEntry>| v.iter().map(|e| e.seq).collect::<Vec<_>>();
    let of_ann: Vec<u64> = (0..30).filter(|i: &u64| i.is_multiple_of(3)).collect();
    assert_eq!(
        seqs(
            store
                .entries_naming(&ann, 0..u64::MAX, false, 100)
                .await
                .unwrap()
        ),
        of_ann
    );
    let newest: Vec<u64> = of_ann.iter().rev().copied().take(3).collect();
    assert_eq!(
        seqs(
            store
                .entries_naming(&ann, 0..u64::MAX, true, 3)
                .await
                .unwrap()
        ),
        newest
    );
    assert_eq!(
        seqs(store.entries_naming(&bob, 5..25, false, 100).await.unwrap()),
        vec![5, 10, 15, 20]
    );
    assert!(
        store
            .entries_naming(&[0xcc; 32], 0..u64::MAX, true, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Nothing to index on a database that had no entries when the index came.
    assert_eq!(store.index_subjects_backlog(10).await.unwrap(), 0);

    // A log written before the index: its entries are indexed at start-up, a batch at a time,
    // and an entry indexed twice (the backfill meeting a new append) is harmless.
    raw_sql(
        &db,
        "DELETE FROM audit_subjects WHERE seq < 20; \
         UPDATE audit_subjects_backfill SET next = 0, upto = 25 WHERE id = 1",
    )
    .await;
    assert_eq!(
        seqs(
            store
                .entries_naming(&bob, 0..u64::MAX, false, 100)
                .await
                .unwrap()
        ),
        vec![20, 25]
    );
    assert_eq!(store.index_subjects_backlog(7).await.unwrap(), 18);
    report::index_backlog(store.as_ref()).await.unwrap();
    assert_eq!(store.index_subjects_backlog(7).await.unwrap(), 0);
    assert_eq!(
        seqs(
            store
                .entries_naming(&bob, 0..u64::MAX, false, 100)
                .await
                .unwrap()
        ),
        vec![0, 5, 10, 15, 20, 25]
    );
    assert_eq!(
        seqs(
            store
                .entries_naming(&ann, 0..u64::MAX, false, 100)
                .await
                .unwrap()
        ),
        of_ann
    );

    // Erasing keeps when, under the keyed lookup only; erasing twice keeps the first time.
    let shop = ProjectId::parse("shop").unwrap();
    let lookup = [0x11; 32];
    assert_eq!(store.subject_erased_at(&shop, &lookup).await.unwrap(), None);
    store.forget_subject(&shop, &lookup, now).await.unwrap();
    let later = Timestamp::from_millis(T0 + 1000);
    store.forget_subject(&shop, &lookup, later).await.unwrap();
    assert_eq!(
        store.subject_erased_at(&shop, &lookup).await.unwrap(),
        Some(now)
    );
    let bank = ProjectId::parse("bank").unwrap();
    assert_eq!(store.subject_erased_at(&bank, &lookup).await.unwrap(), None);
}

#[tokio::test]
async fn subject_index_suite_on_sqlite() {
    let (store, db) = open(Backend::Sqlite, "subject_index_suite_on_sqlite")
        .await
        .unwrap();
    subject_index_suite(store, db).await;
}

#[tokio::test]
async fn subject_index_suite_on_postgres() {
    let Some((store, db)) = open(Backend::Postgres, "subject_index_suite_on_postgres").await else {
        return;
    };
    subject_index_suite(store, db).await;
}

/// A count straight from the database, for what the store does not expose.
async fn scalar_sql(db: &crate::helpers::TestDb, sql: &str) -> i64 {
    use sqlx::Connection;
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    if db.url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
    }
}

/// Events spread over many arrival buckets read back as from one table: every page in time
/// order, none lost or repeated across buckets, by time range and by person; counts, retention,
/// erasure and purge reach every bucket.
async fn buckets_suite(store: SharedStore, db: crate::helpers::TestDb) {
    const DAY: i64 = 86_400_000;
    let (clock, shop, other) = shop_and_other(&store).await;
    let start = T0 - T0 % DAY;
    // (time, insert id, person) of every event of the shop, in the order they were stored.
    let mut stored: Vec<(i64, String, String)> = Vec::new();
    for b in 0..40i64 {
        let batch: Vec<NewEvent> = (0..7i64)
            .map(|k| {
                let i = b * 7 + k;
                // Times in no order, some equal (the page boundary must break ties by id).
                let t = start + (i * 7_919_113) % (4 * DAY) / 1000 * 1000;
                let who = format!("p{}", i % 9);
                stored.push((t, format!("i{i}"), who.clone()));
                event(
                    ["view", "buy"][i as usize % 2],
                    &who,
                    t,
                    Some(&format!("i{i}")),
                )
            })
            .collect();
        store
            .insert_events(&shop, &batch, &[], clock.now())
            .await
            .unwrap();
        let elsewhere = [event("view", "p1", start + b, Some(&format!("o{b}")))];
        store
            .insert_events(&other, &elsewhere, &[], clock.now())
            .await
            .unwrap();
    }
    let buckets = scalar_sql(
        &db,
        "SELECT COUNT(*) FROM event_buckets WHERE project_id = 'shop'",
    )
    .await;
    let used = scalar_sql(
        &db,
        "SELECT COUNT(DISTINCT bucket) FROM events WHERE project_id = 'shop'",
    )
    .await;
    if db.url.starts_with("sqlite:") {
        assert!(buckets >= 15, "{buckets} buckets for 280 events");
        assert_eq!(used, buckets);
    } else {
        // PostgreSQL's indexes have no buckets (Backend::BUCKETED): all events in one.
        assert_eq!(used, 1);
    }

    // Stored order breaks ties of time: the id grows with it.
    let mut expected = stored.clone();
    expected.sort_by_key(|(t, _, _)| *t);
    let read_all = |f: EventFilter, limit: u32| {
        let store = store.clone();
        async move {
            let mut all = Vec::new();
            let mut after = None;
            loop {
                let page = store.query_events(&f, after, limit).await.unwrap();
                assert!(page.len() <= limit as usize);
                all.extend(page.iter().map(|e| {
                    (
                        e.time.millis(),
                        e.insert_id.clone().unwrap(),
                        e.distinct_id.clone(),
                    )
                }));
                match page.last() {
                    Some(last) if page.len() == limit as usize => {
                        after = Some(EventCursor {
                            time: last.time,
                            id: last.id,
                        })
                    }
                    _ => return all,
                }
            }
        }
    };
    assert_eq!(read_all(filter(&shop), 13).await, expected);
    let mut day = filter(&shop);
    day.from = Some(Timestamp::from_millis(start + DAY));
    day.to = Some(Timestamp::from_millis(start + 2 * DAY));
    let in_day: Vec<_> = expected
        .iter()
        .filter(|(t, _, _)| (start + DAY..start + 2 * DAY).contains(t))
        .cloned()
        .collect();
    assert!(in_day.len() > 40);
    assert_eq!(read_all(day, 11).await, in_day);
    let mut person = filter(&shop);
    person.distinct_ids = vec![DistinctId::parse("p4").unwrap()];
    let of_p4: Vec<_> = expected.iter().filter(|e| e.2 == "p4").cloned().collect();
    assert_eq!(read_all(person.clone(), 5).await, of_p4);
    assert_eq!(read_all(filter(&other), 7).await.len(), 40);
    assert_counts_agree(&store, &shop, "over many buckets").await;

    // Events sent as they happen: each bucket holds a stretch of time of its own, and a range
    // is read from the buckets it overlaps only, edges included.
    let live = ProjectId::parse("live").unwrap();
    projects::create(store.as_ref(), &clock, live.clone(), None)
        .await
        .unwrap();
    let times: Vec<i64> = (0..150i64).map(|i| start + i * 100).collect();
    for chunk in times.chunks(5) {
        let batch: Vec<NewEvent> = chunk
            .iter()
            .map(|t| event("tick", "p1", *t, Some(&format!("t{t}"))))
            .collect();
        store
            .insert_events(&live, &batch, &[], clock.now())
            .await
            .unwrap();
    }
    for (a, b) in [
        (0, 150),
        (0, 1),
        (4, 5),
        (5, 6),
        (14, 31),
        (47, 112),
        (149, 150),
    ] {
        let mut range = filter(&live);
        range.from = Some(Timestamp::from_millis(times[a]));
        range.to = Some(Timestamp::from_millis(
            *times.get(b).unwrap_or(&(times[149] + 1)),
        ));
        let got: Vec<i64> = read_all(range.clone(), 7)
            .await
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(got, times[a..b], "events {a}..{b}");
        assert_eq!(
            store.count_events(&range, CountGroup::Total).await.unwrap(),
            [("total".to_owned(), (b - a) as i64)],
            "events {a}..{b}"
        );
    }

    // A resent batch is a duplicate, whichever bucket holds the first copy.
    let again = [event("view", "p0", start, Some("i0"))];
    let outcome = store
        .insert_events(&shop, &again, &[], clock.now())
        .await
        .unwrap();
    assert_eq!((outcome.inserted, outcome.duplicates), (0, 1));

    let cutoff = Timestamp::from_millis(start + DAY);
    let due = expected.iter().filter(|e| e.0 < start + DAY).count() as u64;
    assert_eq!(store.count_events_before(&shop, cutoff).await.unwrap(), due);
    let mut gone = 0;
    loop {
        let n = store.delete_events_before(&shop, cutoff, 9).await.unwrap();
        assert!(n <= 9);
        if n == 0 {
            break;
        }
        gone += n;
    }
    assert_eq!(gone, due);
    store.erase_subject(&shop, "p4").await.unwrap();
    let left: Vec<_> = expected
        .iter()
        .filter(|e| e.0 >= start + DAY && e.2 != "p4")
        .cloned()
        .collect();
    assert_eq!(read_all(filter(&shop), 17).await, left);
    assert!(read_all(person, 5).await.is_empty());
    assert_counts_agree(&store, &shop, "after retention and erasure over buckets").await;

    store.purge_project(&other, clock.now()).await.unwrap();
    assert_eq!(
        scalar_sql(
            &db,
            "SELECT COUNT(*) FROM event_buckets WHERE project_id = 'other'"
        )
        .await,
        0
    );
    assert!(read_all(filter(&other), 7).await.is_empty());
}

async fn open_bucketed(
    backend: Backend,
    test: &str,
) -> Option<(SharedStore, crate::helpers::TestDb)> {
    let db = fresh_db(backend, test).await?;
    let mut settings = test_settings(&db).database;
    settings.events_per_bucket = 16;
    let store = store::connect(&settings).await.unwrap();
    store.migrate().await.unwrap();
    Some((store, db))
}

#[tokio::test]
async fn buckets_suite_on_sqlite() {
    let (store, db) = open_bucketed(Backend::Sqlite, "buckets_suite_on_sqlite")
        .await
        .unwrap();
    buckets_suite(store, db).await;
}

#[tokio::test]
async fn buckets_suite_on_postgres() {
    let Some((store, db)) = open_bucketed(Backend::Postgres, "buckets_suite_on_postgres").await
    else {
        return;
    };
    buckets_suite(store, db).await;
}

/// More buckets than one statement may name (SQLite: 500 terms in a compound SELECT): a page
/// is merged from a statement per 200 buckets, still in order, none lost or repeated.
#[tokio::test]
async fn pages_over_more_buckets_than_one_statement_on_sqlite() {
    let db = fresh_db(Backend::Sqlite, "pages_over_more_buckets")
        .await
        .unwrap();
    let mut settings = test_settings(&db).database;
    settings.events_per_bucket = 1; // a bucket per batch
    let store = store::connect(&settings).await.unwrap();
    store.migrate().await.unwrap();
    let (clock, shop, _) = shop_and_other(&store).await;
    let mut times = Vec::new();
    for i in 0..560i64 {
        // Two events a batch, times interleaved across batches.
        let pair = [(i * 7_919) % 3_000, (i * 104_729) % 3_000 + 1];
        let batch: Vec<NewEvent> = pair
            .iter()
            .enumerate()
            .map(|(k, t)| event("view", "p1", T0 + t, Some(&format!("e{i}-{k}"))))
            .collect();
        times.extend(pair.iter().map(|t| T0 + t));
        store
            .insert_events(&shop, &batch, &[], clock.now())
            .await
            .unwrap();
    }
    assert!(scalar_sql(&db, "SELECT COUNT(*) FROM event_buckets").await > 500);
    times.sort();
    let mut read = Vec::new();
    let mut after = None;
    loop {
        let page = store.query_events(&filter(&shop), after, 97).await.unwrap();
        read.extend(page.iter().map(|e| e.time.millis()));
        match page.last() {
            Some(last) if page.len() == 97 => {
                after = Some(EventCursor {
                    time: last.time,
                    id: last.id,
                })
            }
            _ => break,
        }
    }
    assert_eq!(read, times);
}

/// Events that ride with their audit entries are written in the entries' transaction: each
/// rider's outcome comes back beside its entry, duplicates are found as in any batch, counts
/// agree, and a group that cannot be committed keeps neither its entries nor its events.
async fn riders_suite(store: SharedStore) {
    use auditgate::audit::system_draft;
    use auditgate::ledger::entry::{Action, Entry};
    use auditgate::store::{EventRider, InsertOutcome};
    let (clock, shop, other) = shop_and_other(&store).await;
    let now = clock.now();
    let base = store.audit_head().await.unwrap().size();
    let draft = |p: &ProjectId| {
        let mut d = system_draft(Action::EventsIngest, serde_json::json!({}));
        d.project = Some(p.as_str().into());
        d
    };
    let first = [
        event("view", "p1", T0, Some("a")),
        event("buy", "p1", T0 + 1, Some("b")),
        event("view", "p2", T0 + 2, None),
    ];
    // "a" again, and an event of another project with the same insert id (not a duplicate).
    let again = [
        event("view", "p1", T0 + 3, Some("a")),
        event("view", "p3", T0 + 4, Some("c")),
    ];
    let elsewhere = [event("view", "p1", T0 + 5, Some("a"))];
    let riders = vec![
        Some(EventRider::new(&shop, &first, &[], now)),
        None,
        Some(EventRider::new(&shop, &again, &[], now)),
        Some(EventRider::new(&other, &elsewhere, &[], now)),
    ];
    let drafts = vec![draft(&shop), draft(&shop), draft(&shop), draft(&other)];
    let (appended, outcomes) = store
        .append_audit_with_events(drafts, vec![[3; 16]; 4], now, None, &[], riders)
        .await
        .unwrap();
    assert_eq!(appended.base.size(), base);
    assert_eq!(appended.head.size(), base + 4);
    let outcomes: Vec<_> = outcomes
        .into_iter()
        .map(|o| o.map(Result::unwrap))
        .collect();
    let stored = |inserted, duplicates| {
        Some(InsertOutcome {
            inserted,
            duplicates,
            linked: 0,
        })
    };
    assert_eq!(
        outcomes,
        vec![stored(3, 0), None, stored(1, 1), stored(1, 0)]
    );
    let entries = store.audit_entries(base, base + 4).await.unwrap();
    let actions: Vec<_> = entries
        .iter()
        .map(|e| Entry::decode(&e.bytes).unwrap().action)
        .collect();
    assert_eq!(actions, vec![Action::EventsIngest; 4]);
    let shop_events = store.query_events(&filter(&shop), None, 100).await.unwrap();
    let names: Vec<_> = shop_events
        .iter()
        .map(|e| (e.distinct_id.as_str(), e.time.millis()))
        .collect();
    assert_eq!(
        names,
        vec![("p1", T0), ("p1", T0 + 1), ("p2", T0 + 2), ("p3", T0 + 4)]
    );
    assert_counts_agree(&store, &shop, "after riders").await;
    assert_counts_agree(&store, &other, "after riders").await;

    // A group the log refuses (a salt conflicting with a stored one) writes no events either.
    let key = |salt: u8, lookup: u8| auditgate::store::NewSubjectKey {
        project: "shop".into(),
        lookup: [lookup; 32],
        salt: [salt; 32],
    };
    store
        .append_audit(vec![draft(&shop)], vec![[3; 16]], now, None, &[key(1, 1)])
        .await
        .unwrap();
    let late = [event("late", "p9", T0 + 9, Some("z"))];
    let refused = store
        .append_audit_with_events(
            vec![draft(&shop)],
            vec![[3; 16]],
            now,
            None,
            &[key(2, 1)],
            vec![Some(EventRider::new(&shop, &late, &[], now))],
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(store.audit_head().await.unwrap().size(), base + 5);
    let after = store.query_events(&filter(&shop), None, 100).await.unwrap();
    assert_eq!(after.len(), 4, "no event of a refused group is kept");
    assert_counts_agree(&store, &shop, "after a refused group").await;
}

#[tokio::test]
async fn riders_suite_on_sqlite() {
    let (store, _db) = open(Backend::Sqlite, "riders_suite_on_sqlite")
        .await
        .unwrap();
    assert!(store.events_ride_with_entries(), "SQLite's one write lock");
    riders_suite(store).await;
}

#[tokio::test]
async fn riders_suite_on_postgres() {
    let Some((store, _db)) = open(Backend::Postgres, "riders_suite_on_postgres").await else {
        return;
    };
    assert!(!store.events_ride_with_entries(), "writers side by side");
    riders_suite(store).await;
}

type Batch = (ProjectId, Vec<NewEvent>, Vec<IdentityLink>);

/// Sends `batches` at once, as concurrent callers do; checks each batch is told exactly what
/// was new in it, as if the batches were written one after another in the order sent (a group
/// keeps their order), against `seen` (the `(project, $insert_id)` stored so far). `refused`:
/// the batches the database must refuse, alone. Returns the links made.
async fn send_at_once(
    store: &SharedStore,
    batches: &[Batch],
    seen: &mut std::collections::HashSet<(String, String)>,
    refused: &[usize],
) -> u64 {
    let now = Timestamp::from_millis(T0);
    let outcomes = futures_util::future::join_all(batches.iter().map(|(p, events, links)| {
        let store = store.clone();
        async move { store.insert_events(p, events, links, now).await }
    }))
    .await;
    let mut linked = 0;
    for (k, ((p, events, _), outcome)) in batches.iter().zip(&outcomes).enumerate() {
        if refused.contains(&k) {
            assert!(outcome.is_err(), "batch {k}: {outcome:?}");
            continue;
        }
        let outcome = outcome
            .as_ref()
            .unwrap_or_else(|e| panic!("batch {k}: {e}"));
        let new = events
            .iter()
            .filter(|e| match &e.insert_id {
                Some(i) => seen.insert((p.as_str().into(), i.clone())),
                None => true,
            })
            .count() as u64;
        assert_eq!(outcome.inserted, new, "batch {k}");
        assert_eq!(outcome.duplicates, events.len() as u64 - new, "batch {k}");
        linked += outcome.linked;
    }
    linked
}

/// Event batches sent at once by concurrent callers, written together (a group): each batch is
/// told what was new in it (an `$insert_id` in two batches of one group is stored once, for the
/// first), a link one batch makes is seen by the next batch of its group, projects stay apart,
/// counts agree, and a batch the database refuses fails alone.
async fn groups_suite(store: SharedStore) {
    use std::collections::HashSet;
    let (_clock, shop, other) = shop_and_other(&store).await;
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let stored_before: Vec<_> = (0..10)
        .map(|i| event("view", "p0", T0 + i, Some(&format!("x-{i}"))))
        .collect();
    let before = [(shop.clone(), stored_before, vec![])];
    send_at_once(&store, &before, &mut seen, &[]).await;
    let id = |s: &str| DistinctId::parse(s).unwrap();
    let link = |alias: &str, canonical: &str| IdentityLink {
        alias: id(alias),
        canonical: id(canonical),
    };
    let batches: Vec<Batch> = (0..40)
        .map(|k| {
            let project = if k % 4 == 3 { &other } else { &shop };
            let mut events: Vec<_> = (0..10)
                .map(|j| event("view", "p1", T0 + j, Some(&format!("{k}-{j}"))))
                .collect();
            // The previous batch's first five (or events stored before), again.
            let earlier = |j| match k {
                0 => format!("x-{j}"),
                _ => format!("{}-{j}", k - 1),
            };
            events
                .extend((0..5).map(|j| event("buy", "p2", T0 + 86_400_000 + j, Some(&earlier(j)))));
            events.extend((0..2).map(|j| event("tap", "p3", T0 + j, None)));
            let mut links = vec![
                link(&format!("dev-{k}"), &format!("u-{}", k % 3)),
                link(&format!("dev-{k}"), &format!("u-{}", (k + 1) % 3)), // taken just before
            ];
            if k % 4 == 1 {
                // The previous batch's device, made in this group: its person is joined.
                links.push(link(&format!("anon-{k}"), &format!("dev-{}", k - 1)));
            }
            (project.clone(), events, links)
        })
        .collect();
    let linked = send_at_once(&store, &batches, &mut seen, &[]).await;
    // One link a device, and each anon-k through dev-(k-1) to its person.
    assert_eq!(linked, 40 + 10);
    let stored = |p: &ProjectId| {
        let (store, p) = (store.clone(), p.clone());
        async move {
            store
                .query_events(&filter(&p), None, 10_000)
                .await
                .unwrap()
                .len()
        }
    };
    let none_ids = 40 * 2;
    assert_eq!(
        stored(&shop).await + stored(&other).await,
        seen.len() + none_ids
    );
    assert_counts_agree(&store, &shop, "after a group").await;
    assert_counts_agree(&store, &other, "after a group").await;
    let cluster = |p: &ProjectId, who: &str| {
        let (store, p, who) = (store.clone(), p.clone(), id(who));
        async move {
            let ids = store.identity_cluster(&p, &who).await.unwrap();
            ids.iter()
                .map(|d| d.as_str().to_owned())
                .collect::<HashSet<_>>()
        }
    };
    assert!(
        cluster(&shop, "anon-5").await.contains("u-1"),
        "anon-5 -> dev-4 -> u-1"
    );
    assert!(
        cluster(&shop, "u-0").await.contains("anon-1"),
        "anon-1 -> dev-0 -> u-0"
    );
    assert!(cluster(&other, "u-0").await.contains("dev-3"));
    assert!(
        !cluster(&shop, "u-0").await.contains("dev-3"),
        "projects stay apart"
    );

    // A batch the database refuses (PostgreSQL: a NUL in text; SQLite stores it) fails alone.
    let more: Vec<Batch> = (0..5)
        .map(|k| {
            let mut events = vec![event("late", "p5", T0, Some(&format!("late-{k}")))];
            if k == 2 {
                events.push(event("nul\0name", "p5", T0, Some("nul")));
            }
            (
                shop.clone(),
                events,
                vec![link(&format!("late-dev-{k}"), "u-9")],
            )
        })
        .collect();
    let refused: &[usize] = if store.backend() == "postgres" {
        &[2]
    } else {
        &[]
    };
    let linked = send_at_once(&store, &more, &mut seen, refused).await;
    assert_eq!(linked, 5 - refused.len() as u64);
    assert_counts_agree(&store, &shop, "after a refused batch").await;
}

#[tokio::test]
async fn groups_suite_on_sqlite() {
    let (store, _db) = open(Backend::Sqlite, "groups_suite_on_sqlite")
        .await
        .unwrap();
    groups_suite(store).await;
}

#[tokio::test]
async fn groups_suite_on_postgres() {
    let Some((store, _db)) = open(Backend::Postgres, "groups_suite_on_postgres").await else {
        return;
    };
    groups_suite(store).await;
}
