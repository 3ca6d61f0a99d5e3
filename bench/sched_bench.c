/*
 * Placement benchmark: sched_select on a simulated cluster of in-memory fake hosts (no libvirt,
 * no store). Each decision is applied to the chosen host, as nimbusd would, so the cluster
 * fills up as the run goes. Deterministic for a given seed; prints figures only.
 *
 *     sched_bench [--hosts N] [--placements M] [--seed S]
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/scheduler.h"
#include "util/cleanup.h"
#include "util/strutil.h"

#define GROUP_SIZE 5
#define N_ZONES 3
#define NAME_LEN 32 /* "host" and any size_t */

typedef struct Rng {
    uint64_t s;
} Rng;

/* splitmix64: the same sequence on every platform. */
static uint64_t
rnd(Rng *r)
{
    uint64_t z = (r->s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t
rnd_range(Rng *r, uint64_t lo, uint64_t hi)
{
    return lo + rnd(r) % (hi - lo + 1);
}

typedef enum Kind {
    KIND_PLAIN,
    KIND_LABEL,
    KIND_ANTI,
    KIND_SOFT,
} Kind;

/* A group being filled: up to GROUP_SIZE members, each on a host. */
typedef struct OpenGroup {
    GroupPolicy policy;
    unsigned asked;  /* requests made for it so far */
    unsigned placed; /* of which placed */
    size_t host[GROUP_SIZE];
} OpenGroup;

typedef struct Flavor {
    unsigned vcpus;
    uint64_t ram_mib;
    uint64_t disk_gib;
} Flavor;

static const Flavor flavors[] = {
    {1, 512, 10},  {1, 1024, 20}, {2, 2048, 40},   {2, 4096, 40},
    {4, 8192, 80}, {4, 4096, 80}, {8, 16384, 160}, {8, 8192, 160},
};

typedef struct Stats {
    size_t placed, refused;
    size_t refused_by_kind[4];
    double total_s;
    uint64_t p50_ns, p99_ns, max_ns;
} Stats;

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

/* The group's members as the caller would count them from its store: set them on the hosts
 * before the call, clear them after. */
static void
group_mark(SchedHost *hosts, const OpenGroup *g, bool set)
{
    for (unsigned m = 0; m < g->placed; m++) {
        if (set)
            hosts[g->host[m]].group_members++;
        else
            hosts[g->host[m]].group_members = 0;
    }
}

static int
run(size_t n_hosts, size_t n_placements, uint64_t seed, SchedWeigher weigher, Stats *st)
{
    _cleanup_free_ SchedHost *hosts = calloc(n_hosts, sizeof(*hosts));
    _cleanup_free_ char *names = calloc(n_hosts, NAME_LEN);
    _cleanup_free_ uint64_t *lat = calloc(n_placements ? n_placements : 1, sizeof(*lat));
    Labels zone[N_ZONES], want_zone[N_ZONES];
    if (!hosts || !names || !lat)
        return -1;

    for (size_t z = 0; z < N_ZONES; z++) {
        memset(&zone[z], 0, sizeof(zone[z]));
        snprintf(zone[z].item[0], sizeof(zone[z].item[0]), "zone=%c", (char)('a' + z));
        zone[z].n = 1;
        want_zone[z] = zone[z];
    }

    Rng r = {seed};
    static const unsigned vcpu_choices[] = {16, 24, 32, 48, 64, 96, 128};
    static const uint64_t ram_gib_choices[] = {64, 128, 192, 256, 384, 512, 768, 1024};
    for (size_t i = 0; i < n_hosts; i++) {
        char *name = names + i * NAME_LEN;
        snprintf(name, NAME_LEN, "host%zu", i);
        /* One draw per statement: the order of initializer expressions is unspecified. */
        bool up = rnd(&r) % 100 >= 2; /* 2 % down */
        unsigned vcpus = vcpu_choices[rnd(&r) % ELEMENTSOF(vcpu_choices)];
        uint64_t ram_mib = ram_gib_choices[rnd(&r) % ELEMENTSOF(ram_gib_choices)] * 1024;
        uint64_t disk_gib = rnd_range(&r, 1, 8) * 1024;
        const Labels *labels = NULL;
        if (rnd(&r) % 10 != 0) /* 90 % carry a zone label */
            labels = &zone[rnd(&r) % N_ZONES];
        hosts[i] = (SchedHost){
            .name = name,
            .schedulable = up,
            .vcpus = vcpus,
            .ram_mib = ram_mib,
            .disk_gib = disk_gib,
            .cpu_ratio = 4.0,
            .ram_ratio = 1.0,
            .disk_ratio = 1.0,
            .labels = labels,
        };
    }

    OpenGroup anti = {.policy = GROUP_POLICY_ANTI_AFFINITY};
    OpenGroup soft = {.policy = GROUP_POLICY_SOFT_ANTI_AFFINITY};
    memset(st, 0, sizeof(*st));

    for (size_t k = 0; k < n_placements; k++) {
        const Flavor *f = &flavors[rnd(&r) % ELEMENTSOF(flavors)];
        SchedRequest req = {
            .vcpus = f->vcpus,
            .ram_mib = f->ram_mib,
            .disk_gib = f->disk_gib,
            .weigher = weigher,
        };
        uint64_t roll = rnd(&r) % 10;
        Kind kind = roll == 0   ? KIND_LABEL
                    : roll == 1 ? KIND_ANTI
                    : roll == 2 ? KIND_SOFT
                                : KIND_PLAIN;
        OpenGroup *g = kind == KIND_ANTI ? &anti : kind == KIND_SOFT ? &soft : NULL;
        if (kind == KIND_LABEL)
            req.labels = &want_zone[rnd(&r) % N_ZONES];
        if (g) {
            if (g->asked == GROUP_SIZE) { /* the group is complete: a new one */
                g->asked = 0;
                g->placed = 0;
            }
            req.has_group = true;
            req.policy = g->policy;
            req.group_placed = g->placed;
            group_mark(hosts, g, true);
        }

        SchedResult res;
        uint64_t t0 = now_ns();
        int c = sched_select(hosts, n_hosts, &req, &res);
        uint64_t t1 = now_ns();
        lat[k] = t1 - t0;
        st->total_s += (double)(t1 - t0) / 1e9;

        if (g) {
            group_mark(hosts, g, false);
            g->asked++;
        }
        if (c < 0) {
            st->refused++;
            st->refused_by_kind[kind]++;
            continue;
        }
        SchedHost *h = &hosts[c];
        h->vcpus_used += req.vcpus;
        h->ram_used_mib += req.ram_mib;
        h->disk_used_gib += req.disk_gib;
        if (g)
            g->host[g->placed++] = (size_t)c;
        st->placed++;
    }

    if (n_placements > 0) {
        qsort(lat, n_placements, sizeof(*lat), cmp_u64);
        st->p50_ns = lat[(n_placements - 1) / 2];
        st->p99_ns = lat[(n_placements * 99 + 99) / 100 - 1];
        st->max_ns = lat[n_placements - 1];
    }
    return 0;
}

static int
parse_size(const char *opt, const char *arg, uint64_t min, uint64_t max, uint64_t *ret)
{
    if (!arg || str_to_u64(arg, ret) < 0 || *ret < min || *ret > max) {
        fprintf(stderr, "sched_bench: %s wants a number from %" PRIu64 " to %" PRIu64 "\n", opt,
                min, max);
        return -1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    uint64_t n_hosts = 1000, n_placements = 10000, seed = 1;

    static const struct option long_options[] = {
        {"hosts", required_argument, NULL, 'n'},
        {"placements", required_argument, NULL, 'm'},
        {"seed", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        int r = 0;
        switch (opt) {
        case 'n':
            r = parse_size("--hosts", optarg, 1, 1000000, &n_hosts);
            break;
        case 'm':
            r = parse_size("--placements", optarg, 1, 100000000, &n_placements);
            break;
        case 's':
            r = parse_size("--seed", optarg, 0, UINT64_MAX, &seed);
            break;
        case 'h':
            printf("usage: sched_bench [--hosts N] [--placements M] [--seed S]\n");
            return 0;
        default:
            return 2;
        }
        if (r < 0)
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "sched_bench: unexpected argument %s\n", argv[optind]);
        return 2;
    }

    printf("sched_bench: %" PRIu64 " SIMULATED hosts (in-memory fakes, no libvirt, no store), "
           "%" PRIu64 " placements, seed %" PRIu64 "\n",
           n_hosts, n_placements, seed);
    printf("hosts: 16-128 vCPUs, 64-1024 GiB RAM, 1-8 TiB disk, ratios cpu 4 ram 1 disk 1, "
           "90 %% labelled zone=a|b|c, 2 %% down\n");
    printf("requests: 1-8 vCPUs, 512 MiB-16 GiB, 10-160 GiB; 10 %% ask for a zone, 10 %% in "
           "anti-affinity groups of %d, 10 %% in soft-anti-affinity groups of %d\n",
           GROUP_SIZE, GROUP_SIZE);
    printf("%-7s %12s %10s %10s %10s %8s %8s  %s\n", "weigher", "decisions/s", "p50 us", "p99 us",
           "max us", "placed", "refused", "refused (label/anti/soft)");

    static const SchedWeigher weighers[] = {SCHED_SPREAD, SCHED_PACK};
    for (size_t w = 0; w < ELEMENTSOF(weighers); w++) {
        Stats st;
        if (run((size_t)n_hosts, (size_t)n_placements, seed, weighers[w], &st) < 0) {
            fprintf(stderr, "sched_bench: out of memory\n");
            return 1;
        }
        double rate = st.total_s > 0 ? (double)n_placements / st.total_s : 0.0;
        printf("%-7s %12.0f %10.2f %10.2f %10.2f %8zu %8zu  %zu/%zu/%zu\n",
               weighers[w] == SCHED_PACK ? "pack" : "spread", rate, (double)st.p50_ns / 1e3,
               (double)st.p99_ns / 1e3, (double)st.max_ns / 1e3, st.placed, st.refused,
               st.refused_by_kind[KIND_LABEL], st.refused_by_kind[KIND_ANTI],
               st.refused_by_kind[KIND_SOFT]);
    }
    printf("decisions/s counts the time inside sched_select only (CLOCK_MONOTONIC around each "
           "call); the simulation's own bookkeeping is excluded.\n");
    return 0;
}
