/* agent_client against the real nimbus-agent (AGENT_BIN) on 127.0.0.1 with a throw-away
 * certificate: health, the agent's own error codes, a wrong secret, a wrong CA, nobody
 * listening. Only requests that touch no device are made (names refused before netlink, a
 * shaping entry for a tap that does not exist), so it needs no privileges. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hv/agent_client.h"
#include "util/cleanup.h"
#include "util/spawn.h"
#include "util/strutil.h"

#define SECRET "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define WRONG "f0112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

typedef struct Fixture {
    char dir[64];
    char *cert, *other_cert, *url;
    pid_t pid;
} Fixture;

static unsigned
free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void
make_cert(const char *dir, const char *name)
{
    _cleanup_free_ char *openssl = NULL;
    assert_int_equal(spawn_find_program("openssl", &openssl), 0);
    _cleanup_free_ char *key = str_printf("%s/%s.key", dir, name);
    _cleanup_free_ char *cert = str_printf("%s/%s.pem", dir, name);
    const char *argv[] = {openssl,
                          "req",
                          "-x509",
                          "-newkey",
                          "ec",
                          "-pkeyopt",
                          "ec_paramgen_curve:P-256",
                          "-nodes",
                          "-keyout",
                          key,
                          "-out",
                          cert,
                          "-days",
                          "2",
                          "-subj",
                          "/CN=nimbus-agent",
                          "-addext",
                          "subjectAltName=IP:127.0.0.1,DNS:localhost",
                          NULL};
    SpawnLimits lim = {.timeout_ms = 30000};
    assert_int_equal(spawn_run(argv, &lim, 0, NULL, NULL), 0);
}

static int
setup(void **state)
{
    Fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_agent_client.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    make_cert(f->dir, "agent");
    make_cert(f->dir, "other");
    f->cert = str_printf("%s/agent.pem", f->dir);
    f->other_cert = str_printf("%s/other.pem", f->dir);
    _cleanup_free_ char *key = str_printf("%s/agent.key", f->dir);
    _cleanup_free_ char *secret = str_printf("%s/secret", f->dir);
    _cleanup_free_ char *st = str_printf("%s/state", f->dir);
    assert_int_equal(mkdir(st, 0700), 0);
    FILE *s = fopen(secret, "w");
    assert_non_null(s);
    fputs(SECRET "\n", s);
    fclose(s);
    assert_int_equal(chmod(secret, 0600), 0);
    unsigned port = free_port();
    _cleanup_free_ char *listen = str_printf("127.0.0.1:%u", port);
    f->url = str_printf("https://localhost:%u", port);
    _cleanup_free_ char *log = str_printf("%s/agent.log", f->dir);

    f->pid = fork();
    assert_true(f->pid >= 0);
    if (f->pid == 0) {
        FILE *l = freopen(log, "w", stderr);
        (void)l;
        execl(AGENT_BIN, AGENT_BIN, "--tls-cert", f->cert, "--tls-key", key, "--secret-file",
              secret, "--state-dir", st, "--listen", listen, (char *)NULL);
        _exit(127);
    }
    _cleanup_error_ NbError *err = NULL;
    AgentClient *c = agent_client_new(f->url, SECRET, f->cert, &err);
    assert_non_null(c);
    bool up = false;
    for (int i = 0; i < 100 && !up; i++) {
        nb_error_free(TAKE_PTR(err));
        up = agent_health(c, NULL, NULL, &err) == 0;
        if (!up)
            usleep(100 * 1000);
    }
    agent_client_free(c);
    if (!up) {
        kill(f->pid, SIGKILL); /* the one this test started */
        waitpid(f->pid, NULL, 0);
        fail_msg("the agent did not come up: %s (see %s)", err ? err->message : "?", log);
    }
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    Fixture *f = *state;
    kill(f->pid, SIGTERM);
    int status = 0;
    waitpid(f->pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0); /* stopped cleanly */
    static const char *const files[] = {"agent.pem", "agent.key", "other.pem",       "other.key",
                                        "secret",    "agent.log", "state/state.json"};
    for (size_t i = 0; i < ELEMENTSOF(files); i++) {
        _cleanup_free_ char *p = str_printf("%s/%s", f->dir, files[i]);
        unlink(p);
    }
    _cleanup_free_ char *st = str_printf("%s/state", f->dir);
    rmdir(st);
    rmdir(f->dir);
    free(f->cert);
    free(f->other_cert);
    free(f->url);
    free(f);
    return 0;
}

