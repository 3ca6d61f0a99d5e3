#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/scheduler.h"
#include "util/cleanup.h"
#include "util/strutil.h"

/* A host with room for anything small: 16 vCPUs at 4:1, 64 GiB, 1 TiB of disk. */
static SchedHost
host(const char *name)
{
    return (SchedHost){
        .name = name,
        .schedulable = true,
        .vcpus = 16,
        .ram_mib = 65536,
        .disk_gib = 1024,
        .cpu_ratio = 4.0,
        .ram_ratio = 1.0,
        .disk_ratio = 1.0,
    };
}

static SchedRequest
request(unsigned vcpus, uint64_t ram_mib, uint64_t disk_gib)
{
    return (SchedRequest){
        .vcpus = vcpus, .ram_mib = ram_mib, .disk_gib = disk_gib, .weigher = SCHED_SPREAD};
}

static void
labels_set(Labels *l, const char *const *items, size_t n)
{
    memset(l, 0, sizeof(*l));
    for (size_t i = 0; i < n; i++)
        snprintf(l->item[i], sizeof(l->item[i]), "%s", items[i]);
    l->n = n;
}

static size_t
removed_total(const SchedResult *res)
{
    size_t t = 0;
    for (size_t f = 0; f < _SCHED_FILTER_MAX; f++)
        t += res->removed[f];
    return t;
}

static void
assert_removed(const SchedResult *res, SchedFilter only, size_t count)
{
    for (size_t f = 0; f < _SCHED_FILTER_MAX; f++)
        assert_int_equal(res->removed[f], f == only ? count : 0);
}

static void
assert_explain(const SchedResult *res, size_t n, const char *want)
{
    _cleanup_free_ char *s = sched_explain(res, n);
    assert_non_null(s);
    assert_string_equal(s, want);
}

static void
test_empty_cluster(void **state)
{
    SchedRequest req = request(1, 512, 10);
    SchedResult res;
    memset(&res, 0xff, sizeof(res));
    assert_int_equal(sched_select(NULL, 0, &req, &res), -1);
    assert_int_equal(res.chosen, -1);
    assert_int_equal(removed_total(&res), 0);
    assert_explain(&res, 0, "no host fits: there are no hosts");
}

static void
test_filter_host(void **state)
{
    SchedHost h[] = {host("a"), host("b"), host("c")};
    SchedResult res;

    SchedRequest req = request(1, 512, 10);
    req.only_host = "b";
    assert_int_equal(sched_select(h, 3, &req, &res), 1);
    assert_removed(&res, SCHED_FILTER_HOST, 2);

    req.only_host = "nope";
    assert_int_equal(sched_select(h, 3, &req, &res), -1);
    assert_removed(&res, SCHED_FILTER_HOST, 3);
    assert_explain(&res, 3,
                   "no host fits (3 hosts): 3 not chosen (explicit host or migration source)");

    req.only_host = NULL;
    req.exclude_host = "a";
    assert_int_equal(sched_select(h, 3, &req, &res), 1);
    assert_removed(&res, SCHED_FILTER_HOST, 1);

    /* A migration to the host it comes from: nothing left. */
    req.only_host = "a";
    assert_int_equal(sched_select(h, 3, &req, &res), -1);
    assert_removed(&res, SCHED_FILTER_HOST, 3);

    /* The explicit host still has to pass the other filters. */
    req.exclude_host = NULL;
    req.only_host = "c";
    h[2].schedulable = false;
    assert_int_equal(sched_select(h, 3, &req, &res), -1);
    assert_int_equal(res.removed[SCHED_FILTER_HOST], 2);
    assert_int_equal(res.removed[SCHED_FILTER_STATE], 1);
}

static void
test_filter_state(void **state)
{
    SchedHost h[] = {host("a"), host("b"), host("c")};
    h[0].schedulable = false;
    h[2].schedulable = false;
    SchedRequest req = request(1, 512, 10);
    SchedResult res;
    assert_int_equal(sched_select(h, 3, &req, &res), 1);
    assert_removed(&res, SCHED_FILTER_STATE, 2);
    h[1].schedulable = false;
    assert_int_equal(sched_select(h, 3, &req, &res), -1);
    assert_removed(&res, SCHED_FILTER_STATE, 3);
    assert_explain(&res, 3, "no host fits (3 hosts): 3 down, disabled or in maintenance");
}

