#include "agent_ipset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/cleanup.h"
#include "../util/error_codes.h"
#include "../util/strutil.h"
#include "agent_model.h"

#define IPSETS_FILE "ipsets.json"
#define IPSETS_VERSION 1
#define IPSETS_FILE_MAX (64 * 1024 * 1024)

bool
agent_ipset_name_is_valid(const char *s)
{
    size_t pre = strlen(AGENT_IPSET_PREFIX);
    if (!s || !str_startswith(s, AGENT_IPSET_PREFIX) || strlen(s) != pre + AGENT_IPSET_HEX_LEN)
        return false;
    for (size_t i = pre; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

void
agent_ipset_tmp_name(const char *name, char out[AGENT_IPSET_NAME_MAX + 1])
{
    snprintf(out, AGENT_IPSET_NAME_MAX + 1, "%s-t", name);
}

static int
ipset_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int
agent_ipset_from_json(json_t *body, const char *name, AgentIpset *ret, NbError **err)
{
    *ret = (AgentIpset){0};
    if (!agent_ipset_name_is_valid(name))
        return nb_error_set(err, NB_ERR_INVALID_NAME,
                            "an ipset is named %s and %d lowercase hex digits", AGENT_IPSET_PREFIX,
                            AGENT_IPSET_HEX_LEN);
    if (!json_is_object(body))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "the body must be a JSON object");
    const char *key;
    json_t *val;
    json_object_foreach (body, key, val)
        if (!streq(key, "members"))
            return nb_error_set(err, NB_ERR_INVALID_REQUEST, "unknown field '%.64s'", key);
    json_t *members = json_object_get(body, "members");
    if (!json_is_array(members) || json_array_size(members) > AGENT_IPSET_MEMBERS_MAX)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "'members' must be an array of at most %d addresses",
                            AGENT_IPSET_MEMBERS_MAX);
    size_t n = json_array_size(members);
    _cleanup_free_ uint32_t *ips = calloc(n ? n : 1, sizeof(*ips));
    if (!ips)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(members, i);
        if (!json_is_string(m) || agent_ipv4_parse(json_string_value(m), &ips[i]) < 0 ||
            !agent_ipv4_is_unicast(ips[i]))
            return nb_error_set(err, NB_ERR_IP_INVALID,
                                "members[%zu] must be a unicast IPv4 address", i);
    }
    qsort(ips, n, sizeof(*ips), ipset_cmp_u32);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || ips[k - 1] != ips[i])
            ips[k++] = ips[i];
    snprintf(ret->name, sizeof(ret->name), "%s", name);
    ret->members = TAKE_PTR(ips);
    ret->n_members = k;
    return 0;
}

json_t *
agent_ipset_to_json(const AgentIpset *s)
{
    json_t *members = json_array();
    json_t *j = json_pack("{s:s, s:o}", "name", s->name, "members", members);
    if (!j)
        return NULL;
    for (size_t i = 0; i < s->n_members; i++) {
        char ip[16];
        agent_ipv4_format(s->members[i], ip);
        if (json_array_append_new(members, json_string(ip)) < 0) {
            json_decref(j);
            return NULL;
        }
    }
    if (s->doomed)
        json_object_set_new(j, "doomed", json_true());
    return j;
}

void
agent_ipset_clear(AgentIpset *s)
{
    free(s->members);
    s->members = NULL;
    s->n_members = 0;
}

