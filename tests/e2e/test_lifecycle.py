"""A VM's whole life through the real `nimbus` CLI, checked against libvirt and the guest's own
serial console."""

import json
import os
import subprocess

import nimbus_fixtures as nf

USER_DATA = "#!/bin/sh\necho hello-from-user-data-$((6*7))\n"


def test_vm_lifecycle_through_cli(nimbus, tiny_image, tmp_path):
    cli, d = nimbus.cli, nimbus.daemon

    # image and flavor
    img = cli.json("image", "create", "cli-tiny", "--file", tiny_image, "--format", "qcow2")
    nimbus.remember(img["id"])
    assert img["state"] == "active", f"image after upload: {img}"
    assert f"image-{img['id']}" in nf.volume_names(d.pool_name), "image volume not in the pool"
    assert "cli-tiny" in cli.run("image", "list").stdout
    fl = cli.json("flavor", "create", "cli-small", "--vcpus", "1", "--ram", "256", "--disk", "1")
    assert (fl["vcpus"], fl["ram_mib"], fl["disk_gib"]) == (1, 256, 1), fl

    # create with user-data, --wait
    init = tmp_path / "init.sh"
    init.write_text(USER_DATA)
    p = cli.run("vm", "create", "web1", "--image", "cli-tiny", "--flavor", "cli-small",
                "--user-data", str(init), "--wait")
    vm = cli.json("vm", "show", "web1")
    vm_id = vm["id"]
    nimbus.remember(vm_id)
    dom = nf.vm_domain(vm_id)
    assert vm["state"] == "running", f"after `vm create --wait`: {vm}\n{p.stdout}"
    assert vm["desired_state"] == "running" and vm["task_id"] is None, vm
    assert (vm["vcpus"], vm["ram_mib"], vm["disk_gib"]) == (1, 256, 1), vm
    assert nf.domstate(dom) == "running", f"virsh domstate {dom}: {nf.domstate(dom)}"
    assert nf.vm_volumes(vm_id) <= nf.volume_names(d.pool_name), "VM volumes missing"

    # the guest saw its hostname and ran the user-data
    cli.wait_console("web1", f"NIMBUS-READY hostname=web1 instance-id={vm_id}")
    text = cli.console("web1")
    assert "NIMBUS-HOSTNAME web1" in text, text[-1500:]
    assert "hello-from-user-data-42" in text, f"user-data output missing:\n{text[-1500:]}"
    assert "NIMBUS-USERDATA-DONE rc=0" in text, text[-1500:]

    # list: table and JSON
    table = cli.run("vm", "list").stdout
    row = [l for l in table.splitlines() if l.split()[:1] == ["web1"]]
    assert row and "running" in row[0], f"`vm list` has no running web1 row:\n{table}"
    listed = json.loads(cli.run("--json", "vm", "list").stdout)
    rows = listed["vms"] if isinstance(listed, dict) else listed
    assert any(v["name"] == "web1" and v["state"] == "running" for v in rows), listed

    # stop
    cli.run("vm", "stop", "web1", "--wait")
    vm = cli.json("vm", "show", "web1")
    assert vm["state"] == "stopped" and vm["desired_state"] == "stopped", vm
    assert nf.domstate(dom) == "shut off", f"virsh domstate after stop: {nf.domstate(dom)}"

    # start: a second boot
    cli.run("vm", "start", "web1", "--wait")
    assert cli.json("vm", "show", "web1")["state"] == "running"
    assert nf.domstate(dom) == "running"
    cli.wait_console("web1", "NIMBUS-READY", count=2)

    # reboot: a third boot
    cli.run("vm", "reboot", "web1", "--wait")
    cli.wait_console("web1", "NIMBUS-READY", count=3)
    assert cli.json("vm", "show", "web1")["state"] == "running"
    assert nf.domstate(dom) == "running"

    # pause / resume
    cli.run("vm", "pause", "web1", "--wait")
    vm = cli.json("vm", "show", "web1")
    assert vm["state"] == "paused", vm
    assert nf.domstate(dom) == "paused", f"virsh domstate after pause: {nf.domstate(dom)}"
    cli.run("vm", "resume", "web1", "--wait")
    assert cli.json("vm", "show", "web1")["state"] == "running"
    assert nf.domstate(dom) == "running"

    # tasks of this VM
    tasks = cli.json("task", "list", "--vm", "web1")
    tasks = tasks["tasks"] if isinstance(tasks, dict) else tasks
    kinds = sorted(t["kind"] for t in tasks)
    assert kinds == sorted(["vm.create", "vm.stop", "vm.start", "vm.reboot", "vm.pause",
                            "vm.resume"]), kinds
    assert all(t["state"] == "succeeded" for t in tasks), tasks
    one = cli.json("task", "show", tasks[0]["id"])
    assert one["id"] == tasks[0]["id"]

    # delete: nothing left anywhere
    cli.run("vm", "delete", "web1", "--wait")
    p = cli.run("vm", "show", "web1", check=False)
    assert p.returncode == 1 and "VM_NOT_FOUND" in p.stderr, (p.returncode, p.stderr)
    assert nf.virsh("dominfo", dom, check=False).returncode != 0, f"domain {dom} still defined"
    left = {v for v in nf.volume_names(d.pool_name) if vm_id in v}
    assert not left, f"volumes left after delete: {left}"
    assert not os.path.exists(d.console_log_path(vm_id)), "console log file left after delete"
    assert "web1" not in cli.run("vm", "list").stdout

    # the image and flavor go too once unused
    cli.run("image", "delete", "cli-tiny")
    cli.run("flavor", "delete", "cli-small")
    assert f"image-{img['id']}" not in nf.volume_names(d.pool_name), "image volume left"
    assert nimbus.consistency() == []


