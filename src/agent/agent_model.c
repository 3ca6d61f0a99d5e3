#include "agent_model.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../util/cleanup.h"
#include "../util/error_codes.h"
#include "../util/strutil.h"

#define STATE_FILE "state.json"
#define STATE_VERSION 1
#define STATE_FILE_MAX (16 * 1024 * 1024)

static bool
is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static bool
name_with_hex12(const char *s, const char *prefix)
{
    if (!s || !str_startswith(s, prefix) || strlen(s) != 15)
        return false;
    for (size_t i = 3; i < 15; i++)
        if (!is_lower_hex(s[i]))
            return false;
    return true;
}

bool
agent_bridge_name_is_valid(const char *s)
{
    return name_with_hex12(s, "nbr");
}

bool
agent_tap_name_is_valid(const char *s)
{
    return name_with_hex12(s, "nbt");
}

bool
agent_underlay_name_is_valid(const char *s)
{
    if (!s)
        return false;
    size_t n = strlen(s);
    if (n == 0 || n > AGENT_IFNAME_MAX || streq(s, ".") || streq(s, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
            return false;
    }
    /* The underlay is someone else's device; one of ours as underlay would loop the overlay. */
    static const char *const own[] = {"nbr", "nbx", "nbi", "nbt", "nbv"};
    for (size_t i = 0; i < ELEMENTSOF(own); i++)
        if (str_startswith(s, own[i]))
            return false;
    return true;
}

void
agent_vxlan_ifname(unsigned vni, char out[AGENT_IFNAME_MAX + 1])
{
    snprintf(out, AGENT_IFNAME_MAX + 1, "nbx%u", vni);
}

void
agent_vlan_ifname(const char *bridge, char out[AGENT_IFNAME_MAX + 1])
{
    snprintf(out, AGENT_IFNAME_MAX + 1, "nbv%s", bridge + 3);
}

void
agent_ifb_ifname(const char *tap, char out[AGENT_IFNAME_MAX + 1])
{
    snprintf(out, AGENT_IFNAME_MAX + 1, "nbi%.12s", tap + 3);
}

int
agent_vni_parse(const char *s, unsigned *ret)
{
    uint64_t v;
    if (!s || s[0] == '0' || strlen(s) > 8 || str_to_u64(s, &v) < 0 || v < 1 || v > AGENT_VNI_MAX)
        return -EINVAL;
    *ret = (unsigned)v;
    return 0;
}

int
agent_ipv4_parse(const char *s, uint32_t *ret)
{
    if (!s)
        return -EINVAL;
    uint32_t ip = 0;
    const char *p = s;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (*p != '.')
                return -EINVAL;
            p++;
        }
        if (*p < '0' || *p > '9')
            return -EINVAL;
        unsigned v = 0;
        int digits = 0;
        const char *start = p;
        while (*p >= '0' && *p <= '9') {
            if (++digits > 3)
                return -EINVAL;
            v = v * 10 + (unsigned)(*p - '0');
            p++;
        }
        if (v > 255 || (digits > 1 && *start == '0'))
            return -EINVAL;
        ip = (ip << 8) | v;
    }
    if (*p)
        return -EINVAL;
    *ret = ip;
    return 0;
}

void
agent_ipv4_format(uint32_t ip, char out[16])
{
    snprintf(out, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff, ip & 0xff);
}

bool
agent_ipv4_is_unicast(uint32_t ip)
{
    unsigned first = ip >> 24;
    return first != 0 && first != 127 && first < 224;
}

/* ---- decoding ---- */

static int
check_fields(json_t *obj, const char *const *allowed, size_t n, NbError **err)
{
    if (!json_is_object(obj))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "the body must be a JSON object");
    const char *key;
    json_t *val;
    json_object_foreach (obj, key, val) {
        bool ok = false;
        for (size_t i = 0; i < n && !ok; i++)
            ok = streq(key, allowed[i]);
        if (!ok)
            return nb_error_set(err, NB_ERR_INVALID_REQUEST, "unknown field '%.64s'", key);
    }
    return 0;
}

