"""Clones and images from VMs with real guests (docs/storage.md, "Clones and images from VMs").

The source guest's user-data marks its root disk: it writes `NIMBUS-ROOT-MARK <hostname>` into
sector 2047 (the free gap between the MBR and the test image's one partition) when that sector
holds no mark yet, and prints the mark it finds there at every boot. A clone (its user-data is
the source's) or a VM made from an image of the source then prints the SOURCE's hostname, while
the guest's own NIMBUS-READY line shows its own hostname and instance-id (its VM id): a new
identity on a copied disk.

Images from a running and a stopped VM, clones full and linked of a stopped and of a running
source, the full clone outliving its deleted source, the refusals, and nimbusd killed in the
middle of a clone and of an image-from-VM. Own nimbusd (the crash tests restart it); one source
guest for the module."""

import json
import re
import signal
import subprocess

import pytest

import nimbus_fixtures as nf

MARK_SECTOR = nf.ROOT_MARK_SECTOR
USER_DATA = "#!/bin/sh\n" + nf.ROOT_MARK_SH


@pytest.fixture(scope="module")
def cenv(make_env, tiny_image):
    env = make_env("clone")
    env.daemon.start()
    try:
        env.image = nf.upload_image(env, "clone-tiny", tiny_image)
        env.flavor = nf.create_small_flavor(env)
        r = env.api.create_vm("csrc", env.image["id"], env.flavor["id"], wait=False,
                              user_data=USER_DATA)
        env.remember(r["vm"]["id"])
        env.api.wait_task(r["task"]["id"])
        env.api.wait_console("csrc", "NIMBUS-ROOT-MARKED csrc")
        env.api.wait_console("csrc", "NIMBUS-READY")
        env.src = env.api.vm("csrc")
        yield env
    finally:
        if env.daemon.alive():
            for v in env.api.vms():
                try:
                    if v["task_id"]:
                        env.api.wait_task(v["task_id"], expect=None)
                    env.api.delete_vm(v["id"])
                except AssertionError as e:
                    print(f"cleanup of VM {v['name']}: {e}")
        env.teardown()


def pool_path(env, vol):
    return nf.virsh("vol-path", "--pool", env.daemon.pool_name, vol).stdout.strip()


def qemu_img_info(path):
    p = subprocess.run(["qemu-img", "info", "-U", "--output=json", path], capture_output=True,
                       text=True, timeout=60, check=True)
    return json.loads(p.stdout)


def root_mark(path):
    """The mark in a qcow2 file's sector 2047, read through its backing chain."""
    p = subprocess.run(["qemu-io", "-U", "-r", "-f", "qcow2", "-c",
                        f"read -v {MARK_SECTOR * 512} 64", path],
                       capture_output=True, text=True, timeout=60, check=True)
    raw = b""
    for line in p.stdout.splitlines():
        m = re.match(r"^[0-9a-f]+:\s+((?:[0-9a-f]{2} ?)+)", line)
        if m:
            raw += bytes.fromhex(m.group(1).replace(" ", ""))
    text = raw.split(b"\n")[0].decode("ascii", "replace")
    return text[len("NIMBUS-ROOT-MARK "):] if text.startswith("NIMBUS-ROOT-MARK ") else None


def backup_jobs(env, vm_id):
    """The domain's running job, as virsh shows it ('None' when there is none)."""
    p = nf.virsh("domjobinfo", nf.vm_domain(vm_id), check=False)
    m = re.search(r"Job type:\s+(\S+)", p.stdout)
    return m.group(1) if m else "None"


def leftovers(env):
    """Scratch files in the pool's directory (clone-<task>.qcow2) and problems of the store
    against libvirt."""
    vols = [v for v in nf.volume_names(env.daemon.pool_name) if v.startswith("clone-")]
    return vols + env.consistency()


def boot_report(env, name):
    """The hostname and instance-id the guest says it has, and the root mark it found."""
    env.api.wait_console(name, "NIMBUS-READY")
    log = env.api.console(name)
    ready = re.search(r"NIMBUS-READY hostname=(\S+) instance-id=(\S+)", log)
    mark = re.search(r"NIMBUS-ROOT-MARK (\S+)", log)
    return ready.group(1), ready.group(2), mark.group(1) if mark else None


