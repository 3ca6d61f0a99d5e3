/*
 * Security groups: the API's operations and the host side of the ports' filters.
 *
 * Three levels of filters on a host (nwfilter_xml.h): a port's (its groups), a group's (its
 * rules) and a remote-group rule's member list. Each is built from the store whenever it is
 * written, never patched: the store is the truth and a rebuild from it is idempotent. A host's
 * filters are written under that host's lock stripe, each after reading the store inside the
 * lock, so the last writer always writes what the store says last. A live update redefines only
 * filters that exist on the host: a VM not plugged yet gets its filters from its own plug, and
 * an unplugged one's are not brought back by an update that read the store before it went. A
 * plug makes what the port's filter references and the host lacks, first; an unplug undefines
 * what no running interface on the host uses any more (libvirt refuses the rest).
 *
 * On a host with a nimbus-agent a remote-group rule of any protocol without ports is an ipset the
 * agent keeps (nwfilter_xml.h; other remote-group rules keep their member filters there):
 * the set is pushed before the group filter that names it is written, a membership change pushes
 * the set (one agent call per host, no filter redefined), and the set goes after the group
 * filter when the group leaves the host. An agent that cannot be reached fails the write like
 * any other agent operation (AGENT_UNAVAILABLE) and the host is caught up later.
 */
#include "secgroup_ops.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../hv/nwfilter_xml.h"
#include "../model/json_req.h"
#include "../model/validate.h"
#include "../util/log.h"
#include "../util/strutil.h"
#include "host_agent.h"

#define SG_LOCK_STRIPES 64
#define SG_DEFAULT_NAME "default"

static pthread_mutex_t sg_locks[SG_LOCK_STRIPES] = {[0 ... SG_LOCK_STRIPES - 1] =
                                                        PTHREAD_MUTEX_INITIALIZER};

