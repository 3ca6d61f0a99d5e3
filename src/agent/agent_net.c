/*
 * Links and traffic control go through libnl's objects; the VXLAN flood FDB is spoken in raw
 * rtnetlink messages because libnl's neighbour cache keys bridge entries without their
 * destination, so several remotes of the one all-zero MAC would collapse into one object.
 */
#include "agent_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/neighbour.h>
#include <linux/pkt_cls.h>
#include <linux/rtnetlink.h>
#include <linux/tc_act/tc_mirred.h>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/act/mirred.h>
#include <netlink/route/action.h>
#include <netlink/route/class.h>
#include <netlink/route/classifier.h>
#include <netlink/route/cls/u32.h>
#include <netlink/route/link.h>
#include <netlink/route/addr.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/link/vlan.h>
#include <netlink/route/link/vxlan.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/htb.h>
#include <netlink/route/tc.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util/cleanup.h"
#include "../util/error_codes.h"
#include "../util/log.h"
#include "../util/strutil.h"

#define HTB_HANDLE TC_HANDLE(1, 0)
#define HTB_CLASS TC_HANDLE(1, 1)
#define INGRESS_HANDLE 0xffff0000u /* ffff: (TC_HANDLE would shift into the sign bit) */
#define BURST_MIN 16384u

struct AgentNet {
    struct nl_sock *sock;
};

static void
linkp(struct rtnl_link **l)
{
    if (*l)
        rtnl_link_put(*l);
}
#define _cleanup_link_ _cleanup_(linkp)

static void
cachep(struct nl_cache **c)
{
    if (*c)
        nl_cache_free(*c);
}
#define _cleanup_cache_ _cleanup_(cachep)

static void
nladdrp(struct nl_addr **a)
{
    if (*a)
        nl_addr_put(*a);
}
#define _cleanup_nladdr_ _cleanup_(nladdrp)

static void
nlmsgp(struct nl_msg **m)
{
    if (*m)
        nlmsg_free(*m);
}
#define _cleanup_nlmsg_ _cleanup_(nlmsgp)

static int
nl_fail(NbError **err, int nlerr, const char *doing, const char *what)
{
    return nb_error_set(err, NB_ERR_HYPERVISOR, "%s %s: %s", doing, what, nl_geterror(nlerr));
}

AgentNet *
agent_net_new(NbError **err)
{
    AgentNet *n = calloc(1, sizeof(*n));
    if (!n) {
        nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    n->sock = nl_socket_alloc();
    int r = n->sock ? nl_connect(n->sock, NETLINK_ROUTE) : -NLE_NOMEM;
    if (r < 0) {
        nl_fail(err, r, "cannot open", "rtnetlink");
        agent_net_free(n);
        return NULL;
    }
    return n;
}

void
agent_net_free(AgentNet *n)
{
    if (!n)
        return;
    if (n->sock)
        nl_socket_free(n->sock);
    free(n);
}

/* The link named ifname, or NULL when there is none (or the query failed). */
static struct rtnl_link *
link_get(AgentNet *n, const char *ifname)
{
    struct rtnl_link *l = NULL;
    if (rtnl_link_get_kernel(n->sock, 0, ifname, &l) < 0)
        return NULL;
    return l;
}

bool
agent_net_link_exists(AgentNet *n, const char *ifname)
{
    _cleanup_link_ struct rtnl_link *l = link_get(n, ifname);
    return l != NULL;
}

static bool
link_is_kind(struct rtnl_link *l, const char *kind)
{
    return streq(rtnl_link_get_type(l), kind);
}

/* MTU (0: leave), master (-1: leave), up. Changes are sent against a bare ifindex so libnl
 * does not repeat the link's kind and its data in the request. */
static int
link_set(AgentNet *n, const char *ifname, unsigned mtu, int master, NbError **err)
{
    _cleanup_link_ struct rtnl_link *cur = link_get(n, ifname);
    if (!cur)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "interface %s vanished", ifname);
    if ((!mtu || rtnl_link_get_mtu(cur) == mtu) &&
        (master < 0 || rtnl_link_get_master(cur) == master) && (rtnl_link_get_flags(cur) & IFF_UP))
        return 0;
    _cleanup_link_ struct rtnl_link *orig = rtnl_link_alloc();
    _cleanup_link_ struct rtnl_link *ch = rtnl_link_alloc();
    if (!orig || !ch)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    rtnl_link_set_ifindex(orig, rtnl_link_get_ifindex(cur));
    if (mtu && rtnl_link_get_mtu(cur) != mtu)
        rtnl_link_set_mtu(ch, mtu);
    if (master >= 0 && rtnl_link_get_master(cur) != master)
        rtnl_link_set_master(ch, master);
    rtnl_link_set_flags(ch, IFF_UP);
    int r = rtnl_link_change(n->sock, orig, ch, 0);
    if (r < 0)
        return nl_fail(err, r, "cannot configure", ifname);
    return 0;
}

static int
link_delete(AgentNet *n, const char *ifname, NbError **err)
{
    _cleanup_link_ struct rtnl_link *l = link_get(n, ifname);
    if (!l)
        return 0;
    int r = rtnl_link_delete(n->sock, l);
    if (r < 0 && r != -NLE_NODEV && r != -NLE_OBJ_NOTFOUND)
        return nl_fail(err, r, "cannot delete", ifname);
    log_info("deleted %s", ifname);
    return 0;
}

