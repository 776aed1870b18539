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
    retry_limit=0,
)
mp = Mixpanel(token, consumer=consumer)
mp.track("sdk-user", "Signed Up", {"plan": "pro", "nested": {"a": [1, 2]}})
mp.people_set("sdk-user", {"$email": "sdk@example.com", "plan": "pro", "age": 41})
mp.people_unset("sdk-user", ["age"])
mp.people_set("gone-user", {"plan": "free"})
mp.people_delete("gone-user")
# Legacy API-secret authentication: the secret as the Basic user name.
mp.import_data(None, "sdk-user", "Old Purchase", int(time.time()) - 30 * 86400, {"amount": 12}, api_secret=secret)
# Service-account authentication: user name, secret and project id.
creds = ServiceAccountCredentials(username=account, secret=secret, project_id=project)
sa_consumer = Consumer(import_url=f"{base}/import", retry_limit=0, credentials=creds)
Mixpanel(token, consumer=sa_consumer).import_data(None, "sdk-user", "Older Purchase", int(time.time()) - 60 * 86400, {"amount": 7})
print("sdk: all calls succeeded")
