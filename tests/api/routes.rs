//! Default deny: every route declares its access, and the declarations hold.

use std::collections::BTreeSet;

use auditgate::access::Access;
use auditgate::routes::{openapi::ApiDoc, registry};
use utoipa::OpenApi;

use crate::helpers::{assert_problem, spawn_app};

#[test]
fn every_route_is_declared_once_and_documented() {
    let routes = registry();
    let declared: BTreeSet<_> = routes
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    assert_eq!(
        declared.len(),
        routes.len(),
        "a method and path appear twice in the registry"
    );
    let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
    let documented: BTreeSet<_> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    assert_eq!(
        declared, documented,
        "the registry and the OpenAPI document list different routes"
    );
    for r in &routes {
        if let Access::Public(why) = r.access {
            assert!(
                !why.is_empty(),
                "{} {} is public without a reason",
                r.method,
                r.path
            );
        }
    }
}

#[tokio::test]
async fn every_protected_route_refuses_anonymous_callers() {
    let app = spawn_app().await;
    let routes = registry();
    assert!(
        routes
            .iter()
            .any(|r| matches!(r.access, Access::Requires(_)))
    );
    for r in routes {
        let path = r
            .path
            .replace("{project}", "shop")
            .replace("{distinct_id}", "alice")
            .replace("{provider}", "corp")
            .replace("{id}", "x")
            .replace("{kind}", "event")
            .replace("{name}", "plan");
        let url = format!("{}{path}", app.address);
        let method = reqwest::Method::from_bytes(r.method.as_str().as_bytes()).unwrap();
        let record = r#"{"event": "x", "properties": {"distinct_id": "u"}}"#;
        let req = app.client.request(method, &url);
        let resp = match r.method.as_str() {
            "POST" => req.body(record).send().await.unwrap(),
            // The SDKs' GET shape: the record in the query string.
            "GET" if r.slash => {
                let query = serde_urlencoded::to_string([("data", record)]).unwrap();
                let method = reqwest::Method::GET;
                let req = app.client.request(method, format!("{url}?{query}"));
                req.send().await.unwrap()
            }
            _ => req.send().await.unwrap(),
        };
        match r.access {
            Access::Requires(p) => {
                let body = assert_problem(resp, 401).await;
                assert!(
                    body.get("events").is_none(),
                    "{} {path} ({p}) leaked data",
                    r.method
                );
            }
            Access::Account(_) => {
                assert_problem(resp, 401).await;
            }
            Access::Public(_) => assert_ne!(resp.status(), 401, "{} {path} is public", r.method),
        }
    }
}

#[tokio::test]
async fn every_project_route_answers_a_malformed_project_the_same_way() {
    let app = spawn_app().await;
    let project_routes: Vec<_> = registry()
        .into_iter()
        .filter(|r| r.path.contains("{project}"))
        .collect();
    assert!(project_routes.len() >= 20, "the project routes are found");
    app.settle().await;
    let before = app.store.audit_head().await.unwrap().size();
    let mut answers = BTreeSet::new();
    for r in project_routes {
        let path = r
            .path
            .replace("{project}", "Not_A-Project")
            .replace("{distinct_id}", "alice")
            .replace("{id}", "x")
            .replace("{kind}", "event")
            .replace("{name}", "plan");
        let method = reqwest::Method::from_bytes(r.method.as_str().as_bytes()).unwrap();
        // Credentials of any kind: the id is refused before anyone is looked up.
        let resp = app
            .client
            .request(method, format!("{}{path}", app.address))
            .bearer_auth(app.secret())
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        let body = assert_problem(resp, 400).await;
        answers.insert(body["detail"].as_str().unwrap().to_owned());
    }
    assert_eq!(answers.len(), 1, "one answer: {answers:?}");
    app.settle().await;
    let after = app.store.audit_head().await.unwrap().size();
    assert_eq!(
        after, before,
        "a malformed path costs no lookup and no entry"
    );
    assert!(
        answers
            .first()
            .unwrap()
            .starts_with("the project in the path: invalid project id")
    );
}