/* A link of the given kind exists under ifname (made if missing). */
static int
link_make(AgentNet *n, const char *ifname, const char *kind, unsigned mtu, NbError **err)
{
    _cleanup_link_ struct rtnl_link *cur = link_get(n, ifname);
    if (cur) {
        if (!link_is_kind(cur, kind))
            return nb_error_set(err, NB_ERR_HYPERVISOR, "%s exists and is not a %s", ifname, kind);
        return 0;
    }
    _cleanup_link_ struct rtnl_link *l = rtnl_link_alloc();
    if (!l)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    rtnl_link_set_name(l, ifname);
    int r = rtnl_link_set_type(l, kind);
    if (r == 0 && mtu)
        rtnl_link_set_mtu(l, mtu);
    if (r == 0)
        r = rtnl_link_add(n->sock, l, NLM_F_CREATE | NLM_F_EXCL);
    if (r < 0)
        return nl_fail(err, r, "cannot create", ifname);
    log_info("created %s %s", kind, ifname);
    return 0;
}

/* A segment on the host: the bridge, up at its MTU, with its uplink (a VXLAN or VLAN device)
 * in it and up. The uplink's own attributes are the caller's to check. */
static bool
segment_intact(struct rtnl_link *br, struct rtnl_link *uplink, unsigned mtu)
{
    return link_is_kind(br, "bridge") &&
           rtnl_link_get_master(uplink) == rtnl_link_get_ifindex(br) &&
           (rtnl_link_get_flags(br) & IFF_UP) && (rtnl_link_get_flags(uplink) & IFF_UP) &&
           rtnl_link_get_mtu(br) == mtu;
}

/* Deletes a segment's uplink, then its bridge; absent devices are fine. */
static int
segment_delete(AgentNet *n, const char *uplink, const char *bridge, NbError **err)
{
    if (link_delete(n, uplink, err) < 0)
        return -1;
    return link_delete(n, bridge, err);
}

/* ---- VXLAN ---- */

static bool
vxlan_matches(struct rtnl_link *l, const AgentVxlan *v, int dev_index)
{
    uint32_t id = 0, port = 0, be = 0, lower = 0;
    _cleanup_nladdr_ struct nl_addr *local = NULL;
    if (!link_is_kind(l, "vxlan") || rtnl_link_vxlan_get_id(l, &id) < 0 ||
        rtnl_link_vxlan_get_port(l, &port) < 0 || rtnl_link_vxlan_get_local(l, &local) < 0 ||
        rtnl_link_vxlan_get_link(l, &lower) < 0 || nl_addr_get_len(local) != 4)
        return false;
    memcpy(&be, nl_addr_get_binary_addr(local), 4);
    int learning = rtnl_link_vxlan_get_learning(l);
    bool same = id == v->vni && port == AGENT_VXLAN_PORT && learning == 0 &&
                lower == (uint32_t)dev_index && ntohl(be) == v->local;
    if (!same)
        log_debug("vxlan %u: id %u port %u learning %d dev %u (want %d) local %08x", v->vni, id,
                  port, learning, lower, dev_index, ntohl(be));
    return same;
}

static int
vxlan_create(AgentNet *n, const char *ifname, const AgentVxlan *v, int dev_index, int br_index,
             NbError **err)
{
    _cleanup_link_ struct rtnl_link *l = rtnl_link_vxlan_alloc();
    uint32_t be = htonl(v->local);
    _cleanup_nladdr_ struct nl_addr *local = nl_addr_build(AF_INET, &be, 4);
    if (!l || !local)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    rtnl_link_set_name(l, ifname);
    rtnl_link_vxlan_set_id(l, v->vni);
    rtnl_link_vxlan_set_port(l, AGENT_VXLAN_PORT);
    rtnl_link_vxlan_set_local(l, local);
    rtnl_link_vxlan_set_learning(l, 0);
    rtnl_link_vxlan_set_link(l, (uint32_t)dev_index); /* IFLA_VXLAN_LINK, not IFLA_LINK */
    rtnl_link_set_mtu(l, v->mtu);
    rtnl_link_set_master(l, br_index);
    int r = rtnl_link_add(n->sock, l, NLM_F_CREATE | NLM_F_EXCL);
    if (r < 0)
        return nl_fail(err, r, "cannot create", ifname);
    log_info("created vxlan %s (vni %u) in %s", ifname, v->vni, v->bridge);
    return 0;
}

static int
nl_request(AgentNet *n, struct nl_msg *m)
{
    int r = nl_send_auto(n->sock, m);
    if (r < 0)
        return r;
    return nl_wait_for_ack(n->sock);
}

static int
fdb_change(AgentNet *n, int type, int flags, int ifindex, uint32_t ip)
{
    _cleanup_nlmsg_ struct nl_msg *m = nlmsg_alloc_simple(type, flags);
    if (!m)
        return -NLE_NOMEM;
    struct ndmsg nd = {
        .ndm_family = AF_BRIDGE,
        .ndm_ifindex = ifindex,
        .ndm_state = NUD_NOARP | NUD_PERMANENT,
        .ndm_flags = NTF_SELF,
    };
    static const uint8_t zero_mac[ETH_ALEN];
    uint32_t be = htonl(ip);
    if (nlmsg_append(m, &nd, sizeof(nd), NLMSG_ALIGNTO) < 0 ||
        nla_put(m, NDA_LLADDR, ETH_ALEN, zero_mac) < 0 || nla_put(m, NDA_DST, 4, &be) < 0)
        return -NLE_NOMEM;
    return nl_request(n, m);
}

