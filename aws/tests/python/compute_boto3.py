"""Drives hoist's EC2, ECS and ELBv2 APIs with boto3, one phase per call:
`python compute_boto3.py ENDPOINT PHASE [ARGS...]`.

Every check is an assert; a failed one exits non-zero with the response it saw. What the Rust
test checks further is printed as one JSON line.
"""

import json
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT, PHASE, ARGS = sys.argv[1], sys.argv[2], sys.argv[3:]


def client(service):
    return boto3.client(
        service,
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


ec2, ecs, elbv2 = client("ec2"), client("ecs"), client("elbv2")
FAST = {"Delay": 1, "MaxAttempts": 30}


def error(code, call, *args, **kwargs):
    """Calls, expecting the AWS error `code` (HTTP 400 unless `status`); returns its message."""
    status = kwargs.pop("status", 400)
    try:
        response = call(*args, **kwargs)
    except ClientError as e:
        assert e.response["Error"]["Code"] == code, (code, e.response)
        meta = e.response["ResponseMetadata"]
        assert meta["HTTPStatusCode"] == status, (status, e.response)
        assert meta["RequestId"], e.response
        return e.response["Error"]["Message"]
    raise AssertionError(f"expected {code}, got {response}")


def instances(**kwargs):
    found = []
    for page in ec2.get_paginator("describe_instances").paginate(**kwargs):
        for reservation in page["Reservations"]:
            found.extend(reservation["Instances"])
    return found


def ids(found):
    return sorted(i["InstanceId"] for i in found)


def tag_spec(**tags):
    return [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]


def ec2_run():
    marks = ARGS[0]
    script = f"#!/bin/sh\necho booted >> {marks}/$EC2_INSTANCE_ID\n"
    web = ec2.run_instances(
        ImageId="ami-00000001", MinCount=1, MaxCount=1, InstanceType="t3.small",
        UserData=script, TagSpecifications=tag_spec(Name="web", env="test"),
    )
    assert web["Instances"][0]["State"] == {"Code": 0, "Name": "pending"}, web
    assert web["ReservationId"].startswith("r-") and web["OwnerId"] == "000000000000", web
    db = ec2.run_instances(
        ImageId="ami-00000001", MinCount=1, MaxCount=1, UserData=script,
        TagSpecifications=tag_spec(Name="db", env="test"),
    )
    workers = ec2.run_instances(
        ImageId="ami-00000002", MinCount=2, MaxCount=4, TagSpecifications=tag_spec(role="worker"),
    )
    assert len(workers["Instances"]) == 4, workers
    assert [i["AmiLaunchIndex"] for i in workers["Instances"]] == [0, 1, 2, 3], workers
    web_id, db_id = web["Instances"][0]["InstanceId"], db["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[web_id, db_id], WaiterConfig=FAST)

    everything = instances()
    assert len(everything) == 6, everything
    assert all(i["State"]["Name"] == "running" for i in everything), everything
    one = instances(InstanceIds=[web_id])[0]
    assert one["InstanceType"] == "t3.small" and one["ImageId"] == "ami-00000001", one
    assert {"Key": "Name", "Value": "web"} in one["Tags"], one
    assert one["PrivateIpAddress"] == "127.0.0.1", one
    assert one["Placement"]["AvailabilityZone"] == "us-east-1a", one
    # Filters: tag:KEY, tag-key, instance-state-name, wildcards, several at once (AND).
    assert ids(instances(Filters=[{"Name": "tag:Name", "Values": ["web"]}])) == [web_id]
    assert ids(instances(Filters=[{"Name": "tag:Name", "Values": ["web", "db"]}])) == sorted([web_id, db_id])
    assert ids(instances(Filters=[{"Name": "tag:Name", "Values": ["w*"]}])) == [web_id]
    assert ids(instances(Filters=[{"Name": "tag-key", "Values": ["env"]}])) == sorted([web_id, db_id])
    assert len(instances(Filters=[{"Name": "tag-key", "Values": ["role"]}])) == 4
    assert len(instances(Filters=[{"Name": "instance-state-name", "Values": ["running"]}])) == 6
    assert instances(Filters=[{"Name": "instance-state-name", "Values": ["stopped"]}]) == []
    assert ids(instances(Filters=[
        {"Name": "tag-key", "Values": ["env"]},
        {"Name": "instance-state-name", "Values": ["running"]},
        {"Name": "tag:Name", "Values": ["db"]},
    ])) == [db_id]
    # Reservations group what one RunInstances launched.
    page = ec2.describe_instances(Filters=[{"Name": "tag-key", "Values": ["role"]}])
    assert len(page["Reservations"]) == 1 and len(page["Reservations"][0]["Instances"]) == 4, page
    # Pagination: 6 instances, 5 a page.
    first = ec2.describe_instances(MaxResults=5)
    got = sum(len(r["Instances"]) for r in first["Reservations"])
    assert got == 5 and first["NextToken"], first
    second = ec2.describe_instances(MaxResults=5, NextToken=first["NextToken"])
    assert sum(len(r["Instances"]) for r in second["Reservations"]) == 1, second
    assert "NextToken" not in second, second
    # The errors EC2 gives.
    msg = error("InvalidInstanceID.NotFound", ec2.describe_instances, InstanceIds=["i-0123456789abcdef0"])
    assert msg == "The instance ID 'i-0123456789abcdef0' does not exist", msg
    error("InvalidInstanceID.Malformed", ec2.stop_instances, InstanceIds=["web"])
    error("InvalidParameterValue", ec2.describe_instances, Filters=[{"Name": "colour", "Values": ["x"]}])
    error("InvalidParameterValue", ec2.run_instances, ImageId="ami-1", MinCount=3, MaxCount=2)
    error("InvalidAMIID.Malformed", ec2.run_instances, ImageId="img-1", MinCount=1, MaxCount=1)
    error("InvalidParameterCombination", ec2.describe_instances, InstanceIds=[web_id], MaxResults=5)
    # The workers are not needed further.
    worker_ids = ids(workers["Instances"])
    ec2.terminate_instances(InstanceIds=worker_ids)
    print(json.dumps({"web": web_id, "db": db_id}))


def ec2_stop():
    web, db = ARGS
    # The server was restarted: both are still running.
    assert [i["State"]["Name"] for i in instances(InstanceIds=[web, db])] == ["running", "running"]
    stopping = ec2.stop_instances(InstanceIds=[web])["StoppingInstances"]
    assert stopping == [{
        "InstanceId": web,
        "CurrentState": {"Code": 64, "Name": "stopping"},
        "PreviousState": {"Code": 16, "Name": "running"},
    }], stopping
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[web], WaiterConfig=FAST)
    stopped = instances(InstanceIds=[web])[0]
    assert stopped["State"] == {"Code": 80, "Name": "stopped"}, stopped
    assert stopped["StateReason"]["Code"] == "Client.UserInitiatedShutdown", stopped
    assert "PrivateIpAddress" not in stopped, stopped
    # Stopping a stopped instance changes nothing.
    again = ec2.stop_instances(InstanceIds=[web])["StoppingInstances"][0]
    assert again["CurrentState"]["Name"] == "stopped" and again["PreviousState"]["Name"] == "stopped", again
    assert ids(instances(Filters=[{"Name": "instance-state-name", "Values": ["stopped"]}])) == [web]
    print(json.dumps({}))


def ec2_start():
    web, db = ARGS
    assert instances(InstanceIds=[web])[0]["State"]["Name"] == "stopped"
    starting = ec2.start_instances(InstanceIds=[web])["StartingInstances"]
    assert starting == [{
        "InstanceId": web,
        "CurrentState": {"Code": 0, "Name": "pending"},
        "PreviousState": {"Code": 80, "Name": "stopped"},
    }], starting
    ec2.get_waiter("instance_running").wait(InstanceIds=[web], WaiterConfig=FAST)
    again = instances(InstanceIds=[web])[0]
    assert again["State"]["Name"] == "running" and {"Key": "Name", "Value": "web"} in again["Tags"], again
    assert "StateReason" not in again, again
    print(json.dumps({}))


def ec2_terminate():
    web, db, cli = ARGS
    gone = instances(InstanceIds=[cli])[0]
    assert gone["State"] == {"Code": 48, "Name": "terminated"}, gone
    changes = ec2.terminate_instances(InstanceIds=[web, db])["TerminatingInstances"]
    assert [(c["CurrentState"]["Name"], c["PreviousState"]["Name"]) for c in changes] == [
        ("shutting-down", "running"), ("shutting-down", "running")], changes
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[web, db], WaiterConfig=FAST)
    # Terminated instances stay visible for a while, and can be neither started nor stopped.
    terminated = instances(Filters=[{"Name": "instance-state-name", "Values": ["terminated"]}])
    assert len(terminated) == 7, terminated
    error("IncorrectInstanceState", ec2.start_instances, InstanceIds=[web])
    error("IncorrectInstanceState", ec2.stop_instances, InstanceIds=[db])
    assert instances(Filters=[{"Name": "instance-state-name", "Values": ["running", "pending"]}]) == []
    print(json.dumps({}))


PHASES = {
    "ec2-run": ec2_run,
    "ec2-stop": ec2_stop,
    "ec2-start": ec2_start,
    "ec2-terminate": ec2_terminate,
}

if __name__ == "__main__":
    PHASES[PHASE]()
