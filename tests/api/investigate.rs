//! "Who accessed this person's data?": the subject report over HTTP and as a bundle that
//! verifies offline, for data-protection officers and auditors only; an erased person cannot
//! be reported on, and no report writes anyone's id into the log.

use std::time::Duration;

use auditgate::ledger::bundle::{Scope, verify_text};
use auditgate::ledger::entry::{Action, Outcome};
use serde_json::{Value, json};

use crate::grants::{app, grant, log, person, to_user};
use crate::helpers::{TestApp, assert_problem};
use crate::signin::Browser;

const REPORT: &str = "/api/v1/audit/subject-report";

async fn report(b: &Browser, who: &str) -> Value {
    let r = b
        .post(REPORT, json!({"project": "shop", "distinct_id": who}))
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

async fn import(app: &TestApp, who: &str, id: &str) {
    let r = app.import(&json!([app.event("Buy", who, id)])).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_subject_report_lists_who_touched_one_person_and_verifies_offline() {
    let (app, idp) = app(|_| {}).await;
    let (owner, _) = person(&app, &idp, "olga", &["owners"]).await;
    let (dpo, dpo_id) = person(&app, &idp, "dora", &[]).await;
    let (auditor, auditor_id) = person(&app, &idp, "abe", &[]).await;
    let (analyst, analyst_id) = person(&app, &idp, "ana", &[]).await;
    for (id, role) in [
        (&dpo_id, "data_protection_officer"),
        (&auditor_id, "auditor"),
        (&analyst_id, "analyst"),
    ] {
        assert_eq!(grant(&owner, to_user(id, role, "shop")).await.status(), 201);
    }
    import(&app, "cust-a", "a1").await;
    import(&app, "cust-b", "b1").await;
    // Reads that name cust-a: a service token's query for them, an analyst's, a profile read.
    let r = app
        .get("/api/v1/projects/shop/events?distinct_id=cust-a")
        .await;
    assert_eq!(r.status(), 200);
    let r = analyst
        .get("/api/v1/projects/shop/events?distinct_id=cust-a")
        .await;
    assert_eq!(r.status(), 200);
    app.get("/api/v1/projects/shop/profiles/cust-a").await;
    app.get("/api/v1/projects/shop/events?distinct_id=cust-b")
        .await;

    // The report: every entry naming cust-a, newest first, with who and what; no other.
    let r = report(&dpo, "cust-a").await;
    assert_eq!(r["standing"], "named", "{r}");
    let subject = r["subject"].as_str().unwrap().to_owned();
    let entries = r["entries"].as_array().unwrap();
    // Ingestion batches name no one (a write by the service, not a disclosure).
    assert_eq!(entries.len(), 3, "two queries and a profile read: {r}");
    assert!(
        entries
            .iter()
            .all(|e| e["subjects"].as_array().unwrap().contains(&json!(subject)))
    );
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");
    let queries: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "events.query")
        .collect();
    assert_eq!(queries.len(), 2, "{r}");
    assert!(queries.iter().any(|e| e["actor_id"] == analyst_id.as_str()));
    assert!(entries.iter().any(|e| e["action"] == "profiles.read"));
    assert!(!r.to_string().contains("cust-a"), "no id in clear: {r}");
    // The same entries, from the whole log: exactly those whose subjects hold the pseudonym.
    let whole = log(&app).await;
    let expected: Vec<u64> = whole
        .iter()
        .filter(|e| e.subjects.iter().any(|s| hex::encode(s) == subject))
        .map(|e| e.seq)
        .filter(|s| *s <= seqs[0])
        .rev()
        .collect();
    assert_eq!(seqs, expected);

    // Pages of one, each older than the last, until there are no more.
    let mut paged = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let r: Value = auditor
            .post(
                REPORT,
                json!({"project": "shop", "distinct_id": "cust-a", "limit": 1, "cursor": cursor}),
            )
            .await
            .json()
            .await
            .unwrap();
        paged.extend(
            r["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_u64().unwrap()),
        );
        cursor = r["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert!(paged.windows(2).all(|w| w[0] > w[1]));
    assert!(paged.ends_with(&seqs), "{paged:?} {seqs:?}");

    // The bundle: those entries (and the report's own, last) with proofs, verified offline.
    let r = auditor
        .post(
            &format!("{REPORT}/bundle"),
            json!({"project": "shop", "distinct_id": "cust-a"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let bundle = r.text().await.unwrap();
    let verified = verify_text(&bundle, vec![app.verifier_key()], None).unwrap();
    assert_eq!(verified.scope, Scope::Subject);
    assert_eq!(verified.subject.as_deref(), Some(subject.as_str()));
    let in_bundle: Vec<u64> = bundle
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["type"] == "entry")
        .map(|l| l["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        *in_bundle.last().unwrap() + 1,
        verified.to,
        "ends at the report"
    );
    assert!(seqs.iter().all(|s| in_bundle.contains(s)));
    // The same set the project's own bundle shows for that pseudonym up to that size.
    let project = app.export_project("shop").await;
    let from_project: Vec<u64> = project
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["type"] == "entry" && l["seq"].as_u64().unwrap() < verified.to)
        .filter(|l| {
            crate::helpers::decode_entry(l["bytes"].as_str().unwrap())
                .subjects
                .iter()
                .any(|s| hex::encode(s) == subject)
        })
        .map(|l| l["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(in_bundle, from_project);
    // Offline, with the stand-alone verifier and the independent one: it holds, and the
    // project's bundle shown for the same pseudonym lists the same entries up to that size.
    let dir = tempfile::tempdir().unwrap();
    let (subject_file, project_file) = (dir.path().join("s.bundle"), dir.path().join("p.bundle"));
    std::fs::write(&subject_file, &bundle).unwrap();
    std::fs::write(&project_file, &project).unwrap();
    let key = app.verifier_key().to_string();
    let verify = |file: &std::path::Path, extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_auditgate-verify"))
            .arg(file)
            .args(["--key", &key])
            .args(extra)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.code().unwrap(), text)
    };
    let (code, text) = verify(&subject_file, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!("naming subject {subject}")),
        "{text}"
    );
    crate::processes::agrees(&subject_file, &key, 0, "a subject bundle");
    let (code, text) = verify(&project_file, &["--show", "--json", "--subject", &subject]);
    assert_eq!(code, 0, "{text}");
    let shown: Vec<u64> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|l| l["seq"].as_u64())
        .filter(|s| *s < verified.to)
        .collect();
    assert_eq!(shown, in_bundle);
    assert_eq!(verify(&project_file, &["--show", "--subject", "abc"]).0, 2);

    // Altered: an entry of another person slipped in, or the subject changed, fails.
    let other = report(&dpo, "cust-b").await;
    let other_subject = other["subject"].as_str().unwrap();
    let swapped = bundle.replacen(&subject, other_subject, 1);
    assert!(verify_text(&swapped, vec![app.verifier_key()], None).is_err());
    std::fs::write(&subject_file, &swapped).unwrap();
    assert_eq!(verify(&subject_file, &[]).0, 1);
    crate::processes::agrees(
        &subject_file,
        &key,
        1,
        "a subject bundle of another subject",
    );

    // Someone never named: said so, and asking leaves no salt behind.
    for _ in 0..2 {
        let r = report(&dpo, "cust-never").await;
        assert_eq!(r["standing"], "never_named", "{r}");
        assert_eq!(r["entries"], json!([]));
    }
    assert_problem(
        dpo.post(
            &format!("{REPORT}/bundle"),
            json!({"project": "shop", "distinct_id": "cust-never"}),
        )
        .await,
        404,
    )
    .await;

    // Erased: the report says they cannot be reported on, and the bundle refuses.
    let r = dpo
        .post(
            "/api/v1/projects/shop/subject-requests/deletions",
            json!({"distinct_ids": ["cust-a"], "reason": "DSR-9"}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/projects/shop/subject-requests/deletions/{id}");
    let mut done = false;
    for _ in 0..300 {
        let s: Value = dpo.get(&path).await.json().await.unwrap();
        if s["status"] == "SUCCESS" {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(done, "the erasure finished");
    let r = report(&auditor, "cust-a").await;
    assert_eq!(r["standing"], "erased", "{r}");
    assert!(r["erased_at"].is_string());
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("no report can be made"),
        "{r}"
    );
    assert_eq!(r["entries"], json!([]));
    let refused = assert_problem(
        auditor
            .post(
                &format!("{REPORT}/bundle"),
                json!({"project": "shop", "distinct_id": "cust-a"}),
            )
            .await,
        404,
    )
    .await;
    assert!(
        refused["detail"].as_str().unwrap().contains("erased"),
        "{refused}"
    );

    // Seen again after the erasure: named anew, and the report says an erasure came first
    // (what it lists starts after it).
    import(&app, "cust-a", "a-again").await;
    let read = analyst
        .get("/api/v1/projects/shop/events?distinct_id=cust-a")
        .await;
    assert_eq!(read.status(), 200);
    app.settle().await;
    let r = report(&auditor, "cust-a").await;
    assert_eq!(r["standing"], "named", "{r}");
    assert!(r["erased_at"].is_string(), "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("The same id was erased on"),
        "{r}"
    );
    let again = r["entries"].as_array().unwrap();
    assert!(!again.is_empty(), "{r}");
    assert!(
        again
            .iter()
            .all(|e| e["action"] != "events.export" && e["action"] != "subjects.erase"),
        "only what came after the erasure: {r}"
    );

    // Only auditors and data-protection officers; bad bodies are named.
    assert_problem(
        analyst
            .post(REPORT, json!({"project": "shop", "distinct_id": "cust-b"}))
            .await,
        403,
    )
    .await;
    assert_problem(
        owner
            .post(REPORT, json!({"project": "bank", "distinct_id": "cust-b"}))
            .await,
        404,
    )
    .await;
    app.other_project("bank").await;
    assert_problem(
        dpo.post(REPORT, json!({"project": "bank", "distinct_id": "cust-b"}))
            .await,
        403,
    )
    .await;
    for bad in [
        json!({"project": "shop"}),
        json!({"project": "shop", "distinct_id": ""}),
        json!({"project": "Shop!", "distinct_id": "x"}),
        json!({"project": "shop", "distinct_id": "x", "extra": 1}),
    ] {
        let r = dpo.post(REPORT, bad.clone()).await;
        let status = r.status().as_u16();
        assert!([400, 422].contains(&status), "{bad}: {status}");
        assert_problem(r, status).await;
    }
    assert_problem(
        dpo.post(
            REPORT,
            json!({"project": "shop", "distinct_id": "x", "limit": 0}),
        )
        .await,
        400,
    )
    .await;

    // Each report is logged, naming the pseudonym (or no one), never the id; refusals too.
    let entries = log(&app).await;
    let reports: Vec<_> = entries
        .iter()
        .filter(|e| e.action == Action::AuditSubjectReport)
        .collect();
    assert!(reports.iter().all(|e| !e.details.contains("cust-")));
    let named = reports
        .iter()
        .filter(|e| e.outcome == Outcome::Allowed && !e.subjects.is_empty())
        .count();
    assert!(named >= 4, "{named}");
    assert_eq!(
        reports
            .iter()
            .filter(|e| e.outcome == Outcome::Denied)
            .count(),
        2
    );
    let bundle_entry = reports
        .iter()
        .find(|e| e.details.contains("bundle") && e.details.contains("\"named\""))
        .unwrap();
    assert_eq!(bundle_entry.actor.id, auditor_id);
    assert!(
        reports
            .iter()
            .any(|e| e.details.contains("never_named") && e.subjects.is_empty())
    );
    assert!(reports.iter().any(|e| e.details.contains("\"erased\"")));
}
