/*
 * nimbus-agent: the per-hypervisor daemon that does the host networking libvirt cannot do
 * (bridges, VXLAN devices and their flood FDB, HTB/IFB shaping, the ipsets of security-group
 * members), for nimbusd only.
 *
 * HTTPS (GnuTLS through libmicrohttpd) with a per-host bearer secret compared in constant time.
 * One MHD polling thread serves requests one at a time; the main thread waits for signals and
 * runs the periodic check. Both take `lock` around the state and the netlink socket, so a check
 * never sees a half-applied request.
 *
 * Every accepted change is applied to the host, then written to the state file, then answered;
 * a change the host refuses is rolled back (the previous entry re-applied, or a new one's devices
 * removed) so a caller never leaves a half-configured overlay behind. At start and every
 * --check-interval seconds the whole state is compared with the host and what is missing is
 * re-applied. On SIGTERM/SIGINT the agent stops and leaves the devices: the datapath of running
 * VMs must survive an agent restart.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../util/cleanup.h"
#include "../util/error_codes.h"
#include "../util/log.h"
#include "../util/strutil.h"
#include "agent_dhcp_run.h"
#include "agent_ipset.h"
#include "agent_ipset_run.h"
#include "agent_model.h"
#include "agent_net.h"

#ifndef AGENT_VERSION
#define AGENT_VERSION "0"
#endif

#define AGENT_DEFAULT_PORT 8775
#define AGENT_CONN_LIMIT 64
#define AGENT_CONN_TIMEOUT_S 30
#define AGENT_PEM_MAX (64 * 1024)

typedef struct Agent {
    char secret[AGENT_SECRET_HEX_LEN + 1];
    char *state_dir;
    AgentState state;
    AgentNet *net;
    AgentDhcpSet *dhcp;
    AgentIpsets ipsets; /* kept in DIR/ipsets.json */
    AgentIpsetRun *ipr;
    pthread_mutex_t lock;
    struct timespec started;
} Agent;

typedef struct Req {
    char *body;
    size_t len;
    bool too_large;
    bool answered; /* a reply was queued on the first call (401, 413) */
} Req;

typedef struct Reply {
    unsigned status;
    json_t *json; /* NULL: empty body */
} Reply;

/* ---- replies ---- */

/* An NbError's text for a log line; NULL when even the error could not be allocated. */
static const char *
msg_of(const NbError *e)
{
    return e && e->message ? e->message : "out of memory";
}

static unsigned
status_of(const char *code)
{
    static const struct {
        const char *code;
        unsigned status;
    } table[] = {
        {NB_ERR_UNAUTHORIZED, 401},   {NB_ERR_NOT_FOUND, 404},  {NB_ERR_METHOD_NOT_ALLOWED, 405},
        {NB_ERR_BODY_TOO_LARGE, 413}, {NB_ERR_NAME_TAKEN, 409}, {NB_ERR_HYPERVISOR, 502},
        {NB_ERR_INTERNAL, 500},
    };
    for (size_t i = 0; i < ELEMENTSOF(table); i++)
        if (streq(code, table[i].code))
            return table[i].status;
    return 400; /* the decoding codes */
}

static Reply
reply_error(const char *code, const char *message)
{
    return (Reply){status_of(code),
                   json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message)};
}

static Reply
reply_nb_error(NbError *e)
{
    if (!e)
        return reply_error(NB_ERR_INTERNAL, "out of memory");
    Reply r = reply_error(e->code, e->message ? e->message : e->code);
    nb_error_free(e);
    return r;
}

