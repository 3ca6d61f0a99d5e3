"""Lists page: GET /v1/vms and /v1/tasks take ?limit=&marker= and answer {..., "next_marker"}.
A walk over 2,500 VMs through the API, and through the CLI (which fetches every page), returns
each VM present throughout exactly once and in order, while VMs are created and deleted between
its pages.

2,500 QEMU guests do not fit this machine: the daemon's own host is libvirt's test driver, from a
host file with room for them (no guest boots; the VMs are real rows with real tasks, which is what
paging reads). Creates and deletes happen between pages deterministically: through the API
between the test's own page requests, and through a small proxy in front of the daemon for the
CLI's walk (each page the CLI asks for first lets a round of changes through)."""

import http.client
import http.server
import json
import os
import subprocess
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest

import nimbus_fixtures as nf

N_VMS = int(os.environ.get("NIMBUS_PAGING_VMS", "2500"))
PAGE = 100

HOST_XML = """<node>
  <cpu>
    <nodes>1</nodes><sockets>2</sockets><cores>32</cores><threads>1</threads>
    <active>64</active><mhz>2400</mhz><model>sim-x86_64</model>
  </cpu>
  <memory>{mem_kib}</memory>
  <network>
    <name>default</name>
    <bridge name='virbr0'/>
    <forward/>
    <ip address='192.168.122.1' netmask='255.255.255.0'>
      <dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp>
    </ip>
  </network>
</node>
"""


def name_of(i, suffix=""):
    return f"pg-{i:05d}{suffix}"


@pytest.fixture(scope="module")
def paging(make_env, e2e_root):
    root, _ = e2e_root
    xml = os.path.join(root, "paging-host.xml")
    with open(xml, "w") as f:
        f.write(HOST_XML.format(mem_kib=1024 * 1024 * 1024))  # 1 TiB
    env = make_env("paging")
    env.daemon.extra_args = ["--libvirt-uri", f"test://{xml}", "--workers", "8"]
    env.daemon.start()
    api = env.api
    # The test driver's pool is 100 GiB and the host has 64 CPUs: room for every VM.
    api.ok("PUT", "/v1/hosts/local", {"cpu_ratio": 64, "disk_ratio": 64}, expect=200)
    qcow = os.path.join(root, "paging.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", qcow, "32M"], check=True)
    env.image = nf.upload_image(env, "paging-img", qcow)
    env.flavor = api.ok("POST", "/v1/flavors",
                        {"name": "paging", "vcpus": 1, "ram_mib": 64, "disk_gib": 1}, expect=201)

    # A network wide enough for them all: a project's default one is a /24.
    # (No DHCP: 2,500 static entries on one host would make every create of this paging test
    # pay for rewriting them.)
    api.ok("POST", "/v1/networks", {"name": "paging", "cidr": "10.65.0.0/16", "dhcp": False},
           expect=201)

    def create(name):
        r = api.request("POST", "/v1/vms", {"name": name, "image": "paging-img",
                                            "flavor": "paging",
                                            "networks": [{"network": "paging"}]})
        assert r.status == 202, f"create {name}: {r!r}"
        return r.json["vm"]["id"]

    # In shuffled order, so that names and creation times disagree.
    order = list(range(N_VMS))
    order = order[1::2] + order[::2]
    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(lambda i: create(name_of(i)), order))
    env.vm_ids = dict(zip((name_of(i) for i in order), ids))
    env.create = create
    env.deleted = set()
    # Every create task done, so that any VM can be deleted (a busy VM refuses).
    nf.wait_until(lambda: not any(v["task_id"] for v in walk_api(api, 1000)[0]), 300,
                  "every create task to finish", interval=2)
    yield env
    env.teardown()