typedef struct FdbDump {
    int ifindex;
    uint32_t *ips;
    size_t n, cap;
    bool oom;
} FdbDump;

static int
fdb_dump_one(struct nl_msg *msg, void *arg)
{
    FdbDump *d = arg;
    struct nlmsghdr *h = nlmsg_hdr(msg);
    if (h->nlmsg_type != RTM_NEWNEIGH || !nlmsg_valid_hdr(h, sizeof(struct ndmsg)))
        return NL_OK;
    struct ndmsg *nd = nlmsg_data(h);
    struct nlattr *tb[NDA_MAX + 1];
    static const uint8_t zero_mac[ETH_ALEN];
    if (nd->ndm_family != AF_BRIDGE || nd->ndm_ifindex != d->ifindex ||
        nlmsg_parse(h, sizeof(*nd), tb, NDA_MAX, NULL) < 0 || !tb[NDA_LLADDR] ||
        nla_len(tb[NDA_LLADDR]) != ETH_ALEN || memcmp(nla_data(tb[NDA_LLADDR]), zero_mac, 6) ||
        !tb[NDA_DST] || nla_len(tb[NDA_DST]) != 4)
        return NL_OK;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        uint32_t *a = realloc(d->ips, cap * sizeof(*a));
        if (!a) {
            d->oom = true;
            return NL_OK;
        }
        d->ips = a;
        d->cap = cap;
    }
    uint32_t be;
    memcpy(&be, nla_data(tb[NDA_DST]), 4);
    d->ips[d->n++] = ntohl(be);
    return NL_OK;
}

/* The destinations of the all-zero-MAC entries of ifindex. 0 or a libnl error. */
static int
fdb_list(AgentNet *n, int ifindex, FdbDump *d)
{
    *d = (FdbDump){.ifindex = ifindex};
    _cleanup_nlmsg_ struct nl_msg *m = nlmsg_alloc_simple(RTM_GETNEIGH, NLM_F_DUMP);
    struct ndmsg nd = {.ndm_family = AF_BRIDGE};
    if (!m || nlmsg_append(m, &nd, sizeof(nd), NLMSG_ALIGNTO) < 0)
        return -NLE_NOMEM;
    int r = nl_send_auto(n->sock, m);
    if (r < 0)
        return r;
    struct nl_cb *cb = nl_cb_alloc(NL_CB_DEFAULT);
    if (!cb)
        return -NLE_NOMEM;
    nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, fdb_dump_one, d);
    r = nl_recvmsgs(n->sock, cb);
    nl_cb_put(cb);
    if (r == 0 && d->oom)
        r = -NLE_NOMEM;
    if (r < 0) {
        free(d->ips);
        d->ips = NULL;
    }
    return r < 0 ? r : 0;
}

static bool
ip_in(const uint32_t *ips, size_t n, uint32_t ip)
{
    for (size_t i = 0; i < n; i++)
        if (ips[i] == ip)
            return true;
    return false;
}

static int
fdb_sync(AgentNet *n, const char *ifname, int ifindex, const AgentVxlan *v, NbError **err)
{
    FdbDump d;
    int r = fdb_list(n, ifindex, &d);
    if (r < 0)
        return nl_fail(err, r, "cannot list the FDB of", ifname);
    _cleanup_free_ uint32_t *have = d.ips;
    char ip[16];
    for (size_t i = 0; i < d.n; i++) {
        if (ip_in(v->peers, v->n_peers, have[i]))
            continue;
        r = fdb_change(n, RTM_DELNEIGH, 0, ifindex, have[i]);
        agent_ipv4_format(have[i], ip);
        if (r < 0 && r != -NLE_OBJ_NOTFOUND)
            return nb_error_set(err, NB_ERR_HYPERVISOR, "cannot remove peer %s from %s: %s", ip,
                                ifname, nl_geterror(r));
        log_info("%s: removed peer %s", ifname, ip);
    }
    for (size_t i = 0; i < v->n_peers; i++) {
        if (ip_in(have, d.n, v->peers[i]))
            continue;
        r = fdb_change(n, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_APPEND, ifindex, v->peers[i]);
        agent_ipv4_format(v->peers[i], ip);
        if (r < 0)
            return nb_error_set(err, NB_ERR_HYPERVISOR, "cannot add peer %s to %s: %s", ip, ifname,
                                nl_geterror(r));
        log_info("%s: added peer %s", ifname, ip);
    }
    return 0;
}

