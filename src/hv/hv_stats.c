/*
 * Every domain's statistics of a host in one round trip (virConnectGetAllDomainStats), for the
 * metrics collector: a host with hundreds of domains costs one call, not one per domain and
 * group.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/strutil.h"
#include "hv_internal.h"

static uint64_t
hv_stats_u64(const virTypedParameter *p)
{
    switch (p->type) {
    case VIR_TYPED_PARAM_ULLONG:
        return p->value.ul;
    case VIR_TYPED_PARAM_LLONG:
        return p->value.l < 0 ? 0 : (uint64_t)p->value.l;
    case VIR_TYPED_PARAM_UINT:
        return p->value.ui;
    case VIR_TYPED_PARAM_INT:
        return p->value.i < 0 ? 0 : (uint64_t)p->value.i;
    default:
        return 0;
    }
}

/* "net.3.rx.bytes": the index 3 (below max) and the rest "rx.bytes"; -1 when not of prefix. */
static int
hv_stats_indexed(const char *field, const char *prefix, size_t max, const char **rest)
{
    if (!str_startswith(field, prefix))
        return -1;
    char *end = NULL;
    unsigned long i = strtoul(field + strlen(prefix), &end, 10);
    if (end == field + strlen(prefix) || *end != '.' || i >= max)
        return -1;
    *rest = end + 1;
    return (int)i;
}

static void
hv_stats_block(HvBlockStats *b, const char *key, const virTypedParameter *p)
{
    if (streq(key, "name") && p->type == VIR_TYPED_PARAM_STRING)
        snprintf(b->dev, sizeof(b->dev), "%s", p->value.s);
    else if (streq(key, "rd.bytes"))
        b->read_bytes = hv_stats_u64(p);
    else if (streq(key, "rd.reqs"))
        b->read_requests = hv_stats_u64(p);
    else if (streq(key, "wr.bytes"))
        b->write_bytes = hv_stats_u64(p);
    else if (streq(key, "wr.reqs"))
        b->write_requests = hv_stats_u64(p);
}

static void
hv_stats_iface(HvIfaceStats *n, const char *key, const virTypedParameter *p)
{
    static const char *const keys[8] = {"rx.bytes", "rx.pkts", "rx.errs", "rx.drop",
                                        "tx.bytes", "tx.pkts", "tx.errs", "tx.drop"};
    if (streq(key, "name") && p->type == VIR_TYPED_PARAM_STRING) {
        snprintf(n->dev, sizeof(n->dev), "%s", p->value.s);
        return;
    }
    for (int i = 0; i < 8; i++)
        if (streq(key, keys[i])) {
            uint64_t v = hv_stats_u64(p);
            uint64_t *slot[8] = {&n->rx_bytes, &n->rx_packets, &n->rx_errors, &n->rx_drops,
                                 &n->tx_bytes, &n->tx_packets, &n->tx_errors, &n->tx_drops};
            *slot[i] = v;
        }
}

static int
hv_stats_fill(virDomainStatsRecordPtr rec, HvDomainStats *d)
{
    size_t n_block = 0, n_net = 0;
    for (int j = 0; j < rec->nparams; j++) {
        const virTypedParameter *p = &rec->params[j];
        if (streq(p->field, "block.count"))
            n_block = hv_stats_u64(p);
        else if (streq(p->field, "net.count"))
            n_net = hv_stats_u64(p);
    }
    /* A domain has a handful of disks and NICs; more is not a Nimbus domain's. */
    if (n_block > 64)
        n_block = 64;
    if (n_net > 64)
        n_net = 64;
    d->blocks = n_block ? calloc(n_block, sizeof(*d->blocks)) : NULL;
    d->ifaces = n_net ? calloc(n_net, sizeof(*d->ifaces)) : NULL;
    if ((n_block && !d->blocks) || (n_net && !d->ifaces))
        return -1;
    d->n_blocks = n_block;
    d->n_ifaces = n_net;
    for (int j = 0; j < rec->nparams; j++) {
        const virTypedParameter *p = &rec->params[j];
        const char *rest;
        int i;
        if (streq(p->field, "state.state"))
            d->state = hv_domain_state_from_libvirt((int)hv_stats_u64(p));
        else if (streq(p->field, "cpu.time"))
            d->cpu_time_ns = hv_stats_u64(p);
        else if (streq(p->field, "balloon.current"))
            d->memory_kib = hv_stats_u64(p);
        else if (streq(p->field, "balloon.maximum"))
            d->max_memory_kib = hv_stats_u64(p);
        else if (streq(p->field, "vcpu.current"))
            d->vcpus = (unsigned)hv_stats_u64(p);
        else if ((i = hv_stats_indexed(p->field, "block.", n_block, &rest)) >= 0)
            hv_stats_block(&d->blocks[i], rest, p);
        else if ((i = hv_stats_indexed(p->field, "net.", n_net, &rest)) >= 0)
            hv_stats_iface(&d->ifaces[i], rest, p);
    }
    return 0;
}

void
hv_domain_stats_free(HvDomainStats *s, size_t n)
{
    if (!s)
        return;
    for (size_t i = 0; i < n; i++) {
        free(s[i].blocks);
        free(s[i].ifaces);
    }
    free(s);
}

int
hv_domain_stats_all(HvConn *c, const char *prefix, HvDomainStats **ret, size_t *ret_n,
                    NbError **err)
{
    virDomainStatsRecordPtr *recs = NULL;
    unsigned groups = VIR_DOMAIN_STATS_STATE | VIR_DOMAIN_STATS_CPU_TOTAL |
                      VIR_DOMAIN_STATS_BALLOON | VIR_DOMAIN_STATS_VCPU |
                      VIR_DOMAIN_STATS_INTERFACE | VIR_DOMAIN_STATS_BLOCK;
    int n = virConnectGetAllDomainStats(c->conn, groups, &recs, 0);
    if (n < 0)
        return hv_error(err, "domain statistics");
    HvDomainStats *out = calloc(n > 0 ? (size_t)n : 1, sizeof(*out));
    size_t count = 0;
    int r = 0;
    if (!out) {
        r = nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const char *name = virDomainGetName(recs[i]->dom);
        if (!name || !str_startswith(name, prefix ? prefix : "") ||
            strlen(name) >= sizeof(out[count].name))
            continue;
        HvDomainStats *d = &out[count];
        snprintf(d->name, sizeof(d->name), "%s", name);
        if (hv_stats_fill(recs[i], d) < 0) {
            count++;
            r = nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
            goto done;
        }
        count++;
    }
done:
    virDomainStatsRecordListFree(recs);
    if (r < 0) {
        hv_domain_stats_free(out, count);
        return -1;
    }
    *ret = out;
    *ret_n = count;
    return 0;
}