static void
test_filter_labels(void **state)
{
    Labels ab, a, b, none, want_a, want_ab;
    labels_set(&ab, (const char *const[]){"gpu=yes", "zone=a"}, 2);
    labels_set(&a, (const char *const[]){"zone=a"}, 1);
    labels_set(&b, (const char *const[]){"zone=b"}, 1);
    labels_set(&none, NULL, 0);
    labels_set(&want_a, (const char *const[]){"zone=a"}, 1);
    labels_set(&want_ab, (const char *const[]){"gpu=yes", "zone=a"}, 2);

    SchedHost h[] = {host("nolabels"), host("empty"), host("b"), host("a"), host("ab")};
    h[0].labels = NULL;
    h[1].labels = &none;
    h[2].labels = &b;
    h[3].labels = &a;
    h[4].labels = &ab;
    SchedResult res;

    /* No labels asked: every host will do (NULL and empty alike). */
    SchedRequest req = request(1, 512, 10);
    assert_int_equal(sched_select(h, 5, &req, &res), 0);
    assert_int_equal(removed_total(&res), 0);
    req.labels = &none;
    assert_int_equal(sched_select(h, 5, &req, &res), 0);
    assert_int_equal(removed_total(&res), 0);

    req.labels = &want_a;
    assert_int_equal(sched_select(h, 5, &req, &res), 3);
    assert_removed(&res, SCHED_FILTER_LABELS, 3);

    req.labels = &want_ab;
    assert_int_equal(sched_select(h, 5, &req, &res), 4);
    assert_removed(&res, SCHED_FILTER_LABELS, 4);

    h[4].labels = &a;
    assert_int_equal(sched_select(h, 5, &req, &res), -1);
    assert_removed(&res, SCHED_FILTER_LABELS, 5);
    assert_explain(&res, 5, "no host fits (5 hosts): 5 without the labels");
}

static void
test_affinity(void **state)
{
    SchedHost h[] = {host("a"), host("b"), host("c")};
    SchedRequest req = request(1, 512, 10);
    req.has_group = true;
    req.policy = GROUP_POLICY_AFFINITY;
    SchedResult res;

    /* The first member goes anywhere. */
    req.group_placed = 0;
    assert_int_equal(sched_select(h, 3, &req, &res), 0);
    assert_int_equal(removed_total(&res), 0);

    /* The others follow it, even onto a fuller host. */
    h[2].group_members = 1;
    h[2].vcpus_used = 40;
    h[2].ram_used_mib = 30000;
    req.group_placed = 1;
    assert_int_equal(sched_select(h, 3, &req, &res), 2);
    assert_removed(&res, SCHED_FILTER_GROUP, 2);

    /* When its host is full, the group cannot grow. */
    h[2].ram_used_mib = 65536;
    assert_int_equal(sched_select(h, 3, &req, &res), -1);
    assert_int_equal(res.removed[SCHED_FILTER_GROUP], 2);
    assert_int_equal(res.removed[SCHED_FILTER_RAM], 1);
    assert_explain(&res, 3,
                   "no host fits (3 hosts): 2 refused by the group policy, 1 without enough RAM");

    /* Members placed, but not on any host the caller listed (e.g. a down host left out). */
    h[2].group_members = 0;
    assert_int_equal(sched_select(h, 3, &req, &res), -1);
    assert_removed(&res, SCHED_FILTER_GROUP, 3);

    /* Without has_group the policy and counts are ignored. */
    req.has_group = false;
    assert_int_equal(sched_select(h, 3, &req, &res), 0);

    /* A policy the scheduler does not know refuses rather than places blindly. */
    req.has_group = true;
    req.policy = _GROUP_POLICY_MAX;
    assert_int_equal(sched_select(h, 3, &req, &res), -1);
    assert_removed(&res, SCHED_FILTER_GROUP, 3);
}

static void
test_anti_affinity_fourth_refused(void **state)
{
    SchedHost h[] = {host("a"), host("b"), host("c")};
    SchedRequest req = request(2, 2048, 20);
    req.has_group = true;
    req.policy = GROUP_POLICY_ANTI_AFFINITY;
    SchedResult res;
    bool used[3] = {false, false, false};

    for (unsigned m = 0; m < 3; m++) {
        req.group_placed = m;
        int c = sched_select(h, 3, &req, &res);
        assert_true(c >= 0 && c < 3);
        assert_false(used[c]);
        used[c] = true;
        assert_removed(&res, SCHED_FILTER_GROUP, m);
        h[c].group_members++;
        h[c].vcpus_used += req.vcpus;
        h[c].ram_used_mib += req.ram_mib;
        h[c].disk_used_gib += req.disk_gib;
    }
    req.group_placed = 3;
    assert_int_equal(sched_select(h, 3, &req, &res), -1);
    assert_removed(&res, SCHED_FILTER_GROUP, 3);
    assert_explain(&res, 3, "no host fits (3 hosts): 3 refused by the group policy");
}

