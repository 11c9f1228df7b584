"""Demo helper: create tables in moto and print their contents readably.

usage: demo_dynamodb.py ENDPOINT create TABLE KEY [SORTKEY]
       demo_dynamodb.py ENDPOINT show TABLE
       demo_dynamodb.py ENDPOINT get TABLE KEY VALUE
"""
import json
import sys

import boto3

endpoint, command, table = sys.argv[1:4]
db = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")


def plain(value):
    """DynamoDB JSON to plain values; N stays text so nothing is rounded."""
    (kind, v), = value.items()
    if kind == "M":
        return {k: plain(x) for k, x in v.items()}
    if kind == "L":
        return [plain(x) for x in v]
    if kind == "B":
        return f"<{len(v)} bytes>"
    if kind == "NULL":
        return None
    return v


if command == "create":
    keys = sys.argv[4:]
    db.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in keys],
        KeySchema=[{"AttributeName": k, "KeyType": "HASH" if i == 0 else "RANGE"} for i, k in enumerate(keys)])
elif command == "show":
    items = db.scan(TableName=table)["Items"]
    print(f"    {table}: {len(items)} item(s)")
    key = next((k for k in ("pk", "address", "position") if items and k in items[0]), None)
    for item in sorted(items, key=lambda i: json.dumps(plain(i[key])) if key else ""):
        print("      " + json.dumps({k: plain(v) for k, v in sorted(item.items())}))
elif command == "get":
    key, value = sys.argv[4:6]
    item = db.get_item(TableName=table, Key={key: {"S": value}}, ConsistentRead=True).get("Item")
    if item:
        print(f"    {table}: " + json.dumps({k: plain(v) for k, v in sorted(item.items())}))
    else:
        print(f"    {table}: no item {key}={value}")