def set_power(env, name, state):
    vm = env.api.vm(name)
    if state == "stopped" and vm["state"] != "stopped":
        env.api.action(name, "stop", {"force": True})
        env.api.wait_vm_state(name, "stopped")
    if state == "running" and vm["state"] != "running":
        env.api.action(name, "start")
        env.api.wait_vm_state(name, "running")


def clone(env, new, linked=False, expect="succeeded"):
    r = env.api.ok("POST", "/v1/vms/csrc/clone", {"name": new, "linked": linked}, expect=202)
    env.remember(r["vm"]["id"])
    assert r["task"]["kind"] == "vm.clone", r
    assert r["vm"]["id"] != env.src["id"] and r["vm"]["host"] == env.src["host"], r
    env.api.wait_task(r["task"]["id"], expect=expect)
    return r["vm"]


def check_clone(env, vm, linked):
    """Its own identity, the source's mark, new NIC, and the disk it should have."""
    hostname, iid, mark = boot_report(env, vm["name"])
    assert (hostname, iid, mark) == (vm["name"], vm["id"], "csrc")
    assert vm["ip"] != env.src["ip"] or not vm["ip"]
    got = env.api.get(f"/v1/vms/{vm['id']}")
    src = env.api.get(f"/v1/vms/{env.src['id']}")
    assert got["flavor_id"] == src["flavor_id"] and got["image_id"] == src["image_id"]
    assert [n["network_id"] for n in got["nics"]] == [n["network_id"] for n in src["nics"]]
    assert {n["mac"] for n in got["nics"]}.isdisjoint({n["mac"] for n in src["nics"]})
    info = qemu_img_info(pool_path(env, f"vm-{vm['id']}-disk.qcow2"))
    image_path = pool_path(env, f"image-{env.image['id']}")
    if linked:
        assert info.get("backing-filename") == image_path, info
    else:
        assert "backing-filename" not in info, info


def make_image(env, name, expect="succeeded"):
    r = env.api.ok("POST", "/v1/images", {"name": name, "from_vm": "csrc"}, expect=202)
    env.remember(r["image"]["id"])
    assert r["task"]["kind"] == "image.from-vm" and r["image"]["state"] == "uploading", r
    env.api.wait_task(r["task"]["id"], expect=expect)
    return env.api.get(f"/v1/images/{r['image']['id']}")


def test_image_from_running_then_stopped_vm(cenv):
    env = cenv
    set_power(env, "csrc", "running")
    img = make_image(env, "from-running")
    assert img["state"] == "active" and img["disk_format"] == "qcow2", img
    assert img["virtual_size_bytes"] == env.flavor["disk_gib"] << 30, img
    assert env.api.vm("csrc")["state"] == "running"  # copied without stopping it
    assert backup_jobs(env, env.src["id"]) == "None"
    path = pool_path(env, f"image-{img['id']}")
    info = qemu_img_info(path)
    assert "backing-filename" not in info, info
    assert img["size_bytes"] > 0 and img["project_id"] == env.src["project_id"], img
    assert root_mark(path) == "csrc"

    # a VM from the new image boots and finds the mark written before the image was made
    r = env.api.create_vm("fromimg", img["id"], env.flavor["id"], user_data=USER_DATA)
    env.remember(r["vm"]["id"])
    assert boot_report(env, "fromimg") == ("fromimg", r["vm"]["id"], "csrc")
    env.api.delete_vm("fromimg")

    set_power(env, "csrc", "stopped")
    img2 = make_image(env, "from-stopped")
    assert img2["state"] == "active", img2
    path2 = pool_path(env, f"image-{img2['id']}")
    assert "backing-filename" not in qemu_img_info(path2)
    assert root_mark(path2) == "csrc"
    assert env.api.vm("csrc")["state"] == "stopped"
    # the CLI's form, with --wait
    out = env.cli.run("image", "create", "cli-img", "--from-vm", "csrc", "--wait").stdout
    assert "active" in out, out
    assert leftovers(env) == []


@pytest.mark.parametrize("source_state,linked", [
    ("stopped", False), ("stopped", True), ("running", False), ("running", True)])
