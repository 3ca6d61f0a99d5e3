"""--log-format json: every line nimbusd writes is one JSON object, and the lines written while
serving a request carry its request id, those written while running a task carry the task's and
its VM's ids. On a simulated local host (test:///default), so no guest boots."""

import json
import os
import subprocess

import nimbus_fixtures as nf


def test_json_logs_carry_request_task_and_vm_ids(make_env, e2e_root):
    root, _ = e2e_root
    env = make_env("jsonlog")
    env.daemon.extra_args += ["--libvirt-uri", "test:///default", "--log-format", "json"]
    with open(env.daemon.log_path, "ab") as f:
        start = f.tell()
    env.daemon.start()
    try:
        api = env.api
        img_path = os.path.join(root, "jsonlog.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", img_path, "32M"], check=True)
        image = nf.upload_image(env, "jsonlog", img_path)
        nf.create_small_flavor(env)
        r = api.request("POST", "/v1/vms", {"name": "logged", "image": image["id"],
                                            "flavor": "e2e-small"})
        assert r.status == 202, r
        request_id = r.headers.get("x-request-id")
        vm_id, task_id = r.json["vm"]["id"], r.json["task"]["id"]
        env.remember(vm_id)
        api.wait_task(task_id)
        api.delete_vm(vm_id)
    finally:
        env.daemon.stop()
        with open(env.daemon.log_path, "rb") as f:
            f.seek(start)
            text = f.read().decode("utf-8")
        env.teardown()

    records = []
    for line in text.splitlines():
        if not line or line.startswith("====="):  # the fixture's own marker
            continue
        rec = json.loads(line)  # fails the test on a line that is not JSON
        assert isinstance(rec, dict) and {"time", "level", "msg"} <= rec.keys(), line
        records.append(rec)
    assert len(records) > 20, f"only {len(records)} records"
    in_request = [r for r in records if r.get("request_id") == request_id]
    assert in_request, f"no record carries the create's request id {request_id}"
    assert any(r["msg"].startswith("http: POST /v1/vms 202") for r in in_request), in_request
    in_task = [r for r in records if r.get("task_id") == task_id]
    assert in_task, "no record carries the create task's id"
    assert all(r.get("vm_id") == vm_id for r in in_task), in_task
    assert not any(r.get("task_id") and r.get("request_id") for r in records), \
        "a record carries both a request's and a task's id"