static void
test_soft_anti_affinity_order(void **state)
{
    SchedHost h[] = {host("a"), host("b"), host("c")};
    /* a is the emptiest but has 2 members, b is the fullest with 1, c is mid with 1. */
    h[0].group_members = 2;
    h[1].group_members = 1;
    h[1].vcpus_used = 50;
    h[1].ram_used_mib = 60000;
    h[2].group_members = 1;
    h[2].vcpus_used = 10;
    h[2].ram_used_mib = 10000;
    SchedRequest req = request(1, 1024, 10);
    req.has_group = true;
    req.policy = GROUP_POLICY_SOFT_ANTI_AFFINITY;
    req.group_placed = 4;
    SchedResult res;

    /* Fewer members first; among equals, the weigher. */
    req.weigher = SCHED_SPREAD;
    assert_int_equal(sched_select(h, 3, &req, &res), 2);
    assert_int_equal(removed_total(&res), 0);
    req.weigher = SCHED_PACK;
    assert_int_equal(sched_select(h, 3, &req, &res), 1);

    /* Never refused for the group: the only hosts left have members. */
    h[1].schedulable = false;
    h[2].schedulable = false;
    assert_int_equal(sched_select(h, 3, &req, &res), 0);
    assert_removed(&res, SCHED_FILTER_STATE, 2);

    /* A member-free host that is full does not count. */
    h[1].schedulable = true;
    h[1].group_members = 0;
    h[1].vcpus_used = 64;
    assert_int_equal(sched_select(h, 3, &req, &res), 0);

    /* Without soft anti-affinity the counts do not matter to the weigher. */
    h[1].vcpus_used = 0;
    h[1].ram_used_mib = 0;
    h[0].vcpus_used = 32;
    req.policy = GROUP_POLICY_AFFINITY;
    req.group_placed = 0;
    req.weigher = SCHED_SPREAD;
    assert_int_equal(sched_select(h, 3, &req, &res), 1);
}

static void
test_ratio_boundaries(void **state)
{
    SchedHost h[] = {host("a")};
    SchedResult res;

    /* vCPUs: 6 × 1.5 = 9. */
    h[0].vcpus = 6;
    h[0].cpu_ratio = 1.5;
    h[0].vcpus_used = 5;
    SchedRequest req = request(4, 512, 10);
    assert_int_equal(sched_select(h, 1, &req, &res), 0);
    req.vcpus = 5;
    assert_int_equal(sched_select(h, 1, &req, &res), -1);
    assert_removed(&res, SCHED_FILTER_VCPUS, 1);
    assert_explain(&res, 1, "no host fits (1 host): 1 without enough vCPUs");

    /* Capacity is floored: 5 × 1.5 = 7.5 holds 7. */
    h[0].vcpus = 5;
    h[0].vcpus_used = 0;
    req.vcpus = 7;
    assert_int_equal(sched_select(h, 1, &req, &res), 0);
    req.vcpus = 8;
    assert_int_equal(sched_select(h, 1, &req, &res), -1);

    /* A decimal ratio that binary floating point misses: 100 × 0.29 = 29. */
    h[0].vcpus = 100;
    h[0].cpu_ratio = 0.29;
    req.vcpus = 29;
    assert_int_equal(sched_select(h, 1, &req, &res), 0);
    req.vcpus = 30;
    assert_int_equal(sched_select(h, 1, &req, &res), -1);
    h[0].cpu_ratio = 1.15; /* 114.99999999999999 in binary */
    req.vcpus = 115;
    assert_int_equal(sched_select(h, 1, &req, &res), 0);
    req.vcpus = 116;
    assert_int_equal(sched_select(h, 1, &req, &res), -1);
    h[0].vcpus = 1000;
    h[0].cpu_ratio = 1.001; /* 1.001 × 10^6 is 1000999.9999999999 in binary */
    req.vcpus = 1001;
    assert_int_equal(sched_select(h, 1, &req, &res), 0);
    req.vcpus = 1002;
    assert_int_equal(sched_select(h, 1, &req, &res), -1);

    /* RAM: 4096 × 1.25 = 5120 MiB. */
    h[0] = host("a");
    h[0].ram_mib = 4096;
    h[0].ram_ratio = 1.25;
    h[0].ram_used_mib = 1024;
    req = request(1, 4096, 10);
    assert_int_equal(sched_select(h, 1, &req, &res), 0);
    req.ram_mib = 4097;
    assert_int_equal(sched_select(h, 1, &req, &res), -1);
    assert_removed(&res, SCHED_FILTER_RAM, 1);
    assert_explain(&res, 1, "no host fits (1 host): 1 without enough RAM");

    /* Large hosts: 2 TB of RAM at 1.5. */
    h[0].ram_mib = 2000001;
    h[0].ram_ratio = 1.5;
    h[0].ram_used_mib = 0;
    req.ram_mib = 3000001;
    assert_int_equal(sched_select(h, 1, &req, &res), 0);
    req.ram_mib = 3000002;
    assert_int_equal(sched_select(h, 1, &req, &res), -1);

    /* Disk: 100 × 0.5 = 50 GiB. */
    h[0] = host("a");
    h[0].disk_gib = 100;
    h[0].disk_ratio = 0.5;
    h[0].disk_used_gib = 30;
    req = request(1, 512, 20);
    assert_int_equal(sched_select(h, 1, &req, &res), 0);
    req.disk_gib = 21;
    assert_int_equal(sched_select(h, 1, &req, &res), -1);
    assert_removed(&res, SCHED_FILTER_DISK, 1);
    assert_explain(&res, 1, "no host fits (1 host): 1 without enough disk");

    /* Already over-committed (the operator lowered a ratio): nothing more, not even zero. */
    h[0].disk_used_gib = 60;
    req.disk_gib = 0;
    assert_int_equal(sched_select(h, 1, &req, &res), -1);
    assert_removed(&res, SCHED_FILTER_DISK, 1);
}

