#include "secgroup.h"

#include <stdio.h>
#include <string.h>

#include "../util/strutil.h"
#include "enum_table.h"
#include "json_req.h"
#include "network.h"

static const char *const secrule_direction_table[_SECRULE_DIRECTION_MAX] = {
    [SECRULE_INGRESS] = "ingress",
    [SECRULE_EGRESS] = "egress",
};
DEFINE_STRING_TABLE(secrule_direction, SecRuleDirection, secrule_direction_table)

static const char *const secrule_protocol_table[_SECRULE_PROTO_MAX] = {
    [SECRULE_PROTO_ANY] = "any",
    [SECRULE_PROTO_TCP] = "tcp",
    [SECRULE_PROTO_UDP] = "udp",
    [SECRULE_PROTO_ICMP] = "icmp",
};
DEFINE_STRING_TABLE(secrule_protocol, SecRuleProtocol, secrule_protocol_table)

int
secgroup_from_request(json_t *body, SecGroup *ret, NbError **err)
{
    static const char *const fields[] = {"name", "description", NULL};
    SecGroup g = {0};
    if (json_req_check_fields(body, fields, err) < 0 ||
        json_req_name(body, "name", "security group", g.name, err) < 0 ||
        json_req_string(body, "description", 0, g.description, sizeof(g.description), err) < 0)
        return -1;
    *ret = g;
    return 0;
}

json_t *
secgroup_to_json(const SecGroup *g, const SecRule *rules, size_t n_rules)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", g->id, "project", g->project, "name",
                          g->name, "description", g->description, "created_at", g->created_at);
    if (!j || !rules)
        return j;
    json_t *list = json_array();
    for (size_t i = 0; list && i < n_rules; i++)
        json_array_append_new(list, secrule_to_json(&rules[i]));
    json_object_set_new(j, "rules", list ? list : json_null());
    return j;
}

/* SECGROUP_RULE_INVALID with the message. */
#define rule_invalid(err, ...) nb_error_set(err, NB_ERR_SECGROUP_RULE_INVALID, __VA_ARGS__)

/* An optional port field: absent or null leaves *ret 0. */
static int
rule_port(json_t *body, const char *key, unsigned *ret, NbError **err)
{
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > (json_int_t)SECRULE_PORT_MAX)
        return rule_invalid(err, "field '%s' must be a port from 1 to %u", key, SECRULE_PORT_MAX);
    *ret = (unsigned)json_integer_value(v);
    return 0;
}

/* An optional string field of at most max - 1 bytes: 1 present, 0 absent, -1 refused. */
static int
rule_string(json_t *body, const char *key, char *buf, size_t max, NbError **err)
{
    json_t *v = json_object_get(body, key);
    buf[0] = '\0';
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= max ||
        strlen(json_string_value(v)) != json_string_length(v))
        return rule_invalid(err, "field '%s' must be a non-empty string of at most %zu bytes", key,
                            max - 1);
    memcpy(buf, json_string_value(v), json_string_length(v) + 1);
    return 1;
}

