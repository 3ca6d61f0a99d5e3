#include "nwfilter_xml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "network_xml.h"
#include "model/validate.h"
#include "util/cleanup.h"
#include "util/strutil.h"
#include "util/uuid.h"
#include "util/xml_writer.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(XmlWriter, xml_writer_free)

/* Priorities within the root chain (lower first; clean-traffic's chains sit below 0). */
#define PRIO_DHCP_SERVER_DROP "-720" /* ebtables, before no-ip-spoofing (-710) lets it out */
#define PRIO_REPLIES "10"
#define PRIO_DHCP_CLIENT "100"
#define PRIO_RULE "500"
#define PRIO_DROP "1000"

/* One rule as written: a remote-group rule becomes one of these per member address. */
typedef struct NwfRule {
    SecRuleDirection direction;
    SecRuleProtocol protocol;
    unsigned port_min, port_max;
    uint32_t net;
    unsigned prefix;
} NwfRule;

void
nwfilter_port_name(const char *port_id, char out[NWFILTER_NAME_MAX + 1])
{
    snprintf(out, NWFILTER_NAME_MAX + 1, "nimbus-port-%s", port_id);
}

static bool
nwf_name_is_valid(const char *s)
{
    return nb_token_is_valid(s, NWFILTER_NAME_MAX);
}

static bool
nwf_rule_is_valid(const SecRule *r)
{
    bool l4 = r->protocol == SECRULE_PROTO_TCP || r->protocol == SECRULE_PROTO_UDP;
    bool ports = r->port_min || r->port_max;
    if (!secrule_direction_to_string(r->direction) || !secrule_protocol_to_string(r->protocol))
        return false;
    if (ports &&
        (!l4 || r->port_min < 1 || r->port_min > r->port_max || r->port_max > SECRULE_PORT_MAX))
        return false;
    if (r->remote_group[0])
        return true;
    return r->remote_prefix <= 32 && !(r->remote_net & ~cidr_mask(r->remote_prefix));
}

static int
nwf_rule_cmp(const void *pa, const void *pb)
{
    const NwfRule *a = pa, *b = pb;
    if (a->direction != b->direction)
        return a->direction < b->direction ? -1 : 1;
    if (a->protocol != b->protocol)
        return a->protocol < b->protocol ? -1 : 1;
    if (a->port_min != b->port_min)
        return a->port_min < b->port_min ? -1 : 1;
    if (a->port_max != b->port_max)
        return a->port_max < b->port_max ? -1 : 1;
    if (a->prefix != b->prefix)
        return a->prefix < b->prefix ? -1 : 1;
    if (a->net != b->net)
        return a->net < b->net ? -1 : 1;
    return 0;
}

static const NwfMembers *
nwf_members_of(const NwFilterSpec *spec, const char *group_id)
{
    for (size_t i = 0; i < spec->n_members; i++)
        if (spec->members[i].group_id && streq(spec->members[i].group_id, group_id))
            return &spec->members[i];
    return NULL;
}

/* The rules to write, expanded, sorted and without repeats: *ret to free. -1 when invalid. */
static int
nwf_expand(const NwFilterSpec *spec, NwfRule **ret, size_t *ret_n)
{
    size_t cap = 0;
    for (size_t i = 0; i < spec->n_rules; i++) {
        const SecRule *r = &spec->rules[i];
        if (!nwf_rule_is_valid(r))
            return -1;
        const NwfMembers *m = r->remote_group[0] ? nwf_members_of(spec, r->remote_group) : NULL;
        if (m && m->n_ips && !m->ips)
            return -1;
        cap += r->remote_group[0] ? (m ? m->n_ips : 0) : 1;
    }
    NwfRule *list = calloc(cap ? cap : 1, sizeof(*list));
    if (!list)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < spec->n_rules; i++) {
        const SecRule *r = &spec->rules[i];
        NwfRule base = {r->direction, r->protocol,   r->port_min,
                        r->port_max,  r->remote_net, r->remote_prefix};
        if (!r->remote_group[0]) {
            list[n++] = base;
            continue;
        }
        const NwfMembers *m = nwf_members_of(spec, r->remote_group);
        for (size_t k = 0; m && k < m->n_ips; k++) {
            list[n] = base;
            list[n].net = m->ips[k];
            list[n].prefix = 32;
            n++;
        }
    }
    qsort(list, n, sizeof(*list), nwf_rule_cmp);
    size_t out = 0;
    for (size_t i = 0; i < n; i++)
        if (out == 0 || nwf_rule_cmp(&list[out - 1], &list[i]) != 0)
            list[out++] = list[i];
    *ret = list;
    *ret_n = out;
    return 0;
}

