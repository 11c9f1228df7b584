"""Demo helper for the EC2 functions, against moto.

usage: demo_ec2.py ENDPOINT setup           snapshot-copier: prints the id of the snapshot to announce
       demo_ec2.py ENDPOINT show REGION     snapshot-copier: what the region holds
       demo_ec2.py ENDPOINT launch-template NAME  transcode-launcher: the worker launch template
       demo_ec2.py ENDPOINT instances       transcode-launcher: the workers and their tags
       demo_ec2.py ENDPOINT user-data ID    transcode-launcher: an instance's user data
"""
import base64
import sys

import boto3

endpoint, command = sys.argv[1:3]


def ec2(region):
    return boto3.client("ec2", endpoint_url=endpoint, region_name=region,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def snapshot(client, region, tags):
    volume = client.create_volume(AvailabilityZone=f"{region}a", Size=8)["VolumeId"]
    spec = [{"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}] if tags else []
    return client.create_snapshot(VolumeId=volume, TagSpecifications=spec)["SnapshotId"]


if command == "setup":
    east, west = ec2("us-east-1"), ec2("us-west-2")
    announced = snapshot(east, "us-east-1", {"dr:copy-to": "us-west-2,eu-west-1", "Name": "orders-db"})
    snapshot(east, "us-east-1", {"dr:copy-to": "true", "Name": "web"})
    snapshot(east, "us-east-1", {"Name": "scratch (untagged: never copied)"})
    # Copies an earlier run made of one volume, and someone else's snapshot.
    for day in range(1, 5):
        snapshot(west, "us-west-2", {"dr:managed-by": "snapshot-copier", "dr:source-region": "us-east-1",
                                     "dr:source-volume-id": "vol-0feedfacefeedface",
                                     "dr:source-snapshot-id": f"snap-0old{day:013d}", "Name": f"old copy {day}"})
    snapshot(west, "us-west-2", {"dr:source-volume-id": "vol-0feedfacefeedface", "Name": "unmanaged: never pruned"})
    print(announced)
elif command == "show":
    region = sys.argv[3]
    # moto's own AMI snapshots carry no tags; the demo's all do.
    snapshots = [s for s in ec2(region).describe_snapshots(OwnerIds=["self"])["Snapshots"] if s.get("Tags")]
    print(f"    {region}: {len(snapshots)} tagged snapshot(s)")
    for s in sorted(snapshots, key=lambda s: s["SnapshotId"]):
        tags = {t["Key"]: t["Value"] for t in s.get("Tags", [])}
        source = tags.get("dr:source-snapshot-id")
        print(f"      {s['SnapshotId']}  {tags.get('Name', '-'):<34} "
              + (f"copy of {source}" if source else f"copy-to={tags.get('dr:copy-to', '-')}"))
elif command == "launch-template":
    ec2("us-east-1").create_launch_template(
        LaunchTemplateName=sys.argv[3],
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "c6i.large"})
elif command == "instances":
    reservations = ec2("us-east-1").describe_instances()["Reservations"]
    instances = [i for r in reservations for i in r["Instances"]]
    print(f"    {len(instances)} worker(s)")
    for i in instances:
        tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
        print(f"      {i['InstanceId']}  {i['InstanceType']}  {i['State']['Name']:<8} "
              f"{tags.get('transcode:job-id')}  {tags.get('transcode:source-key')!r}")
elif command == "user-data":
    value = ec2("us-east-1").describe_instance_attribute(InstanceId=sys.argv[3], Attribute="userData")
    sys.stdout.write(base64.b64decode(value["UserData"]["Value"]).decode())
