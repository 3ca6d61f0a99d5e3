/* What the agent asks the kernel for a VLAN segment's uplink, as golden text: this machine's
 * kernel has no 802.1Q, so the request itself is what can be checked here (the e2e test shows
 * the kernel's refusal leaves nothing behind). Regenerate with NIMBUS_GOLDEN_UPDATE=1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/agent_net.h"

static char *
read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void
check_golden(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/agent/%s", GOLDEN_DIR, name);
    if (getenv("NIMBUS_GOLDEN_UPDATE")) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
    }
    char *want = read_file(path);
    if (!want)
        fail_msg("no golden file %s (NIMBUS_GOLDEN_UPDATE=1 writes it)", path);
    if (strcmp(want, text) != 0)
        fail_msg("%s differs:\n--- want\n%s--- got\n%s", name, want, text);
    free(want);
}

static void
test_vlan_request(void **state)
{
    AgentVlan v = {.vlan = 42, .mtu = 1500};
    snprintf(v.bridge, sizeof(v.bridge), "nbr0123456789ab");
    snprintf(v.parent, sizeof(v.parent), "eth1");
    char *text = agent_net_vlan_request_text(&v, 2, 17);
    assert_non_null(text);
    check_golden("vlan_42_eth1.txt", text);
    free(text);

    /* Another id, MTU and parent change exactly those attributes. */
    v.vlan = 4094;
    v.mtu = 9000;
    text = agent_net_vlan_request_text(&v, 5, 17);
    assert_non_null(text);
    check_golden("vlan_4094_jumbo.txt", text);
    free(text);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vlan_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
