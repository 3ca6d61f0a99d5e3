"""Disk QoS from flavors (issue 10; docs/storage.md "Disk QoS"): a flavor made with the CLI's
--disk-iops and --disk-mbps shows them; a VM of it runs (TCG guest) with libvirt's iotune on
vda, read back from the running domain with `virsh blkdeviotune`, and none on its seed CD-ROM;
a volume hot-plugged into it gets the same limits, live and in the definition; bad values are
refused with 400 INVALID_REQUEST and make no flavor.

Own nimbusd and one guest for the module."""

import re

import pytest

import nimbus_fixtures as nf

IOPS, MBPS = 500, 100
BYTES_SEC = MBPS * 1000 * 1000  # MB/s of 10^6 bytes
SLOW = 600  # s: a TCG guest's create and boot on a busy 2-core machine


def flavor_body(name, **extra):
    return {"name": name, "vcpus": 1, "ram_mib": 256, "disk_gib": 1, **extra}


def flavor_names(api):
    return sorted(f["name"] for f in api.get("/v1/flavors")["flavors"])


def blkdeviotune(domain, dev):
    """virsh blkdeviotune's figures of the running domain's disk dev, as a dict of ints."""
    out = nf.virsh("blkdeviotune", domain, dev).stdout
    return {k: int(v) for k, v in re.findall(r"^\s*(\w+)\s*:\s*(\d+)\s*$", out, re.M)}


def iotune_of(xml, dev):
    """The <iotune> of the disk at target dev in a domain XML: {element: int}, {} when none."""
    for disk in re.findall(r"<disk .*?</disk>", xml, re.S):
        if re.search(rf"<target dev='{dev}'", disk):
            m = re.search(r"<iotune>(.*?)</iotune>", disk, re.S)
            return {k: int(v) for k, v in re.findall(r"<(\w+)>(\d+)</\1>", m.group(1))} if m else {}
    raise AssertionError(f"no disk {dev} in the domain XML")


@pytest.fixture(scope="module")
def qenv(make_env, tiny_image):
    env = make_env("qos")
    env.daemon.start()
    env.image = nf.upload_image(env, "qos-tiny", tiny_image)
    env.plain = nf.create_small_flavor(env, "qos-plain")
    try:
        yield env
    finally:
        if env.daemon.alive():
            for v in env.api.get("/v1/volumes")["volumes"]:
                if v["state"] == "attached":
                    r = env.api.request("POST", f"/v1/volumes/{v['id']}/detach", body={})
                    if r.status == 202:
                        env.api.wait_task(r.json["task"]["id"], expect=None)
            nf.delete_all_vms(env)
            for v in env.api.get("/v1/volumes")["volumes"]:
                r = env.api.request("DELETE", f"/v1/volumes/{v['id']}")
                if r.status == 202:
                    env.api.wait_task(r.json["task"]["id"], expect=None)
        env.teardown()


def test_cli_flavor_shows_limits(qenv):
    cli = qenv.cli
    made = cli.json("flavor", "create", "qos-500", "--vcpus", "1", "--ram", "256", "--disk", "1",
                    "--disk-iops", str(IOPS), "--disk-mbps", str(MBPS))
    assert (made["disk_iops"], made["disk_mbps"]) == (IOPS, MBPS), made
    got = qenv.api.get("/v1/flavors/qos-500")
    assert (got["disk_iops"], got["disk_mbps"]) == (IOPS, MBPS), got
    # without them: 0, no limit
    assert (qenv.plain["disk_iops"], qenv.plain["disk_mbps"]) == (0, 0), qenv.plain
    shown = cli.run("flavor", "show", "qos-500").stdout
    assert re.search(rf"disk_iops:\s+{IOPS}\b", shown) and re.search(rf"disk_mbps:\s+{MBPS}\b",
                                                                    shown), shown
    listed = cli.run("flavor", "list").stdout
    assert "DISK-IOPS" in listed and "DISK(MB/s)" in listed, listed
    plain_row = next(line for line in listed.splitlines() if line.startswith("qos-plain"))
    assert plain_row.count("unlimited") == 4, plain_row  # net in, net out, IOPS, MB/s