static pthread_mutex_t *
sg_lock_for(const char *host)
{
    uint64_t h = 1469598103934665603u;
    for (const char *c = host; *c; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211u;
    return &sg_locks[h % SG_LOCK_STRIPES];
}

/* ---- filters from the store ---- */

/* Whether the host's remote-group rules are ipsets: it has a nimbus-agent that nimbusd is set up
 * to reach (its URL and secret, and nimbusd's agent-ca-file; whether it answers is another
 * matter: AGENT_UNAVAILABLE then). A host the store does not know (yet) has member filters. */
static bool
sg_host_ipsets(Core *core, const char *host)
{
    _cleanup_error_ NbError *err = NULL;
    Host h;
    if (!core->cfg.agent_ca_file || host_store_get(core->store, host, &h, &err) < 0)
        return false;
    bool agent = h.agent_url[0] != '\0' && h.agent_secret[0] != '\0';
    explicit_bzero(h.agent_secret, sizeof(h.agent_secret));
    return agent;
}

/* Whether ip is among skip[0..n). */
static bool
sg_ip_in(uint32_t ip, const uint32_t *skip, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (skip[i] == ip)
            return true;
    return false;
}

/* A remote-group rule's member filter from the store: the remote group's member addresses but
 * those in skip (ports about to be forgotten). NULL with *err. */
static char *
sg_remote_filter_xml(Core *core, const SecRule *r, const uint32_t *skip, size_t n_skip,
                     NbError **err)
{
    _cleanup_free_ uint32_t *ips = NULL;
    size_t n = 0, k = 0;
    if (secgroup_store_member_ips(core->store, r->remote_group, &ips, &n, err) < 0)
        return NULL;
    for (size_t j = 0; j < n; j++)
        if (!sg_ip_in(ips[j], skip, n_skip))
            ips[k++] = ips[j];
    char name[NWFILTER_NAME_MAX + 1];
    nwfilter_remote_name(r->id, name);
    char *xml = nwfilter_xml_build_remote(name, NULL, r, ips, k);
    if (!xml)
        nb_error_set(err, NB_ERR_INTERNAL, "cannot build the member filter of rule %s", r->id);
    return xml;
}

/* Writes a filter on a host; the caller holds the host's lock. only_if_present: a live update,
 * which rewrites it where it is and makes it nowhere else. Otherwise it is made when absent (a
 * filter about to be written references it) and left as it is when present (live updates keep
 * it current). build: its XML from the store, called only when it is to be written. */
typedef char *(*SgBuildFn)(Core *core, const void *what, const uint32_t *skip, size_t n_skip,
                           NbError **err);

static int
sg_write_locked(Core *core, HvConn *hv, const char *name, bool only_if_present, SgBuildFn build,
                const void *what, const uint32_t *skip, size_t n_skip, NbError **err)
{
    char uuid[NB_UUID_STRLEN];
    int present = hv_nwfilter_uuid(hv, name, uuid, err);
    if (present < 0)
        return -1;
    if (present != (int)only_if_present)
        return 0;
    _cleanup_free_ char *xml = build(core, what, skip, n_skip, err);
    return xml ? hv_nwfilter_define(hv, name, xml, err) : -1;
}

static char *
sg_remote_build(Core *core, const void *rule, const uint32_t *skip, size_t n_skip, NbError **err)
{
    return sg_remote_filter_xml(core, rule, skip, n_skip, err);
}

static int
sg_remote_write_locked(Core *core, HvConn *hv, const SecRule *r, bool only_if_present,
                       const uint32_t *skip, size_t n_skip, NbError **err)
{
    char name[NWFILTER_NAME_MAX + 1];
    nwfilter_remote_name(r->id, name);
    return sg_write_locked(core, hv, name, only_if_present, sg_remote_build, r, skip, n_skip, err);
}

/* Pushes a remote-group rule's ipset to the host's agent from the store: the remote group's
 * member addresses but those in skip. The caller holds the host's lock. */
static int
sg_ipset_push_locked(Core *core, const char *host, const SecRule *r, const uint32_t *skip,
                     size_t n_skip, NbError **err)
{
    _cleanup_free_ uint32_t *ips = NULL;
    size_t n = 0, k = 0;
    if (secgroup_store_member_ips(core->store, r->remote_group, &ips, &n, err) < 0)
        return -1;
    for (size_t j = 0; j < n; j++)
        if (!sg_ip_in(ips[j], skip, n_skip))
            ips[k++] = ips[j];
    char set[NWFILTER_IPSET_NAME_MAX + 1];
    nwfilter_ipset_name(r->id, set);
    AgentClient *c = NULL;
    if (host_agent_client(core, host, &c, err) < 0)
        return -1;
    int ret = agent_ipset_set(c, set, ips, k, err);
    agent_client_free(c);
    return ret;
}

/* Removes a remote-group rule's ipset from the host's agent, once no filter there names it. A
 * failure is logged: a set left behind only costs memory, and goes with the next removal. */
static void
sg_ipset_remove_locked(Core *core, const char *host, const SecRule *r)
{
    _cleanup_error_ NbError *err = NULL;
    char set[NWFILTER_IPSET_NAME_MAX + 1];
    nwfilter_ipset_name(r->id, set);
    AgentClient *c = NULL;
    if (host_agent_client(core, host, &c, &err) < 0 || agent_ipset_remove(c, set, &err) < 0)
        log_warn("ipset %s left on host %s: %s", set, host, err->message);
    agent_client_free(c);
}

/* A group's filter: its rules (from the store), with ipsets or member filters. */
static char *
sg_group_build(const char *group_id, const SecRule *rules, size_t n, bool ipsets, NbError **err)
{
    char name[NWFILTER_NAME_MAX + 1];
    nwfilter_group_name(group_id, name);
    char *xml = nwfilter_xml_build_group(name, NULL, rules, n, ipsets);
    if (!xml)
        nb_error_set(err, NB_ERR_INTERNAL, "cannot build the filter of security group %s",
                     (const char *)group_id);
    return xml;
}

/* Writes a group's filter on a host (the caller holds its lock), after the member filters of its
 * remote-group rules that the host lacks, or on a host with an agent after pushing their ipsets.
 * only_if_present as for sg_write_locked. */
static int
sg_group_write_locked(Core *core, const char *host, HvConn *hv, const char *group_id,
                      bool only_if_present, NbError **err)
{
    char name[NWFILTER_NAME_MAX + 1], uuid[NB_UUID_STRLEN];
    nwfilter_group_name(group_id, name);
    int present = hv_nwfilter_uuid(hv, name, uuid, err);
    if (present < 0)
        return -1;
    if (present != (int)only_if_present)
        return 0;
    _cleanup_free_ SecRule *rules = NULL;
    size_t n = 0;
    if (secgroup_store_rules(core->store, group_id, &rules, &n, err) < 0)
        return -1;
    bool ipsets = sg_host_ipsets(core, host);
    for (size_t i = 0; i < n; i++)
        if (rules[i].remote_group[0] &&
            (ipsets && nwfilter_remote_uses_ipset(&rules[i])
                 ? sg_ipset_push_locked(core, host, &rules[i], NULL, 0, err)
                 : sg_remote_write_locked(core, hv, &rules[i], false, NULL, 0, err)) < 0)
            return -1;
    /* Its presence was looked at above: build and define it now. */
    _cleanup_free_ char *xml = sg_group_build(group_id, rules, n, ipsets, err);
    return xml ? hv_nwfilter_define(hv, name, xml, err) : -1;
}

/* Undefines a filter on a host, under the host's lock. */
static int
sg_undefine(const char *host, HvConn *hv, const char *name, NbError **err)
{
    pthread_mutex_t *lock = sg_lock_for(host);
    pthread_mutex_lock(lock);
    int r = hv_nwfilter_undefine(hv, name, err);
    pthread_mutex_unlock(lock);
    return r;
}

/* Undefines a deleted remote-group rule's member filter on a host (its group's filter no longer
 * references it). */
static void
sg_remote_forget_on(Core *core, const char *host, HvConn *hv, const void *rule)
{
    _cleanup_error_ NbError *err = NULL;
    char name[NWFILTER_NAME_MAX + 1];
    nwfilter_remote_name(((const SecRule *)rule)->id, name);
    if (sg_undefine(host, hv, name, &err) < 0)
        log_warn("nwfilter %s left on host %s: %s", name, host, err->message);
    if (nwfilter_remote_uses_ipset(rule) && sg_host_ipsets(core, host)) {
        pthread_mutex_t *lock = sg_lock_for(host);
        pthread_mutex_lock(lock);
        sg_ipset_remove_locked(core, host, rule);
        pthread_mutex_unlock(lock);
    }
}

/* Undefines these groups' filters on a host, then their remote-group rules' member filters, once
 * no port of the group is on a VM placed there but leaving_vm's (the VM whose NICs just went).
 * The store says so, under the host's lock: a VM placed on the host has its row there before its
 * plug, which makes the filters again under the same lock if they went, so a create racing a
 * delete in the same group never starts with a filter missing. libvirt refuses as well to
 * undefine a filter a running interface uses. */
static void
sg_forget_groups(Core *core, const char *host, HvConn *hv, const SecGroup *groups, size_t n,
                 const char *leaving_vm)
{
    pthread_mutex_t *lock = sg_lock_for(host);
    for (size_t g = 0; g < n; g++) {
        _cleanup_error_ NbError *err = NULL;
        _cleanup_free_ SecRule *rules = NULL;
        size_t n_rules = 0;
        char name[NWFILTER_NAME_MAX + 1];
        nwfilter_group_name(groups[g].id, name);
        pthread_mutex_lock(lock);
        int used = secgroup_store_group_on_host(core->store, groups[g].id, host, leaving_vm, &err);
        if (used != 0) {
            pthread_mutex_unlock(lock);
            if (used < 0)
                log_warn("security group %s: filters kept on host %s: %s", groups[g].id, host,
                         err->message);
            continue;
        }
        if (hv_nwfilter_undefine(hv, name, &err) < 0 ||
            secgroup_store_rules(core->store, groups[g].id, &rules, &n_rules, &err) < 0) {
            pthread_mutex_unlock(lock);
            log_debug("nwfilter %s kept on host %s: %s", name, host, err->message);
            continue; /* in use: so are its member filters */
        }
        bool ipsets = sg_host_ipsets(core, host);
        for (size_t i = 0; i < n_rules; i++) {
            if (!rules[i].remote_group[0])
                continue;
            nwfilter_remote_name(rules[i].id, name);
            if (hv_nwfilter_undefine(hv, name, &err) < 0) {
                log_debug("nwfilter %s kept on host %s: %s", name, host, err->message);
                nb_error_free(TAKE_PTR(err));
            }
            /* After the group filter that named it. */
            if (ipsets && nwfilter_remote_uses_ipset(&rules[i]))
                sg_ipset_remove_locked(core, host, &rules[i]);
        }
        pthread_mutex_unlock(lock);
    }
}

const char *
secgroup_ops_filter_name(HvConn *hv, const Port *p, char *out)
{
    if (!hv || hv_conn_is_simulated(hv))
        return NULL;
    nwfilter_port_name(p->id, out);
    return out;
}

/* Writes p's filter on a host, under its lock, after the group and member filters it references
 * that the host lacks. only_if_present: a live update, which must not make a filter its port's
 * NIC no longer needs. */
static int
sg_filter_write(Core *core, const char *host, HvConn *hv, const Port *p, bool only_if_present,
                NbError **err)
{
    char name[NWFILTER_NAME_MAX + 1], uuid[NB_UUID_STRLEN];
    nwfilter_port_name(p->id, name);
    pthread_mutex_t *lock = sg_lock_for(host);
    pthread_mutex_lock(lock);
    int r = 0;
    if (only_if_present)
        r = hv_nwfilter_uuid(hv, name, uuid, err);
    if (r == 1 || (!only_if_present && r == 0)) {
        _cleanup_free_ SecGroup *groups = NULL;
        size_t n = 0;
        const char *ids[SECGROUP_OPS_PORT_GROUPS_MAX];
        r = secgroup_store_port_groups(core->store, p->id, &groups, &n, err);
        if (r >= 0 && n > ELEMENTSOF(ids))
            r = nb_error_set(err, NB_ERR_INTERNAL, "port %s: %zu security groups", p->id, n);
        for (size_t i = 0; i < n && r >= 0; i++) {
            ids[i] = groups[i].id;
            r = sg_group_write_locked(core, host, hv, groups[i].id, false, err);
        }
        if (r >= 0) {
            NwFilterSpec spec = {.name = name, .groups = ids, .n_groups = n};
            _cleanup_free_ char *xml = nwfilter_xml_build(&spec);
            r = xml ? hv_nwfilter_define(hv, name, xml, err)
                    : nb_error_set(err, NB_ERR_INTERNAL, "cannot build the filter of port %s",
                                   p->id);
        }
    }
    pthread_mutex_unlock(lock);
    return r < 0 ? -1 : 0;
}

/* ---- live updates ---- */

typedef char SgHost[NB_NAME_MAX + 1];

/* The hosts that missed a live update (down then, or the update failed there): caught up when
 * they connect again (secgroup_ops_host_up). Kept in <state-dir>/sg-stale-hosts too, one name a
 * line, so that a restart of nimbusd before the host comes back forgets nothing; loaded at the
 * first use. */
static pthread_mutex_t sg_stale_lock = PTHREAD_MUTEX_INITIALIZER;
static SgHost *sg_stale;
static size_t sg_n_stale;
static bool sg_stale_loaded;

/* With sg_stale_lock held. */
static bool
sg_stale_add_locked(const char *host)
{
    for (size_t i = 0; i < sg_n_stale; i++)
        if (streq(sg_stale[i], host))
            return true;
    SgHost *grown = realloc(sg_stale, (sg_n_stale + 1) * sizeof(*sg_stale));
    if (!grown)
        return false;
    sg_stale = grown;
    snprintf(sg_stale[sg_n_stale++], sizeof(SgHost), "%s", host);
    return true;
}

/* With sg_stale_lock held: the list from the file, once. */
static void
sg_stale_load_locked(Core *core)
{
    if (sg_stale_loaded)
        return;
    sg_stale_loaded = true;
    _cleanup_free_ char *path = str_printf("%s/sg-stale-hosts", core->cfg.state_dir);
    FILE *f = path ? fopen(path, "re") : NULL;
    if (!f)
        return;
    char line[sizeof(SgHost) + 2];
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (nb_name_is_valid(line) && !sg_stale_add_locked(line))
            break;
    }
    fclose(f);
}

