"""Drives auditgate with the official Mixpanel Python SDK, unchanged but for its URLs.

Usage: python3 mixpanel_sdk.py BASE_URL PROJECT_TOKEN SERVICE_ACCOUNT SECRET PROJECT_ID
Exits non-zero (with the SDK's exception) if any call fails.
"""
import sys
import time

from mixpanel import Consumer, Mixpanel, ServiceAccountCredentials

base, token, account, secret, project = sys.argv[1:6]
consumer = Consumer(
    events_url=f"{base}/track",
    people_url=f"{base}/engage",
    import_url=f"{base}/import",
    groups_url=f"{base}/groups",
    retry_limit=0,
)
mp = Mixpanel(token, consumer=consumer)
mp.track("sdk-user", "Signed Up", {"plan": "pro", "nested": {"a": [1, 2]}})
mp.people_set("sdk-user", {"$email": "sdk@example.com", "plan": "pro", "age": 41})
mp.people_unset("sdk-user", ["age"])
mp.people_set_once("sdk-user", {"plan": "free", "first_seen": "2026-01-01"})
mp.people_increment("sdk-user", {"logins": 2})
mp.people_append("sdk-user", {"pages": "home"})
mp.people_union("sdk-user", {"tags": ["a", "b"]})
mp.people_remove("sdk-user", {"tags": "a"})
mp.people_track_charge("sdk-user", 9.5, {"sku": "t-shirt"})
mp.people_track_charge("sdk-user", 3, {})
mp.people_clear_charges("sdk-user")
mp.people_track_charge("sdk-user", 4.25, {})
mp.people_set("gone-user", {"plan": "free"})
mp.people_delete("gone-user")
# Legacy API-secret authentication: the secret as the Basic user name.
mp.import_data(None, "sdk-user", "Old Purchase", int(time.time()) - 30 * 86400, {"amount": 12}, api_secret=secret)
# Service-account authentication: user name, secret and project id.
creds = ServiceAccountCredentials(username=account, secret=secret, project_id=project)
sa_consumer = Consumer(import_url=f"{base}/import", retry_limit=0, credentials=creds)
Mixpanel(token, consumer=sa_consumer).import_data(None, "sdk-user", "Older Purchase", int(time.time()) - 60 * 86400, {"amount": 7})
# Group analytics.
mp.group_set("company", "acme", {"$name": "Acme", "tier": "silver", "size": 40})
mp.group_set_once("company", "acme", {"tier": "gold", "founded": 1999})
mp.group_union("company", "acme", {"regions": ["eu", "us"]})
mp.group_remove("company", "acme", {"regions": "us"})
mp.group_unset("company", "acme", ["size"])
mp.group_set("company", "gone", {"tier": "free"})
mp.group_delete("company", "gone")
# ID merge from the server (a service account's import): an older id joins sdk-user.
mp.track("sdk-old-id", "Opened App", {})
Mixpanel(token, consumer=sa_consumer).merge(None, "sdk-user", "sdk-old-id")
print("sdk: all calls succeeded")