@pytest.mark.parametrize("field,value", [
    ("disk_iops", -1), ("disk_iops", 1000001), ("disk_iops", 2**63 - 1), ("disk_iops", 1.5),
    ("disk_iops", "500"), ("disk_iops", None), ("disk_iops", True),
    ("disk_mbps", -1), ("disk_mbps", 100001), ("disk_mbps", 100.0), ("disk_mbps", [1]),
    ("disk_mbps", {"a": 1}),
])
def test_bad_values_make_no_flavor(qenv, field, value):
    before = flavor_names(qenv.api)
    r = qenv.api.request("POST", "/v1/flavors", flavor_body("qos-bad", **{field: value}))
    assert (r.status, r.code) == (400, "INVALID_REQUEST"), r
    assert field in r.json["error"]["message"], r
    assert flavor_names(qenv.api) == before


def test_cli_bad_values(qenv):
    for bad in (["--disk-iops", "1000001"], ["--disk-iops", "-1"], ["--disk-mbps", "100001"],
                ["--disk-mbps", "1.5"]):
        p = qenv.cli.run("flavor", "create", "qos-cli-bad", "--vcpus", "1", "--ram", "256",
                         "--disk", "1", *bad, check=False)
        assert p.returncode == 2 and bad[0] in p.stderr, (bad, p.stdout, p.stderr)
    assert "qos-cli-bad" not in flavor_names(qenv.api)


def test_vm_and_hotplugged_volume_limited(qenv):
    env, cli = qenv, qenv.cli
    if "qos-500" not in flavor_names(env.api):
        env.api.ok("POST", "/v1/flavors",
                   flavor_body("qos-500", disk_iops=IOPS, disk_mbps=MBPS), expect=201)
    r = env.api.create_vm("qos-vm", env.image["id"], "qos-500", wait=False)
    vm = r["vm"]
    env.remember(vm["id"])
    env.api.wait_task(r["task"]["id"], timeout=SLOW)
    env.api.wait_console("qos-vm", "NIMBUS-READY", timeout=SLOW)
    domain = nf.vm_domain(vm["id"])
    assert nf.domstate(domain) == "running"

    # the running domain's root disk, as QEMU throttles it
    tune = blkdeviotune(domain, "vda")
    assert (tune["total_iops_sec"], tune["total_bytes_sec"]) == (IOPS, BYTES_SEC), tune
    assert tune["read_iops_sec"] == tune["write_iops_sec"] == 0, tune
    live = nf.virsh("dumpxml", domain).stdout
    assert iotune_of(live, "vda") == {"total_bytes_sec": BYTES_SEC, "total_iops_sec": IOPS}
    assert iotune_of(live, "sda") == {}  # the seed CD-ROM: none

    # a hot-plugged volume: the same, live and in the definition
    cli.json("volume", "create", "qos-data", "--size", "1", "--wait", timeout=SLOW)
    att = cli.json("volume", "attach", "qos-data", "qos-vm", "--wait", timeout=SLOW)
    assert (att["state"], att["target"]) == ("attached", "vdb"), att
    tune = blkdeviotune(domain, "vdb")
    assert (tune["total_iops_sec"], tune["total_bytes_sec"]) == (IOPS, BYTES_SEC), tune
    for xml in (nf.virsh("dumpxml", domain).stdout,
                nf.virsh("dumpxml", "--inactive", domain).stdout):
        assert iotune_of(xml, "vdb") == {"total_bytes_sec": BYTES_SEC, "total_iops_sec": IOPS}
        assert iotune_of(xml, "vda") == {"total_bytes_sec": BYTES_SEC, "total_iops_sec": IOPS}

    cli.run("volume", "detach", "qos-data", "--wait", timeout=SLOW)
    cli.run("volume", "delete", "qos-data", "--wait", timeout=SLOW)
    r = env.api.delete_vm("qos-vm", wait=False)
    env.api.wait_task(r["task"]["id"], timeout=SLOW)