/* With sg_stale_lock held: the file from the list (a new file renamed over the old one). */
static void
sg_stale_save_locked(Core *core)
{
    _cleanup_free_ char *path = str_printf("%s/sg-stale-hosts", core->cfg.state_dir);
    _cleanup_free_ char *tmp = str_printf("%s/sg-stale-hosts.tmp", core->cfg.state_dir);
    FILE *f = path && tmp ? fopen(tmp, "we") : NULL;
    bool ok = f != NULL;
    for (size_t i = 0; ok && i < sg_n_stale; i++)
        ok = fprintf(f, "%s\n", sg_stale[i]) > 0;
    if (f && fclose(f) != 0)
        ok = false;
    if (!ok || rename(tmp, path) < 0)
        log_error("cannot record the hosts whose filters are behind in %s: %s",
                  path ? path : "the state dir", strerror(errno));
}

static void
sg_stale_mark(Core *core, const char *host)
{
    pthread_mutex_lock(&sg_stale_lock);
    sg_stale_load_locked(core);
    size_t before = sg_n_stale;
    if (!sg_stale_add_locked(host))
        log_error("host %s: cannot remember that its filters are behind (out of memory)", host);
    if (sg_n_stale != before)
        sg_stale_save_locked(core);
    pthread_mutex_unlock(&sg_stale_lock);
}

/* Whether host was marked stale; the mark is taken off. */
static bool
sg_stale_take(Core *core, const char *host)
{
    pthread_mutex_lock(&sg_stale_lock);
    sg_stale_load_locked(core);
    bool found = false;
    for (size_t i = 0; i < sg_n_stale && !found; i++) {
        if (streq(sg_stale[i], host)) {
            found = true;
            memcpy(sg_stale[i], sg_stale[--sg_n_stale], sizeof(SgHost));
        }
    }
    if (found)
        sg_stale_save_locked(core);
    pthread_mutex_unlock(&sg_stale_lock);
    return found;
}

/* A host's connection for a live update, or NULL (down: logged and marked stale; simulated: no
 * filters). */
static HvConn *
sg_conn(Core *core, const char *host, const char *what)
{
    HvConn *hv = host_registry_conn(core, host);
    if (!hv) {
        log_warn("%s: host %s is down; its filters are rewritten when it connects again", what,
                 host);
        sg_stale_mark(core, host);
    }
    if (hv && hv_conn_is_simulated(hv)) {
        hv_conn_free(hv);
        return NULL;
    }
    return hv;
}

/* The hosts that may have the group's filter (those of its ports), and their connections: calls
 * fn for each host that is up. */
typedef void (*SgHostFn)(Core *core, const char *host, HvConn *hv, const void *arg);

static void
sg_for_group_hosts(Core *core, const char *group_id, SgHostFn fn, const void *arg)
{
    _cleanup_error_ NbError *err = NULL;
    _cleanup_free_ SgHost *hosts = NULL;
    size_t n_hosts = 0;
    if (secgroup_store_group_hosts(core->store, group_id, &hosts, &n_hosts, &err) < 0) {
        log_warn("security group %s: filters not updated: %s", group_id, err->message);
        return;
    }
    for (size_t h = 0; h < n_hosts; h++) {
        HvConn *hv = sg_conn(core, hosts[h], group_id);
        if (hv)
            fn(core, hosts[h], hv, arg);
        hv_conn_free(hv);
    }
}

/* Rebuilds the filters of these ports where they exist, host by host (a VM's host), after their
 * groups changed. */
static void
sg_refresh_ports(Core *core, const Port *ports, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        _cleanup_error_ NbError *err = NULL;
        Vm vm;
        if (vm_store_get(core->store, NULL, ports[i].vm_id, &vm, &err) < 0)
            continue;
        HvConn *hv = vm.host[0] ? sg_conn(core, vm.host, ports[i].id) : NULL;
        if (hv && sg_filter_write(core, vm.host, hv, &ports[i], true, &err) < 0) {
            log_warn("port %s: filter not updated on host %s: %s", ports[i].id, vm.host,
                     err->message);
            sg_stale_mark(core, vm.host);
        }
        hv_conn_free(hv);
        vm_clear(&vm);
    }
}

static void
sg_group_refresh_on(Core *core, const char *host, HvConn *hv, const void *group_id)
{
    _cleanup_error_ NbError *err = NULL;
    pthread_mutex_t *lock = sg_lock_for(host);
    pthread_mutex_lock(lock);
    if (sg_group_write_locked(core, host, hv, group_id, true, &err) < 0) {
        log_warn("security group %s: filter not updated on host %s: %s", (const char *)group_id,
                 host, err->message);
        sg_stale_mark(core, host);
    }
    pthread_mutex_unlock(lock);
}

/* A rule of the group was added or deleted: the group's filter on each host that has it. */
static void
sg_refresh_group(Core *core, const char *group_id)
{
    uint64_t t0 = nb_monotonic_ms();
    sg_for_group_hosts(core, group_id, sg_group_refresh_on, group_id);
    log_info("security group %s: rules changed, its filters rewritten in %ju ms", group_id,
             (uintmax_t)(nb_monotonic_ms() - t0));
}

