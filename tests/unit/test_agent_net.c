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

#include "golden.h"

#include "agent/agent_net.h"

/* The agent's goldens are under tests/golden/agent/. */
static void
check_golden(const char *name, const char *text)
{
    char rel[256];
    snprintf(rel, sizeof(rel), "agent/%s", name);
    golden_check(rel, text);
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