int
secrule_from_request(json_t *body, SecRule *ret, NbError **err)
{
    static const char *const fields[] = {"direction", "protocol",  "port_min",     "port_max",
                                         "cidr",      "ethertype", "remote_group", NULL};
    SecRule r = {0};
    char direction[16], protocol[16], cidr[32], ethertype[16];
    if (!json_is_object(body))
        return rule_invalid(err, "a rule must be a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach (body, key, v) {
        bool known = false;
        for (size_t i = 0; fields[i] && !known; i++)
            known = streq(fields[i], key);
        if (!known)
            return rule_invalid(err, "unknown field '%.64s'", key);
    }
    int has_dir = rule_string(body, "direction", direction, sizeof(direction), err);
    int has_proto =
        has_dir < 0 ? -1 : rule_string(body, "protocol", protocol, sizeof(protocol), err);
    int has_cidr = has_proto < 0 ? -1 : rule_string(body, "cidr", cidr, sizeof(cidr), err);
    int has_remote = has_cidr < 0 ? -1
                                  : rule_string(body, "remote_group", r.remote_group,
                                                sizeof(r.remote_group), err);
    int has_ether =
        has_remote < 0 ? -1 : rule_string(body, "ethertype", ethertype, sizeof(ethertype), err);
    if (has_ether < 0 || rule_port(body, "port_min", &r.port_min, err) < 0 ||
        rule_port(body, "port_max", &r.port_max, err) < 0)
        return -1;
    if (!has_dir ||
        (r.direction = secrule_direction_from_string(direction)) == _SECRULE_DIRECTION_INVALID)
        return rule_invalid(err, "field 'direction' must be \"ingress\" or \"egress\"");
    r.protocol = has_proto ? secrule_protocol_from_string(protocol) : SECRULE_PROTO_ANY;
    if (r.protocol == _SECRULE_PROTO_INVALID)
        return rule_invalid(err, "field 'protocol' must be \"any\", \"tcp\", \"udp\" or \"icmp\"");
    if (has_ether && !streq(ethertype, "IPv4"))
        return rule_invalid(err, "field 'ethertype' must be \"IPv4\" (the only one supported)");
    bool ports = r.port_min || r.port_max;
    if (ports && r.protocol != SECRULE_PROTO_TCP && r.protocol != SECRULE_PROTO_UDP)
        return rule_invalid(err, "ports are only for tcp and udp rules");
    if (r.port_max && !r.port_min)
        return rule_invalid(err, "field 'port_max' needs 'port_min'");
    if (r.port_min && !r.port_max)
        r.port_max = r.port_min;
    if (r.port_min > r.port_max)
        return rule_invalid(err, "port_min %u is above port_max %u", r.port_min, r.port_max);
    if (has_cidr && has_remote)
        return rule_invalid(err, "a rule has a cidr or a remote_group, not both");
    if (has_remote && !nb_name_is_valid(r.remote_group) && !nb_uuid_is_valid(r.remote_group))
        return rule_invalid(err, "field 'remote_group' must be a security group's name or id");
    if (has_cidr && cidr_parse(cidr, &r.remote_net, &r.remote_prefix) < 0)
        return rule_invalid(err, "cidr '%s' is not a network a.b.c.d/N with its host bits zero",
                            cidr);
    *ret = r;
    return 0;
}

json_t *
secrule_to_json(const SecRule *r)
{
    json_t *cidr = json_null();
    if (!r->remote_group[0]) {
        char ip[NB_IPV4_STRLEN], text[NB_IPV4_STRLEN + 4];
        ipv4_format(r->remote_net, ip);
        snprintf(text, sizeof(text), "%s/%u", ip, r->remote_prefix);
        cidr = json_string(text);
    }
    bool ports = r->port_min != 0;
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:s, s:s}", "id", r->id, "group_id",
                     r->group_id, "direction", secrule_direction_to_string(r->direction),
                     "protocol", secrule_protocol_to_string(r->protocol), "port_min",
                     ports ? json_integer(r->port_min) : json_null(), "port_max",
                     ports ? json_integer(r->port_max) : json_null(), "cidr", cidr, "remote_group",
                     json_string_or_null(r->remote_group), "ethertype", "IPv4", "created_at",
                     r->created_at);
}

bool
secrule_same(const SecRule *a, const SecRule *b)
{
    return a->direction == b->direction && a->protocol == b->protocol &&
           a->port_min == b->port_min && a->port_max == b->port_max &&
           streq(a->remote_group, b->remote_group) &&
           (a->remote_group[0] ||
            (a->remote_net == b->remote_net && a->remote_prefix == b->remote_prefix));
}

void
secgroup_default_rules(const char *group_id, SecRule out[2])
{
    memset(out, 0, 2 * sizeof(*out));
    for (int i = 0; i < 2; i++) {
        snprintf(out[i].group_id, sizeof(out[i].group_id), "%s", group_id);
        out[i].protocol = SECRULE_PROTO_ANY;
    }
    out[0].direction = SECRULE_EGRESS; /* to 0.0.0.0/0 */
    out[1].direction = SECRULE_INGRESS;
    snprintf(out[1].remote_group, sizeof(out[1].remote_group), "%s", group_id);
}