static void
test_health(void **state)
{
    Fixture *f = *state;
    _cleanup_error_ NbError *err = NULL;
    AgentClient *c = agent_client_new(f->url, SECRET, f->cert, &err);
    assert_non_null(c);
    _cleanup_free_ char *version = NULL;
    uint64_t up = 99999;
    assert_int_equal(agent_health(c, &version, &up, &err), 0);
    assert_non_null(version);
    assert_true(strlen(version) > 0);
    assert_true(up < 3600);
    agent_client_free(c);
}

static void
expect(int r, NbError **err, const char *code)
{
    assert_int_equal(r, -1);
    assert_non_null(*err);
    if (!streq((*err)->code, code))
        fail_msg("got %s (%s), want %s", (*err)->code, (*err)->message, code);
    nb_error_free(*err);
    *err = NULL;
}

static void
test_agent_codes(void **state)
{
    Fixture *f = *state;
    _cleanup_error_ NbError *err = NULL;
    AgentClient *c = agent_client_new(f->url, SECRET, f->cert, &err);
    assert_non_null(c);
    const char *peers[] = {"10.79.0.12"};
    expect(agent_shaping_set(c, "eth0", 1000, 1000, &err), &err, "NETWORK_INVALID_IFNAME");
    expect(agent_shaping_clear(c, "eth0", &err), &err, "NETWORK_INVALID_IFNAME");
    expect(agent_shaping_set(c, "../v1/health", 1, 1, &err), &err, "NETWORK_INVALID_IFNAME");
    expect(
        agent_vxlan_ensure(c, 4242, "nbr0123456789a", 1450, "10.79.0.11", "eth0", peers, 1, &err),
        &err, "NETWORK_INVALID_IFNAME");
    expect(agent_vxlan_ensure(c, 0, "nbr0123456789ab", 1450, "10.79.0.11", "eth0", peers, 1, &err),
           &err, "NETWORK_INVALID_VNI");
    expect(agent_vxlan_ensure(c, 16777216, "nbr0123456789ab", 1450, "10.79.0.11", "eth0", peers, 1,
                              &err),
           &err, "NETWORK_INVALID_VNI");
    expect(
        agent_vxlan_ensure(c, 4242, "nbr0123456789ab", 100, "10.79.0.11", "eth0", peers, 1, &err),
        &err, "NETWORK_INVALID_MTU");
    expect(
        agent_vxlan_ensure(c, 4242, "nbr0123456789ab", 1450, "10.79.0.999", "eth0", peers, 1, &err),
        &err, "IP_INVALID");
    expect(agent_shaping_set(c, "nbt000000000001", 20000000, 1, &err), &err, "INVALID_REQUEST");
    /* A tap that does not exist (its VM is stopped) is recorded, and cleared. */
    assert_int_equal(agent_shaping_set(c, "nbt0000000000ff", 8000, 4000, &err), 0);
    assert_int_equal(agent_shaping_clear(c, "nbt0000000000ff", &err), 0);
    assert_int_equal(agent_shaping_clear(c, "nbt0000000000ff", &err), 0); /* absent: fine */
    /* DHCP servers: the key checked before a request, the body by the agent, and a bridge that
     * does not exist refused before anything is made. */
    const char *dns[] = {"1.1.1.1"};
    AgentDhcpEntry ok[] = {{"52:54:00:00:00:10", "10.79.5.10"}};
    AgentDhcpEntry outside[] = {{"52:54:00:00:00:10", "10.79.6.10"}};
    expect(agent_dhcp_ensure(c, "../v1/health", "nbr0123456789ab", "52:54:00:00:00:02", "10.79.5.2",
                             24, NULL, dns, 1, 1450, ok, 1, &err),
           &err, "NETWORK_INVALID_IFNAME");
    expect(agent_dhcp_ensure(c, "0123456789ab", "nbr0123456789ab", "01:00:5e:00:00:02", "10.79.5.2",
                             24, NULL, dns, 1, 1450, ok, 1, &err),
           &err, "INVALID_REQUEST");
    expect(agent_dhcp_ensure(c, "0123456789ab", "nbr0123456789ab", "52:54:00:00:00:02", "10.79.5.2",
                             24, "10.79.5.1", dns, 1, 1450, outside, 1, &err),
           &err, "IP_INVALID");
    expect(agent_dhcp_ensure(c, "0123456789ab", "nb r", "52:54:00:00:00:02", "10.79.5.2", 24, NULL,
                             dns, 1, 1450, ok, 1, &err),
           &err, "NETWORK_INVALID_IFNAME");
    expect(agent_dhcp_ensure(c, "0123456789ab", "nbrfffffffffff0", "52:54:00:00:00:02", "10.79.5.2",
                             24, NULL, dns, 1, 1450, ok, 1, &err),
           &err, "HYPERVISOR_ERROR");
    assert_int_equal(agent_dhcp_remove(c, "0123456789ab", &err), 0); /* absent: fine */
    /* ipsets: the name checked before a request (it goes into the path), the members by the
     * agent. */
    const uint32_t members[] = {0x0a000005, 0};
    expect(agent_ipset_set(c, "../v1/health", members, 1, &err), &err, "INVALID_NAME");
    expect(agent_ipset_set(c, "nbs-0123456789abcdef0123456/", members, 1, &err), &err,
           "INVALID_NAME");
    expect(agent_ipset_set(c, "myset", members, 1, &err), &err, "INVALID_NAME");
    expect(agent_ipset_remove(c, "nbs-0123456789ABCDEF01234567", &err), &err, "INVALID_NAME");
    expect(agent_ipset_set(c, "nbs-0123456789abcdef01234567", members, 2, &err), &err,
           "IP_INVALID");
    /* The list of a fresh agent: none. */
    AgentIpsetInfo *sets = NULL;
    size_t n_sets = 99;
    assert_int_equal(agent_ipset_list(c, &sets, &n_sets, &err), 0);
    assert_int_equal(n_sets, 0);
    agent_ipset_list_free(sets, n_sets);
    agent_client_free(c);
}