int
agent_net_vxlan_ensure(AgentNet *n, const AgentVxlan *v, NbError **err)
{
    char vx[AGENT_IFNAME_MAX + 1];
    agent_vxlan_ifname(v->vni, vx);
    _cleanup_link_ struct rtnl_link *dev = link_get(n, v->dev);
    if (!dev)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "the underlay interface %s does not exist",
                            v->dev);
    int dev_index = rtnl_link_get_ifindex(dev);

    if (link_make(n, v->bridge, "bridge", v->mtu, err) < 0)
        return -1;
    _cleanup_link_ struct rtnl_link *br = link_get(n, v->bridge);
    if (!br)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "bridge %s vanished", v->bridge);
    int br_index = rtnl_link_get_ifindex(br);

    _cleanup_link_ struct rtnl_link *cur = link_get(n, vx);
    if (cur && !vxlan_matches(cur, v, dev_index)) {
        /* id, local, dev and port are fixed at creation on older kernels: make it anew. */
        log_info("%s differs from the asked VXLAN: recreating it", vx);
        if (link_delete(n, vx, err) < 0)
            return -1;
        rtnl_link_put(TAKE_PTR(cur));
    }
    if (!cur && vxlan_create(n, vx, v, dev_index, br_index, err) < 0)
        return -1;
    if (link_set(n, vx, v->mtu, br_index, err) < 0)
        return -1;
    _cleanup_link_ struct rtnl_link *vxl = link_get(n, vx);
    if (!vxl)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "%s vanished", vx);
    if (fdb_sync(n, vx, rtnl_link_get_ifindex(vxl), v, err) < 0)
        return -1;
    /* Last: a bridge takes the smallest MTU of its ports unless one was set on it. */
    return link_set(n, v->bridge, v->mtu, -1, err);
}

int
agent_net_link_remove(AgentNet *n, const char *ifname, NbError **err)
{
    return link_delete(n, ifname, err);
}

int
agent_net_vxlan_remove(AgentNet *n, unsigned vni, const char *bridge, NbError **err)
{
    char vx[AGENT_IFNAME_MAX + 1];
    agent_vxlan_ifname(vni, vx);
    return segment_delete(n, vx, bridge, err);
}

bool
agent_net_vxlan_intact(AgentNet *n, const AgentVxlan *v)
{
    char vx[AGENT_IFNAME_MAX + 1];
    agent_vxlan_ifname(v->vni, vx);
    _cleanup_link_ struct rtnl_link *br = link_get(n, v->bridge);
    _cleanup_link_ struct rtnl_link *vxl = link_get(n, vx);
    _cleanup_link_ struct rtnl_link *dev = link_get(n, v->dev);
    if (!br || !vxl || !dev || !vxlan_matches(vxl, v, rtnl_link_get_ifindex(dev)) ||
        !segment_intact(br, vxl, v->mtu))
        return false;
    FdbDump d;
    if (fdb_list(n, rtnl_link_get_ifindex(vxl), &d) < 0)
        return false;
    bool same = d.n == v->n_peers;
    for (size_t i = 0; same && i < d.n; i++)
        same = ip_in(v->peers, v->n_peers, d.ips[i]);
    free(d.ips);
    return same;
}

/* ---- VLAN ---- */

/* The VLAN device as the kernel should make it: 802.1Q, id, on the parent, in the bridge. */
static struct rtnl_link *
vlan_link_new(const AgentVlan *v, const char *ifname, int parent_index, int bridge_index)
{
    struct rtnl_link *l = rtnl_link_vlan_alloc();
    if (!l)
        return NULL;
    rtnl_link_set_name(l, ifname);
    rtnl_link_set_link(l, parent_index);
    rtnl_link_vlan_set_protocol(l, htons(ETH_P_8021Q));
    rtnl_link_vlan_set_id(l, (uint16_t)v->vlan);
    rtnl_link_set_mtu(l, v->mtu);
    rtnl_link_set_master(l, bridge_index);
    return l;
}

static bool
vlan_matches(struct rtnl_link *l, const AgentVlan *v, int parent_index)
{
    return link_is_kind(l, "vlan") && rtnl_link_vlan_get_id(l) == (int)v->vlan &&
           rtnl_link_get_link(l) == parent_index;
}

int
agent_net_vlan_ensure(AgentNet *n, const AgentVlan *v, NbError **err)
{
    char dev[AGENT_IFNAME_MAX + 1];
    agent_vlan_ifname(v->bridge, dev);
    _cleanup_link_ struct rtnl_link *parent = link_get(n, v->parent);
    if (!parent)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "the parent interface %s does not exist",
                            v->parent);
    int parent_index = rtnl_link_get_ifindex(parent);
    bool made_bridge = !agent_net_link_exists(n, v->bridge);
    if (link_make(n, v->bridge, "bridge", v->mtu, err) < 0)
        return -1;
    _cleanup_link_ struct rtnl_link *br = link_get(n, v->bridge);
    if (!br)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "bridge %s vanished", v->bridge);
    int br_index = rtnl_link_get_ifindex(br);

    _cleanup_link_ struct rtnl_link *cur = link_get(n, dev);
    if (cur && !vlan_matches(cur, v, parent_index)) {
        /* The id and the parent are fixed at creation. */
        log_info("%s differs from the asked VLAN: recreating it", dev);
        if (link_delete(n, dev, err) < 0)
            return -1;
        rtnl_link_put(TAKE_PTR(cur));
    }
    if (!cur) {
        _cleanup_link_ struct rtnl_link *l = vlan_link_new(v, dev, parent_index, br_index);
        if (!l)
            return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
        int r = rtnl_link_add(n->sock, l, NLM_F_CREATE | NLM_F_EXCL);
        if (r < 0) {
            nl_fail(err, r, "cannot create the VLAN device", dev);
            /* Nothing half-made: a bridge without its uplink would look like a segment. */
            _cleanup_error_ NbError *undo = NULL;
            if (made_bridge)
                link_delete(n, v->bridge, &undo);
            return -1;
        }
        log_info("created vlan %s (id %u on %s) in %s", dev, v->vlan, v->parent, v->bridge);
    }
    if (link_set(n, dev, v->mtu, br_index, err) < 0)
        return -1;
    return link_set(n, v->bridge, v->mtu, -1, err);
}