typedef struct SgRemoteArg {
    const SecRule *rule;
    const uint32_t *skip;
    size_t n_skip;
} SgRemoteArg;

static void
sg_remote_refresh_on(Core *core, const char *host, HvConn *hv, const void *arg)
{
    const SgRemoteArg *a = arg;
    _cleanup_error_ NbError *err = NULL;
    bool ipsets = nwfilter_remote_uses_ipset(a->rule) && sg_host_ipsets(core, host);
    pthread_mutex_t *lock = sg_lock_for(host);
    pthread_mutex_lock(lock);
    /* With an agent: the set, where the group filter naming it is (a host it left keeps none);
     * and a member filter only if one is left from before the agent. */
    char gname[NWFILTER_NAME_MAX + 1], uuid[NB_UUID_STRLEN];
    nwfilter_group_name(a->rule->group_id, gname);
    int present = ipsets ? hv_nwfilter_uuid(hv, gname, uuid, &err) : 0;
    if (present < 0 ||
        (present == 1 && sg_ipset_push_locked(core, host, a->rule, a->skip, a->n_skip, &err) < 0) ||
        sg_remote_write_locked(core, hv, a->rule, true, a->skip, a->n_skip, &err) < 0) {
        log_warn("rule %s: members not updated on host %s: %s", a->rule->id, host, err->message);
        sg_stale_mark(core, host);
    }
    pthread_mutex_unlock(lock);
}

/* The group's members changed (or are about to: skip holds the addresses of ports about to be
 * forgotten): rewrites the member filter of every rule naming it as remote group, once per host
 * that has it (the hosts of the rule's own group's ports). */
static void
sg_refresh_remote(Core *core, const char *group_id, const uint32_t *skip, size_t n_skip)
{
    _cleanup_error_ NbError *err = NULL;
    _cleanup_free_ SecRule *rules = NULL;
    size_t n_rules = 0;
    uint64_t t0 = nb_monotonic_ms();
    if (secgroup_store_rules_naming(core->store, group_id, &rules, &n_rules, &err) < 0) {
        log_warn("security group %s: member filters not updated: %s", group_id, err->message);
        return;
    }
    for (size_t i = 0; i < n_rules; i++) {
        SgRemoteArg a = {&rules[i], skip, n_skip};
        sg_for_group_hosts(core, rules[i].group_id, sg_remote_refresh_on, &a);
    }
    if (n_rules > 0)
        log_info("security group %s: members changed, %zu member filter%s rewritten in %ju ms",
                 group_id, n_rules, n_rules == 1 ? "" : "s", (uintmax_t)(nb_monotonic_ms() - t0));
}

/* These ports are new in their groups (or leave them: skip holds their addresses): the member
 * filters naming those groups. */
static void
sg_refresh_dependents(Core *core, const Port *ports, size_t n, const uint32_t *skip, size_t n_skip)
{
    char seen[SECGROUP_OPS_PORT_GROUPS_MAX * VM_NICS_MAX][NB_UUID_STRLEN];
    size_t n_seen = 0;
    for (size_t i = 0; i < n; i++) {
        _cleanup_error_ NbError *err = NULL;
        _cleanup_free_ SecGroup *groups = NULL;
        size_t n_groups = 0;
        if (secgroup_store_port_groups(core->store, ports[i].id, &groups, &n_groups, &err) < 0) {
            log_warn("port %s: %s", ports[i].id, err->message);
            continue;
        }
        for (size_t g = 0; g < n_groups; g++) {
            bool done = false;
            for (size_t j = 0; j < n_seen && !done; j++)
                done = streq(seen[j], groups[g].id);
            if (done)
                continue;
            if (n_seen < ELEMENTSOF(seen))
                memcpy(seen[n_seen++], groups[g].id, NB_UUID_STRLEN);
            sg_refresh_remote(core, groups[g].id, skip, n_skip);
        }
    }
}

void
secgroup_ops_unplug(Core *core, const char *host, HvConn *hv, const Port *ports, size_t n,
                    bool leaving)
{
    if (!hv || hv_conn_is_simulated(hv))
        return;
    for (size_t i = 0; i < n; i++) {
        _cleanup_error_ NbError *err = NULL;
        char name[NWFILTER_NAME_MAX + 1];
        nwfilter_port_name(ports[i].id, name);
        /* A filter left behind is harmless (nothing references it) and goes with the next
         * unplug or delete of its port: it must not fail the VM's delete. */
        if (sg_undefine(host, hv, name, &err) < 0)
            log_warn("port %s: filter %s left on host %s: %s", ports[i].id, name, host,
                     err->message);
        /* The group and member filters only it used on this host. */
        _cleanup_free_ SecGroup *groups = NULL;
        size_t n_groups = 0;
        if (secgroup_store_port_groups(core->store, ports[i].id, &groups, &n_groups, &err) == 0)
            sg_forget_groups(core, host, hv, groups, n_groups, ports[i].vm_id);
    }
    if (!leaving)
        return;
    uint32_t skip[VM_NICS_MAX];
    size_t n_skip = 0;
    for (size_t i = 0; i < n && n_skip < VM_NICS_MAX; i++)
        skip[n_skip++] = ports[i].ip;
    sg_refresh_dependents(core, ports, n, skip, n_skip);
}

int
secgroup_ops_plug(Core *core, const char *host, HvConn *hv, const Port *ports, size_t n,
                  NbError **err)
{
    if (hv_conn_is_simulated(hv))
        return 0;
    /* A port new on this host (create, NIC add, migration) changes the member lists of its
     * groups: the member filters naming them are rewritten first, so that a crash before the
     * port's own filter exists finds it still absent here and does this again. */
    bool fresh = false;
    for (size_t i = 0; i < n && !fresh; i++) {
        char name[NWFILTER_NAME_MAX + 1], uuid[NB_UUID_STRLEN];
        nwfilter_port_name(ports[i].id, name);
        int r = hv_nwfilter_uuid(hv, name, uuid, err);
        if (r < 0)
            return -1;
        fresh = r == 0;
    }
    if (fresh)
        sg_refresh_dependents(core, ports, n, NULL, 0);
    for (size_t i = 0; i < n; i++)
        if (sg_filter_write(core, host, hv, &ports[i], false, err) < 0)
            return -1;
    return 0;
}

/* ---- catching a host up ---- */

typedef char SgId[NB_UUID_STRLEN];

/* Appends the rules of ipset form among rules[0..n) to *list. */
static int
sg_ipset_rules_add(SecRule **list, size_t *n_list, const SecRule *rules, size_t n, NbError **err)
{
    for (size_t i = 0; i < n; i++) {
        if (!nwfilter_remote_uses_ipset(&rules[i]))
            continue;
        SecRule *grown = realloc(*list, (*n_list + 1) * sizeof(**list));
        if (!grown)
            return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
        *list = grown;
        (*list)[(*n_list)++] = rules[i];
    }
    return 0;
}