def test_cli_errors(nimbus):
    cli = nimbus.cli
    p = cli.run("vm", "show", "no-such-vm", check=False)
    assert p.returncode == 1, p
    assert p.stderr.startswith("error: VM_NOT_FOUND:"), p.stderr
    p = cli.run("vm", "frobnicate", check=False)
    assert p.returncode == 2, f"usage error should exit 2: {p}"
    p = cli.run("--url", "http://127.0.0.1:1", "vm", "list", check=False)
    assert p.returncode == 3, f"connect failure should exit 3: {p}"
    p = cli.run("--token", "wrong", "vm", "list", check=False)
    assert p.returncode == 1 and "UNAUTHORIZED" in p.stderr, p


def test_cli_refused_upload_leaves_nothing(nimbus, tmp_path):
    """`nimbus image create` with a hostile file fails with the API's code, and (as the CLI
    promises) deletes the image record it made, so the name can be used again."""
    bad = tmp_path / "bad.qcow2"
    p = subprocess.run(["qemu-img", "create", "-f", "qcow2", "-F", "raw", "-b", "/etc/passwd",
                           "-u", str(bad), "1G"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    vols = nf.volume_names(nimbus.daemon.pool_name)
    p = nimbus.cli.run("image", "create", "cli-bad", "--file", str(bad), check=False)
    assert p.returncode == 1 and "IMAGE_BACKING_FILE" in p.stderr, (p.returncode, p.stderr)
    left = [i for i in nimbus.api.images() if i["name"] == "cli-bad"]
    for i in left:  # clean up for the tests after this one
        nimbus.remember(i["id"])
        nf.wait_until(lambda: nimbus.api.get(f"/v1/images/{i['id']}")["state"] == "queued", 10,
                      "the image to settle")
        nimbus.api.request("DELETE", f"/v1/images/{i['id']}")
    assert nf.volume_names(nimbus.daemon.pool_name) == vols, "a volume was left"
    assert not left, f"the refused upload left an image record: {left}; CLI stderr: {p.stderr}"