static void
test_zero_and_huge_capacity(void **state)
{
    SchedHost h[] = {host("vcpus0"), host("ram0"), host("disk0"), host("fresh"), host("ok")};
    h[0].vcpus = 0;
    h[1].ram_mib = 0;
    h[2].disk_gib = 0;
    /* Never contacted: every capacity still 0. */
    h[3].vcpus = 0;
    h[3].ram_mib = 0;
    h[3].disk_gib = 0;
    SchedResult res;

    /* Even a request for none of it does not go to a host with none. */
    SchedRequest req = request(0, 0, 0);
    assert_int_equal(sched_select(h, 5, &req, &res), 4);
    assert_int_equal(res.removed[SCHED_FILTER_VCPUS], 2);
    assert_int_equal(res.removed[SCHED_FILTER_RAM], 1);
    assert_int_equal(res.removed[SCHED_FILTER_DISK], 1);
    assert_int_equal(removed_total(&res), 4);

    /* A ratio that rounds to nothing, or is not a number, leaves nothing. */
    h[4].cpu_ratio = 1e-9;
    assert_int_equal(sched_select(h, 5, &req, &res), -1);
    h[4].cpu_ratio = NAN;
    assert_int_equal(sched_select(h, 5, &req, &res), -1);
    h[4].cpu_ratio = -1.0;
    assert_int_equal(sched_select(h, 5, &req, &res), -1);
    assert_explain(&res, 5,
                   "no host fits (5 hosts): 3 without enough vCPUs, 1 without enough RAM, "
                   "1 without enough disk");

    /* Values near the top of uint64_t neither overflow nor wrap. */
    SchedHost big = host("big");
    big.ram_mib = UINT64_MAX;
    big.ram_ratio = 64.0;
    big.ram_used_mib = UINT64_MAX - 10;
    big.disk_gib = UINT64_MAX / 2;
    big.disk_ratio = 2.0;
    req = request(1, UINT64_MAX, 1);
    /* Capacity saturates at UINT64_MAX: used + want would wrap, and must not fit. */
    assert_int_equal(sched_select(&big, 1, &req, &res), -1);
    assert_removed(&res, SCHED_FILTER_RAM, 1);
    req.ram_mib = 10;
    assert_int_equal(sched_select(&big, 1, &req, &res), 0);
    req.ram_mib = 11;
    assert_int_equal(sched_select(&big, 1, &req, &res), -1);
    req.ram_mib = 1;
    big.disk_used_gib = UINT64_MAX - 1;
    req.disk_gib = UINT64_MAX;
    assert_int_equal(sched_select(&big, 1, &req, &res), -1);
    assert_removed(&res, SCHED_FILTER_DISK, 1);
    big.disk_used_gib = 0;
    big.vcpus_used = UINT64_MAX;
    req.disk_gib = 1;
    assert_int_equal(sched_select(&big, 1, &req, &res), -1);
    assert_removed(&res, SCHED_FILTER_VCPUS, 1);
}