static size_t
ipsets_index(const AgentIpsets *l, const char *name, bool *found)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(l->sets[mid].name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

AgentIpset *
agent_ipsets_find(AgentIpsets *l, const char *name)
{
    bool found;
    size_t i = ipsets_index(l, name, &found);
    return found ? &l->sets[i] : NULL;
}

int
agent_ipsets_put(AgentIpsets *l, AgentIpset *s)
{
    bool found;
    size_t i = ipsets_index(l, s->name, &found);
    if (found) {
        agent_ipset_clear(&l->sets[i]);
        l->sets[i] = *s;
        *s = (AgentIpset){0};
        return 0;
    }
    if (l->n >= AGENT_IPSETS_MAX)
        return -ENOSPC;
    AgentIpset *grown = realloc(l->sets, (l->n + 1) * sizeof(*grown));
    if (!grown)
        return -ENOMEM;
    l->sets = grown;
    memmove(&l->sets[i + 1], &l->sets[i], (l->n - i) * sizeof(*grown));
    l->sets[i] = *s;
    l->n++;
    *s = (AgentIpset){0};
    return 0;
}

bool
agent_ipsets_remove(AgentIpsets *l, const char *name)
{
    bool found;
    size_t i = ipsets_index(l, name, &found);
    if (!found)
        return false;
    agent_ipset_clear(&l->sets[i]);
    memmove(&l->sets[i], &l->sets[i + 1], (l->n - i - 1) * sizeof(*l->sets));
    l->n--;
    return true;
}

void
agent_ipsets_clear(AgentIpsets *l)
{
    for (size_t i = 0; i < l->n; i++)
        agent_ipset_clear(&l->sets[i]);
    free(l->sets);
    *l = (AgentIpsets){0};
}

json_t *
agent_ipsets_to_json(const AgentIpsets *l)
{
    json_t *arr = json_array();
    json_t *j = json_pack("{s:i, s:o}", "version", IPSETS_VERSION, "ipsets", arr);
    if (!j)
        return NULL;
    for (size_t i = 0; i < l->n; i++) {
        if (json_array_append_new(arr, agent_ipset_to_json(&l->sets[i])) < 0) {
            json_decref(j);
            return NULL;
        }
    }
    return j;
}

int
agent_ipsets_from_json(json_t *j, AgentIpsets *ret, NbError **err)
{
    *ret = (AgentIpsets){0};
    json_t *ver = json_is_object(j) ? json_object_get(j, "version") : NULL;
    json_t *arr = json_is_object(j) ? json_object_get(j, "ipsets") : NULL;
    if (!json_is_integer(ver) || json_integer_value(ver) != IPSETS_VERSION || !json_is_array(arr) ||
        json_object_size(j) != 2)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "want {\"version\": %d, \"ipsets\": [...]}", IPSETS_VERSION);
    AgentIpsets l = {0};
    size_t i;
    json_t *e;
    json_array_foreach (arr, i, e) {
        json_t *name = json_is_object(e) ? json_object_get(e, "name") : NULL;
        json_t *doomed = json_is_object(e) ? json_object_get(e, "doomed") : NULL;
        json_t *copy = json_is_object(e) ? json_copy(e) : NULL;
        AgentIpset s;
        int r = -1;
        if (copy && json_is_string(name) && (!doomed || json_is_boolean(doomed))) {
            json_object_del(copy, "name");
            json_object_del(copy, "doomed");
            r = agent_ipset_from_json(copy, json_string_value(name), &s, err);
        }
        json_decref(copy);
        if (r == 0 && agent_ipsets_find(&l, s.name)) {
            agent_ipset_clear(&s);
            r = -1;
        }
        if (r == 0) {
            s.doomed = json_is_true(doomed);
            r = agent_ipsets_put(&l, &s);
            agent_ipset_clear(&s);
        }
        if (r < 0) {
            agent_ipsets_clear(&l);
            return nb_error_set(err, NB_ERR_INVALID_REQUEST, "ipsets[%zu] is invalid", i);
        }
    }
    *ret = l;
    return 0;
}

int
agent_ipsets_save(const AgentIpsets *l, const char *dir)
{
    json_t *j = agent_ipsets_to_json(l);
    if (!j)
        return -ENOMEM;
    int r = agent_json_save(j, dir, IPSETS_FILE);
    json_decref(j);
    return r;
}

int
agent_ipsets_load(const char *dir, AgentIpsets *ret, NbError **err)
{
    *ret = (AgentIpsets){0};
    json_t *j = NULL;
    int r = agent_json_load(dir, IPSETS_FILE, IPSETS_FILE_MAX, &j, err);
    if (r < 0 || !j)
        return r;
    r = agent_ipsets_from_json(j, ret, err);
    json_decref(j);
    return r < 0 ? -EBADMSG : 0;
}