int
agent_net_vlan_remove(AgentNet *n, const char *bridge, NbError **err)
{
    char dev[AGENT_IFNAME_MAX + 1];
    agent_vlan_ifname(bridge, dev);
    return segment_delete(n, dev, bridge, err);
}

bool
agent_net_vlan_intact(AgentNet *n, const AgentVlan *v)
{
    char dev[AGENT_IFNAME_MAX + 1];
    agent_vlan_ifname(v->bridge, dev);
    _cleanup_link_ struct rtnl_link *br = link_get(n, v->bridge);
    _cleanup_link_ struct rtnl_link *vl = link_get(n, dev);
    _cleanup_link_ struct rtnl_link *parent = link_get(n, v->parent);
    return br && vl && parent && vlan_matches(vl, v, rtnl_link_get_ifindex(parent)) &&
           segment_intact(br, vl, v->mtu);
}

/* Appends one line per attribute of the nested attributes in [head, head + len). */
static void
attrs_text(FILE *f, struct nlattr *head, int len, const char *prefix)
{
    struct nlattr *a;
    int rem;
    nla_for_each_attr(a, head, len, rem)
    {
        int type = nla_type(a);
        char name[64];
        snprintf(name, sizeof(name), "%s%d", prefix, type);
        if (!strcmp(prefix, "") && type == IFLA_IFNAME)
            fprintf(f, "IFLA_IFNAME %s\n", nla_get_string(a));
        else if (!strcmp(prefix, "") && type == IFLA_MTU)
            fprintf(f, "IFLA_MTU %u\n", nla_get_u32(a));
        else if (!strcmp(prefix, "") && type == IFLA_LINK)
            fprintf(f, "IFLA_LINK %u\n", nla_get_u32(a));
        else if (!strcmp(prefix, "") && type == IFLA_MASTER)
            fprintf(f, "IFLA_MASTER %u\n", nla_get_u32(a));
        else if (!strcmp(prefix, "") && type == IFLA_LINKINFO)
            attrs_text(f, nla_data(a), nla_len(a), "IFLA_INFO_");
        else if (!strcmp(prefix, "IFLA_INFO_") && type == IFLA_INFO_KIND)
            fprintf(f, "IFLA_INFO_KIND %s\n", nla_get_string(a));
        else if (!strcmp(prefix, "IFLA_INFO_") && type == IFLA_INFO_DATA)
            attrs_text(f, nla_data(a), nla_len(a), "IFLA_VLAN_");
        else if (!strcmp(prefix, "IFLA_VLAN_") && type == IFLA_VLAN_ID)
            fprintf(f, "IFLA_VLAN_ID %u\n", nla_get_u16(a));
        else if (!strcmp(prefix, "IFLA_VLAN_") && type == IFLA_VLAN_PROTOCOL)
            fprintf(f, "IFLA_VLAN_PROTOCOL 0x%04x\n", ntohs(nla_get_u16(a)));
        else
            fprintf(f, "%s %d bytes\n", name, nla_len(a));
    }
}

char *
agent_net_vlan_request_text(const AgentVlan *v, int parent_index, int bridge_index)
{
    char dev[AGENT_IFNAME_MAX + 1];
    agent_vlan_ifname(v->bridge, dev);
    _cleanup_link_ struct rtnl_link *l = vlan_link_new(v, dev, parent_index, bridge_index);
    _cleanup_nlmsg_ struct nl_msg *m = NULL;
    if (!l || rtnl_link_build_add_request(l, NLM_F_CREATE | NLM_F_EXCL, &m) < 0)
        return NULL;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    struct nlmsghdr *h = nlmsg_hdr(m);
    struct ifinfomsg *ifi = nlmsg_data(h);
    fprintf(f, "RTM_NEWLINK flags 0x%x family %u\n", h->nlmsg_flags & ~NLM_F_ACK, ifi->ifi_family);
    attrs_text(f, nlmsg_attrdata(h, sizeof(*ifi)), nlmsg_attrlen(h, sizeof(*ifi)), "");
    fclose(f);
    return text;
}

/* ---- shaping ---- */

static uint32_t
kbit_to_bytes(unsigned kbit)
{
    return (uint32_t)((uint64_t)kbit * 1000 / 8);
}