static void
test_each_host_counted_once(void **state)
{
    /* Host i fails filter i and every filter after it; only its first failure counts. */
    Labels zone_b, want;
    labels_set(&zone_b, (const char *const[]){"zone=b"}, 1);
    labels_set(&want, (const char *const[]){"zone=a"}, 1);
    const char *names[_SCHED_FILTER_MAX] = {"src",    "down", "nopool", "b",
                                            "member", "cpu",  "ram",    "disk"};
    SchedHost h[_SCHED_FILTER_MAX];
    for (size_t i = 0; i < _SCHED_FILTER_MAX; i++) {
        h[i] = host(names[i]);
        h[i].schedulable = i > SCHED_FILTER_STATE;
        h[i].has_pool = i > SCHED_FILTER_POOL;
        h[i].labels = i > SCHED_FILTER_LABELS ? &want : &zone_b;
        h[i].group_members = i > SCHED_FILTER_GROUP ? 0 : 1;
        h[i].vcpus_used = i > SCHED_FILTER_VCPUS ? 0 : 64;
        h[i].ram_used_mib = i > SCHED_FILTER_RAM ? 0 : 65536;
        h[i].disk_used_gib = i > SCHED_FILTER_DISK ? 0 : 1024;
    }
    SchedRequest req = request(1, 512, 10);
    req.exclude_host = "src";
    req.labels = &want;
    req.has_group = true;
    req.policy = GROUP_POLICY_ANTI_AFFINITY;
    req.group_placed = 4;
    req.needs_pool = true;
    SchedResult res;
    assert_int_equal(sched_select(h, _SCHED_FILTER_MAX, &req, &res), -1);
    for (size_t f = 0; f < _SCHED_FILTER_MAX; f++)
        assert_int_equal(res.removed[f], 1);
    assert_explain(&res, _SCHED_FILTER_MAX,
                   "no host fits (8 hosts): 1 not chosen (explicit host or migration source), "
                   "1 down, disabled or in maintenance, 1 without the VM's storage pool active, "
                   "1 without the labels, 1 refused by the "
                   "group policy, 1 without enough vCPUs, 1 without enough RAM, 1 without enough "
                   "disk");

    /* Free the disk of the last one: it is chosen, and the others are still counted. */
    h[SCHED_FILTER_DISK].disk_used_gib = 0;
    assert_int_equal(sched_select(h, _SCHED_FILTER_MAX, &req, &res), SCHED_FILTER_DISK);
    for (size_t f = 0; f < _SCHED_FILTER_MAX; f++)
        assert_int_equal(res.removed[f], f == SCHED_FILTER_DISK ? 0 : 1);
}

static void
test_spread_vs_pack(void **state)
{
    SchedHost h[] = {host("half"), host("empty"), host("full-ish"), host("full")};
    h[0].vcpus_used = 32;
    h[0].ram_used_mib = 32768;
    h[2].vcpus_used = 60;
    h[2].ram_used_mib = 60000;
    h[3].vcpus_used = 64; /* does not fit: never chosen, even by PACK */
    SchedResult res;

    SchedRequest req = request(2, 2048, 20);
    req.weigher = SCHED_SPREAD;
    assert_int_equal(sched_select(h, 4, &req, &res), 1);
    assert_removed(&res, SCHED_FILTER_VCPUS, 1);
    req.weigher = SCHED_PACK;
    assert_int_equal(sched_select(h, 4, &req, &res), 2);
    assert_removed(&res, SCHED_FILTER_VCPUS, 1);

    /* The score is the mean of the RAM and vCPU fractions, not either one alone: host 0 has
     * more free vCPUs (0.75 + 0.25) than host 1 (0.5 + 0.625), which wins on the mean. */
    SchedHost m[] = {host("cpu-free"), host("balanced")};
    m[0].vcpus_used = 16;
    m[0].ram_used_mib = 49152;
    m[1].vcpus_used = 32;
    m[1].ram_used_mib = 24576;
    req = request(0, 0, 0);
    req.weigher = SCHED_SPREAD;
    assert_int_equal(sched_select(m, 2, &req, &res), 1);
    req.weigher = SCHED_PACK;
    assert_int_equal(sched_select(m, 2, &req, &res), 0);

    /* Free capacity is counted after placement, as a fraction: a large host with the same
     * free amount is emptier in proportion only if its fraction is higher. */
    SchedHost s[] = {host("small"), host("large")};
    s[0].vcpus = 4;      /* 16 slots */
    s[0].ram_mib = 8192; /* request leaves 4096 of 8192 */
    s[1].vcpus = 64;     /* 256 slots */
    s[1].ram_mib = 262144;
    s[1].ram_used_mib = 253952; /* request leaves 4096 of 262144 */
    req = request(2, 4096, 10);
    req.weigher = SCHED_SPREAD;
    /* small: (14/16 + 0.5)/2 = 0.6875; large: (254/256 + 1/64)/2 ≈ 0.504 */
    assert_int_equal(sched_select(s, 2, &req, &res), 0);
    req.weigher = SCHED_PACK;
    assert_int_equal(sched_select(s, 2, &req, &res), 1);
}

static void
test_disk_breaks_ties(void **state)
{
    SchedHost h[] = {host("a"), host("b"), host("c")};
    h[0].disk_used_gib = 500;
    h[2].disk_used_gib = 800;
    SchedRequest req = request(1, 512, 10);
    SchedResult res;
    req.weigher = SCHED_SPREAD;
    assert_int_equal(sched_select(h, 3, &req, &res), 1);
    req.weigher = SCHED_PACK;
    assert_int_equal(sched_select(h, 3, &req, &res), 2);

    /* Disk only breaks ties: a host with less RAM free loses despite more disk. */
    h[1].ram_used_mib = 1024;
    req.weigher = SCHED_SPREAD;
    assert_int_equal(sched_select(h, 3, &req, &res), 0);
}