def test_clone(cenv, source_state, linked):
    env = cenv
    set_power(env, "csrc", source_state)
    name = f"cl-{source_state[:3]}-{'lnk' if linked else 'full'}"
    vm = clone(env, name, linked=linked)
    assert env.api.vm("csrc")["state"] == source_state
    assert backup_jobs(env, env.src["id"]) == "None"
    check_clone(env, env.api.vm(vm["id"]), linked)
    env.api.delete_vm(vm["id"])
    assert leftovers(env) == []


def test_concurrent_copies_of_a_running_source(cenv):
    """A clone (which does not hold its source) and an image-from-VM (which does) of the same
    running VM at once: one backup job at a time per domain, the other waits for it."""
    env = cenv
    set_power(env, "csrc", "running")
    c = env.api.ok("POST", "/v1/vms/csrc/clone", {"name": "cl-conc"}, expect=202)
    env.remember(c["vm"]["id"])
    i = env.api.ok("POST", "/v1/images", {"name": "img-conc", "from_vm": "csrc"}, expect=202)
    env.remember(i["image"]["id"])
    env.api.wait_task(c["task"]["id"])
    env.api.wait_task(i["task"]["id"])
    assert env.api.get(f"/v1/images/{i['image']['id']}")["state"] == "active"
    assert root_mark(pool_path(env, f"image-{i['image']['id']}")) == "csrc"
    assert root_mark(pool_path(env, f"vm-{c['vm']['id']}-disk.qcow2")) == "csrc"
    env.api.delete_vm("cl-conc")
    env.api.ok("DELETE", f"/v1/images/{i['image']['id']}", expect=204)
    assert backup_jobs(env, env.src["id"]) == "None"
    assert leftovers(env) == []


def test_cli_clone(cenv):
    env = cenv
    set_power(env, "csrc", "stopped")
    out = env.cli.run("vm", "clone", "csrc", "cl-cli", "--linked", "--wait").stdout
    assert "cl-cli" in out, out
    vm = env.api.vm("cl-cli")
    env.remember(vm["id"])
    assert vm["state"] == "running", vm
    env.api.delete_vm("cl-cli")


def test_refusals(cenv):
    env = cenv
    before = nf.store_snapshot(env.api)
    r = env.api.request("POST", "/v1/vms/nosuchvm/clone", {"name": "x1"})
    assert r.status == 404 and r.json["error"]["code"] == "VM_NOT_FOUND", r
    r = env.api.request("POST", "/v1/vms/csrc/clone", {"name": "csrc"})
    assert r.status == 409 and r.json["error"]["code"] == "NAME_TAKEN", r
    r = env.api.request("POST", "/v1/vms/csrc/clone", {"name": "x2", "linked": "yes"})
    assert r.status == 400, r
    r = env.api.request("POST", "/v1/vms/csrc/clone", {"name": "x2", "host": "elsewhere"})
    assert r.status == 400, r
    r = env.api.request("POST", "/v1/vms/csrc/clone", {"name": "bad name!"})
    assert r.status == 400, r
    r = env.api.request("POST", "/v1/images", {"name": "i1", "from_vm": "nosuchvm"})
    assert r.status == 404 and r.json["error"]["code"] == "VM_NOT_FOUND", r
    r = env.api.request("POST", "/v1/images", {"name": "clone-tiny", "from_vm": "csrc"})
    assert r.status == 409 and r.json["error"]["code"] == "NAME_TAKEN", r

    # another project's VM is not found, by name or by id
    proj = env.api.ok("POST", "/v1/projects", {"name": "cloneother"}, expect=201)
    _, other, _ = nf.make_user(env.api, "cloneuser", "a-long-password-1", proj["id"], "member")
    for key in ("csrc", env.src["id"]):
        r = other.request("POST", f"/v1/vms/{key}/clone", {"name": "stolen"})
        assert r.status == 404 and r.json["error"]["code"] == "VM_NOT_FOUND", r
        r = other.request("POST", "/v1/images", {"name": "stolen", "from_vm": key})
        assert r.status == 404 and r.json["error"]["code"] == "VM_NOT_FOUND", r

    # quota: the source's project may hold no more VMs
    project = env.src["project_id"]
    quota = env.api.get(f"/v1/projects/{project}/quota")
    in_use = quota["in_use"]["vms"]
    env.api.ok("PUT", f"/v1/projects/{project}/quota", {"vms": in_use}, expect=200)
    try:
        r = env.api.request("POST", "/v1/vms/csrc/clone", {"name": "x3"})
        assert r.status == 403 and r.json["error"]["code"] == "QUOTA_EXCEEDED", r
    finally:
        env.api.ok("PUT", f"/v1/projects/{project}/quota", {"vms": None}, expect=200)
    assert nf.store_snapshot(env.api) == before
    assert leftovers(env) == []
    actions = {(e["action"], e["result"]) for e in nf.audit_events(env.api, limit=1000)
               if e["action"] in ("vm.clone", "image.create")}
    for want in [("vm.clone", "ok"), ("vm.clone", "VM_NOT_FOUND"), ("vm.clone", "NAME_TAKEN"),
                 ("vm.clone", "QUOTA_EXCEEDED"), ("image.create", "ok"),
                 ("image.create", "VM_NOT_FOUND")]:
        assert want in actions, (want, actions)