/* HTB root 1: with one class 1:1 (the default) at rate = ceil = kbit on ifindex. */
static int
htb_apply(AgentNet *n, const char *ifname, int ifindex, unsigned kbit, NbError **err)
{
    struct nl_cache *qc = NULL;
    int r = rtnl_qdisc_alloc_cache(n->sock, &qc);
    if (r < 0)
        return nl_fail(err, r, "cannot list the qdiscs of", ifname);
    _cleanup_cache_ struct nl_cache *qcache = qc;
    struct rtnl_qdisc *root = rtnl_qdisc_get_by_parent(qcache, ifindex, TC_H_ROOT);
    bool ours = root && streq(rtnl_tc_get_kind(TC_CAST(root)), "htb") &&
                rtnl_tc_get_handle(TC_CAST(root)) == HTB_HANDLE;
    if (root)
        rtnl_qdisc_put(root);
    if (!ours) {
        /* Replace: a tap starts with noqueue or pfifo_fast there, which "add" cannot displace. */
        struct rtnl_qdisc *q = rtnl_qdisc_alloc();
        if (!q)
            return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
        rtnl_tc_set_ifindex(TC_CAST(q), ifindex);
        rtnl_tc_set_parent(TC_CAST(q), TC_H_ROOT);
        rtnl_tc_set_handle(TC_CAST(q), HTB_HANDLE);
        r = rtnl_tc_set_kind(TC_CAST(q), "htb");
        if (r == 0)
            r = rtnl_htb_set_defcls(q, HTB_CLASS);
        if (r == 0)
            r = rtnl_qdisc_add(n->sock, q, NLM_F_CREATE | NLM_F_REPLACE);
        rtnl_qdisc_put(q);
        if (r < 0)
            return nl_fail(err, r, "cannot add an htb qdisc to", ifname);
    }
    struct rtnl_class *c = rtnl_class_alloc();
    if (!c)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    uint32_t rate = kbit_to_bytes(kbit);
    uint32_t burst = rate / 100 > BURST_MIN ? rate / 100 : BURST_MIN; /* 10 ms of the rate */
    rtnl_tc_set_ifindex(TC_CAST(c), ifindex);
    rtnl_tc_set_parent(TC_CAST(c), HTB_HANDLE);
    rtnl_tc_set_handle(TC_CAST(c), HTB_CLASS);
    r = rtnl_tc_set_kind(TC_CAST(c), "htb");
    if (r == 0) {
        rtnl_htb_set_rate(c, rate);
        rtnl_htb_set_ceil(c, rate);
        rtnl_htb_set_rbuffer(c, burst);
        rtnl_htb_set_cbuffer(c, burst);
        r = rtnl_class_add(n->sock, c, NLM_F_CREATE);
    }
    rtnl_class_put(c);
    if (r < 0)
        return nl_fail(err, r, "cannot set the htb class of", ifname);
    return 0;
}

/* Whether our HTB is on ifindex at kbit. */
static bool
htb_intact(AgentNet *n, int ifindex, unsigned kbit)
{
    struct nl_cache *qc = NULL;
    if (rtnl_qdisc_alloc_cache(n->sock, &qc) < 0)
        return false;
    _cleanup_cache_ struct nl_cache *qcache = qc;
    struct rtnl_qdisc *root = rtnl_qdisc_get_by_parent(qcache, ifindex, TC_H_ROOT);
    bool ok = root && streq(rtnl_tc_get_kind(TC_CAST(root)), "htb") &&
              rtnl_tc_get_handle(TC_CAST(root)) == HTB_HANDLE;
    if (root)
        rtnl_qdisc_put(root);
    if (!ok)
        return false;
    struct nl_cache *cc = NULL;
    if (rtnl_class_alloc_cache(n->sock, ifindex, &cc) < 0)
        return false;
    _cleanup_cache_ struct nl_cache *ccache = cc;
    struct rtnl_class *c = rtnl_class_get(ccache, ifindex, HTB_CLASS);
    ok = c && rtnl_htb_get_rate(c) == kbit_to_bytes(kbit);
    if (c)
        rtnl_class_put(c);
    return ok;
}

static int
qdisc_delete(AgentNet *n, int ifindex, uint32_t parent, const char *kind)
{
    struct nl_cache *qc = NULL;
    int r = rtnl_qdisc_alloc_cache(n->sock, &qc);
    if (r < 0)
        return r;
    _cleanup_cache_ struct nl_cache *qcache = qc;
    struct rtnl_qdisc *q = rtnl_qdisc_get_by_parent(qcache, ifindex, parent);
    if (!q)
        return 0;
    r = 0;
    /* Only what the agent puts there: the kernel's default root qdisc is left alone. */
    if (streq(rtnl_tc_get_kind(TC_CAST(q)), kind))
        r = rtnl_qdisc_delete(n->sock, q);
    rtnl_qdisc_put(q);
    return r;
}

static bool
ingress_present(AgentNet *n, int ifindex)
{
    struct nl_cache *qc = NULL;
    if (rtnl_qdisc_alloc_cache(n->sock, &qc) < 0)
        return false;
    _cleanup_cache_ struct nl_cache *qcache = qc;
    struct rtnl_qdisc *q = rtnl_qdisc_get_by_parent(qcache, ifindex, TC_H_INGRESS);
    bool ok = q && streq(rtnl_tc_get_kind(TC_CAST(q)), "ingress");
    if (q)
        rtnl_qdisc_put(q);
    return ok;
}

/* Ingress qdisc on the tap with one u32 match-all filter redirecting to the IFB. Made anew each
 * time so a stale redirect (to an IFB since recreated) cannot survive. */
