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

/* One accept as written: a rule with a CIDR, or one member address of a remote-group rule in
 * its member filter. */
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

void
nwfilter_group_name(const char *group_id, char out[NWFILTER_NAME_MAX + 1])
{
    snprintf(out, NWFILTER_NAME_MAX + 1, "nimbus-sg-%s", group_id);
}

void
nwfilter_remote_name(const char *rule_id, char out[NWFILTER_NAME_MAX + 1])
{
    snprintf(out, NWFILTER_NAME_MAX + 1, "nimbus-sgr-%s", rule_id);
}

void
nwfilter_ipset_name(const char *rule_id, char out[NWFILTER_IPSET_NAME_MAX + 1])
{
    /* nbs- and the first 24 hex digits of the id (96 bits): nimbus-agent's names. */
    size_t k = snprintf(out, NWFILTER_IPSET_NAME_MAX + 1, "nbs-");
    for (const char *c = rule_id; *c && k < NWFILTER_IPSET_NAME_MAX - 3; c++)
        if (*c != '-')
            out[k++] = *c;
    out[k] = '\0';
}

bool
nwfilter_remote_uses_ipset(const SecRule *r)
{
    return r->remote_group[0] && r->protocol == SECRULE_PROTO_ANY && !r->port_min && !r->port_max;
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
        return nb_uuid_is_valid(r->id); /* its member filter is named by it */
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

static int
nwf_str_cmp(const void *pa, const void *pb)
{
    return strcmp(*(const char *const *)pa, *(const char *const *)pb);
}

static int
nwf_rule_id_cmp(const void *pa, const void *pb)
{
    return strcmp((*(const SecRule *const *)pa)->id, (*(const SecRule *const *)pb)->id);
}

/* Sorts s[0..n) and drops repeats; the new count. */
static size_t
nwf_sort_unique_strings(const char **s, size_t n)
{
    qsort(s, n, sizeof(*s), nwf_str_cmp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || !streq(s[k - 1], s[i]))
            s[k++] = s[i];
    return k;
}

/* Sorts list[0..n) and drops repeats; the new count. */
static size_t
nwf_sort_unique(NwfRule *list, size_t n)
{
    qsort(list, n, sizeof(*list), nwf_rule_cmp);
    size_t out = 0;
    for (size_t i = 0; i < n; i++)
        if (out == 0 || nwf_rule_cmp(&list[out - 1], &list[i]) != 0)
            list[out++] = list[i];
    return out;
}

/* The CIDR rules to write, sorted and without repeats (*ret), and the remote-group rules, in id
 * order without repeated ids (*ret_refs, pointing into in): both to free. -1 when invalid. */
static int
nwf_expand(const SecRule *in, size_t n_in, NwfRule **ret, size_t *ret_n, const SecRule ***ret_refs,
           size_t *ret_n_refs)
{
    for (size_t i = 0; i < n_in; i++)
        if (!nwf_rule_is_valid(&in[i]))
            return -1;
    size_t cap = n_in ? n_in : 1;
    NwfRule *list = calloc(cap, sizeof(*list));
    const SecRule **refs = calloc(cap, sizeof(*refs));
    if (!list || !refs) {
        free(list);
        free(refs);
        return -1;
    }
    size_t n = 0, n_refs = 0;
    for (size_t i = 0; i < n_in; i++) {
        const SecRule *r = &in[i];
        if (r->remote_group[0])
            refs[n_refs++] = r;
        else
            list[n++] = (NwfRule){r->direction, r->protocol,   r->port_min,
                                  r->port_max,  r->remote_net, r->remote_prefix};
    }
    *ret = list;
    *ret_n = nwf_sort_unique(list, n);
    qsort(refs, n_refs, sizeof(*refs), nwf_rule_id_cmp);
    size_t k = 0;
    for (size_t i = 0; i < n_refs; i++)
        if (k == 0 || !streq(refs[k - 1]->id, refs[i]->id))
            refs[k++] = refs[i];
    *ret_refs = refs;
    *ret_n_refs = k;
    return 0;
}

/* A rule's accept; ipset: its remote end is that set's members instead of r->net/prefix. */
static void
nwf_write_rule_ipset(XmlWriter *w, const NwfRule *r, const char *ipset)
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
    /* The remote end is the source of what comes in, the destination of what goes out. libvirt
     * writes ipsetflags as given, whatever the direction (iptables -S of a guest's chains: an
     * ingress <all ipset='S' ipsetflags='src'> is "-A FO-vnet0 ... --match-set S src -j ACCEPT",
     * an egress one with 'dst' "-A FI-vnet0 ... --match-set S dst -j RETURN"). */
    if (ipset) {
        a[k++] = "ipset";
        a[k++] = ipset;
        a[k++] = "ipsetflags";
        a[k++] = in ? "src" : "dst";
    } else if (r->prefix > 0) {
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

static void
nwf_write_rule(XmlWriter *w, const NwfRule *r)
{
    nwf_write_rule_ipset(w, r, NULL);
}

/* The accepts of these rules with a CIDR, then for each remote-group rule a reference to its
 * member filter, or with ipsets one accept matching its ipset. -1 if a rule is invalid, or on
 * ENOMEM. */
static int
nwf_write_rules(XmlWriter *w, const SecRule *in, size_t n_in, bool ipsets)
{
    _cleanup_free_ NwfRule *rules = NULL;
    _cleanup_free_ const SecRule **refs = NULL;
    size_t n = 0, n_refs = 0;
    if (nwf_expand(in, n_in, &rules, &n, &refs, &n_refs) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        nwf_write_rule(w, &rules[i]);
    /* The remote-group rules' member filters: their accepts (PRIO_RULE) join this chain. */
    for (size_t i = 0; i < n_refs; i++) {
        const SecRule *r = refs[i];
        if (ipsets && nwfilter_remote_uses_ipset(r)) {
            char set[NWFILTER_IPSET_NAME_MAX + 1];
            nwfilter_ipset_name(r->id, set);
            NwfRule one = {r->direction, r->protocol, r->port_min, r->port_max, 0, 0};
            nwf_write_rule_ipset(w, &one, set);
            continue;
        }
        char name[NWFILTER_NAME_MAX + 1];
        nwfilter_remote_name(r->id, name);
        xml_writer_empty(w, "filterref", "filter", name, NULL);
    }
    return 0;
}

/* A writer with <filter name chain='root'> and its uuid open. */
static XmlWriter *
nwf_open(const char *name, const char *uuid)
{
    XmlWriter *w = xml_writer_new();
    if (!w)
        return NULL;
    xml_writer_open(w, "filter", "name", name, "chain", "root", NULL);
    if (uuid)
        xml_writer_text_element(w, "uuid", uuid, NULL);
    return w;
}

static char *
nwf_result(XmlWriter *w)
{
    const char *doc = xml_writer_result(w);
    return doc ? strdup(doc) : NULL;
}

char *
nwfilter_xml_build(const NwFilterSpec *spec)
{
    if (!spec || !nwf_name_is_valid(spec->name) || (spec->uuid && !nb_uuid_is_valid(spec->uuid)) ||
        (spec->n_rules && !spec->rules) || (spec->n_groups && !spec->groups))
        return NULL;
    _cleanup_free_ const char **groups = calloc(spec->n_groups + 1, sizeof(*groups));
    if (!groups)
        return NULL;
    for (size_t i = 0; i < spec->n_groups; i++) {
        if (!spec->groups[i] || !nb_uuid_is_valid(spec->groups[i]))
            return NULL;
        groups[i] = spec->groups[i];
    }
    size_t n_groups = nwf_sort_unique_strings(groups, spec->n_groups);
    _cleanup_(xml_writer_freep) XmlWriter *w = nwf_open(spec->name, spec->uuid);
    if (!w)
        return NULL;
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
    if (nwf_write_rules(w, spec->rules, spec->n_rules, false) < 0)
        return NULL;
    /* The groups' filters: their accepts (PRIO_RULE) join this chain too. */
    for (size_t i = 0; i < n_groups; i++) {
        char name[NWFILTER_NAME_MAX + 1];
        nwfilter_group_name(groups[i], name);
        xml_writer_empty(w, "filterref", "filter", name, NULL);
    }
    xml_writer_open(w, "rule", "action", "drop", "direction", "in", "priority", PRIO_DROP, NULL);
    xml_writer_empty(w, "all", NULL);
    xml_writer_close(w);
    xml_writer_open(w, "rule", "action", "drop", "direction", "out", "priority", PRIO_DROP, NULL);
    xml_writer_empty(w, "all", NULL);
    xml_writer_close(w);
    xml_writer_close(w);
    return nwf_result(w);
}

char *
nwfilter_xml_build_group(const char *name, const char *uuid, const SecRule *rules, size_t n_rules,
                         bool ipsets)
{
    if (!nwf_name_is_valid(name) || (uuid && !nb_uuid_is_valid(uuid)) || (n_rules && !rules))
        return NULL;
    _cleanup_(xml_writer_freep) XmlWriter *w = nwf_open(name, uuid);
    if (!w)
        return NULL;
    if (nwf_write_rules(w, rules, n_rules, ipsets) < 0)
        return NULL;
    xml_writer_close(w);
    return nwf_result(w);
}

char *
nwfilter_xml_build_remote(const char *name, const char *uuid, const SecRule *rule,
                          const uint32_t *ips, size_t n_ips)
{
    if (!nwf_name_is_valid(name) || (uuid && !nb_uuid_is_valid(uuid)) || !rule ||
        !rule->remote_group[0] || !nwf_rule_is_valid(rule) || (n_ips && !ips))
        return NULL;
    _cleanup_free_ NwfRule *list = calloc(n_ips ? n_ips : 1, sizeof(*list));
    if (!list)
        return NULL;
    for (size_t i = 0; i < n_ips; i++)
        list[i] =
            (NwfRule){rule->direction, rule->protocol, rule->port_min, rule->port_max, ips[i], 32};
    size_t n = nwf_sort_unique(list, n_ips);
    _cleanup_(xml_writer_freep) XmlWriter *w = nwf_open(name, uuid);
    if (!w)
        return NULL;
    for (size_t i = 0; i < n; i++)
        nwf_write_rule(w, &list[i]);
    xml_writer_close(w);
    return nwf_result(w);
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