static int
get_uint(json_t *obj, const char *key, bool required, unsigned max, unsigned *ret, NbError **err)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required)
            return nb_error_set(err, NB_ERR_INVALID_REQUEST, "'%s' is required", key);
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        (unsigned long long)json_integer_value(v) > max)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "'%s' must be an integer 0..%u", key, max);
    *ret = (unsigned)json_integer_value(v);
    return 0;
}

static int
get_string(json_t *obj, const char *key, const char **ret, NbError **err)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "'%s' is required", key);
    if (!json_is_string(v))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "'%s' must be a string", key);
    *ret = json_string_value(v);
    if (strlen(*ret) != json_string_length(v))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "'%s' holds a NUL", key);
    return 0;
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int
agent_vxlan_from_json(json_t *body, unsigned vni, AgentVxlan *ret, NbError **err)
{
    static const char *const fields[] = {"bridge", "mtu", "local", "dev", "peers"};
    if (check_fields(body, fields, ELEMENTSOF(fields), err) < 0)
        return -1;
    AgentVxlan v = {.vni = vni};
    if (vni < 1 || vni > AGENT_VNI_MAX)
        return nb_error_set(err, NB_ERR_NETWORK_INVALID_VNI, "the VNI must be 1..%u",
                            AGENT_VNI_MAX);
    const char *s;
    if (get_string(body, "bridge", &s, err) < 0)
        return -1;
    if (!agent_bridge_name_is_valid(s))
        return nb_error_set(err, NB_ERR_NETWORK_INVALID_IFNAME,
                            "the bridge must be named nbr and 12 lowercase hex digits");
    memcpy(v.bridge, s, strlen(s) + 1);
    unsigned mtu = 0;
    if (get_uint(body, "mtu", true, UINT32_MAX, &mtu, err) < 0)
        return -1;
    if (mtu < AGENT_MTU_MIN || mtu > AGENT_MTU_MAX)
        return nb_error_set(err, NB_ERR_NETWORK_INVALID_MTU, "the MTU must be %u..%u",
                            AGENT_MTU_MIN, AGENT_MTU_MAX);
    v.mtu = mtu;
    if (get_string(body, "local", &s, err) < 0)
        return -1;
    if (agent_ipv4_parse(s, &v.local) < 0 || !agent_ipv4_is_unicast(v.local))
        return nb_error_set(err, NB_ERR_IP_INVALID, "'local' must be a unicast IPv4 address");
    if (get_string(body, "dev", &s, err) < 0)
        return -1;
    if (!agent_underlay_name_is_valid(s))
        return nb_error_set(err, NB_ERR_NETWORK_INVALID_IFNAME,
                            "'dev' must be the name of a host interface (not an nb* device)");
    memcpy(v.dev, s, strlen(s) + 1);

    json_t *peers = json_object_get(body, "peers");
    if (!peers)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "'peers' is required");
    if (!json_is_array(peers) || json_array_size(peers) > AGENT_PEERS_MAX)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "'peers' must be an array of at most %d",
                            AGENT_PEERS_MAX);
    size_t n = json_array_size(peers);
    _cleanup_free_ uint32_t *ips = n ? calloc(n, sizeof(*ips)) : NULL;
    if (n && !ips)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_array_get(peers, i);
        if (!json_is_string(p) || agent_ipv4_parse(json_string_value(p), &ips[i]) < 0 ||
            !agent_ipv4_is_unicast(ips[i]))
            return nb_error_set(err, NB_ERR_IP_INVALID, "peers[%zu] must be a unicast IPv4 address",
                                i);
        if (ips[i] == v.local)
            return nb_error_set(err, NB_ERR_IP_INVALID, "peers[%zu] is the local address", i);
    }
    if (n)
        qsort(ips, n, sizeof(*ips), cmp_u32);
    for (size_t i = 1; i < n; i++)
        if (ips[i] == ips[i - 1])
            return nb_error_set(err, NB_ERR_IP_INVALID, "a peer is listed twice");
    v.peers = TAKE_PTR(ips);
    v.n_peers = n;
    *ret = v;
    return 0;
}