static int
ingress_redirect(AgentNet *n, const char *tap, int tap_index, int ifb_index, NbError **err)
{
    int r = qdisc_delete(n, tap_index, TC_H_INGRESS, "ingress");
    if (r < 0)
        return nl_fail(err, r, "cannot remove the ingress qdisc of", tap);
    struct rtnl_qdisc *q = rtnl_qdisc_alloc();
    if (!q)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    rtnl_tc_set_ifindex(TC_CAST(q), tap_index);
    rtnl_tc_set_parent(TC_CAST(q), TC_H_INGRESS);
    rtnl_tc_set_handle(TC_CAST(q), INGRESS_HANDLE);
    r = rtnl_tc_set_kind(TC_CAST(q), "ingress");
    if (r == 0)
        r = rtnl_qdisc_add(n->sock, q, NLM_F_CREATE | NLM_F_EXCL);
    rtnl_qdisc_put(q);
    if (r < 0)
        return nl_fail(err, r, "cannot add an ingress qdisc to", tap);

    struct rtnl_cls *cls = rtnl_cls_alloc();
    struct rtnl_act *act = rtnl_act_alloc();
    if (!cls || !act) {
        if (cls)
            rtnl_cls_put(cls);
        if (act)
            rtnl_act_put(act);
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    }
    rtnl_tc_set_ifindex(TC_CAST(cls), tap_index);
    rtnl_tc_set_parent(TC_CAST(cls), INGRESS_HANDLE);
    r = rtnl_tc_set_kind(TC_CAST(cls), "u32");
    if (r == 0) {
        rtnl_cls_set_prio(cls, 1);
        rtnl_cls_set_protocol(cls, ETH_P_ALL);
        r = rtnl_u32_add_key_uint32(cls, 0, 0, 0, 0); /* match all */
    }
    if (r == 0)
        r = rtnl_u32_set_cls_terminal(cls); /* else u32 never runs the action */
    if (r == 0)
        r = rtnl_tc_set_kind(TC_CAST(act), "mirred");
    if (r == 0) {
        rtnl_mirred_set_action(act, TCA_EGRESS_REDIR);
        rtnl_mirred_set_policy(act, TC_ACT_STOLEN);
        rtnl_mirred_set_ifindex(act, (uint32_t)ifb_index);
        r = rtnl_u32_add_action(cls, act);
    }
    if (r == 0)
        r = rtnl_cls_add(n->sock, cls, NLM_F_CREATE | NLM_F_EXCL);
    rtnl_act_put(act);
    rtnl_cls_put(cls);
    if (r < 0)
        return nl_fail(err, r, "cannot add the redirect filter to", tap);
    return 0;
}

int
agent_net_shaping_apply(AgentNet *n, const AgentShaping *s, NbError **err)
{
    _cleanup_link_ struct rtnl_link *tap = link_get(n, s->tap);
    if (!tap)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "%s does not exist", s->tap);
    int tap_index = rtnl_link_get_ifindex(tap);
    char ifb[AGENT_IFNAME_MAX + 1];
    agent_ifb_ifname(s->tap, ifb);

    if (s->in_kbit) {
        if (htb_apply(n, s->tap, tap_index, s->in_kbit, err) < 0)
            return -1;
    } else {
        int r = qdisc_delete(n, tap_index, TC_H_ROOT, "htb");
        if (r < 0)
            return nl_fail(err, r, "cannot remove the htb qdisc of", s->tap);
    }

    if (s->out_kbit) {
        if (link_make(n, ifb, "ifb", 0, err) < 0 || link_set(n, ifb, 0, -1, err) < 0)
            return -1;
        _cleanup_link_ struct rtnl_link *ifbl = link_get(n, ifb);
        if (!ifbl)
            return nb_error_set(err, NB_ERR_HYPERVISOR, "%s vanished", ifb);
        int ifb_index = rtnl_link_get_ifindex(ifbl);
        if (htb_apply(n, ifb, ifb_index, s->out_kbit, err) < 0)
            return -1;
        if (ingress_redirect(n, s->tap, tap_index, ifb_index, err) < 0)
            return -1;
    } else {
        int r = qdisc_delete(n, tap_index, TC_H_INGRESS, "ingress");
        if (r < 0)
            return nl_fail(err, r, "cannot remove the ingress qdisc of", s->tap);
        if (link_delete(n, ifb, err) < 0)
            return -1;
    }
    return 0;
}

int
agent_net_shaping_clear(AgentNet *n, const char *tap, NbError **err)
{
    AgentShaping none = {0};
    memcpy(none.tap, tap, strlen(tap) + 1);
    if (agent_net_link_exists(n, tap))
        return agent_net_shaping_apply(n, &none, err);
    char ifb[AGENT_IFNAME_MAX + 1];
    agent_ifb_ifname(tap, ifb);
    return link_delete(n, ifb, err);
}

bool
agent_net_shaping_intact(AgentNet *n, const AgentShaping *s)
{
    _cleanup_link_ struct rtnl_link *tap = link_get(n, s->tap);
    if (!tap)
        return false;
    int tap_index = rtnl_link_get_ifindex(tap);
    if (s->in_kbit && !htb_intact(n, tap_index, s->in_kbit))
        return false;
    if (s->out_kbit) {
        char ifb[AGENT_IFNAME_MAX + 1];
        agent_ifb_ifname(s->tap, ifb);
        _cleanup_link_ struct rtnl_link *ifbl = link_get(n, ifb);
        if (!ifbl || !(rtnl_link_get_flags(ifbl) & IFF_UP) || !ingress_present(n, tap_index) ||
            !htb_intact(n, rtnl_link_get_ifindex(ifbl), s->out_kbit))
            return false;
    }
    return true;
}

/* ---- DHCP servers' veth pairs and namespaces ---- */