/* One group's filters on a host where it has them (its lock taken here); 1 when its filter was
 * rewritten. full (the host missed live updates): its member filters and its filter are
 * rewritten. Otherwise only a filter whose form is not the host's (ipsets with an agent, member
 * filters without: an agent or nimbusd's agent-ca-file added or removed since it was written),
 * which the member filter of a rule of ipset form tells: present where the host has an agent
 * (left from before it), absent where it has none. With an agent the member filters of such
 * rules go after (nothing names them). The group's rules of ipset form are appended to *sets
 * when its filter is on the host. */
static int
sg_group_catch_up(Core *core, const char *host, HvConn *hv, const char *group_id, bool full,
                  SecRule **sets, size_t *n_sets, NbError **err)
{
    _cleanup_free_ SecRule *rules = NULL;
    size_t n = 0;
    if (secgroup_store_rules(core->store, group_id, &rules, &n, err) < 0)
        return -1;
    bool ipsets = sg_host_ipsets(core, host);
    char name[NWFILTER_NAME_MAX + 1], uuid[NB_UUID_STRLEN];
    pthread_mutex_t *lock = sg_lock_for(host);
    pthread_mutex_lock(lock);
    nwfilter_group_name(group_id, name);
    int present = hv_nwfilter_uuid(hv, name, uuid, err), r = present < 0 ? -1 : 0;
    bool rewrite = full;
    for (size_t i = 0; i < n && present == 1 && !rewrite && r == 0; i++) {
        if (!nwfilter_remote_uses_ipset(&rules[i]))
            continue;
        nwfilter_remote_name(rules[i].id, name);
        int member = hv_nwfilter_uuid(hv, name, uuid, err);
        r = member < 0 ? -1 : 0;
        rewrite = member == (int)ipsets;
    }
    rewrite = rewrite && present == 1 && r == 0;
    for (size_t i = 0; i < n && rewrite && r == 0; i++)
        if (rules[i].remote_group[0] && !(ipsets && nwfilter_remote_uses_ipset(&rules[i])))
            r = sg_remote_write_locked(core, hv, &rules[i], true, NULL, 0, err);
    /* With an agent, this pushes the sets first. */
    if (rewrite && r == 0)
        r = sg_group_write_locked(core, host, hv, group_id, true, err);
    for (size_t i = 0; i < n && rewrite && r == 0 && ipsets; i++) {
        if (!nwfilter_remote_uses_ipset(&rules[i]))
            continue;
        _cleanup_error_ NbError *e = NULL;
        nwfilter_remote_name(rules[i].id, name);
        if (hv_nwfilter_undefine(hv, name, &e) < 0)
            log_warn("nwfilter %s left on host %s: %s", name, host, e->message);
    }
    pthread_mutex_unlock(lock);
    if (r == 0 && ipsets && present == 1)
        r = sg_ipset_rules_add(sets, n_sets, rules, n, err);
    return r < 0 ? -1 : rewrite;
}

/* Whether the store's members of r's remote group are the agent's set s (NULL: none), and
 * pushes them when not. The caller holds the host's lock. */
static int
sg_ipset_sync_one(Core *core, AgentClient *c, const SecRule *r, const AgentIpsetInfo *s,
                  size_t *pushed, NbError **err)
{
    _cleanup_free_ uint32_t *ips = NULL;
    size_t n = 0;
    if (secgroup_store_member_ips(core->store, r->remote_group, &ips, &n, err) < 0)
        return -1;
    /* Both ascending without repeats (the agent keeps its members sorted). */
    bool same = s && !s->doomed && s->n_members == n;
    for (size_t i = 0; same && i < n; i++)
        same = s->members[i] == ips[i];
    if (same)
        return 0;
    char set[NWFILTER_IPSET_NAME_MAX + 1];
    nwfilter_ipset_name(r->id, set);
    if (agent_ipset_set(c, set, ips, n, err) < 0)
        return -1;
    (*pushed)++;
    return 0;
}

/* Every rule of ipset form, of every group (the store's): appended to *ret. */
static int
sg_ipset_rules_all(Core *core, SecRule **ret, size_t *ret_n, NbError **err)
{
    SecGroup *groups = NULL;
    size_t n = 0;
    if (secgroup_store_list(core->store, NULL, &groups, &n, err) < 0)
        return -1;
    int r = 0;
    for (size_t g = 0; g < n && r == 0; g++) {
        _cleanup_free_ SecRule *rules = NULL;
        size_t n_rules = 0;
        r = secgroup_store_rules(core->store, groups[g].id, &rules, &n_rules, err) < 0 ||
                    sg_ipset_rules_add(ret, ret_n, rules, n_rules, err) < 0
                ? -1
                : 0;
    }
    secgroup_list_free(groups, n);
    return r;
}

/* The host's sets in its agent against the store, under the host's lock: each set a group
 * filter there names (rules[0..n), the rules of ipset form of its VMs' groups) is pushed where
 * the agent lacks it or holds other members (restarted with a lost or old state, or a push
 * that failed); every other set the agent lists (nbs- and 24 hex: the agent keeps no other)
 * is removed, unless a rule of a group whose filter is on the host names it (a group of a VM
 * migrating here, whose row still names the source). So a set left by a crash between a group
 * filter's (or a rule's) removal and its own goes too. */
static int
sg_ipsets_sync(Core *core, const char *host, HvConn *hv, const SecRule *rules, size_t n,
               size_t *pushed, size_t *removed, NbError **err)
{
    AgentClient *c = NULL;
    AgentIpsetInfo *sets = NULL;
    size_t n_sets = 0, n_all = 0;
    _cleanup_free_ SecRule *all = NULL;
    _cleanup_free_ bool *kept = NULL;
    bool all_loaded = false;
    char set[NWFILTER_IPSET_NAME_MAX + 1], name[NWFILTER_NAME_MAX + 1], uuid[NB_UUID_STRLEN];
    pthread_mutex_t *lock = sg_lock_for(host);
    pthread_mutex_lock(lock);
    int r = host_agent_client(core, host, &c, err);
    if (r == 0)
        r = agent_ipset_list(c, &sets, &n_sets, err);
    if (r == 0 && !(kept = calloc(n_sets ? n_sets : 1, sizeof(*kept))))
        r = nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    for (size_t pass = 0; pass < 2 && r == 0; pass++) {
        /* Pass 0: the host's groups' rules; pass 1: the agent's other sets. */
        for (size_t i = 0; i < (pass ? n_sets : n) && r == 0; i++) {
            const SecRule *rule = pass ? NULL : &rules[i];
            if (pass && (kept[i] || sets[i].doomed))
                continue;
            if (pass && !all_loaded) {
                all_loaded = true;
                if ((r = sg_ipset_rules_all(core, &all, &n_all, err)) < 0)
                    break;
            }
            for (size_t k = 0; pass && k < n_all && !rule; k++) {
                nwfilter_ipset_name(all[k].id, set);
                rule = streq(set, sets[i].name) ? &all[k] : NULL;
            }
            int present = 0;
            if (rule) {
                nwfilter_group_name(rule->group_id, name);
                present = hv_nwfilter_uuid(hv, name, uuid, err);
            }
            if (present < 0) {
                r = -1;
            } else if (present == 0 && pass) {
                if (agent_ipset_remove(c, sets[i].name, err) < 0)
                    r = -1;
                else {
                    log_info("host %s: ipset %s removed (no filter there names it)", host,
                             sets[i].name);
                    (*removed)++;
                }
            } else if (present == 1) {
                nwfilter_ipset_name(rule->id, set);
                const AgentIpsetInfo *s = NULL;
                for (size_t k = 0; k < n_sets && !s; k++)
                    if (streq(sets[k].name, set)) {
                        s = &sets[k];
                        kept[k] = true;
                    }
                r = sg_ipset_sync_one(core, c, rule, s, pushed, err);
            }
        }
    }
    pthread_mutex_unlock(lock);
    agent_ipset_list_free(sets, n_sets);
    agent_client_free(c);
    return r;
}