static enum MHD_Result
send_reply(struct MHD_Connection *conn, Reply r, const char *method, const char *url)
{
    char *text = r.json ? json_dumps(r.json, JSON_COMPACT) : NULL;
    json_decref(r.json);
    size_t len = text ? strlen(text) : 0;
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, text ? text : (void *)"", text ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    if (text)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (r.status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (r.status == 405)
        MHD_add_response_header(
            resp, MHD_HTTP_HEADER_ALLOW,
            str_startswith(url, "/v1/vxlan/") || str_startswith(url, "/v1/shaping/") ||
                    str_startswith(url, "/v1/vlan/") || str_startswith(url, "/v1/dhcp/") ||
                    str_startswith(url, "/v1/ipsets/")
                ? "PUT, DELETE"
                : "GET");
    enum MHD_Result ret = MHD_queue_response(conn, r.status, resp);
    MHD_destroy_response(resp);
    /* The path is logged, never a header: the secret only travels in Authorization. */
    log_write(r.status >= 500 ? LOG_LEVEL_WARN : LOG_LEVEL_INFO, "%s %.80s -> %u", method, url,
              r.status);
    return ret;
}

/* ---- state changes ---- */

/* Writes next as the new state (atomically, before anyone is answered) and adopts it. */
static int
commit(Agent *a, AgentState *next, NbError **err)
{
    int r = agent_state_save(next, a->state_dir);
    if (r < 0) {
        agent_state_clear(next);
        return nb_error_set(err, NB_ERR_INTERNAL, "cannot write the state file: %s", strerror(-r));
    }
    agent_state_clear(&a->state);
    a->state = *next;
    *next = (AgentState){0};
    return 0;
}

static Reply
vxlan_put(Agent *a, unsigned vni, json_t *body)
{
    _cleanup_error_ NbError *err = NULL;
    AgentVxlan v;
    if (agent_vxlan_from_json(body, vni, &v, &err) < 0)
        return reply_nb_error(TAKE_PTR(err));
    const AgentVxlan *user = agent_state_bridge_user(&a->state, v.bridge, vni);
    if (user || agent_state_vlan_find(&a->state, v.bridge)) {
        char msg[96];
        if (user)
            snprintf(msg, sizeof(msg), "bridge %s belongs to VNI %u", v.bridge, user->vni);
        else
            snprintf(msg, sizeof(msg), "bridge %s belongs to a VLAN segment", v.bridge);
        agent_vxlan_clear(&v);
        return reply_error(NB_ERR_NAME_TAKEN, msg);
    }
    const AgentVxlan *old = agent_state_vxlan_find(&a->state, vni);
    if (agent_net_vxlan_ensure(a->net, &v, &err) < 0) {
        _cleanup_error_ NbError *undo_err = NULL;
        int u = old ? agent_net_vxlan_ensure(a->net, old, &undo_err)
                    : agent_net_vxlan_remove(a->net, vni, v.bridge, &undo_err);
        if (u < 0)
            log_error("VNI %u: undoing a failed change failed too: %s", vni, msg_of(undo_err));
        log_warn("VNI %u: %s", vni, msg_of(err));
        agent_vxlan_clear(&v);
        return reply_nb_error(TAKE_PTR(err));
    }
    if (old && !streq(old->bridge, v.bridge)) {
        _cleanup_error_ NbError *e2 = NULL;
        /* The VXLAN device moved to the new bridge; the old one is left empty. */
        if (agent_net_link_remove(a->net, old->bridge, &e2) < 0)
            log_warn("VNI %u: cannot remove the old bridge %s: %s", vni, old->bridge, msg_of(e2));
    }
    json_t *answer = agent_vxlan_to_json(&v);
    AgentState next;
    if (!answer || agent_state_copy(&a->state, &next) < 0) {
        json_decref(answer);
        agent_vxlan_clear(&v);
        return reply_error(NB_ERR_INTERNAL, "out of memory");
    }
    if (agent_state_vxlan_put(&next, &v) < 0) { /* takes v's peers */
        json_decref(answer);
        agent_vxlan_clear(&v);
        agent_state_clear(&next);
        return reply_error(NB_ERR_INTERNAL, "too many VXLANs");
    }
    if (commit(a, &next, &err) < 0) {
        json_decref(answer);
        return reply_nb_error(TAKE_PTR(err));
    }
    return (Reply){200, answer};
}

static Reply
vxlan_delete(Agent *a, unsigned vni)
{
    _cleanup_error_ NbError *err = NULL;
    const AgentVxlan *old = agent_state_vxlan_find(&a->state, vni);
    if (!old) {
        /* Absent is done; a device left by a crash between apply and commit goes too. */
        char vx[AGENT_IFNAME_MAX + 1];
        agent_vxlan_ifname(vni, vx);
        if (agent_net_link_remove(a->net, vx, &err) < 0)
            return reply_nb_error(TAKE_PTR(err));
        return (Reply){204, NULL};
    }
    if (agent_net_vxlan_remove(a->net, vni, old->bridge, &err) < 0)
        return reply_nb_error(TAKE_PTR(err));
    AgentState next;
    if (agent_state_copy(&a->state, &next) < 0)
        return reply_error(NB_ERR_INTERNAL, "out of memory");
    agent_state_vxlan_remove(&next, vni);
    if (commit(a, &next, &err) < 0)
        return reply_nb_error(TAKE_PTR(err));
    return (Reply){204, NULL};
}

static Reply
vlan_put(Agent *a, const char *bridge, json_t *body)
{
    _cleanup_error_ NbError *err = NULL;
    AgentVlan v;
    if (agent_vlan_from_json(body, bridge, &v, &err) < 0)
        return reply_nb_error(TAKE_PTR(err));
    const AgentVxlan *user = agent_state_bridge_user(&a->state, v.bridge, 0);
    if (user) {
        char msg[96];
        snprintf(msg, sizeof(msg), "bridge %s belongs to VNI %u", v.bridge, user->vni);
        return reply_error(NB_ERR_NAME_TAKEN, msg);
    }
    const AgentVlan *old = agent_state_vlan_find(&a->state, v.bridge);
    if (agent_net_vlan_ensure(a->net, &v, &err) < 0) {
        _cleanup_error_ NbError *undo_err = NULL;
        if (old && agent_net_vlan_ensure(a->net, old, &undo_err) < 0)
            log_error("%s: undoing a failed change failed too: %s", bridge, msg_of(undo_err));
        log_warn("%s: %s", bridge, msg_of(err));
        return reply_nb_error(TAKE_PTR(err));
    }
    AgentState next;
    if (agent_state_copy(&a->state, &next) < 0)
        return reply_error(NB_ERR_INTERNAL, "out of memory");
    if (agent_state_vlan_put(&next, &v) < 0) {
        agent_state_clear(&next);
        return reply_error(NB_ERR_INTERNAL, "too many VLAN segments");
    }
    if (commit(a, &next, &err) < 0)
        return reply_nb_error(TAKE_PTR(err));
    return (Reply){200, agent_vlan_to_json(&v)};
}

static Reply
vlan_delete(Agent *a, const char *bridge)
{
    _cleanup_error_ NbError *err = NULL;
    if (!agent_bridge_name_is_valid(bridge))
        return reply_error(NB_ERR_NETWORK_INVALID_IFNAME,
                           "a VLAN segment's bridge is named nbr and 12 lowercase hex digits");
    if (agent_state_bridge_user(&a->state, bridge, 0))
        return reply_error(NB_ERR_NAME_TAKEN, "that bridge belongs to a VXLAN");
    /* Absent is done; devices left by a crash between apply and commit go too. */
    if (agent_net_vlan_remove(a->net, bridge, &err) < 0)
        return reply_nb_error(TAKE_PTR(err));
    if (!agent_state_vlan_find(&a->state, bridge))
        return (Reply){204, NULL};
    AgentState next;
    if (agent_state_copy(&a->state, &next) < 0)
        return reply_error(NB_ERR_INTERNAL, "out of memory");
    agent_state_vlan_remove(&next, bridge);
    if (commit(a, &next, &err) < 0)
        return reply_nb_error(TAKE_PTR(err));
    return (Reply){204, NULL};
}

static Reply
shaping_put(Agent *a, const char *tap, json_t *body)
{
    _cleanup_error_ NbError *err = NULL;
    AgentShaping s;
    if (agent_shaping_from_json(body, tap, &s, &err) < 0)
        return reply_nb_error(TAKE_PTR(err));
    const AgentShaping *old = agent_state_shaping_find(&a->state, tap);
    bool applied = agent_net_link_exists(a->net, tap);
    /* A tap that does not exist yet (VM stopped) is shaped by the check when it appears. */
    if (applied && agent_net_shaping_apply(a->net, &s, &err) < 0) {
        _cleanup_error_ NbError *undo_err = NULL;
        int u = old ? agent_net_shaping_apply(a->net, old, &undo_err)
                    : agent_net_shaping_clear(a->net, tap, &undo_err);
        if (u < 0)
            log_error("%s: undoing a failed change failed too: %s", tap, msg_of(undo_err));
        log_warn("%s: %s", tap, msg_of(err));
        return reply_nb_error(TAKE_PTR(err));
    }
    AgentState next;
    if (agent_state_copy(&a->state, &next) < 0)
        return reply_error(NB_ERR_INTERNAL, "out of memory");
    if (agent_state_shaping_put(&next, &s) < 0) {
        agent_state_clear(&next);
        return reply_error(NB_ERR_INTERNAL, "too many shaped taps");
    }
    if (commit(a, &next, &err) < 0)
        return reply_nb_error(TAKE_PTR(err));
    json_t *j = agent_shaping_to_json(&s);
    json_object_set_new(j, "applied", json_boolean(applied));
    return (Reply){200, j};
}

static Reply
shaping_delete(Agent *a, const char *tap)
{
    _cleanup_error_ NbError *err = NULL;
    if (!agent_tap_name_is_valid(tap))
        return reply_error(NB_ERR_NETWORK_INVALID_IFNAME,
                           "shaping is only for taps named nbt and 12 lowercase hex digits");
    if (agent_net_shaping_clear(a->net, tap, &err) < 0)
        return reply_nb_error(TAKE_PTR(err));
    if (!agent_state_shaping_find(&a->state, tap))
        return (Reply){204, NULL};
    AgentState next;
    if (agent_state_copy(&a->state, &next) < 0)
        return reply_error(NB_ERR_INTERNAL, "out of memory");
    agent_state_shaping_remove(&next, tap);
    if (commit(a, &next, &err) < 0)
        return reply_nb_error(TAKE_PTR(err));
    return (Reply){204, NULL};
}

static Reply
dhcp_put(Agent *a, const char *key, json_t *body)
{
    _cleanup_error_ NbError *err = NULL;
    AgentDhcp d;
    if (agent_dhcp_from_json(body, key, &d, &err) < 0)
        return reply_nb_error(TAKE_PTR(err));
    json_t *answer = agent_dhcp_to_json(&d);
    int r = agent_dhcp_set_put(a->dhcp, &d, &err);
    agent_dhcp_clear(&d);
    if (r < 0) {
        json_decref(answer);
        log_warn("DHCP %s: %s", key, msg_of(err));
        return reply_nb_error(TAKE_PTR(err));
    }
    return (Reply){200, answer};
}

static Reply
dhcp_delete(Agent *a, const char *key)
{
    _cleanup_error_ NbError *err = NULL;
    if (agent_dhcp_set_delete(a->dhcp, key, &err) < 0)
        return reply_nb_error(TAKE_PTR(err));
    return (Reply){204, NULL};
}

/* Destroys the sets nimbusd deleted while iptables still referenced them. Whether the list
 * changed. */
static bool
ipsets_sweep(Agent *a)
{
    bool changed = false;
    for (size_t i = 0; i < a->ipsets.n;) {
        AgentIpset *s = &a->ipsets.sets[i];
        _cleanup_error_ NbError *err = NULL;
        int r = s->doomed ? agent_ipset_run_destroy(a->ipr, s->name, &err) : 1;
        if (r < 0)
            log_warn("ipset %s: %s", s->name, msg_of(err));
        if (r != 0) {
            i++;
            continue;
        }
        log_info("ipset %s: destroyed (no rule references it any more)", s->name);
        agent_ipsets_remove(&a->ipsets, s->name);
        changed = true;
    }
    return changed;
}

static int
ipsets_commit(Agent *a, NbError **err)
{
    int r = agent_ipsets_save(&a->ipsets, a->state_dir);
    if (r < 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "cannot write the ipsets file: %s", strerror(-r));
    return 0;
}

static Reply
ipset_put(Agent *a, const char *name, json_t *body)
{
    _cleanup_error_ NbError *err = NULL;
    AgentIpset s;
    if (agent_ipset_from_json(body, name, &s, &err) < 0)
        return reply_nb_error(TAKE_PTR(err));
    ipsets_sweep(a);
    if (agent_ipset_run_apply(a->ipr, &s, &err) < 0) {
        log_warn("ipset %s: %s", name, msg_of(err));
        agent_ipset_clear(&s);
        return reply_nb_error(TAKE_PTR(err));
    }
    json_t *answer = agent_ipset_to_json(&s);
    int r = agent_ipsets_put(&a->ipsets, &s);
    agent_ipset_clear(&s);
    if (r < 0 || !answer) {
        json_decref(answer);
        return reply_error(NB_ERR_INTERNAL, r == -ENOSPC ? "too many ipsets" : "out of memory");
    }
    if (ipsets_commit(a, &err) < 0) {
        json_decref(answer);
        return reply_nb_error(TAKE_PTR(err));
    }
    return (Reply){200, answer};
}

static Reply
ipset_delete(Agent *a, const char *name)
{
    _cleanup_error_ NbError *err = NULL;
    if (!agent_ipset_name_is_valid(name))
        return reply_error(NB_ERR_INVALID_NAME,
                           "an ipset is named nbs- and 24 lowercase hex digits");
    bool changed = ipsets_sweep(a);
    int r = agent_ipset_run_destroy(a->ipr, name, &err);
    if (r < 0)
        return reply_nb_error(TAKE_PTR(err));
    AgentIpset *old = agent_ipsets_find(&a->ipsets, name);
    if (r == 0) {
        changed = agent_ipsets_remove(&a->ipsets, name) || changed;
    } else if (!old || !old->doomed) {
        /* Still referenced by a rule libvirt has not taken out yet: kept, listed as doomed and
         * destroyed at a later call or check. */
        AgentIpset s = {.doomed = true};
        snprintf(s.name, sizeof(s.name), "%s", name);
        if (old) {
            old->doomed = true;
        } else if (agent_ipsets_put(&a->ipsets, &s) < 0) {
            return reply_error(NB_ERR_INTERNAL, "out of memory");
        }
        changed = true;
    }
    if (changed && ipsets_commit(a, &err) < 0)
        return reply_nb_error(TAKE_PTR(err));
    if (r == 0)
        return (Reply){204, NULL};
    return (Reply){200, json_pack("{s:s, s:b, s:s}", "name", name, "destroyed", 0, "message",
                                  "a rule still references the set: it is destroyed at a later "
                                  "call")};
}

static Reply
ipsets_get(Agent *a)
{
    if (ipsets_sweep(a)) {
        _cleanup_error_ NbError *err = NULL;
        if (ipsets_commit(a, &err) < 0)
            log_warn("%s", msg_of(err));
    }
    json_t *j = agent_ipsets_to_json(&a->ipsets);
    json_object_del(j, "version");
    return (Reply){200, j};
}

static Reply
health(Agent *a)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (Reply){200, json_pack("{s:s, s:I}", "version", AGENT_VERSION, "uptime_s",
                                  (json_int_t)(now.tv_sec - a->started.tv_sec))};
}