json_t *
agent_vxlan_to_json(const AgentVxlan *v)
{
    char ip[16];
    json_t *peers = json_array();
    for (size_t i = 0; peers && i < v->n_peers; i++) {
        agent_ipv4_format(v->peers[i], ip);
        json_array_append_new(peers, json_string(ip));
    }
    agent_ipv4_format(v->local, ip);
    char ifname[AGENT_IFNAME_MAX + 1];
    agent_vxlan_ifname(v->vni, ifname);
    return json_pack("{s:I, s:s, s:s, s:I, s:s, s:s, s:o*}", "vni", (json_int_t)v->vni, "bridge",
                     v->bridge, "device", ifname, "mtu", (json_int_t)v->mtu, "local", ip, "dev",
                     v->dev, "peers", peers);
}

int
agent_vlan_from_json(json_t *body, const char *bridge, AgentVlan *ret, NbError **err)
{
    static const char *const fields[] = {"vlan", "parent", "mtu"};
    if (!agent_bridge_name_is_valid(bridge))
        return nb_error_set(err, NB_ERR_NETWORK_INVALID_IFNAME,
                            "a VLAN segment's bridge is named nbr and 12 lowercase hex digits");
    if (check_fields(body, fields, ELEMENTSOF(fields), err) < 0)
        return -1;
    AgentVlan v = {.mtu = 1500};
    memcpy(v.bridge, bridge, strlen(bridge) + 1);
    json_t *id = json_object_get(body, "vlan");
    if (!json_is_integer(id) || json_integer_value(id) < 1 ||
        json_integer_value(id) > (json_int_t)AGENT_VLAN_MAX)
        return nb_error_set(err, NB_ERR_NETWORK_INVALID_VLAN, "'vlan' must be an integer 1..%u",
                            AGENT_VLAN_MAX);
    v.vlan = (unsigned)json_integer_value(id);
    const char *parent;
    if (get_string(body, "parent", &parent, err) < 0)
        return -1;
    if (!agent_underlay_name_is_valid(parent))
        return nb_error_set(err, NB_ERR_NETWORK_INVALID_IFNAME,
                            "'parent' must be a host interface name, not one of the agent's");
    memcpy(v.parent, parent, strlen(parent) + 1);
    if (get_uint(body, "mtu", false, AGENT_MTU_MAX, &v.mtu, err) < 0)
        return -1;
    if (v.mtu < AGENT_MTU_MIN)
        return nb_error_set(err, NB_ERR_NETWORK_INVALID_MTU, "'mtu' must be %u..%u", AGENT_MTU_MIN,
                            AGENT_MTU_MAX);
    *ret = v;
    return 0;
}

json_t *
agent_vlan_to_json(const AgentVlan *v)
{
    char dev[AGENT_IFNAME_MAX + 1];
    agent_vlan_ifname(v->bridge, dev);
    return json_pack("{s:s, s:I, s:s, s:I, s:s}", "bridge", v->bridge, "vlan", (json_int_t)v->vlan,
                     "parent", v->parent, "mtu", (json_int_t)v->mtu, "device", dev);
}

int
agent_shaping_from_json(json_t *body, const char *tap, AgentShaping *ret, NbError **err)
{
    static const char *const fields[] = {"in_kbit", "out_kbit"};
    if (!agent_tap_name_is_valid(tap))
        return nb_error_set(err, NB_ERR_NETWORK_INVALID_IFNAME,
                            "shaping is only for taps named nbt and 12 lowercase hex digits");
    if (check_fields(body, fields, ELEMENTSOF(fields), err) < 0)
        return -1;
    AgentShaping s = {0};
    memcpy(s.tap, tap, strlen(tap) + 1);
    if (get_uint(body, "in_kbit", true, AGENT_KBIT_MAX, &s.in_kbit, err) < 0 ||
        get_uint(body, "out_kbit", true, AGENT_KBIT_MAX, &s.out_kbit, err) < 0)
        return -1;
    *ret = s;
    return 0;
}