/* Catches a host up from the store: the groups of its VMs' ports (sg_group_catch_up; full: the
 * port filters too), then with an agent its sets (sg_ipsets_sync). */
static int
sg_host_catch_up(Core *core, const char *host, HvConn *hv, bool full, NbError **err)
{
    uint64_t t0 = nb_monotonic_ms();
    Vm *vms = NULL;
    size_t n_vms = 0, n_ports = 0, n_seen = 0, n_sets = 0, n_rewritten = 0;
    size_t pushed = 0, removed = 0;
    _cleanup_free_ SgId *seen = NULL;
    _cleanup_free_ SecRule *sets = NULL;
    bool ok = vm_store_list_by_host(core->store, host, &vms, &n_vms, err) == 0;
    for (size_t v = 0; ok && v < n_vms; v++) {
        _cleanup_free_ Port *ports = NULL;
        size_t n = 0;
        ok = port_store_list_by_vm(core->store, vms[v].id, &ports, &n, err) == 0;
        for (size_t i = 0; ok && i < n; i++) {
            _cleanup_free_ SecGroup *groups = NULL;
            size_t n_groups = 0;
            ok = secgroup_store_port_groups(core->store, ports[i].id, &groups, &n_groups, err) == 0;
            for (size_t g = 0; ok && g < n_groups; g++) {
                bool done = false;
                for (size_t j = 0; j < n_seen && !done; j++)
                    done = streq(seen[j], groups[g].id);
                if (done)
                    continue;
                SgId *grown = realloc(seen, (n_seen + 1) * sizeof(*seen));
                if (!grown) {
                    nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
                    ok = false;
                    break;
                }
                seen = grown;
                memcpy(seen[n_seen++], groups[g].id, NB_UUID_STRLEN);
                int r = sg_group_catch_up(core, host, hv, groups[g].id, full, &sets, &n_sets, err);
                ok = r >= 0;
                n_rewritten += r > 0;
            }
            /* The port's own filter last: it names its groups' filters. */
            if (full) {
                ok = ok && sg_filter_write(core, host, hv, &ports[i], true, err) == 0;
                n_ports += ok;
            }
        }
    }
    vm_list_free(vms, n_vms);
    if (ok && sg_host_ipsets(core, host))
        ok = sg_ipsets_sync(core, host, hv, sets, n_sets, &pushed, &removed, err) == 0;
    if (!ok)
        return -1;
    if (full)
        log_info("host %s: security-group filters caught up after it was away (%zu groups, %zu "
                 "ports, %zu ipsets pushed, %zu removed, %ju ms)",
                 host, n_seen, n_ports, pushed, removed, (uintmax_t)(nb_monotonic_ms() - t0));
    else if (n_rewritten || pushed || removed)
        log_info("host %s: security groups caught up (%zu of %zu group filters rewritten in the "
                 "host's form, %zu ipsets pushed, %zu removed, %ju ms)",
                 host, n_rewritten, n_seen, pushed, removed, (uintmax_t)(nb_monotonic_ms() - t0));
    return 0;
}

/* What the housekeeping rounds know of each host (secgroup_ops_agents_watch): whether it was
 * caught up since nimbusd started or its agent last failed, and its agent's start. */
typedef struct SgAgentSeen {
    SgHost host;
    bool caught_up;
    bool answering;
    int64_t started_s; /* the agent's start on nimbusd's monotonic clock; -1: unknown */
} SgAgentSeen;

static pthread_mutex_t sg_seen_lock = PTHREAD_MUTEX_INITIALIZER;
static SgAgentSeen *sg_seen;
static size_t sg_n_seen;

/* With sg_seen_lock held: the host's entry, made if missing (NULL on out-of-memory). */
static SgAgentSeen *
sg_seen_get_locked(const char *host)
{
    for (size_t i = 0; i < sg_n_seen; i++)
        if (streq(sg_seen[i].host, host))
            return &sg_seen[i];
    SgAgentSeen *grown = realloc(sg_seen, (sg_n_seen + 1) * sizeof(*sg_seen));
    if (!grown)
        return NULL;
    sg_seen = grown;
    SgAgentSeen *s = &sg_seen[sg_n_seen++];
    *s = (SgAgentSeen){.answering = true, .started_s = -1};
    snprintf(s->host, sizeof(s->host), "%s", host);
    return s;
}

static void
sg_seen_set_caught_up(const char *host, bool caught_up)
{
    pthread_mutex_lock(&sg_seen_lock);
    SgAgentSeen *s = sg_seen_get_locked(host);
    if (s)
        s->caught_up = caught_up;
    pthread_mutex_unlock(&sg_seen_lock);
}

/* With sg_stale_lock free: whether host is marked stale (the mark stays). */
static bool
sg_stale_has(Core *core, const char *host)
{
    pthread_mutex_lock(&sg_stale_lock);
    sg_stale_load_locked(core);
    bool found = false;
    for (size_t i = 0; i < sg_n_stale && !found; i++)
        found = streq(sg_stale[i], host);
    pthread_mutex_unlock(&sg_stale_lock);
    return found;
}

/* Catches the host up (in full when it was marked stale), and says how it went. */
static void
sg_host_up(Core *core, const char *host, HvConn *hv)
{
    _cleanup_error_ NbError *err = NULL;
    bool full = sg_stale_take(core, host);
    if (sg_host_catch_up(core, host, hv, full, &err) < 0) {
        log_warn("host %s: security-group filters not caught up: %s", host, err->message);
        if (full)
            sg_stale_mark(core, host);
        sg_seen_set_caught_up(host, false);
        return;
    }
    sg_seen_set_caught_up(host, true);
}

void
secgroup_ops_host_up(Core *core, const char *host, HvConn *hv)
{
    if (!hv_conn_is_simulated(hv))
        sg_host_up(core, host, hv);
}

/* Whether the host's agent answers; logged when that changes. *restarted: it started again
 * since the last look (its uptime says so), though it answered both times. */