def settle(env):
    def settled():
        vms = env.api.vms()
        imgs = env.api.images()
        busy = [v for v in vms if v["task_id"] or v["state"] == "building"]
        busy += [i for i in imgs if i["state"] == "uploading"]
        return not busy
    nf.wait_until(settled, 180, "the clone and image tasks to end")


def kill_while_copying(env, method, path, body):
    """Sends the request and kills nimbusd -9 while its backup job runs (or just after), then
    starts it again."""
    r = env.api.request(method, path, body=body)
    assert r.status == 202, r
    env.daemon.send_signal(signal.SIGKILL)
    env.daemon.wait_dead(60)
    env.daemon.start()
    return r.json


@pytest.mark.parametrize("source_state", ["stopped", "running"])
def test_crash_during_clone_and_image(cenv, source_state):
    env = cenv
    set_power(env, "csrc", source_state)
    tag = source_state[:3]
    # killed after the disk copy, before the step was recorded: the restart copies again
    nf.crash_during(env, "vm.clone:0", "POST", "/v1/vms/csrc/clone", {"name": f"crc-{tag}"})
    settle(env)
    vm = env.api.vm(f"crc-{tag}")
    env.remember(vm["id"])
    assert vm["state"] == "running", vm
    assert boot_report(env, vm["name"]) == (vm["name"], vm["id"], "csrc")
    env.api.delete_vm(vm["id"])

    nf.crash_during(env, "image.from-vm:0", "POST", "/v1/images",
                    {"name": f"cri-{tag}", "from_vm": "csrc"})
    settle(env)
    imgs = [i for i in env.api.images() if i["name"] == f"cri-{tag}"]
    for i in imgs:
        env.remember(i["id"])
        assert i["state"] in ("active", "error"), i
    # killed in the middle of the copy (the backup job of a running source under way)
    got = kill_while_copying(env, "POST", "/v1/vms/csrc/clone", {"name": f"crk-{tag}"})
    env.remember(got["vm"]["id"])
    got = kill_while_copying(env, "POST", "/v1/images", {"name": f"crk-{tag}", "from_vm": "csrc"})
    env.remember(got["image"]["id"])
    settle(env)
    assert backup_jobs(env, env.src["id"]) == "None"
    assert env.api.vm("csrc")["state"] == source_state
    for i in env.api.images():
        assert i["state"] in ("active", "error", "queued") and i["state"] != "uploading", i
    assert leftovers(env) == []
    for v in env.api.vms():
        if v["name"].startswith("cr"):
            env.api.delete_vm(v["id"])
    for i in env.api.images():
        if i["name"].startswith("cr"):
            env.api.ok("DELETE", f"/v1/images/{i['id']}", expect=204)


def test_full_clone_outlives_its_source(cenv):
    """Last: it deletes the source."""
    env = cenv
    set_power(env, "csrc", "running")
    vm = clone(env, "survivor")
    assert boot_report(env, "survivor")[2] == "csrc"
    env.api.delete_vm("csrc")
    env.api.action("survivor", "reboot")
    env.api.wait_console("survivor", "NIMBUS-READY", count=2)
    log = env.api.console("survivor")
    assert log.count("NIMBUS-ROOT-MARK csrc") >= 2, log[-2000:]
    assert "backing-filename" not in qemu_img_info(pool_path(env, f"vm-{vm['id']}-disk.qcow2"))
    assert leftovers(env) == []
