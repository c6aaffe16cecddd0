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
    # Status checks: only running instances unless all are asked for.
    statuses = ec2.describe_instance_status(InstanceIds=[web, db])["InstanceStatuses"]
    assert [s["InstanceId"] for s in statuses] == [db], statuses
    assert statuses[0]["InstanceStatus"] == {"Status": "ok", "Details": [{"Name": "reachability", "Status": "passed"}]}, statuses
    every = ec2.describe_instance_status(InstanceIds=[web, db], IncludeAllInstances=True)["InstanceStatuses"]
    stopped_status = [s for s in every if s["InstanceId"] == web][0]
    assert stopped_status["InstanceState"]["Name"] == "stopped", every
    assert stopped_status["SystemStatus"]["Status"] == "not-applicable", every
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


def docker_ec2_run():
    """Two tagged instances of the mapped busybox image on Docker, described by filters."""
    (ami,) = ARGS
    web = ec2.run_instances(
        ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.micro",
        TagSpecifications=tag_spec(Name="web", env="test"),
    )["Instances"][0]["InstanceId"]
    db = ec2.run_instances(
        ImageId=ami, MinCount=1, MaxCount=1, TagSpecifications=tag_spec(Name="db", env="test"),
    )["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[web, db], WaiterConfig=FAST)
    assert ids(instances(Filters=[{"Name": "tag:Name", "Values": ["web"]}])) == [web]
    assert ids(instances(Filters=[{"Name": "tag-key", "Values": ["env"]}])) == sorted([web, db])
    running = instances(Filters=[{"Name": "instance-state-name", "Values": ["running"]}])
    assert ids(running) == sorted([web, db]), running
    one = instances(InstanceIds=[web])[0]
    assert one["InstanceType"] == "t3.micro" and one["ImageId"] == ami, one
    # Each container has an address of its own on Docker's bridge.
    assert one.get("PrivateIpAddress", "127.0.0.1") != "127.0.0.1", one
    print(json.dumps({"web": web, "db": db}))


def docker_ec2_stop():
    (web,) = ARGS
    changed = ec2.stop_instances(InstanceIds=[web])["StoppingInstances"][0]
    assert changed["CurrentState"]["Name"] == "stopping", changed
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[web], WaiterConfig=FAST)
    assert instances(InstanceIds=[web])[0]["State"] == {"Code": 80, "Name": "stopped"}
    assert ids(instances(Filters=[{"Name": "instance-state-name", "Values": ["stopped"]}])) == [web]
    print(json.dumps({}))


def docker_ec2_start():
    (web,) = ARGS
    changed = ec2.start_instances(InstanceIds=[web])["StartingInstances"][0]
    assert changed["PreviousState"]["Name"] == "stopped", changed
    ec2.get_waiter("instance_running").wait(InstanceIds=[web], WaiterConfig=FAST)
    again = instances(InstanceIds=[web])[0]
    assert again["State"]["Name"] == "running" and {"Key": "Name", "Value": "web"} in again["Tags"], again
    print(json.dumps({}))


def docker_ec2_terminate():
    web, db = ARGS
    changes = ec2.terminate_instances(InstanceIds=[web, db])["TerminatingInstances"]
    assert [c["CurrentState"]["Name"] for c in changes] == ["shutting-down", "shutting-down"], changes
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[web, db], WaiterConfig=FAST)
    assert instances(Filters=[{"Name": "instance-state-name", "Values": ["running", "stopped"]}]) == []
    print(json.dumps({}))