static bool
sg_agent_answers(Core *core, const char *host, bool *restarted)
{
    _cleanup_error_ NbError *err = NULL;
    AgentClient *c = NULL;
    uint64_t uptime_s = 0;
    bool ok =
        host_agent_client(core, host, &c, &err) == 0 && agent_health(c, NULL, &uptime_s, &err) == 0;
    agent_client_free(c);
    int64_t started_s = (int64_t)(nb_monotonic_ms() / 1000) - (int64_t)uptime_s;
    pthread_mutex_lock(&sg_seen_lock);
    SgAgentSeen *s = sg_seen_get_locked(host);
    /* Whole seconds on two clocks and the request's time: a second or two of jitter. */
    *restarted = s && ok && s->started_s >= 0 &&
                 (started_s > s->started_s + 2 || started_s < s->started_s - 2);
    if (s && s->answering && !ok)
        log_warn("host %s: its agent does not answer (%s); its ipsets are caught up when it "
                 "does",
                 host, err->message);
    else if (s && !s->answering && ok)
        log_info("host %s: its agent answers again; catching its ipsets up", host);
    else if (*restarted)
        log_info("host %s: its agent started again; catching its ipsets up", host);
    if (s) {
        s->answering = ok;
        s->started_s = ok ? started_s : s->started_s;
        s->caught_up = s->caught_up && ok && !*restarted;
    }
    pthread_mutex_unlock(&sg_seen_lock);
    return ok;
}

void
secgroup_ops_agents_watch(Core *core)
{
    _cleanup_error_ NbError *err = NULL;
    Host *hosts = NULL;
    size_t n = 0;
    if (host_store_list(core->store, &hosts, &n, &err) < 0) {
        log_warn("security groups: cannot list the hosts: %s", err->message);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        bool agent = core->cfg.agent_ca_file && hosts[i].agent_url[0] && hosts[i].agent_secret[0];
        explicit_bzero(hosts[i].agent_secret, sizeof(hosts[i].agent_secret));
        /* A host that is down is caught up when it connects again. */
        HvConn *hv = host_registry_conn(core, hosts[i].name);
        if (!hv || hv_conn_is_simulated(hv)) {
            hv_conn_free(hv);
            continue;
        }
        bool restarted = false, due;
        if (agent && !sg_agent_answers(core, hosts[i].name, &restarted)) {
            hv_conn_free(hv);
            continue;
        }
        pthread_mutex_lock(&sg_seen_lock);
        SgAgentSeen *s = sg_seen_get_locked(hosts[i].name);
        due = !s || !s->caught_up;
        pthread_mutex_unlock(&sg_seen_lock);
        /* A live update its agent failed is redone once the agent answers. */
        if (due || (agent && sg_stale_has(core, hosts[i].name)))
            sg_host_up(core, hosts[i].name, hv);
        hv_conn_free(hv);
    }
    free(hosts);
}

/* ---- requests ---- */

int
secgroup_ops_request(json_t *body, json_t **ret_rest, SecGroupList *ret, NbError **err)
{
    *ret = (SecGroupList){0};
    json_t *list = json_is_object(body) ? json_object_get(body, "secgroups") : NULL;
    if (!list || json_is_null(list)) {
        if (json_is_object(body) && list) {
            *ret_rest = json_copy(body);
            if (!*ret_rest)
                return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
            json_object_del(*ret_rest, "secgroups");
        } else {
            *ret_rest = json_incref(body);
        }
        return 0;
    }
    if (!json_is_array(list))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "field 'secgroups' must be a list of security group names");
    if (json_array_size(list) > SECGROUP_OPS_PORT_GROUPS_MAX)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "at most %d security groups per port",
                            SECGROUP_OPS_PORT_GROUPS_MAX);
    size_t i;
    json_t *v;
    json_array_foreach (list, i, v) {
        const char *s = json_string_value(v);
        if (!s || (!nb_name_is_valid(s) && !nb_uuid_is_valid(s)))
            return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                                "'secgroups' must hold security group names or ids");
        snprintf(ret->names[i], sizeof(ret->names[i]), "%s", s);
    }
    ret->n = json_array_size(list);
    ret->given = true;
    *ret_rest = json_copy(body);
    if (!*ret_rest)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    json_object_del(*ret_rest, "secgroups");
    return 0;
}

/* The project's default group, made on first use (Neutron's defaults: see secgroup.h). */
static int
sg_ensure_default(Core *core, const char *project, SecGroup *ret, NbError **err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        _cleanup_error_ NbError *e = NULL;
        if (secgroup_store_get(core->store, project, SG_DEFAULT_NAME, ret, &e) == 0)
            return 0;
        if (!streq(e->code, NB_ERR_SECGROUP_NOT_FOUND))
            return nb_error_propagate(err, TAKE_PTR(e));
        SecGroup g = {0};
        nb_uuid_generate(g.id);
        memcpy(g.project, project, sizeof(g.project));
        snprintf(g.name, sizeof(g.name), "%s", SG_DEFAULT_NAME);
        snprintf(g.description, sizeof(g.description), "%s", "Default security group");
        nb_timestamp_now(g.created_at);
        nb_error_free(TAKE_PTR(e));
        if (secgroup_store_insert(core->store, &g, &e) == 0) {
            log_info("security group %s: the default group of project %s", g.id, project);
            *ret = g;
            return 0;
        }
        /* Made by a concurrent request: read it again. */
        if (!streq(e->code, NB_ERR_NAME_TAKEN))
            return nb_error_propagate(err, TAKE_PTR(e));
    }
    return nb_error_set(err, NB_ERR_INTERNAL, "cannot make the default security group");
}

int
secgroup_ops_resolve(Core *core, const char *project, SecGroupList *l, NbError **err)
{
    SecGroup g;
    if (!l->given) {
        if (sg_ensure_default(core, project, &g, err) < 0)
            return -1;
        snprintf(l->names[0], sizeof(l->names[0]), "%s", g.id);
        l->n = 1;
        return 0;
    }
    for (size_t i = 0; i < l->n; i++) {
        /* "default" exists in every project, as in Neutron: named before first use, it is made. */
        if ((streq(l->names[i], SG_DEFAULT_NAME)
                 ? sg_ensure_default(core, project, &g, err)
                 : secgroup_store_get(core->store, project, l->names[i], &g, err)) < 0)
            return -1;
        snprintf(l->names[i], sizeof(l->names[i]), "%s", g.id);
    }
    return 0;
}

int
secgroup_ops_ports_set(Core *core, const Port *ports, size_t n, const SecGroupList *l,
                       NbError **err)
{
    const char *ids[SECGROUP_OPS_PORT_GROUPS_MAX];
    for (size_t i = 0; i < l->n; i++)
        ids[i] = l->names[i];
    for (size_t i = 0; i < n; i++)
        if (secgroup_store_port_set(core->store, ports[i].id, ids, l->n, err) < 0)
            return -1;
    return 0;
}

json_t *
secgroup_ops_port_groups_json(Core *core, const char *port_id)
{
    _cleanup_error_ NbError *err = NULL;
    _cleanup_free_ SecGroup *groups = NULL;
    size_t n = 0;
    json_t *arr = json_array();
    if (!arr || secgroup_store_port_groups(core->store, port_id, &groups, &n, &err) < 0)
        return arr;
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(groups[i].name));
    return arr;
}

/* ---- the API's operations ---- */

/* Who sees which group: an admin names any project's group by id, and by name only their own
 * project's (a name like "default" is in every project). */
static const char *
sg_scope(const Principal *who, const char *key)
{
    return who->role == ROLE_ADMIN && nb_uuid_is_valid(key) ? NULL : who->project_id;
}