def walk_api(api, limit, between=None, path="/v1/vms", key="vms"):
    """Every page of the list; between(items so far) runs after each page. Returns the items
    and the number of pages."""
    items, marker, pages = [], None, 0
    while True:
        q = {"limit": str(limit)}
        if marker:
            q["marker"] = marker
        page = api.get(f"{path}?{urllib.parse.urlencode(q)}")
        pages += 1
        assert len(page[key]) <= limit, f"page of {len(page[key])} > limit {limit}"
        items += page[key]
        last, marker = marker, page.get("next_marker")
        if not marker:
            return items, pages
        assert page[key], "an empty page that is not the last"
        assert marker != last, f"the walk does not advance past marker {marker}"
        if between:
            between(items)


class Churn:
    """One round of changes between two pages: deletes VMs of the odd half (spread over the whole
    name range, so both behind and ahead of the walk) and creates VMs whose names fall between
    existing ones, ahead of and behind the walk."""

    def __init__(self, env, tag):
        self.env, self.tag = env, tag
        odd = [name_of(i) for i in range(1, N_VMS, 2) if name_of(i) not in env.deleted]
        self.deletable = odd[::7] + [n for n in odd if n not in set(odd[::7])]
        self.rounds = 0
        self.deleted = []
        self.created = []  # (name, id, the walk's last name when it was created)

    def __call__(self, items):
        last = items[-1]["name"] if items else ""
        for _ in range(3):
            name = self.deletable.pop(0)
            vm_id = self.env.vm_ids[name]
            r = self.env.api.request("DELETE", f"/v1/vms/{vm_id}")
            # vm_ops_action reads the VM back after queueing its task; on a simulated host the
            # delete can be over by then, and the answer is 404 although the delete happened.
            assert r.status == 202 or (r.status == 404 and self.env.api.vm(vm_id) is None), \
                f"delete {name}: {r!r}"
            self.deleted.append(name)
            self.env.deleted.add(name)
        for k in range(4):
            i = (self.rounds * 397 + k * 613) % N_VMS
            name = name_of(i, f"-{self.tag}{self.rounds}")
            self.created.append((name, self.env.create(name), last))
        self.rounds += 1


def check_walk(items, env, churn):
    names = [(v["name"], v["id"]) for v in items]
    assert names == sorted(names), "the walk is not in (name, id) order"
    ids = [v["id"] for v in items]
    assert len(ids) == len(set(ids)), "a VM appears twice"
    seen = set(ids)
    deleted = env.deleted  # by this walk and the ones before
    missing = [n for n, i in env.vm_ids.items() if n not in deleted and i not in seen]
    assert not missing, f"{len(missing)} VMs present throughout were skipped: {missing[:5]}"
    # A VM created ahead of the walk's position is met later; one behind it never is.
    for name, vm_id, last in churn.created:
        if name > last:
            assert vm_id in seen, f"{name}, created ahead of the walk (at {last}), was skipped"
        else:
            assert vm_id not in seen, f"{name}, created behind the walk (at {last}), showed up"
    assert {v["name"] for v in items} >= set(env.vm_ids) - deleted
    assert all("user_data" not in v for v in items), "pages carry user_data"


def test_walk_through_api_while_vms_come_and_go(paging):
    churn = Churn(paging, "api")
    items, pages = walk_api(paging.api, PAGE, between=churn)
    assert pages >= N_VMS // PAGE, pages
    assert churn.rounds == pages - 1, "no changes between some pages"
    check_walk(items, paging, churn)


class ChurnProxy(http.server.ThreadingHTTPServer):
    """Forwards the CLI's requests to nimbusd; before forwarding each page after the first
    (a GET with a marker), runs a round of churn."""

    def __init__(self, daemon, churn):
        self.daemon, self.churn, self.items = daemon, churn, []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), ChurnHandler)


class ChurnHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):  # noqa: N802 - http.server's name
        srv = self.server
        with srv.lock:
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            if self.path.startswith("/v1/vms?") and "marker" in q:
                srv.churn(srv.items)
            c = http.client.HTTPConnection("127.0.0.1", srv.daemon.port, timeout=60)
            c.request("GET", self.path, headers={k: v for k, v in self.headers.items()})
            r = c.getresponse()
            body = r.read()
            if self.path.startswith("/v1/vms?") and r.status == 200:
                srv.items += json.loads(body)["vms"]
            c.close()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_walk_through_cli_while_vms_come_and_go(paging):
    churn = Churn(paging, "cli")
    proxy = ChurnProxy(paging.daemon, churn)
    t = threading.Thread(target=proxy.serve_forever, daemon=True)
    t.start()
    try:
        env = dict(os.environ, NIMBUS_URL=f"http://127.0.0.1:{proxy.server_address[1]}",
                   NIMBUS_TOKEN=paging.daemon.token, HOME=paging.cli.home,
                   NIMBUS_CONFIG=paging.cli.empty_config)
        p = subprocess.run([nf.NIMBUS_CLI, "--json", "vm", "list", "--limit", str(PAGE)],
                           capture_output=True, text=True, env=env, timeout=300)
        assert p.returncode == 0, p.stderr
        listed = json.loads(p.stdout)["vms"]
    finally:
        proxy.shutdown()
        proxy.server_close()
    # The table (straight to the daemon): every VM once, in order.
    p = paging.cli.run("vm", "list", "--limit", "250")
    table = [line.split()[0] for line in p.stdout.splitlines()[1:] if line.strip()]
    assert churn.rounds >= N_VMS // PAGE - 1, f"only {churn.rounds} rounds of changes"
    # What the CLI printed is exactly what its pages said, merged in order.
    assert [v["id"] for v in listed] == [v["id"] for v in proxy.items[:len(listed)]]
    check_walk(listed, paging, churn)
    assert table == sorted(table) and len(table) == len(set(table)), "table out of order"
    assert set(table) >= set(paging.vm_ids) - paging.deleted


def test_task_pages_newest_first(paging):
    api = paging.api
    before, _ = walk_api(api, 1000, path="/v1/tasks", key="tasks")
    made = []

    def between(items):
        made.append(paging.create(f"pg-task-{len(made):04d}"))
    tasks, pages = walk_api(api, 500, between=between, path="/v1/tasks", key="tasks")
    assert pages >= 2 and made
    keys = [(t["created_at"], t["id"]) for t in tasks]
    assert keys == sorted(keys, reverse=True), "tasks are not newest first"
    ids = [t["id"] for t in tasks]
    assert len(ids) == len(set(ids)), "a task appears twice"
    assert {t["id"] for t in before} <= set(ids), "a task present throughout was skipped"
    # Tasks created during the walk are newer than the first page: never met.
    assert not {t["target_id"] for t in tasks} & set(made)

    # ?vm= still filters, and pages too.
    vm_id = paging.vm_ids[name_of(0)]
    one = api.get(f"/v1/tasks?vm={vm_id}&limit=1")
    assert [t["target_id"] for t in one["tasks"]] == [vm_id] and one["next_marker"] is None
    cli = paging.cli.json("task", "list", "--limit", "700")["tasks"]
    assert len(cli) >= len(tasks) and len({t["id"] for t in cli}) == len(cli)


def test_page_parameters(paging):
    api = paging.api
    first = api.get("/v1/vms")
    assert len(first["vms"]) == 1000 and first["next_marker"], "default page is 1000"
    last = api.get("/v1/vms?limit=1000&marker=" + urllib.parse.quote(first["next_marker"]))
    assert last["vms"][0]["name"] > first["vms"][-1]["name"]
    for bad in ("0", "1001", "-1", "ten", ""):
        r = api.request("GET", f"/v1/vms?limit={bad}")
        assert r.status == 400 and r.code == "INVALID_REQUEST", (bad, r)
    for bad in ("garbage", "pg-00001", "x" * 300):
        r = api.request("GET", f"/v1/vms?marker={urllib.parse.quote(bad)}")
        assert r.status == 400 and r.code == "INVALID_MARKER", (bad, r)
        r = api.request("GET", f"/v1/tasks?marker={urllib.parse.quote(bad)}")
        assert r.status == 400 and r.code == "INVALID_MARKER", (bad, r)
    p = paging.cli.run("vm", "list", "--limit", "0", check=False)
    assert p.returncode != 0 and "--limit" in p.stderr
