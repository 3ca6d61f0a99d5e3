"""nimbusd serving HTTPS (--tls-cert/--tls-key), the CLI trusting it only with --cacert (or
NIMBUS_CACERT), and the loud warning when the API listens off loopback without TLS.

The off-loopback daemons listen on 0.0.0.0 for a moment only, get no traffic at all, and are
stopped as soon as their start-up lines are in the log."""

import http.client
import json
import os
import re
import socket
import ssl
import subprocess

import pytest

import nimbus_fixtures as nf

LISTEN_RE = re.compile(r"listening on (https?)://([0-9.:\[\]a-f]+?):(\d+)")


def make_cert(directory, name="server"):
    cert, key = os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-days", "1", "-keyout", key, "-out", cert],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return cert, key


def start_and_read(daemon, extra):
    """Starts the env's nimbusd with extra arguments (the last --listen wins); returns (scheme,
    host, port, the start-up output) once it logs its 'listening on' line."""
    daemon.extra_args = list(extra)
    offset = os.path.getsize(daemon.log_path) if os.path.exists(daemon.log_path) else 0
    daemon.start(wait_ready=False)

    def output():
        with open(daemon.log_path, errors="replace") as f:
            f.seek(offset)
            return f.read()

    def listening():
        if not daemon.alive():
            raise AssertionError(f"nimbusd exited ({daemon.proc.returncode}) at start-up:\n"
                                 f"{output()[-3000:]}")
        return LISTEN_RE.search(output())
    m = nf.wait_until(listening, 30, "nimbusd to log 'listening on'")
    return m.group(1), m.group(2), int(m.group(3)), output()