static Reply
state_get(Agent *a)
{
    json_t *j = agent_state_to_json(&a->state);
    json_object_del(j, "version");
    json_object_set_new(j, "dhcp", agent_dhcp_set_to_json(a->dhcp));
    return (Reply){200, j};
}

/* ---- routing ---- */

static json_t *
body_parse(const Req *q, Reply *fail)
{
    json_error_t jerr;
    json_t *j = q->len ? json_loadb(q->body, q->len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!j) {
        char msg[200];
        snprintf(msg, sizeof(msg), "the body is not JSON: %s", q->len ? jerr.text : "empty");
        *fail = reply_error(NB_ERR_INVALID_JSON, msg);
    }
    return j;
}

static Reply
route(Agent *a, const char *method, const char *url, const Req *q)
{
    bool get = streq(method, "GET"), put = streq(method, "PUT"), del = streq(method, "DELETE");
    if (streq(url, "/v1/health") || streq(url, "/v1/state") || streq(url, "/v1/ipsets")) {
        if (!get)
            return reply_error(NB_ERR_METHOD_NOT_ALLOWED, "method not allowed");
        return streq(url, "/v1/health")  ? health(a)
               : streq(url, "/v1/state") ? state_get(a)
                                         : ipsets_get(a);
    }
    const char *vni_s = str_startswith(url, "/v1/vxlan/") ? url + strlen("/v1/vxlan/") : NULL;
    const char *tap = str_startswith(url, "/v1/shaping/") ? url + strlen("/v1/shaping/") : NULL;
    const char *vlan_br = str_startswith(url, "/v1/vlan/") ? url + strlen("/v1/vlan/") : NULL;
    const char *dhcp = str_startswith(url, "/v1/dhcp/") ? url + strlen("/v1/dhcp/") : NULL;
    const char *ipset = str_startswith(url, "/v1/ipsets/") ? url + strlen("/v1/ipsets/") : NULL;
    const char *key = vni_s ? vni_s : tap ? tap : vlan_br ? vlan_br : dhcp ? dhcp : ipset;
    if (!key || strchr(key, '/'))
        return reply_error(NB_ERR_NOT_FOUND, "no such route");
    if (!put && !del)
        return reply_error(NB_ERR_METHOD_NOT_ALLOWED, "method not allowed");
    Reply fail;
    if (ipset) {
        if (del)
            return ipset_delete(a, ipset);
        json_t *body = body_parse(q, &fail);
        if (!body)
            return fail;
        Reply r = ipset_put(a, ipset, body);
        json_decref(body);
        return r;
    }
    if (dhcp) {
        if (del)
            return dhcp_delete(a, dhcp);
        json_t *body = body_parse(q, &fail);
        if (!body)
            return fail;
        Reply r = dhcp_put(a, dhcp, body);
        json_decref(body);
        return r;
    }
    if (vlan_br) {
        if (del)
            return vlan_delete(a, vlan_br);
        json_t *body = body_parse(q, &fail);
        if (!body)
            return fail;
        Reply r = vlan_put(a, vlan_br, body);
        json_decref(body);
        return r;
    }
    if (vni_s) {
        unsigned vni;
        if (agent_vni_parse(vni_s, &vni) < 0)
            return reply_error(NB_ERR_NETWORK_INVALID_VNI, "the VNI must be 1..16777215");
        if (del)
            return vxlan_delete(a, vni);
        json_t *body = body_parse(q, &fail);
        if (!body)
            return fail;
        Reply r = vxlan_put(a, vni, body);
        json_decref(body);
        return r;
    }
    if (del)
        return shaping_delete(a, tap);
    if (!agent_tap_name_is_valid(tap))
        return reply_error(NB_ERR_NETWORK_INVALID_IFNAME,
                           "shaping is only for taps named nbt and 12 lowercase hex digits");
    json_t *body = body_parse(q, &fail);
    if (!body)
        return fail;
    Reply r = shaping_put(a, tap, body);
    json_decref(body);
    return r;
}

