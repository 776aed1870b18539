use serde_json::Value;

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test]
async fn liveness_and_readiness_answer() {
    let app = spawn_app().await;
    let r = app.get_anonymous("/healthz").await;
    assert_eq!(r.status(), 200);
    let r = app.get_anonymous("/readyz").await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["database"], "sqlite");
}

#[tokio::test]
async fn readiness_fails_with_503_when_the_database_is_gone() {
    let app = spawn_app().await;
    app.store.close().await;
    assert_problem(app.get_anonymous("/readyz").await, 503).await;
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    for path in ["/healthz", "/nope", "/api/v1/projects/shop/events"] {
        let r = app.get_anonymous(path).await;
        let id = r
            .headers()
            .get("x-request-id")
            .unwrap_or_else(|| panic!("{path}: no x-request-id"));
        assert_eq!(id.to_str().unwrap().len(), 36, "{path}: a UUID");
    }
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let app = spawn_app().await;
    app.get("/api/v1/projects/shop/events").await;
    let r = app.get_anonymous("/metrics").await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("# TYPE auditgate_http_requests_total counter"),
        "{text}"
    );
    assert!(
        text.contains(r#"endpoint="/api/v1/projects/{project}/events""#),
        "routes are labelled by pattern"
    );
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_describes_the_api() {
    let app = spawn_app().await;
    let doc: Value = app
        .get_anonymous("/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["paths"]["/import"]["post"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}
