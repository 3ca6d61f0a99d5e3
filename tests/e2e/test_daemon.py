"""nimbusd's own surface: the config file, the command line winning over it, bad settings
refused with the file and line, and the admin token written once with mode 0600."""

import os
import re
import socket
import stat
import subprocess
import time

import pytest

import nimbus_fixtures as nf


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args, log_path):
    """Starts nimbusd appending to log_path; returns the process and where its output begins."""
    log = open(log_path, "ab")
    offset = log.tell()
    proc = subprocess.Popen([nf.NIMBUSD, *args], stdin=subprocess.DEVNULL, stdout=log,
                            stderr=log, start_new_session=True)
    log.close()
    nf.LIVE_DAEMONS.add(proc)
    proc.log_offset = offset
    return proc


def _wait_port(proc, log_path):
    def output():
        with open(log_path, errors="replace") as f:
            f.seek(proc.log_offset)
            return f.read()

    def listening():
        if proc.poll() is not None:
            raise AssertionError(f"nimbusd exited with {proc.returncode}:\n{output()[-3000:]}")
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", output())
        return m and int(m.group(1))
    return nf.wait_until(listening, 30, "nimbusd to listen")


def _stop(proc):
    proc.terminate()
    proc.wait(30)


@pytest.fixture
def conf_env(make_env, tmp_path):
    env = make_env(f"conf{int(time.time() * 1000) % 100000}")
    d = env.daemon
    conf = tmp_path / "nimbusd.conf"
    file_port = _free_port()
    conf.write_text(
        "# nimbusd settings for the test\n"
        f"listen = 127.0.0.1:{file_port}\n"
        f"state-dir = {d.state_dir}\n"
        f"libvirt-uri = {nf.LIBVIRT_URI}\n"
        "virt-type = qemu\n"
        f"pool-name = {d.pool_name}\n"
        f"pool-path = {d.pool_path}\n"
        "sync-interval = 2\n")
    yield env, conf, file_port, tmp_path
    env.teardown()


def _get(port, path, token=None):
    import urllib.error
    import urllib.request
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_config_file_and_admin_token(conf_env):
    env, conf, file_port, tmp = conf_env
    log = str(tmp / "nimbusd.log")
    proc = _start(["--config", str(conf)], log)
    try:
        port = _wait_port(proc, log)
        assert port == file_port, "the config file's listen address was not used"
        token_path = os.path.join(env.daemon.state_dir, "admin.token")
        st = os.stat(token_path)
        assert stat.S_IMODE(st.st_mode) == 0o600, f"admin.token mode {oct(st.st_mode)}"
        token = open(token_path).read().strip()
        assert re.fullmatch(r"nbt_[0-9a-f]{64}", token), "admin token is not 256 random bits"
        assert _get(port, "/v1/health") == 200
        assert _get(port, "/v1/vms", token) == 200
        assert _get(port, "/v1/vms", token + "x") == 401
        assert _get(port, "/v1/vms") == 401
    finally:
        _stop(proc)

    # A restart keeps the token, and the command line wins over the file.
    proc = _start(["--config", str(conf), "--listen", "127.0.0.1:0"], log)
    try:
        port = _wait_port(proc, log)
        assert port != file_port, "--listen did not override the config file"
        assert open(token_path).read().strip() == token, "restart rewrote the admin token"
        assert _get(port, "/v1/vms", token) == 200
    finally:
        _stop(proc)


@pytest.mark.parametrize("line,message", [
    ("bogus-key = 1", "unknown setting 'bogus-key'"),
    ("workers = many", "workers must be an integer"),
    ("listen = localhost:80", "numeric IPv4 or IPv6"),
    ("virt-type = xen", "virt-type must be kvm or qemu"),
    ("no equals sign here", "expected key = value"),
])
def test_bad_config_refused_with_line(conf_env, line, message):
    env, conf, _, tmp = conf_env
    conf.write_text(conf.read_text() + line + "\n")
    p = subprocess.run([nf.NIMBUSD, "--config", str(conf)], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 2, f"exit {p.returncode}: {p.stderr}"
    assert message in p.stderr, p.stderr
    if "virt-type" not in line:
        assert f"{conf}:9:" in p.stderr, f"no file:line in {p.stderr!r}"
    assert not os.path.exists(os.path.join(env.daemon.state_dir, "admin.token")), \
        "a refused configuration still created state"


def test_bad_command_line(tmp_path):
    p = subprocess.run([nf.NIMBUSD, "--workers", "0"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 2 and "--workers" in p.stderr, p.stderr
    p = subprocess.run([nf.NIMBUSD, "--no-such-option"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 2 and "no-such-option" in p.stderr, p.stderr
    p = subprocess.run([nf.NIMBUSD, "--state-dir", "relative/dir"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 2 and "absolute" in p.stderr, p.stderr