static bool
authorized(Agent *a, struct MHD_Connection *conn)
{
    const char *h =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    /* The length is no secret; the bytes are compared in constant time. */
    if (strlen(h) != AGENT_SECRET_HEX_LEN)
        return false;
    return sodium_memcmp(h, a->secret, AGENT_SECRET_HEX_LEN) == 0;
}

static enum MHD_Result
on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
          const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    Agent *a = cls;
    Req *q = *con_cls;
    if (!q) {
        q = calloc(1, sizeof(*q));
        if (!q)
            return MHD_NO;
        *con_cls = q;
        /* Refused before any body byte is read. */
        if (!authorized(a, conn)) {
            q->answered = true;
            return send_reply(conn, reply_error(NB_ERR_UNAUTHORIZED, "missing or wrong secret"),
                              method, url);
        }
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        uint64_t n;
        if (cl && (str_to_u64(cl, &n) < 0 || n > AGENT_BODY_MAX)) {
            q->answered = true;
            return send_reply(conn, reply_error(NB_ERR_BODY_TOO_LARGE, "the body is over 64 KiB"),
                              method, url);
        }
        return MHD_YES;
    }
    if (q->answered)
        return MHD_YES;
    if (*upload_data_size) {
        size_t add = *upload_data_size;
        *upload_data_size = 0;
        if (q->too_large || q->len + add > AGENT_BODY_MAX) {
            q->too_large = true; /* chunked: read to the end, then refuse */
            return MHD_YES;
        }
        char *b = realloc(q->body, q->len + add + 1);
        if (!b)
            return MHD_NO;
        memcpy(b + q->len, upload_data, add);
        q->body = b;
        q->len += add;
        return MHD_YES;
    }
    q->answered = true;
    if (q->too_large)
        return send_reply(conn, reply_error(NB_ERR_BODY_TOO_LARGE, "the body is over 64 KiB"),
                          method, url);
    pthread_mutex_lock(&a->lock);
    Reply r = route(a, method, url, q);
    pthread_mutex_unlock(&a->lock);
    return send_reply(conn, r, method, url);
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    Req *q = *con_cls;
    if (!q)
        return;
    free(q->body);
    free(q);
    *con_cls = NULL;
}