static void
test_ties_go_to_earliest(void **state)
{
    SchedHost h[] = {host("a"), host("b"), host("c"), host("d")};
    SchedRequest req = request(1, 1024, 10);
    SchedResult res;
    req.weigher = SCHED_SPREAD;
    assert_int_equal(sched_select(h, 4, &req, &res), 0);
    req.weigher = SCHED_PACK;
    assert_int_equal(sched_select(h, 4, &req, &res), 0);

    /* Equal fractions from different sizes are a tie too: 0.5 of 64 slots and of 128. */
    SchedHost p[] = {host("down"), host("small"), host("big")};
    p[0].schedulable = false;
    p[1].vcpus_used = 31;
    p[1].ram_used_mib = 32767;
    p[1].disk_used_gib = 511;
    p[2].vcpus = 32;
    p[2].ram_mib = 131072;
    p[2].disk_gib = 2048;
    p[2].vcpus_used = 63;
    p[2].ram_used_mib = 65535;
    p[2].disk_used_gib = 1023;
    req = request(1, 1, 1);
    req.weigher = SCHED_SPREAD;
    assert_int_equal(sched_select(p, 3, &req, &res), 1);
    req.weigher = SCHED_PACK;
    assert_int_equal(sched_select(p, 3, &req, &res), 1);

    /* Soft anti-affinity: equal members and equal room, the earliest. */
    p[1].group_members = 1;
    p[2].group_members = 1;
    req.has_group = true;
    req.policy = GROUP_POLICY_SOFT_ANTI_AFFINITY;
    req.group_placed = 2;
    assert_int_equal(sched_select(p, 3, &req, &res), 1);
}

static void
test_explain(void **state)
{
    SchedResult res = {.chosen = -1};
    assert_explain(&res, 0, "no host fits: there are no hosts");

    res.removed[SCHED_FILTER_STATE] = 1;
    res.removed[SCHED_FILTER_RAM] = 2;
    assert_explain(&res, 3,
                   "no host fits (3 hosts): 1 down, disabled or in maintenance, 2 without "
                   "enough RAM");

    memset(res.removed, 0, sizeof(res.removed));
    res.removed[SCHED_FILTER_HOST] = 999;
    res.removed[SCHED_FILTER_LABELS] = 1;
    res.removed[SCHED_FILTER_GROUP] = 1000;
    res.removed[SCHED_FILTER_VCPUS] = 7;
    res.removed[SCHED_FILTER_DISK] = 3;
    assert_explain(&res, 2010,
                   "no host fits (2010 hosts): 999 not chosen (explicit host or migration "
                   "source), 1 without the labels, 1000 refused by the group policy, 7 without "
                   "enough vCPUs, 3 without enough disk");

    memset(res.removed, 0, sizeof(res.removed));
    res.removed[SCHED_FILTER_GROUP] = 1;
    assert_explain(&res, 1, "no host fits (1 host): 1 refused by the group policy");

    /* The largest counts still fit. */
    for (size_t f = 0; f < _SCHED_FILTER_MAX; f++)
        res.removed[f] = SIZE_MAX;
    _cleanup_free_ char *s = sched_explain(&res, SIZE_MAX);
    assert_non_null(s);
    assert_true(str_startswith(s, "no host fits ("));
    assert_non_null(strstr(s, " without enough disk"));
}

/* ---- property test ---------------------------------------------------------------------- */

#define P_HOSTS 40
#define P_GROUPS 6
#define P_REQUESTS 10000

