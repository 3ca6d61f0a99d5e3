/*
 * The browser consoles' pure parts: a live migration's destination XML with the VNC server's
 * listen address moved to the destination's (hv_console_xml_relisten), and nothing else moved.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hv/hv_console.h"

static const char domain_xml[] =
    "<domain type='kvm'>\n"
    "  <name>nimbus-x</name>\n"
    "  <devices>\n"
    "    <interface type='network'><source network='10.0.0.1'/></interface>\n"
    "    <graphics type='vnc' port='5901' autoport='yes' listen='10.0.0.1' passwd='Ab3dEf7h'>\n"
    "      <listen type='address' address='10.0.0.1'/>\n"
    "    </graphics>\n"
    "    <video><model type='vga'/></video>\n"
    "  </devices>\n"
    "  <description>on '10.0.0.1'</description>\n"
    "</domain>\n";

static void
test_relisten_moves_both_addresses_only(void **state)
{
    (void)state;
    char *out = hv_console_xml_relisten(domain_xml, "192.0.2.7");
    assert_non_null(out);
    assert_non_null(strstr(out, "listen='192.0.2.7' passwd='Ab3dEf7h'>"));
    assert_non_null(strstr(out, "<listen type='address' address='192.0.2.7'/>"));
    /* outside the graphics element nothing changes */
    assert_non_null(strstr(out, "<source network='10.0.0.1'/>"));
    assert_non_null(strstr(out, "<description>on '10.0.0.1'</description>"));
    assert_int_equal(strlen(out),
                     strlen(domain_xml) + 2 * (strlen("192.0.2.7") - strlen("10.0.0.1")));
    free(out);
}

static void
test_relisten_nothing_to_do(void **state)
{
    (void)state;
    /* the same address, or no VNC at all: no destination XML */
    assert_null(hv_console_xml_relisten(domain_xml, "10.0.0.1"));
    assert_null(hv_console_xml_relisten("<domain><devices/></domain>", "192.0.2.7"));
    assert_null(hv_console_xml_relisten(
        "<domain><devices><graphics type='spice' listen='10.0.0.1'></graphics></devices></domain>",
        "192.0.2.7"));
}

static void
test_relisten_shorter_address(void **state)
{
    (void)state;
    char *out = hv_console_xml_relisten(domain_xml, "1.2.3.4");
    assert_non_null(out);
    assert_non_null(strstr(out, "listen='1.2.3.4' passwd"));
    assert_non_null(strstr(out, "address='1.2.3.4'/>"));
    assert_non_null(strstr(out, "</domain>\n"));
    free(out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relisten_moves_both_addresses_only),
        cmocka_unit_test(test_relisten_nothing_to_do),
        cmocka_unit_test(test_relisten_shorter_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