def https(port, path, cafile, token=None, method="GET", body=None):
    ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=15)
    try:
        hdrs = {"Authorization": f"Bearer {token}"} if token else {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.update({"Content-Type": "application/json", "Content-Length": str(len(data))})
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def tls(make_env, tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    env = make_env("tls")
    env.cert, env.key = make_cert(str(d))
    env.other_cert, _ = make_cert(str(d), "other")
    yield env
    env.teardown()


@pytest.fixture
def tls_daemon(tls):
    scheme, host, port, out = start_and_read(tls.daemon, ["--tls-cert", tls.cert,
                                                          "--tls-key", tls.key])
    tls.daemon.port = port
    with open(os.path.join(tls.daemon.state_dir, "admin.token")) as f:
        tls.daemon.token = f.read().strip()
    tls.scheme, tls.out = scheme, out
    yield tls
    tls.daemon.stop()


def test_https_api(tls_daemon):
    env = tls_daemon
    port = env.daemon.port
    assert env.scheme == "https", f"TLS daemon says: {LISTEN_RE.search(env.out).group(0)}"
    assert "without TLS" not in env.out, "warning about TLS on a loopback TLS listener"
    st, body = https(port, "/v1/health", env.cert)
    assert st == 200 and json.loads(body)["status"] == "ok", (st, body)
    st, body = https(port, "/v1/vms", env.cert, token=env.daemon.token)
    assert st == 200 and "vms" in json.loads(body), (st, body)
    st, body = https(port, "/v1/vms", env.cert)
    assert st == 401, (st, body)
    # an untrusted certificate is refused by a verifying client
    with pytest.raises(ssl.SSLError):
        https(port, "/v1/health", None)
    with pytest.raises(ssl.SSLError):
        https(port, "/v1/health", env.other_cert)
    # plain HTTP to the TLS port gets no answer that looks like the API
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/v1/health")
        r = conn.getresponse()
        st, body = r.status, r.read()
        assert st >= 400 and b'"ok"' not in body, f"plain HTTP got {st} {body[:200]!r}"
    except (http.client.HTTPException, ConnectionError, socket.timeout, OSError):
        pass
    finally:
        conn.close()
    # the daemon is still fine afterwards
    st, _ = https(port, "/v1/health", env.cert)
    assert st == 200


def test_cli_over_https(tls_daemon):
    env = tls_daemon
    url = f"https://127.0.0.1:{env.daemon.port}"
    p = env.cli.run("--url", url, "--cacert", env.cert, "vm", "list", check=False)
    assert p.returncode == 0, f"CLI with --cacert: {p.returncode}\n{p.stdout}\n{p.stderr}"
    p = env.cli.run("--url", url, "--json", "flavor", "list", "--cacert", env.cert, check=False)
    assert p.returncode == 0 and "flavors" in p.stdout, p
    p = env.cli.run("--url", url, "vm", "list", check=False)
    assert p.returncode == 3, f"CLI without --cacert should fail to connect (3): {p}"
    p = env.cli.run("--url", url, "--cacert", env.other_cert, "vm", "list", check=False)
    assert p.returncode == 3, f"CLI trusting another CA should fail (3): {p}"
    # NIMBUS_CACERT
    e = dict(os.environ, NIMBUS_URL=url, NIMBUS_TOKEN=env.daemon.token, HOME=env.cli.home,
             NIMBUS_CONFIG=env.cli.empty_config, NIMBUS_CACERT=env.cert)
    p = subprocess.run([nf.NIMBUS_CLI, "vm", "list"], capture_output=True, text=True, env=e,
                       timeout=60)
    assert p.returncode == 0, f"CLI with NIMBUS_CACERT: {p}"
    # and cacert in the config file
    conf = os.path.join(env.cli.home, "tls.conf")
    with open(conf, "w") as f:
        f.write(f"url = {url}\ncacert = {env.cert}\n")
    e = dict(os.environ, NIMBUS_TOKEN=env.daemon.token, HOME=env.cli.home, NIMBUS_CONFIG=conf)
    e.pop("NIMBUS_URL", None)
    e.pop("NIMBUS_CACERT", None)
    p = subprocess.run([nf.NIMBUS_CLI, "vm", "list"], capture_output=True, text=True, env=e,
                       timeout=60)
    assert p.returncode == 0, f"CLI with cacert in its config: {p}"


def test_tls_files_missing_or_bad(tls, tmp_path):
    """A missing or unusable certificate stops nimbusd at start-up (no silent plain HTTP)."""
    p = subprocess.run([nf.NIMBUSD, "--help"], capture_output=True, text=True, timeout=30)
    assert "--tls-cert" in p.stdout + p.stderr and "--tls-key" in p.stdout + p.stderr, \
        f"nimbusd --help has no --tls-cert/--tls-key:\n{p.stdout}{p.stderr}"
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    for extra in (["--tls-cert", str(tmp_path / "nope.crt"), "--tls-key", tls.key],
                  ["--tls-cert", str(bad), "--tls-key", tls.key],
                  ["--tls-cert", tls.cert, "--tls-key", tls.other_cert],
                  ["--tls-cert", tls.cert]):
        try:
            p = subprocess.run([nf.NIMBUSD, "--listen", "127.0.0.1:0", "--state-dir",
                                tls.daemon.state_dir, "--libvirt-uri", nf.LIBVIRT_URI,
                                "--virt-type", "qemu", "--pool-name", tls.daemon.pool_name,
                                "--pool-path", tls.daemon.pool_path, *extra],
                               capture_output=True, text=True, timeout=15)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"nimbusd {' '.join(extra)} kept running:\n"
                                 f"{(e.stderr or b'')[-1000:]!r}") from None
        assert p.returncode != 0, f"nimbusd {' '.join(extra)} started (or exited 0): " \
                                  f"{p.stderr[-1000:]}"
        assert "listening on" not in p.stderr + p.stdout, p.stderr[-1000:]


def test_off_loopback_without_tls_warns(tls):
    """0.0.0.0 without TLS: a warning naming 'without TLS'; with TLS: none. Each daemon is
    stopped as soon as it has logged its start-up; nothing is sent to it."""
    try:
        scheme, host, _, out = start_and_read(tls.daemon, ["--listen", "0.0.0.0:0"])
    finally:
        tls.daemon.stop()
    assert (scheme, host) == ("http", "0.0.0.0"), LISTEN_RE.search(out).group(0)
    warn = [l for l in out.splitlines() if "without TLS" in l]
    assert warn, f"no 'without TLS' warning:\n{out[-2000:]}"
    assert "0.0.0.0" in warn[0], warn

    try:
        scheme, host, _, out = start_and_read(tls.daemon, ["--listen", "0.0.0.0:0",
                                                           "--tls-cert", tls.cert,
                                                           "--tls-key", tls.key])
    finally:
        tls.daemon.stop()
    assert (scheme, host) == ("https", "0.0.0.0"), LISTEN_RE.search(out).group(0)
    assert "without TLS" not in out, f"warning despite TLS:\n{out[-2000:]}"

    # loopback without TLS: no warning either
    try:
        scheme, host, _, out = start_and_read(tls.daemon, [])
    finally:
        tls.daemon.stop()
    assert (scheme, host) == ("http", "127.0.0.1")
    assert "without TLS" not in out