static void
test_unavailable(void **state)
{
    Fixture *f = *state;
    _cleanup_error_ NbError *err = NULL;
    /* Wrong secret: the agent's 401. */
    AgentClient *c = agent_client_new(f->url, WRONG, f->cert, &err);
    assert_non_null(c);
    expect(agent_health(c, NULL, NULL, &err), &err, "UNAUTHORIZED");
    agent_client_free(c);
    /* A certificate that is not the agent's: TLS fails, nothing is sent. */
    c = agent_client_new(f->url, SECRET, f->other_cert, &err);
    assert_non_null(c);
    expect(agent_health(c, NULL, NULL, &err), &err, "AGENT_UNAVAILABLE");
    agent_client_free(c);
    /* Nobody listening. */
    _cleanup_free_ char *closed = str_printf("https://localhost:%u", free_port());
    c = agent_client_new(closed, SECRET, f->cert, &err);
    assert_non_null(c);
    expect(agent_vxlan_remove(c, 4242, &err), &err, "AGENT_UNAVAILABLE");
    agent_client_free(c);
}

static void
test_bad_arguments(void **state)
{
    Fixture *f = *state;
    _cleanup_error_ NbError *err = NULL;
    assert_null(agent_client_new("http://localhost:8775", SECRET, f->cert, &err));
    expect(-1, &err, "INVALID_REQUEST");
    assert_null(agent_client_new("https://", SECRET, f->cert, &err));
    expect(-1, &err, "INVALID_REQUEST");
    assert_null(agent_client_new(f->url, "abc", f->cert, &err));
    expect(-1, &err, "INVALID_REQUEST");
    assert_null(agent_client_new(f->url, WRONG "0", f->cert, &err));
    expect(-1, &err, "INVALID_REQUEST");
    assert_null(agent_client_new(f->url, SECRET, "/nonexistent/ca.pem", &err));
    expect(-1, &err, "INVALID_REQUEST");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health),
        cmocka_unit_test(test_agent_codes),
        cmocka_unit_test(test_unavailable),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