json_t *
agent_shaping_to_json(const AgentShaping *s)
{
    char ifb[AGENT_IFNAME_MAX + 1];
    agent_ifb_ifname(s->tap, ifb);
    return json_pack("{s:s, s:I, s:I, s:s}", "tap", s->tap, "in_kbit", (json_int_t)s->in_kbit,
                     "out_kbit", (json_int_t)s->out_kbit, "ifb", ifb);
}

void
agent_vxlan_clear(AgentVxlan *v)
{
    free(v->peers);
    v->peers = NULL;
    v->n_peers = 0;
}

int
agent_vxlan_copy(const AgentVxlan *src, AgentVxlan *dst)
{
    *dst = *src;
    dst->peers = NULL;
    if (src->n_peers) {
        dst->peers = malloc(src->n_peers * sizeof(*dst->peers));
        if (!dst->peers)
            return -ENOMEM;
        memcpy(dst->peers, src->peers, src->n_peers * sizeof(*dst->peers));
    }
    return 0;
}

bool
agent_vxlan_equal(const AgentVxlan *a, const AgentVxlan *b)
{
    return a->vni == b->vni && streq(a->bridge, b->bridge) && a->mtu == b->mtu &&
           a->local == b->local && streq(a->dev, b->dev) && a->n_peers == b->n_peers &&
           (a->n_peers == 0 || memcmp(a->peers, b->peers, a->n_peers * sizeof(*a->peers)) == 0);
}

/* ---- state ---- */

AgentVxlan *
agent_state_vxlan_find(AgentState *s, unsigned vni)
{
    for (size_t i = 0; i < s->n_vxlans; i++)
        if (s->vxlans[i].vni == vni)
            return &s->vxlans[i];
    return NULL;
}

const AgentVxlan *
agent_state_bridge_user(const AgentState *s, const char *bridge, unsigned vni)
{
    for (size_t i = 0; i < s->n_vxlans; i++)
        if (s->vxlans[i].vni != vni && streq(s->vxlans[i].bridge, bridge))
            return &s->vxlans[i];
    return NULL;
}

int
agent_state_vxlan_put(AgentState *s, AgentVxlan *v)
{
    AgentVxlan *old = agent_state_vxlan_find(s, v->vni);
    if (old) {
        agent_vxlan_clear(old);
        *old = *v;
        v->peers = NULL;
        v->n_peers = 0;
        return 0;
    }
    if (s->n_vxlans >= AGENT_ENTRIES_MAX)
        return -ENOSPC;
    AgentVxlan *a = realloc(s->vxlans, (s->n_vxlans + 1) * sizeof(*a));
    if (!a)
        return -ENOMEM;
    s->vxlans = a;
    size_t at = 0;
    while (at < s->n_vxlans && a[at].vni < v->vni)
        at++;
    memmove(&a[at + 1], &a[at], (s->n_vxlans - at) * sizeof(*a));
    a[at] = *v;
    s->n_vxlans++;
    v->peers = NULL;
    v->n_peers = 0;
    return 0;
}

bool
agent_state_vxlan_remove(AgentState *s, unsigned vni)
{
    AgentVxlan *v = agent_state_vxlan_find(s, vni);
    if (!v)
        return false;
    agent_vxlan_clear(v);
    size_t at = (size_t)(v - s->vxlans);
    memmove(v, v + 1, (s->n_vxlans - at - 1) * sizeof(*v));
    s->n_vxlans--;
    return true;
}