int
secgroup_ops_create(Core *core, const Principal *who, json_t *body, SecGroup *ret, NbError **err)
{
    SecGroup g;
    if (secgroup_from_request(body, &g, err) < 0)
        return -1;
    nb_uuid_generate(g.id);
    memcpy(g.project, who->project_id, sizeof(g.project));
    nb_timestamp_now(g.created_at);
    if (secgroup_store_insert(core->store, &g, err) < 0)
        return -1;
    log_info("security group %s (%s) created in project %s", g.id, g.name, g.project);
    *ret = g;
    return 0;
}

int
secgroup_ops_delete(Core *core, const Principal *who, const char *id_or_name, NbError **err)
{
    SecGroup g;
    if (secgroup_store_get(core->store, sg_scope(who, id_or_name), id_or_name, &g, err) < 0 ||
        secgroup_store_delete(core->store, NULL, g.id, err) < 0)
        return -1;
    log_info("security group %s (%s) deleted", g.id, g.name);
    return 0;
}

int
secgroup_ops_rule_add(Core *core, const Principal *who, const char *group, json_t *body,
                      SecRule *ret, NbError **err)
{
    SecGroup g;
    SecRule r;
    if (secrule_from_request(body, &r, err) < 0 ||
        secgroup_store_get(core->store, sg_scope(who, group), group, &g, err) < 0)
        return -1;
    memcpy(r.group_id, g.id, sizeof(r.group_id));
    int same = secgroup_store_rule_add(core->store, NULL, &r, err);
    if (same < 0)
        return -1;
    *ret = r;
    if (same)
        return 1;
    log_info("security group %s (%s): rule %s added", g.id, g.name, r.id);
    sg_refresh_group(core, g.id);
    return 0;
}

int
secgroup_ops_rule_delete(Core *core, const Principal *who, const char *group, const char *rule_id,
                         NbError **err)
{
    SecGroup g;
    _cleanup_free_ SecRule *rules = NULL;
    size_t n = 0;
    if (secgroup_store_get(core->store, sg_scope(who, group), group, &g, err) < 0 ||
        secgroup_store_rules(core->store, g.id, &rules, &n, err) < 0)
        return -1;
    const SecRule *found = NULL;
    for (size_t i = 0; i < n && !found; i++)
        if (streq(rules[i].id, rule_id))
            found = &rules[i];
    if (!found)
        return nb_error_set(err, NB_ERR_SECGROUP_RULE_NOT_FOUND,
                            "security group '%s' has no rule '%.64s'", g.name, rule_id);
    if (secgroup_store_rule_delete(core->store, NULL, rule_id, err) < 0)
        return -1;
    log_info("security group %s (%s): rule %s deleted", g.id, g.name, rule_id);
    sg_refresh_group(core, g.id);
    if (found->remote_group[0])
        sg_for_group_hosts(core, g.id, sg_remote_forget_on, found);
    return 0;
}

/* Adds (add) or removes the group g to/from every port of the VM. */
static int
sg_vm_change(Core *core, const Principal *who, const char *vm_key, const char *group, bool add,
             NbError **err)
{
    Vm vm;
    SecGroup g;
    if (vm_store_get(core->store, principal_scope(who), vm_key, &vm, err) < 0)
        return -1;
    int r = -1;
    _cleanup_free_ Port *ports = NULL;
    size_t n = 0;
    /* The group of the VM's own project, whoever asks. */
    if (secgroup_store_get(core->store, vm.project, group, &g, err) < 0 ||
        port_store_list_by_vm(core->store, vm.id, &ports, &n, err) < 0)
        goto out;
    if (n == 0) {
        nb_error_set(err, NB_ERR_INVALID_REQUEST,
                     "VM '%s' is from before ports and security groups; it has none", vm.name);
        goto out;
    }
    bool changed = false, member = false;
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ SecGroup *cur = NULL;
        size_t n_cur = 0, k = 0;
        const char *ids[SECGROUP_OPS_PORT_GROUPS_MAX];
        bool in = false;
        if (secgroup_store_port_groups(core->store, ports[i].id, &cur, &n_cur, err) < 0)
            goto out;
        for (size_t j = 0; j < n_cur; j++) {
            if (streq(cur[j].id, g.id)) {
                in = true;
                if (!add)
                    continue;
            }
            if (k < ELEMENTSOF(ids))
                ids[k++] = cur[j].id;
        }
        member = member || in;
        if (in == add)
            continue;
        if (add) {
            if (k == ELEMENTSOF(ids)) {
                nb_error_set(err, NB_ERR_INVALID_REQUEST, "at most %d security groups per port",
                             SECGROUP_OPS_PORT_GROUPS_MAX);
                goto out;
            }
            ids[k++] = g.id;
        }
        if (secgroup_store_port_set(core->store, ports[i].id, ids, k, err) < 0)
            goto out;
        changed = true;
    }
    if (!add && !member) {
        nb_error_set(err, NB_ERR_SECGROUP_NOT_FOUND, "VM '%s' is not in security group '%s'",
                     vm.name, g.name);
        goto out;
    }
    if (changed) {
        log_info("vm %s (%s): %s security group %s (%s)", vm.id, vm.name, add ? "joined" : "left",
                 g.id, g.name);
        /* Their own filters (their groups changed), then the member filters naming the group;
         * the group's filters the VM's host no longer uses go. */
        sg_refresh_ports(core, ports, n);
        sg_refresh_remote(core, g.id, NULL, 0);
        HvConn *hv = !add && vm.host[0] ? sg_conn(core, vm.host, vm.id) : NULL;
        if (hv)
            sg_forget_groups(core, vm.host, hv, &g, 1, NULL);
        hv_conn_free(hv);
    }
    r = 0;
out:
    vm_clear(&vm);
    return r;
}

int
secgroup_ops_vm_add(Core *core, const Principal *who, const char *vm, json_t *body, NbError **err)
{
    static const char *const fields[] = {"secgroup", NULL};
    char group[NB_NAME_MAX + 1];
    if (json_req_check_fields(body, fields, err) < 0 ||
        json_req_string(body, "secgroup", 1, group, sizeof(group), err) < 0)
        return -1;
    return sg_vm_change(core, who, vm, group, true, err);
}

int
secgroup_ops_vm_remove(Core *core, const Principal *who, const char *vm, const char *group,
                       NbError **err)
{
    return sg_vm_change(core, who, vm, group, false, err);
}

int
secgroup_ops_drop_project(Core *core, const char *project, NbError **err)
{
    _cleanup_free_ SecGroup *groups = NULL;
    size_t n = 0;
    if (secgroup_store_list(core->store, project, &groups, &n, err) < 0)
        return -1;
    /* Rules naming another group of the project go first: they would keep it. */
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ SecRule *rules = NULL;
        size_t n_rules = 0;
        if (secgroup_store_rules(core->store, groups[i].id, &rules, &n_rules, err) < 0)
            return -1;
        for (size_t j = 0; j < n_rules; j++)
            if (rules[j].remote_group[0] &&
                secgroup_store_rule_delete(core->store, NULL, rules[j].id, err) < 0)
                return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (secgroup_store_delete(core->store, NULL, groups[i].id, err) < 0)
            return -1;
    if (n > 0)
        log_info("project %s: its %zu security group%s deleted", project, n, n == 1 ? "" : "s");
    return 0;
}
