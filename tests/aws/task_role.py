"""Runs inside a berth task whose definition names a role: boto3's default credential
chain must find the container credential endpoint (no keys in the environment),
describe services (the role allows ecs:Describe*) until the credentials it holds
changed at least twice, be refused update_service (AccessDeniedException), and read
the task metadata endpoint (v4). The results go to the file named by the second
argument as JSON (written whole, then renamed); then the task keeps running so its
service does not start it again.

Arguments: the API endpoint, the result file, the seconds to keep describing at least.
"""

import json
import os
import sys
import time
import urllib.request

import boto3
import botocore.exceptions

endpoint, out_path, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
result = {
    "staticKeysInEnvironment": "AWS_ACCESS_KEY_ID" in os.environ,
    "fullUri": os.environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI", ""),
}
try:
    session = boto3.session.Session(region_name="us-east-1")
    creds = session.get_credentials()
    result["method"] = creds.method
    first = creds.get_frozen_credentials()
    result["first"] = {
        "AccessKeyId": first.access_key,
        "SecretAccessKey": first.secret_key,
        "Token": first.token,
    }
    ecs = session.client("ecs", endpoint_url=endpoint)
    keys = []
    described = 0
    deadline = time.time() + seconds
    while time.time() < deadline or len(set(keys)) < 3:
        services = ecs.describe_services(cluster="default", services=["reader"])
        assert services["services"][0]["serviceName"] == "reader", services
        described += 1
        key = creds.get_frozen_credentials().access_key
        if not keys or keys[-1] != key:
            keys.append(key)
        if time.time() > deadline + 60:
            break
        time.sleep(0.5)
    result["described"] = described
    result["keys"] = keys
    try:
        ecs.update_service(cluster="default", service="reader", desiredCount=2)
        result["update"] = "allowed"
    except botocore.exceptions.ClientError as e:
        result["update"] = e.response["Error"]["Code"]
    with urllib.request.urlopen(os.environ["ECS_CONTAINER_METADATA_URI_V4"] + "/task") as r:
        task = json.load(r)
    result["metadata"] = {"TaskARN": task["TaskARN"], "Family": task["Family"]}
except Exception as e:  # the test reads the reason
    result["error"] = repr(e)

partial = out_path + ".partial"
with open(partial, "w") as f:
    json.dump(result, f)
os.rename(partial, out_path)
time.sleep(3600)