AgentVlan *
agent_state_vlan_find(AgentState *s, const char *bridge)
{
    for (size_t i = 0; i < s->n_vlans; i++)
        if (streq(s->vlans[i].bridge, bridge))
            return &s->vlans[i];
    return NULL;
}

int
agent_state_vlan_put(AgentState *s, const AgentVlan *v)
{
    AgentVlan *old = agent_state_vlan_find(s, v->bridge);
    if (old) {
        *old = *v;
        return 0;
    }
    if (s->n_vlans >= AGENT_ENTRIES_MAX)
        return -ENOSPC;
    AgentVlan *a = realloc(s->vlans, (s->n_vlans + 1) * sizeof(*a));
    if (!a)
        return -ENOMEM;
    s->vlans = a;
    size_t at = 0;
    while (at < s->n_vlans && strcmp(a[at].bridge, v->bridge) < 0)
        at++;
    memmove(&a[at + 1], &a[at], (s->n_vlans - at) * sizeof(*a));
    a[at] = *v;
    s->n_vlans++;
    return 0;
}

bool
agent_state_vlan_remove(AgentState *s, const char *bridge)
{
    AgentVlan *v = agent_state_vlan_find(s, bridge);
    if (!v)
        return false;
    size_t at = (size_t)(v - s->vlans);
    memmove(v, v + 1, (s->n_vlans - at - 1) * sizeof(*v));
    s->n_vlans--;
    return true;
}

AgentShaping *
agent_state_shaping_find(AgentState *s, const char *tap)
{
    for (size_t i = 0; i < s->n_shaping; i++)
        if (streq(s->shaping[i].tap, tap))
            return &s->shaping[i];
    return NULL;
}

int
agent_state_shaping_put(AgentState *s, const AgentShaping *sh)
{
    AgentShaping *old = agent_state_shaping_find(s, sh->tap);
    if (old) {
        *old = *sh;
        return 0;
    }
    if (s->n_shaping >= AGENT_ENTRIES_MAX)
        return -ENOSPC;
    AgentShaping *a = realloc(s->shaping, (s->n_shaping + 1) * sizeof(*a));
    if (!a)
        return -ENOMEM;
    s->shaping = a;
    size_t at = 0;
    while (at < s->n_shaping && strcmp(a[at].tap, sh->tap) < 0)
        at++;
    memmove(&a[at + 1], &a[at], (s->n_shaping - at) * sizeof(*a));
    a[at] = *sh;
    s->n_shaping++;
    return 0;
}

bool
agent_state_shaping_remove(AgentState *s, const char *tap)
{
    AgentShaping *sh = agent_state_shaping_find(s, tap);
    if (!sh)
        return false;
    size_t at = (size_t)(sh - s->shaping);
    memmove(sh, sh + 1, (s->n_shaping - at - 1) * sizeof(*sh));
    s->n_shaping--;
    return true;
}

void
agent_state_clear(AgentState *s)
{
    for (size_t i = 0; i < s->n_vxlans; i++)
        agent_vxlan_clear(&s->vxlans[i]);
    free(s->vxlans);
    free(s->shaping);
    free(s->vlans);
    *s = (AgentState){0};
}

int
agent_state_copy(const AgentState *src, AgentState *dst)
{
    AgentState c = {0};
    if (src->n_vxlans) {
        c.vxlans = calloc(src->n_vxlans, sizeof(*c.vxlans));
        if (!c.vxlans)
            return -ENOMEM;
        for (; c.n_vxlans < src->n_vxlans; c.n_vxlans++)
            if (agent_vxlan_copy(&src->vxlans[c.n_vxlans], &c.vxlans[c.n_vxlans]) < 0) {
                agent_state_clear(&c);
                return -ENOMEM;
            }
    }
    if (src->n_shaping) {
        c.shaping = malloc(src->n_shaping * sizeof(*c.shaping));
        if (!c.shaping) {
            agent_state_clear(&c);
            return -ENOMEM;
        }
        memcpy(c.shaping, src->shaping, src->n_shaping * sizeof(*c.shaping));
        c.n_shaping = src->n_shaping;
    }
    if (src->n_vlans) {
        c.vlans = malloc(src->n_vlans * sizeof(*c.vlans));
        if (!c.vlans) {
            agent_state_clear(&c);
            return -ENOMEM;
        }
        memcpy(c.vlans, src->vlans, src->n_vlans * sizeof(*c.vlans));
        c.n_vlans = src->n_vlans;
    }
    *dst = c;
    return 0;
}