int
agent_net_veth_make(AgentNet *n, const char *host_side, const char *ns_side, const char *bridge,
                    unsigned mtu, const char *ns_mac, NbError **err)
{
    _cleanup_link_ struct rtnl_link *br = link_get(n, bridge);
    if (!br)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "bridge %s does not exist", bridge);
    /* Made anew: a pair left by a crash may have lost its peer's namespace. */
    if (link_delete(n, host_side, err) < 0 || link_delete(n, ns_side, err) < 0)
        return -1;
    _cleanup_link_ struct rtnl_link *l = rtnl_link_veth_alloc();
    _cleanup_nladdr_ struct nl_addr *mac = NULL;
    if (!l)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    struct rtnl_link *peer = rtnl_link_veth_get_peer(l);
    rtnl_link_set_name(l, host_side);
    rtnl_link_set_mtu(l, mtu);
    rtnl_link_set_master(l, rtnl_link_get_ifindex(br));
    rtnl_link_set_flags(l, IFF_UP);
    rtnl_link_set_name(peer, ns_side);
    rtnl_link_set_mtu(peer, mtu);
    if (nl_addr_parse(ns_mac, AF_LLC, &mac) == 0)
        rtnl_link_set_addr(peer, mac);
    rtnl_link_put(peer);
    int r = rtnl_link_add(n->sock, l, NLM_F_CREATE | NLM_F_EXCL);
    if (r < 0)
        return nl_fail(err, r, "cannot create the veth pair", host_side);
    log_info("created veth %s/%s in %s", host_side, ns_side, bridge);
    return 0;
}

bool
agent_net_veth_intact(AgentNet *n, const char *host_side, const char *bridge)
{
    _cleanup_link_ struct rtnl_link *l = link_get(n, host_side);
    _cleanup_link_ struct rtnl_link *br = link_get(n, bridge);
    return l && br && rtnl_link_get_master(l) == rtnl_link_get_ifindex(br) &&
           (rtnl_link_get_flags(l) & IFF_UP);
}

int
agent_net_link_to_netns(AgentNet *n, const char *ifname, pid_t pid, NbError **err)
{
    _cleanup_link_ struct rtnl_link *cur = link_get(n, ifname);
    if (!cur)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "interface %s vanished", ifname);
    _cleanup_link_ struct rtnl_link *orig = rtnl_link_alloc();
    _cleanup_link_ struct rtnl_link *ch = rtnl_link_alloc();
    if (!orig || !ch)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    rtnl_link_set_ifindex(orig, rtnl_link_get_ifindex(cur));
    rtnl_link_set_ns_pid(ch, pid);
    int r = rtnl_link_change(n->sock, orig, ch, 0);
    if (r < 0)
        return nl_fail(err, r, "cannot move into the DHCP namespace", ifname);
    return 0;
}

/* Sets ifname up (and its address, when prefix) through sock. */
static int
ns_link_up(struct nl_sock *sock, const char *ifname, uint32_t address, unsigned prefix,
           NbError **err)
{
    _cleanup_link_ struct rtnl_link *cur = NULL;
    int r = rtnl_link_get_kernel(sock, 0, ifname, &cur);
    if (r < 0)
        return nl_fail(err, r, "cannot find in the DHCP namespace", ifname);
    int ifindex = rtnl_link_get_ifindex(cur);
    if (prefix) {
        struct rtnl_addr *a = rtnl_addr_alloc();
        _cleanup_nladdr_ struct nl_addr *local = NULL;
        uint32_t be = htonl(address);
        if (!a || !(local = nl_addr_build(AF_INET, &be, 4))) {
            if (a)
                rtnl_addr_put(a);
            return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
        }
        nl_addr_set_prefixlen(local, (int)prefix);
        rtnl_addr_set_ifindex(a, ifindex);
        rtnl_addr_set_local(a, local);
        r = rtnl_addr_add(sock, a, NLM_F_REPLACE);
        rtnl_addr_put(a);
        if (r < 0)
            return nl_fail(err, r, "cannot set the address of", ifname);
    }
    _cleanup_link_ struct rtnl_link *orig = rtnl_link_alloc();
    _cleanup_link_ struct rtnl_link *ch = rtnl_link_alloc();
    if (!orig || !ch)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    rtnl_link_set_ifindex(orig, ifindex);
    rtnl_link_set_flags(ch, IFF_UP);
    r = rtnl_link_change(sock, orig, ch, 0);
    if (r < 0)
        return nl_fail(err, r, "cannot set up", ifname);
    return 0;
}

int
agent_net_netns_address(pid_t pid, const char *ifname, uint32_t address, unsigned prefix,
                        NbError **err)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
    _cleanup_close_ int target = open(path, O_RDONLY | O_CLOEXEC);
    _cleanup_close_ int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (target < 0 || self < 0)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "cannot open the DHCP namespace of %d: %s",
                            (int)pid, strerror(errno));
    /* A netlink socket stays in the namespace it was opened in: only this thread enters the
     * child's namespace, for as long as it takes to open one, and comes back at once. */
    if (setns(target, CLONE_NEWNET) < 0)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "cannot enter the DHCP namespace: %s",
                            strerror(errno));
    struct nl_sock *sock = nl_socket_alloc();
    int r = sock ? nl_connect(sock, NETLINK_ROUTE) : -NLE_NOMEM;
    if (setns(self, CLONE_NEWNET) < 0) {
        /* Cannot happen short of a kernel bug; the agent must not go on in the wrong one. */
        log_error("cannot return to the host's network namespace: %s", strerror(errno));
        abort();
    }
    if (r < 0) {
        if (sock)
            nl_socket_free(sock);
        return nl_fail(err, r, "cannot open rtnetlink in", "the DHCP namespace");
    }
    r = ns_link_up(sock, "lo", 0, 0, err);
    if (r == 0)
        r = ns_link_up(sock, ifname, address, prefix, err);
    nl_socket_free(sock);
    return r;
}