static void
nwf_write_rule(XmlWriter *w, const NwfRule *r)
{
    static const char *const elem[_SECRULE_PROTO_MAX] = {
        [SECRULE_PROTO_ANY] = "all",
        [SECRULE_PROTO_TCP] = "tcp",
        [SECRULE_PROTO_UDP] = "udp",
        [SECRULE_PROTO_ICMP] = "icmp",
    };
    bool in = r->direction == SECRULE_INGRESS;
    char addr[NB_IPV4_STRLEN], mask[16], pmin[16], pmax[16];
    const char *a[12] = {NULL};
    size_t k = 0;
    /* The remote end is the source of what comes in, the destination of what goes out. */
    if (r->prefix > 0) {
        ipv4_format(r->net, addr);
        snprintf(mask, sizeof(mask), "%u", r->prefix);
        a[k++] = in ? "srcipaddr" : "dstipaddr";
        a[k++] = addr;
        a[k++] = in ? "srcipmask" : "dstipmask";
        a[k++] = mask;
    }
    if (r->port_min) {
        snprintf(pmin, sizeof(pmin), "%u", r->port_min);
        a[k++] = "dstportstart";
        a[k++] = pmin;
        if (r->port_max != r->port_min) {
            snprintf(pmax, sizeof(pmax), "%u", r->port_max);
            a[k++] = "dstportend";
            a[k++] = pmax;
        }
    }
    a[k++] = "state";
    a[k++] = "NEW";
    xml_writer_open(w, "rule", "action", "accept", "direction", in ? "in" : "out", "priority",
                    PRIO_RULE, NULL);
    xml_writer_empty(w, elem[r->protocol], a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8],
                     a[9], a[10], a[11], NULL);
    xml_writer_close(w);
}

char *
nwfilter_xml_build(const NwFilterSpec *spec)
{
    if (!spec || !nwf_name_is_valid(spec->name) || (spec->uuid && !nb_uuid_is_valid(spec->uuid)) ||
        (spec->n_rules && !spec->rules) || (spec->n_members && !spec->members))
        return NULL;
    _cleanup_free_ NwfRule *rules = NULL;
    size_t n = 0;
    if (nwf_expand(spec, &rules, &n) < 0)
        return NULL;
    _cleanup_(xml_writer_freep) XmlWriter *w = xml_writer_new();
    if (!w)
        return NULL;
    xml_writer_open(w, "filter", "name", spec->name, "chain", "root", NULL);
    if (spec->uuid)
        xml_writer_text_element(w, "uuid", spec->uuid, NULL);
    xml_writer_empty(w, "filterref", "filter", "clean-traffic", NULL);
    /* A guest must not answer other guests' DHCP (clean-traffic lets any UDP from its own
     * address out). */
    xml_writer_open(w, "rule", "action", "drop", "direction", "out", "priority",
                    PRIO_DHCP_SERVER_DROP, NULL);
    xml_writer_empty(w, "ip", "protocol", "udp", "srcportstart", "67", "dstportstart", "68", NULL);
    xml_writer_close(w);
    /* Replies of allowed connections, whatever the rules (the group rules match NEW only). */
    xml_writer_open(w, "rule", "action", "accept", "direction", "inout", "priority", PRIO_REPLIES,
                    NULL);
    xml_writer_empty(w, "all", "state", "ESTABLISHED,RELATED", NULL);
    xml_writer_close(w);
    /* The guest's own DHCP client, even in a group without egress rules. */
    xml_writer_open(w, "rule", "action", "accept", "direction", "out", "priority", PRIO_DHCP_CLIENT,
                    NULL);
    xml_writer_empty(w, "udp", "srcportstart", "68", "dstportstart", "67", NULL);
    xml_writer_close(w);
    xml_writer_open(w, "rule", "action", "accept", "direction", "in", "priority", PRIO_DHCP_CLIENT,
                    NULL);
    xml_writer_empty(w, "udp", "srcportstart", "67", "dstportstart", "68", NULL);
    xml_writer_close(w);
    for (size_t i = 0; i < n; i++)
        nwf_write_rule(w, &rules[i]);
    xml_writer_open(w, "rule", "action", "drop", "direction", "in", "priority", PRIO_DROP, NULL);
    xml_writer_empty(w, "all", NULL);
    xml_writer_close(w);
    xml_writer_open(w, "rule", "action", "drop", "direction", "out", "priority", PRIO_DROP, NULL);
    xml_writer_empty(w, "all", NULL);
    xml_writer_close(w);
    xml_writer_close(w);
    const char *doc = xml_writer_result(w);
    return doc ? strdup(doc) : NULL;
}

char *
nwfilter_xml_interface_ref(const char *filter_name, uint32_t ip, const char *mac)
{
    if (!nwf_name_is_valid(filter_name) || ip == 0 || ip == UINT32_MAX ||
        !network_xml_mac_is_valid(mac))
        return NULL;
    char addr[NB_IPV4_STRLEN];
    ipv4_format(ip, addr);
    _cleanup_(xml_writer_freep) XmlWriter *w = xml_writer_new();
    if (!w)
        return NULL;
    xml_writer_open(w, "filterref", "filter", filter_name, NULL);
    xml_writer_empty(w, "parameter", "name", "IP", "value", addr, NULL);
    xml_writer_empty(w, "parameter", "name", "MAC", "value", mac, NULL);
    xml_writer_close(w);
    const char *doc = xml_writer_result(w);
    if (!doc)
        return NULL;
    char *out = strdup(doc);
    size_t len = out ? strlen(out) : 0;
    if (len && out[len - 1] == '\n')
        out[len - 1] = '\0';
    return out;
}