json_t *
agent_state_to_json(const AgentState *s)
{
    json_t *vx = json_array(), *sh = json_array(), *vl = json_array();
    for (size_t i = 0; vx && i < s->n_vxlans; i++) {
        json_t *e = agent_vxlan_to_json(&s->vxlans[i]);
        /* "device" is derived from the VNI: shown to callers, never stored. */
        json_object_del(e, "device");
        json_array_append_new(vx, e);
    }
    for (size_t i = 0; sh && i < s->n_shaping; i++) {
        json_t *e = agent_shaping_to_json(&s->shaping[i]);
        json_object_del(e, "ifb");
        json_array_append_new(sh, e);
    }
    for (size_t i = 0; vl && i < s->n_vlans; i++) {
        json_t *e = agent_vlan_to_json(&s->vlans[i]);
        json_object_del(e, "device");
        json_array_append_new(vl, e);
    }
    return json_pack("{s:i, s:o*, s:o*, s:o*}", "version", STATE_VERSION, "vxlans", vx, "shaping",
                     sh, "vlans", vl);
}

int
agent_state_from_json(json_t *j, AgentState *ret, NbError **err)
{
    static const char *const fields[] = {"version", "vxlans", "shaping", "vlans"};
    if (check_fields(j, fields, ELEMENTSOF(fields), err) < 0)
        return -1;
    json_t *ver = json_object_get(j, "version");
    if (!json_is_integer(ver) || json_integer_value(ver) != STATE_VERSION)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "unknown state version");
    json_t *vx = json_object_get(j, "vxlans"), *sh = json_object_get(j, "shaping");
    json_t *vl = json_object_get(j, "vlans");
    if (!json_is_array(vx) || !json_is_array(sh) || (vl && !json_is_array(vl)))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "'vxlans', 'shaping' and 'vlans' must be arrays");
    AgentState s = {0};
    size_t i;
    json_t *e;
    json_array_foreach (vx, i, e) {
        unsigned vni = 0;
        AgentVxlan v;
        json_t *copy = json_is_object(e) ? json_copy(e) : NULL;
        int r = copy ? get_uint(copy, "vni", true, AGENT_VNI_MAX, &vni, err) : -1;
        if (!copy)
            nb_error_set(err, NB_ERR_INVALID_REQUEST, "vxlans[%zu] must be an object", i);
        if (r == 0) {
            json_object_del(copy, "vni");
            r = agent_vxlan_from_json(copy, vni, &v, err);
        }
        json_decref(copy);
        if (r < 0 || agent_state_vxlan_find(&s, vni) ||
            agent_state_bridge_user(&s, v.bridge, vni)) {
            if (r == 0)
                agent_vxlan_clear(&v);
            agent_state_clear(&s);
            return nb_error_set(err, NB_ERR_INVALID_REQUEST, "vxlans[%zu] is a duplicate", i);
        }
        if (agent_state_vxlan_put(&s, &v) < 0) {
            agent_vxlan_clear(&v);
            agent_state_clear(&s);
            return nb_error_set(err, NB_ERR_INVALID_REQUEST, "too many vxlans");
        }
    }
    json_array_foreach (sh, i, e) {
        AgentShaping a;
        json_t *tap = json_object_get(e, "tap");
        json_t *copy = json_is_object(e) && json_is_string(tap) ? json_copy(e) : NULL;
        int r = -1;
        if (copy) {
            json_object_del(copy, "tap");
            r = agent_shaping_from_json(copy, json_string_value(tap), &a, err);
        }
        json_decref(copy);
        if (r < 0 || agent_state_shaping_find(&s, a.tap) || agent_state_shaping_put(&s, &a) < 0) {
            agent_state_clear(&s);
            return nb_error_set(err, NB_ERR_INVALID_REQUEST, "shaping[%zu] is invalid", i);
        }
    }
    json_array_foreach (vl, i, e) {
        AgentVlan a;
        json_t *bridge = json_object_get(e, "bridge");
        json_t *copy = json_is_object(e) && json_is_string(bridge) ? json_copy(e) : NULL;
        int r = -1;
        if (copy) {
            json_object_del(copy, "bridge");
            r = agent_vlan_from_json(copy, json_string_value(bridge), &a, err);
        }
        json_decref(copy);
        if (r < 0 || agent_state_vlan_find(&s, a.bridge) ||
            agent_state_bridge_user(&s, a.bridge, 0) || agent_state_vlan_put(&s, &a) < 0) {
            agent_state_clear(&s);
            return nb_error_set(err, NB_ERR_INVALID_REQUEST, "vlans[%zu] is invalid", i);
        }
    }
    *ret = s;
    return 0;
}