static uint64_t
rnd(uint64_t *s)
{
    /* splitmix64: deterministic on every platform. */
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t
rnd_range(uint64_t *s, uint64_t lo, uint64_t hi)
{
    return lo + rnd(s) % (hi - lo + 1);
}

/* The ratios are halves (0.5 .. 4), exact in binary, so capacity here is plain integer math,
 * written independently of the scheduler's. */
typedef struct PHost {
    unsigned cpu_halves, ram_halves, disk_halves;
    unsigned members[P_GROUPS];
} PHost;

static uint64_t
p_cap(uint64_t raw, unsigned halves)
{
    return raw * halves / 2;
}

static bool
p_labels_ok(const Labels *have, const Labels *want)
{
    if (!want)
        return true;
    for (size_t i = 0; i < want->n; i++) {
        bool found = false;
        for (size_t j = 0; have && j < have->n; j++)
            found = found || streq(have->item[j], want->item[i]);
        if (!found)
            return false;
    }
    return true;
}

static bool
p_eligible(const SchedHost *h, const SchedRequest *req, const PHost *p)
{
    if (req->only_host && !streq(h->name, req->only_host))
        return false;
    if (req->exclude_host && streq(h->name, req->exclude_host))
        return false;
    if (!h->schedulable || !p_labels_ok(h->labels, req->labels))
        return false;
    if (req->has_group && req->policy == GROUP_POLICY_ANTI_AFFINITY && h->group_members > 0)
        return false;
    if (req->has_group && req->policy == GROUP_POLICY_AFFINITY && req->group_placed > 0 &&
        h->group_members == 0)
        return false;
    uint64_t cc = p_cap(h->vcpus, p->cpu_halves), rc = p_cap(h->ram_mib, p->ram_halves),
             dc = p_cap(h->disk_gib, p->disk_halves);
    return cc > 0 && rc > 0 && dc > 0 && h->vcpus_used + req->vcpus <= cc &&
           h->ram_used_mib + req->ram_mib <= rc && h->disk_used_gib + req->disk_gib <= dc;
}

static double
p_score(const SchedHost *h, const SchedRequest *req, const PHost *p)
{
    uint64_t cc = p_cap(h->vcpus, p->cpu_halves), rc = p_cap(h->ram_mib, p->ram_halves);
    return ((double)(rc - h->ram_used_mib - req->ram_mib) / (double)rc +
            (double)(cc - h->vcpus_used - req->vcpus) / (double)cc) /
           2.0;
}

static void
test_property_random(void **state)
{
    uint64_t seed = UINT64_C(20240611);
    SchedHost h[P_HOSTS];
    PHost p[P_HOSTS];
    char names[P_HOSTS][16];
    Labels host_labels[4], want_labels[3];
    labels_set(&host_labels[0], (const char *const[]){"ssd=yes", "zone=a"}, 2);
    labels_set(&host_labels[1], (const char *const[]){"zone=a"}, 1);
    labels_set(&host_labels[2], (const char *const[]){"ssd=yes", "zone=b"}, 2);
    labels_set(&host_labels[3], (const char *const[]){"zone=b"}, 1);
    labels_set(&want_labels[0], (const char *const[]){"zone=a"}, 1);
    labels_set(&want_labels[1], (const char *const[]){"ssd=yes"}, 1);
    labels_set(&want_labels[2], (const char *const[]){"ssd=yes", "zone=b"}, 2);
    GroupPolicy group_policy[P_GROUPS];
    unsigned group_placed[P_GROUPS] = {0};

    for (size_t g = 0; g < P_GROUPS; g++)
        group_policy[g] = (GroupPolicy)(g % _GROUP_POLICY_MAX);
    memset(p, 0, sizeof(p));
    for (size_t i = 0; i < P_HOSTS; i++) {
        snprintf(names[i], sizeof(names[i]), "h%zu", i);
        /* One draw per statement: the order of initializer expressions is unspecified. */
        bool up = rnd(&seed) % 10 != 0;
        unsigned vcpus = (unsigned)rnd_range(&seed, 0, 64);
        uint64_t ram_mib = rnd_range(&seed, 0, 4) == 0 ? 0 : rnd_range(&seed, 1024, 262144);
        uint64_t disk_gib = rnd_range(&seed, 0, 20) == 0 ? 0 : rnd_range(&seed, 10, 4096);
        const Labels *labels = NULL;
        if (rnd(&seed) % 5 != 0)
            labels = &host_labels[rnd(&seed) % 4];
        h[i] = (SchedHost){
            .name = names[i],
            .schedulable = up,
            .vcpus = vcpus,
            .ram_mib = ram_mib,
            .disk_gib = disk_gib,
            .labels = labels,
        };
        p[i].cpu_halves = (unsigned)rnd_range(&seed, 1, 8);
        p[i].ram_halves = (unsigned)rnd_range(&seed, 1, 8);
        p[i].disk_halves = (unsigned)rnd_range(&seed, 1, 8);
        h[i].cpu_ratio = p[i].cpu_halves / 2.0;
        h[i].ram_ratio = p[i].ram_halves / 2.0;
        h[i].disk_ratio = p[i].disk_halves / 2.0;
    }

    size_t placed = 0, refused = 0;
    for (size_t k = 0; k < P_REQUESTS; k++) {
        SchedRequest req = {.weigher = SCHED_SPREAD};
        /* Mostly small, some large: the cluster fills slowly and stays fragmented. */
        bool large = rnd(&seed) % 4 == 0;
        req.vcpus = (unsigned)rnd_range(&seed, 0, large ? 16 : 4);
        req.ram_mib = rnd_range(&seed, 0, large ? 32768 : 4096);
        req.disk_gib = rnd_range(&seed, 0, large ? 200 : 40);
        if (rnd(&seed) % 2)
            req.weigher = SCHED_PACK;
        if (rnd(&seed) % 4 == 0)
            req.labels = &want_labels[rnd(&seed) % 3];
        if (rnd(&seed) % 20 == 0)
            req.only_host = names[rnd(&seed) % P_HOSTS];
        if (rnd(&seed) % 20 == 0)
            req.exclude_host = names[rnd(&seed) % P_HOSTS];
        size_t g = rnd(&seed) % (2 * P_GROUPS);
        req.has_group = g < P_GROUPS;
        if (req.has_group) {
            req.policy = group_policy[g];
            req.group_placed = group_placed[g];
        }
        for (size_t i = 0; i < P_HOSTS; i++)
            h[i].group_members = req.has_group ? p[i].members[g] : 0;

        SchedResult res;
        int c = sched_select(h, P_HOSTS, &req, &res);
        assert_int_equal(c, res.chosen);

        size_t eligible = 0;
        int best = -1;
        for (size_t i = 0; i < P_HOSTS; i++) {
            if (!p_eligible(&h[i], &req, &p[i]))
                continue;
            eligible++;
            if (best < 0)
                best = (int)i;
        }
        assert_int_equal(removed_total(&res), P_HOSTS - eligible);

        if (c < 0) {
            /* Justified: no host would have taken it. */
            assert_int_equal(eligible, 0);
            _cleanup_free_ char *why = sched_explain(&res, P_HOSTS);
            assert_non_null(why);
            assert_true(str_startswith(why, "no host fits (40 hosts): "));
            refused++;
            continue;
        }
        assert_true(c < P_HOSTS);
        assert_true(p_eligible(&h[c], &req, &p[c]));

        /* And the best by the weigher: nobody is clearly better. */
        bool soft = req.has_group && req.policy == GROUP_POLICY_SOFT_ANTI_AFFINITY;
        for (size_t i = 0; i < P_HOSTS; i++) {
            if (!p_eligible(&h[i], &req, &p[i]))
                continue;
            if (soft) {
                assert_true(h[c].group_members <= h[i].group_members);
                if (h[i].group_members != h[c].group_members)
                    continue;
            }
            double d = p_score(&h[i], &req, &p[i]) - p_score(&h[c], &req, &p[c]);
            if (req.weigher == SCHED_PACK)
                d = -d;
            assert_true(d < 1e-9);
        }

        h[c].vcpus_used += req.vcpus;
        h[c].ram_used_mib += req.ram_mib;
        h[c].disk_used_gib += req.disk_gib;
        if (req.has_group) {
            p[c].members[g]++;
            group_placed[g]++;
        }
        placed++;
    }

    for (size_t i = 0; i < P_HOSTS; i++) {
        assert_true(h[i].vcpus_used <= p_cap(h[i].vcpus, p[i].cpu_halves));
        assert_true(h[i].ram_used_mib <= p_cap(h[i].ram_mib, p[i].ram_halves));
        assert_true(h[i].disk_used_gib <= p_cap(h[i].disk_gib, p[i].disk_halves));
        if (!h[i].schedulable)
            assert_int_equal(h[i].vcpus_used + h[i].ram_used_mib + h[i].disk_used_gib, 0);
        for (size_t g = 0; g < P_GROUPS; g++)
            if (group_policy[g] == GROUP_POLICY_ANTI_AFFINITY)
                assert_true(p[i].members[g] <= 1);
    }
    for (size_t g = 0; g < P_GROUPS; g++) {
        if (group_policy[g] != GROUP_POLICY_AFFINITY)
            continue;
        size_t hosts_with = 0;
        for (size_t i = 0; i < P_HOSTS; i++)
            hosts_with += p[i].members[g] > 0;
        assert_true(hosts_with <= 1);
    }
    /* Both outcomes were exercised many times. */
    print_message("property: %zu placed, %zu refused\n", placed, refused);
    assert_true(placed > 500);
    assert_true(refused > 500);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_cluster),
        cmocka_unit_test(test_filter_host),
        cmocka_unit_test(test_filter_state),
        cmocka_unit_test(test_filter_labels),
        cmocka_unit_test(test_affinity),
        cmocka_unit_test(test_anti_affinity_fourth_refused),
        cmocka_unit_test(test_soft_anti_affinity_order),
        cmocka_unit_test(test_ratio_boundaries),
        cmocka_unit_test(test_zero_and_huge_capacity),
        cmocka_unit_test(test_each_host_counted_once),
        cmocka_unit_test(test_spread_vs_pack),
        cmocka_unit_test(test_disk_breaks_ties),
        cmocka_unit_test(test_ties_go_to_earliest),
        cmocka_unit_test(test_explain),
        cmocka_unit_test(test_property_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