__attribute__((format(printf, 2, 0))) static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[256];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    size_t n = strlen(buf);
    if (n && buf[n - 1] == '\n')
        buf[n - 1] = '\0';
    log_debug("mhd: %s", buf);
}

/* ---- the check ---- */

static void
reconcile(Agent *a, bool at_start)
{
    pthread_mutex_lock(&a->lock);
    for (size_t i = 0; i < a->state.n_vxlans; i++) {
        const AgentVxlan *v = &a->state.vxlans[i];
        if (!at_start && agent_net_vxlan_intact(a->net, v))
            continue;
        if (!at_start)
            log_warn("VNI %u: bridge, VXLAN device or FDB differs from the state: re-applying",
                     v->vni);
        _cleanup_error_ NbError *err = NULL;
        if (agent_net_vxlan_ensure(a->net, v, &err) < 0)
            log_error("VNI %u: cannot re-apply: %s", v->vni, msg_of(err));
        else if (at_start)
            log_info("VNI %u: applied (bridge %s, %zu peers)", v->vni, v->bridge, v->n_peers);
    }
    for (size_t i = 0; i < a->state.n_vlans; i++) {
        const AgentVlan *v = &a->state.vlans[i];
        if (!at_start && agent_net_vlan_intact(a->net, v))
            continue;
        _cleanup_error_ NbError *err = NULL;
        if (agent_net_vlan_ensure(a->net, v, &err) < 0)
            log_error("VLAN segment %s: cannot re-apply: %s", v->bridge, msg_of(err));
        else
            log_info("VLAN segment %s: applied (id %u on %s)", v->bridge, v->vlan, v->parent);
    }
    for (size_t i = 0; i < a->state.n_shaping; i++) {
        const AgentShaping *s = &a->state.shaping[i];
        if (!agent_net_link_exists(a->net, s->tap) || agent_net_shaping_intact(a->net, s))
            continue;
        log_info("%s: applying shaping (in %u kbit/s, out %u kbit/s)", s->tap, s->in_kbit,
                 s->out_kbit);
        _cleanup_error_ NbError *err = NULL;
        if (agent_net_shaping_apply(a->net, s, &err) < 0)
            log_error("%s: cannot apply shaping: %s", s->tap, msg_of(err));
    }
    /* After the segments: a DHCP server's veth goes into a bridge made above. */
    agent_dhcp_set_check(a->dhcp, at_start);
    if (ipsets_sweep(a)) {
        _cleanup_error_ NbError *err = NULL;
        if (ipsets_commit(a, &err) < 0)
            log_warn("%s", msg_of(err));
    }
    pthread_mutex_unlock(&a->lock);
}