def wait_for(what, check, timeout=60):
    """Polls `check` until it returns something truthy; fails naming `what` after `timeout` s."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: {last}")


def target_states(tg):
    found = elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
    return sorted((t["Target"]["Id"], t["Target"]["Port"], t["TargetHealth"]["State"]) for t in found)


def service_tasks():
    arns = ecs.list_tasks(cluster="web", serviceName="web")["taskArns"]
    return ecs.describe_tasks(cluster="web", tasks=arns)["tasks"] if arns else []


def ports_of(tasks):
    return sorted(t["containers"][0]["networkBindings"][0]["hostPort"] for t in tasks)


def ecs_setup():
    cluster = ecs.create_cluster(clusterName="web")["cluster"]
    assert cluster["clusterArn"] == "arn:aws:ecs:us-east-1:000000000000:cluster/web", cluster
    assert cluster["status"] == "ACTIVE", cluster
    assert ecs.list_clusters()["clusterArns"] == [cluster["clusterArn"]]
    described = ecs.describe_clusters(clusters=["web", "nope"])
    assert [c["clusterName"] for c in described["clusters"]] == ["web"], described
    assert described["failures"][0]["reason"] == "MISSING", described
    server = f"exec {sys.executable} -m http.server $PORT --bind 127.0.0.1"
    container = {
        "name": "app", "image": "python:3-alpine", "entryPoint": ["/bin/sh", "-c"],
        "command": [server], "portMappings": [{"containerPort": 8000, "hostPort": 0}],
        "environment": [{"name": "GREETING", "value": "hello"}], "essential": True,
    }
    first = ecs.register_task_definition(family="web", containerDefinitions=[container])["taskDefinition"]
    assert first["revision"] == 1 and first["status"] == "ACTIVE", first
    second = ecs.register_task_definition(family="web", containerDefinitions=[container])["taskDefinition"]
    assert second["taskDefinitionArn"].endswith(":task-definition/web:2"), second
    latest = ecs.describe_task_definition(taskDefinition="web")["taskDefinition"]
    assert latest["revision"] == 2 and latest["containerDefinitions"][0]["command"] == [server], latest
    assert ecs.describe_task_definition(taskDefinition="web:1")["taskDefinition"]["revision"] == 1
    listed = ecs.list_task_definitions(familyPrefix="we")["taskDefinitionArns"]
    assert [a.rsplit(":", 1)[1] for a in listed] == ["1", "2"], listed
    error("ClientException", ecs.describe_task_definition, taskDefinition="nope")
    error("ClusterNotFoundException", ecs.run_task, cluster="nope", taskDefinition="web")
    error("ClientException", ecs.register_task_definition, family="bad", containerDefinitions=[])

    # One-off tasks: one whose command override exits 3, one stopped by the user.
    quits = ecs.run_task(cluster="web", taskDefinition="web:1", overrides={
        "containerOverrides": [{"name": "app", "command": ["exit 3"]}]})["tasks"][0]
    assert quits["lastStatus"] == "PROVISIONING" and quits["desiredStatus"] == "RUNNING", quits
    assert quits["overrides"]["containerOverrides"][0]["command"] == ["exit 3"], quits
    sleeper = ecs.run_task(cluster="web", taskDefinition="web", startedBy="me", overrides={
        "containerOverrides": [{"name": "app", "command": ['[ "$GREETING" = bye ] && sleep 300'],
                                "environment": [{"name": "GREETING", "value": "bye"}]}]})["tasks"][0]
    running = wait_for("the sleeper to run", lambda: ecs.describe_tasks(
        cluster="web", tasks=[sleeper["taskArn"]])["tasks"][0]["lastStatus"] == "RUNNING")
    assert ecs.list_tasks(cluster="web", startedBy="me")["taskArns"] == [sleeper["taskArn"]]
    stopped = ecs.stop_task(cluster="web", task=sleeper["taskArn"], reason="enough")["task"]
    assert stopped["lastStatus"] == "STOPPED" and stopped["stoppedReason"] == "enough", stopped
    assert stopped["stopCode"] == "UserInitiated", stopped
    ended = wait_for("the one-off task to stop", lambda: [t for t in ecs.describe_tasks(
        cluster="web", tasks=[quits["taskArn"]])["tasks"] if t["lastStatus"] == "STOPPED"])[0]
    assert ended["stoppedReason"] == "Essential container in task exited", ended
    assert ended["stopCode"] == "EssentialContainerExited", ended
    assert ended["containers"][0]["exitCode"] == 3, ended

    tg = elbv2.create_target_group(
        Name="web-tg", Protocol="HTTP", Port=8000, VpcId="vpc-1", TargetType="ip",
        HealthCheckIntervalSeconds=5, HealthyThresholdCount=2, HealthCheckPath="/",
    )["TargetGroups"][0]
    arn = tg["TargetGroupArn"]
    assert arn.startswith("arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/web-tg/"), tg
    assert tg["HealthCheckIntervalSeconds"] == 5 and tg["Matcher"] == {"HttpCode": "200"}, tg
    assert elbv2.describe_target_groups(Names=["web-tg"])["TargetGroups"][0]["TargetGroupArn"] == arn
    error("TargetGroupNotFound", elbv2.describe_target_groups, Names=["nope"])
    error("InvalidParameterException", ecs.create_service, cluster="web", serviceName="web",
          taskDefinition="web", desiredCount=2,
          loadBalancers=[{"targetGroupArn": arn, "containerName": "app", "containerPort": 9999}])
    service = ecs.create_service(
        cluster="web", serviceName="web", taskDefinition="web", desiredCount=2,
        loadBalancers=[{"targetGroupArn": arn, "containerName": "app", "containerPort": 8000}],
    )["service"]
    assert service["status"] == "ACTIVE" and service["desiredCount"] == 2, service
    tasks = wait_for("two service tasks", lambda: len(service_tasks()) == 2 and service_tasks())
    assert all(t["group"] == "service:web" for t in tasks), tasks
    ports = ports_of(tasks)
    # Registered at once, healthy only once two probes (5 s apart) have passed.
    early = target_states(arn)
    assert [p for _, p, _ in early] == ports, (early, ports)
    assert all(state in ("initial", "healthy") for _, _, state in early), early
    assert any(state == "initial" for _, _, state in early), early
    wait_for("both targets healthy", lambda: all(s == "healthy" for _, _, s in target_states(arn))
             and len(target_states(arn)) == 2)
    counted = ecs.describe_services(cluster="web", services=["web"])["services"][0]
    assert counted["runningCount"] == 2, counted
    # Registering by hand works too; a port nobody serves is unhealthy.
    elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": "127.0.0.1", "Port": 1}])
    wait_for("the stray target unhealthy", lambda: ("127.0.0.1", 1, "unhealthy") in target_states(arn), 30)
    elbv2.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": "127.0.0.1", "Port": 1}])
    print(json.dumps({"tg": arn, "ports": ports, "tasks": [t["taskArn"] for t in tasks]}))


def docker_ecs_setup():
    """A service of busybox httpd containers on Docker, behind a target group."""
    (image,) = ARGS
    error("InvalidAMIID.NotFound", ec2.run_instances, ImageId="ami-99999999", MinCount=1, MaxCount=1)
    images = ec2.describe_images()["Images"]
    assert [(i["ImageId"], i["Name"], i["State"]) for i in images] == [("ami-0b0b0b0b", image, "available")], images
    error("InvalidAMIID.NotFound", ec2.describe_images, ImageIds=["ami-99999999"])
    ecs.create_cluster(clusterName="web")
    httpd = {
        "name": "app", "image": image, "entryPoint": ["/bin/sh", "-c"],
        "command": ["exec httpd -f -p 8000 -h /www"],
        "portMappings": [{"containerPort": 8000, "hostPort": 0}],
    }
    # Two revisions: the service runs web:2, and is moved to web:1 later.
    for _ in range(2):
        ecs.register_task_definition(family="web", containerDefinitions=[httpd])
    arn = elbv2.create_target_group(
        Name="web-tg", Protocol="HTTP", Port=8000, TargetType="ip",
        HealthCheckIntervalSeconds=5, HealthyThresholdCount=2,
    )["TargetGroups"][0]["TargetGroupArn"]
    ecs.create_service(
        cluster="web", serviceName="web", taskDefinition="web", desiredCount=2,
        loadBalancers=[{"targetGroupArn": arn, "containerName": "app", "containerPort": 8000}],
    )
    tasks = wait_for("two service tasks", lambda: len(service_tasks()) == 2 and service_tasks())
    bindings = [t["containers"][0]["networkBindings"][0] for t in tasks]
    # Docker published each container's port 8000 on a host port of its own.
    assert all(b["bindIP"] == "0.0.0.0" and b["containerPort"] == 8000 for b in bindings), bindings
    ports = ports_of(tasks)
    assert len(set(ports)) == 2, ports
    wait_for("both targets healthy", lambda: [p for _, p, s in target_states(arn) if s == "healthy"] == ports)
    print(json.dumps({"tg": arn, "tasks": [t["taskArn"] for t in tasks]}))


def ecs_replaced():
    arn, killed = ARGS
    dead = wait_for("the killed task stopped", lambda: [t for t in ecs.describe_tasks(
        cluster="web", tasks=[killed])["tasks"] if t["lastStatus"] == "STOPPED"])[0]
    assert dead["stoppedReason"].startswith("Essential container in task exited"), dead
    assert dead["containers"][0]["exitCode"] == 137, dead
    tasks = wait_for("a replacement", lambda: len(service_tasks()) == 2 and service_tasks())
    assert killed not in [t["taskArn"] for t in tasks], tasks
    ports = ports_of(tasks)
    wait_for("the group to follow", lambda: [p for _, p, s in target_states(arn) if s == "healthy"] == ports)
    print(json.dumps({"ports": ports}))


def ecs_delete():
    (arn,) = ARGS
    assert len(service_tasks()) == 2
    error("InvalidParameterException", ecs.delete_service, cluster="web", service="web")
    updated = ecs.update_service(cluster="web", service="web", desiredCount=1)["service"]
    assert updated["desiredCount"] == 1, updated
    wait_for("one task", lambda: len(service_tasks()) == 1)
    wait_for("one target", lambda: len(target_states(arn)) == 1)
    # A new task definition replaces the running task; the group follows.
    before = service_tasks()[0]
    updated = ecs.update_service(cluster="web", service="web", taskDefinition="web:1")["service"]
    assert updated["taskDefinition"].endswith(":task-definition/web:1"), updated
    # The replacement starts before the old task stops (ECS's default minimumHealthyPercent of
    # 100), so the service has two tasks for a while: wait for the one on web:1 alone.
    def only_web1():
        tasks = service_tasks()
        alone = len(tasks) == 1 and tasks[0]["taskDefinitionArn"].endswith("web:1")
        return tasks if alone else None
    replaced = wait_for("the task on web:1 alone", only_web1)
    assert replaced[0]["taskArn"] != before["taskArn"], replaced
    wait_for("the group to follow the replacement",
             lambda: [p for _, p, _ in target_states(arn)] == ports_of(replaced))
    old_task = ecs.describe_tasks(cluster="web", tasks=[before["taskArn"]])["tasks"][0]
    assert old_task["lastStatus"] == "STOPPED" and old_task["stopCode"] == "ServiceSchedulerInitiated", old_task
    deleted = ecs.delete_service(cluster="web", service="web", force=True)["service"]
    assert deleted["status"] == "DRAINING", deleted
    assert ecs.describe_services(cluster="web", services=["web"])["services"][0]["status"] == "INACTIVE"
    assert service_tasks() == [] and target_states(arn) == []
    error("ServiceNotActiveException", ecs.update_service, cluster="web", service="web", desiredCount=1)
    error("ServiceNotFoundException", ecs.update_service, cluster="web", service="nope", desiredCount=1)
    elbv2.delete_target_group(TargetGroupArn=arn)
    error("TargetGroupNotFound", elbv2.describe_target_health, TargetGroupArn=arn)
    print(json.dumps({}))


PHASES = {
    "ecs-setup": ecs_setup,
    "docker-ecs-setup": docker_ecs_setup,
    "ecs-replaced": ecs_replaced,
    "ecs-delete": ecs_delete,
    "ec2-run": ec2_run,
    "ec2-stop": ec2_stop,
    "ec2-start": ec2_start,
    "ec2-terminate": ec2_terminate,
    "docker-ec2-run": docker_ec2_run,
    "docker-ec2-stop": docker_ec2_stop,
    "docker-ec2-start": docker_ec2_start,
    "docker-ec2-terminate": docker_ec2_terminate,
}

if __name__ == "__main__":
    PHASES[PHASE]()