int
agent_json_save(json_t *j, const char *dir, const char *file)
{
    _cleanup_free_ char *text = json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS);
    _cleanup_free_ char *tmp = str_printf("%s/.%s.tmp", dir, file);
    _cleanup_free_ char *path = str_printf("%s/%s", dir, file);
    if (!text || !tmp || !path)
        return -ENOMEM;
    _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int r = write_full(fd, text, strlen(text));
    if (r == 0)
        r = write_full(fd, "\n", 1);
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0) {
        unlink(tmp);
        return r;
    }
    /* The rename is only durable once the directory is. */
    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0)
        return -errno;
    return 0;
}

int
agent_state_save(const AgentState *s, const char *dir)
{
    json_t *j = agent_state_to_json(s);
    if (!j)
        return -ENOMEM;
    int r = agent_json_save(j, dir, STATE_FILE);
    json_decref(j);
    return r;
}

int
agent_json_load(const char *dir, const char *file, size_t max, json_t **ret, NbError **err)
{
    *ret = NULL;
    _cleanup_free_ char *path = str_printf("%s/%s", dir, file);
    if (!path)
        return -ENOMEM;
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    int r = read_file_full(path, max, &text, &len);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;
    json_error_t jerr;
    *ret = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!*ret) {
        nb_error_set(err, NB_ERR_INVALID_JSON, "%s: %s", path, jerr.text);
        return -EBADMSG;
    }
    return 0;
}

int
agent_state_load(const char *dir, AgentState *ret, NbError **err)
{
    *ret = (AgentState){0};
    json_t *j = NULL;
    int r = agent_json_load(dir, STATE_FILE, STATE_FILE_MAX, &j, err);
    if (r < 0 || !j)
        return r;
    r = agent_state_from_json(j, ret, err);
    json_decref(j);
    return r < 0 ? -EBADMSG : 0;
}

int
agent_secret_load(const char *path, char out[AGENT_SECRET_HEX_LEN + 1])
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || (st.st_mode & 077))
        return -EPERM;
    char buf[AGENT_SECRET_HEX_LEN + 2];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0)
        return -errno;
    if (n == AGENT_SECRET_HEX_LEN + 1 && buf[AGENT_SECRET_HEX_LEN] == '\n')
        n--;
    int bad = n != AGENT_SECRET_HEX_LEN;
    for (ssize_t i = 0; !bad && i < n; i++) {
        char c = buf[i];
        bad = !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'));
    }
    if (!bad) {
        memcpy(out, buf, AGENT_SECRET_HEX_LEN);
        out[AGENT_SECRET_HEX_LEN] = '\0';
    }
    explicit_bzero(buf, sizeof(buf));
    return bad ? -EBADMSG : 0;
}