/* ---- start ---- */

static int
parse_listen(const char *s, struct sockaddr_in *ret)
{
    const char *colon = strrchr(s, ':');
    uint64_t port;
    if (!colon || colon == s || (size_t)(colon - s) > 15 || str_to_u64(colon + 1, &port) < 0 ||
        port < 1 || port > 65535)
        return -EINVAL;
    char host[16];
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    uint32_t ip;
    if (agent_ipv4_parse(host, &ip) < 0)
        return -EINVAL;
    *ret = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    ret->sin_addr.s_addr = htonl(ip);
    return 0;
}

static void
usage(FILE *f)
{
    fprintf(
        f, "Usage: nimbus-agent --tls-cert FILE --tls-key FILE --secret-file FILE --state-dir DIR\n"
           "                    [--listen ADDR:PORT] [--check-interval SECONDS]\n"
           "                    [--log-level debug|info|warn|error]\n"
           "Host networking for nimbusd: bridges, VXLAN overlays, tap shaping, DHCP servers and\n"
           "the ipsets of security-group members, over HTTPS.\n"
           "The secret file holds 64 hex characters and must not be readable by group or "
           "others.\n");
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"tls-cert", required_argument, NULL, 'c'},
        {"tls-key", required_argument, NULL, 'k'},
        {"secret-file", required_argument, NULL, 's'},
        {"state-dir", required_argument, NULL, 'd'},
        {"listen", required_argument, NULL, 'l'},
        {"check-interval", required_argument, NULL, 'i'},
        {"log-level", required_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cert = NULL, *key = NULL, *secret_file = NULL, *state_dir = NULL;
    const char *listen_s = "0.0.0.0:8775";
    uint64_t interval = 30;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            cert = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 's':
            secret_file = optarg;
            break;
        case 'd':
            state_dir = optarg;
            break;
        case 'l':
            listen_s = optarg;
            break;
        case 'i':
            if (str_to_u64(optarg, &interval) < 0 || interval < 1 || interval > 3600) {
                fprintf(stderr, "nimbus-agent: --check-interval must be 1..3600\n");
                return 2;
            }
            break;
        case 'v': {
            LogLevel lv;
            if (log_level_from_string(optarg, &lv) < 0) {
                fprintf(stderr, "nimbus-agent: unknown log level %s\n", optarg);
                return 2;
            }
            log_set_level(lv);
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || !cert || !key || !secret_file || !state_dir) {
        usage(stderr);
        return 2;
    }
    struct sockaddr_in addr;
    if (parse_listen(listen_s, &addr) < 0) {
        fprintf(stderr, "nimbus-agent: --listen wants IPV4:PORT, not %s\n", listen_s);
        return 2;
    }
    if (sodium_init() < 0) {
        log_error("libsodium failed to start");
        return 1;
    }

    static Agent a; /* static: the secret stays out of main's frame and is wiped at exit */
    a.state_dir = (char *)state_dir;
    pthread_mutex_init(&a.lock, NULL);
    clock_gettime(CLOCK_MONOTONIC, &a.started);
    int r = agent_secret_load(secret_file, a.secret);
    if (r == -EPERM) {
        log_error("%s: must be a regular file readable by its owner only (chmod 600)", secret_file);
        return 1;
    }
    if (r < 0) {
        log_error("%s: %s", secret_file,
                  r == -EBADMSG ? "must hold exactly 64 hex characters" : strerror(-r));
        return 1;
    }
    _cleanup_free_ char *cert_pem = NULL, *key_pem = NULL;
    size_t len;
    if ((r = read_file_full(cert, AGENT_PEM_MAX, &cert_pem, &len)) < 0 ||
        (r = read_file_full(key, AGENT_PEM_MAX, &key_pem, &len)) < 0) {
        log_error("cannot read the TLS certificate or key: %s", strerror(-r));
        return 1;
    }
    struct stat st;
    if (stat(state_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        log_error("%s: not a directory", state_dir);
        return 1;
    }
    _cleanup_error_ NbError *err = NULL;
    /* The ipsets first: libvirt re-instantiating a filter that names one fails while it is
     * missing (after a reboot, the kernel has none). */
    if ((r = agent_ipsets_load(state_dir, &a.ipsets, &err)) < 0) {
        log_error("cannot load %s/ipsets.json: %s", state_dir, err ? msg_of(err) : strerror(-r));
        return 1;
    }
    a.ipr = agent_ipset_run_new(&err);
    if (!a.ipr) {
        log_error("%s", msg_of(err));
        return 1;
    }
    for (size_t i = 0; i < a.ipsets.n; i++) {
        const AgentIpset *s = &a.ipsets.sets[i];
        if (s->doomed)
            continue;
        if (agent_ipset_run_apply(a.ipr, s, &err) < 0) {
            log_error("ipset %s: cannot restore: %s", s->name, msg_of(err));
            nb_error_free(TAKE_PTR(err));
        }
    }
    if ((r = agent_state_load(state_dir, &a.state, &err)) < 0) {
        /* Never start over an unreadable state: the next write would forget every overlay. */
        log_error("cannot load %s/state.json: %s", state_dir, err ? msg_of(err) : strerror(-r));
        return 1;
    }
    a.net = agent_net_new(&err);
    if (!a.net) {
        log_error("%s", msg_of(err));
        return 1;
    }
    a.dhcp = agent_dhcp_set_load(state_dir, a.net, &err);
    if (!a.dhcp) {
        log_error("%s", msg_of(err));
        return 1;
    }

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* before MHD's thread, which inherits the mask */
    signal(SIGPIPE, SIG_IGN);

    log_info("nimbus-agent %s: %zu VXLANs, %zu VLAN segments, %zu shaped taps, %zu DHCP servers, "
             "%zu ipsets in the state",
             AGENT_VERSION, a.state.n_vxlans, a.state.n_vlans, a.state.n_shaping,
             agent_dhcp_set_count(a.dhcp), a.ipsets.n);
    reconcile(&a, true);

    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_TLS | MHD_USE_ERROR_LOG, 0, NULL,
        NULL, on_access, &a, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_HTTPS_MEM_CERT, cert_pem, MHD_OPTION_HTTPS_MEM_KEY, key_pem,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)AGENT_CONN_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)AGENT_CONN_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_END);
    if (!d) {
        log_error("cannot listen on %s over TLS (address in use, or a bad certificate/key)",
                  listen_s);
        agent_dhcp_set_stop_all(a.dhcp);
        agent_dhcp_set_free(a.dhcp);
        agent_net_free(a.net);
        agent_state_clear(&a.state);
        return 1;
    }
    log_info("listening on https://%s", listen_s);

    struct timespec wait = {.tv_sec = (time_t)interval};
    for (;;) {
        int sig = sigtimedwait(&sigs, NULL, &wait);
        if (sig == SIGTERM || sig == SIGINT) {
            log_info("signal %d: stopping (devices are left in place)", sig);
            break;
        }
        if (sig < 0 && errno == EAGAIN)
            reconcile(&a, false);
    }
    MHD_stop_daemon(d);
    /* DHCP servers are the agent's children: stopped with it, started again by the next one. */
    agent_dhcp_set_stop_all(a.dhcp);
    agent_dhcp_set_free(a.dhcp);
    agent_net_free(a.net);
    agent_state_clear(&a.state);
    agent_ipset_run_free(a.ipr);
    agent_ipsets_clear(&a.ipsets);
    sodium_memzero(a.secret, sizeof(a.secret));
    if (key_pem)
        sodium_memzero(key_pem, strlen(key_pem));
    return 0;
}
