/*
 * port_bench: IPAM in the store, timed. Allocates ports on one network the ways nimbusd does:
 * with a VM's insert (create), one at a time onto existing VMs (NIC hot-plug), and from several
 * threads at once. Prints figures,
 * asserts nothing; bench/ports.py runs it beside raw virsh doing a fixed address by hand.
 *
 *   port_bench [--ports N] [--threads T] [--dir DIR]
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "util/strutil.h"

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static void
report(const char *what, double *lat, size_t n, double wall)
{
    qsort(lat, n, sizeof(*lat), cmp_double);
    printf("%-44s %6zu  %8.0f/s  median %7.3f ms  p99 %7.3f ms\n", what, n, (double)n / wall,
           lat[n / 2] * 1e3, lat[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] * 1e3);
}

static void
die(const char *what, NbError *err)
{
    fprintf(stderr, "port_bench: %s: %s %s\n", what, err ? err->code : "", err ? err->message : "");
    exit(1);
}

typedef struct Bed {
    Store *s;
    Flavor flavor;
    Image image;
    Network net;
    unsigned macs;
    pthread_mutex_t mac_lock;
} Bed;

static void
next_mac(Bed *b, char out[NB_MAC_STRLEN])
{
    pthread_mutex_lock(&b->mac_lock);
    unsigned m = b->macs++;
    pthread_mutex_unlock(&b->mac_lock);
    snprintf(out, NB_MAC_STRLEN, "52:54:%02x:%02x:%02x:%02x", (m >> 24) & 0xff, (m >> 16) & 0xff,
             (m >> 8) & 0xff, m & 0xff);
}

static void
bed_open(Bed *b, const char *path, unsigned prefix)
{
    NbError *err = NULL;
    memset(b, 0, sizeof(*b));
    pthread_mutex_init(&b->mac_lock, NULL);
    if (store_open(path, &b->s, &err) < 0)
        die("store_open", err);
    nb_uuid_generate(b->flavor.id);
    snprintf(b->flavor.name, sizeof(b->flavor.name), "bench");
    b->flavor.vcpus = 1;
    b->flavor.ram_mib = 128;
    b->flavor.disk_gib = 1;
    nb_timestamp_now(b->flavor.created_at);
    if (flavor_store_insert(b->s, &b->flavor, &err) < 0)
        die("flavor", err);
    nb_uuid_generate(b->image.id);
    snprintf(b->image.name, sizeof(b->image.name), "bench");
    snprintf(b->image.volume, sizeof(b->image.volume), "image-%s", b->image.id);
    snprintf(b->image.project, sizeof(b->image.project), NB_DEFAULT_PROJECT_ID);
    b->image.state = IMAGE_STATE_ACTIVE;
    nb_timestamp_now(b->image.created_at);
    memcpy(b->image.updated_at, b->image.created_at, sizeof(b->image.updated_at));
    if (image_store_insert(b->s, &b->image, &err) < 0)
        die("image", err);
    char body[128];
    snprintf(body, sizeof(body),
             "{\"name\": \"bench\", \"type\": \"isolated\", \"cidr\": "
             "\"10.64.0.0/%u\"}",
             prefix);
    json_t *j = json_loads(body, 0, NULL);
    if (network_from_request(j, &b->net, &err) < 0)
        die("network", err);
    json_decref(j);
    nb_uuid_generate(b->net.id);
    snprintf(b->net.project, sizeof(b->net.project), NB_DEFAULT_PROJECT_ID);
    nb_timestamp_now(b->net.created_at);
    if (network_store_insert(b->s, &b->net, &err) < 0)
        die("network insert", err);
}

/* Inserts a VM with n_ports ports allocated on the bed's network, as a create does. */
static void
insert_vm(Bed *b, unsigned i, size_t n_ports, Vm *vm)
{
    NbError *err = NULL;
    Task t;
    memset(vm, 0, sizeof(*vm));
    nb_uuid_generate(vm->id);
    snprintf(vm->name, sizeof(vm->name), "vm-%u", i);
    snprintf(vm->hostname, sizeof(vm->hostname), "vm-%u", i);
    snprintf(vm->host, sizeof(vm->host), "local");
    snprintf(vm->project, sizeof(vm->project), NB_DEFAULT_PROJECT_ID);
    next_mac(b, vm->mac);
    memcpy(vm->image_id, b->image.id, sizeof(vm->image_id));
    memcpy(vm->flavor_id, b->flavor.id, sizeof(vm->flavor_id));
    vm->state = VM_STATE_BUILDING;
    vm->desired = VM_POWER_RUNNING;
    vm->vcpus = 1;
    vm->ram_mib = 128;
    vm->disk_gib = 1;
    nb_timestamp_now(vm->created_at);
    memcpy(vm->updated_at, vm->created_at, sizeof(vm->updated_at));
    memset(&t, 0, sizeof(t));
    nb_uuid_generate(t.id);
    t.kind = TASK_KIND_VM_CREATE;
    t.state = TASK_STATE_PENDING;
    t.steps = 5;
    t.progress = -1;
    snprintf(t.target_id, sizeof(t.target_id), "%s", vm->id);
    memcpy(t.created_at, vm->created_at, sizeof(t.created_at));
    memcpy(t.updated_at, vm->created_at, sizeof(t.updated_at));
    memcpy(vm->task_id, t.id, sizeof(vm->task_id));
    Port ports[VM_NICS_MAX];
    memset(ports, 0, sizeof(ports));
    for (size_t k = 0; k < n_ports; k++) {
        memcpy(ports[k].network_id, b->net.id, sizeof(ports[k].network_id));
        next_mac(b, ports[k].mac);
        ports[k].slot = (unsigned)k;
    }
    if (vm_store_insert_with_task(b->s, vm, &t, ports, n_ports, NULL, &err) < 0)
        die("vm insert", err);
}

static void
add_port(Bed *b, const Vm *vm)
{
    NbError *err = NULL;
    Port p;
    memset(&p, 0, sizeof(p));
    memcpy(p.vm_id, vm->id, sizeof(p.vm_id));
    memcpy(p.network_id, b->net.id, sizeof(p.network_id));
    next_mac(b, p.mac);
    if (port_store_add(b->s, &p, &err) < 0)
        die("port add", err);
}

typedef struct Worker {
    Bed *b;
    const Vm *vms;
    size_t from, to;
    double *lat;
    pthread_barrier_t *go;
} Worker;

static void *
worker_run(void *arg)
{
    Worker *w = arg;
    pthread_barrier_wait(w->go);
    for (size_t i = w->from; i < w->to; i++) {
        double t0 = now_s();
        add_port(w->b, &w->vms[i]);
        w->lat[i] = now_s() - t0;
    }
    return NULL;
}

int
main(int argc, char **argv)
{
    size_t n = 1000;
    unsigned threads = 8;
    const char *dir = "/tmp";
    static const struct option opts[] = {{"ports", required_argument, NULL, 'n'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"dir", required_argument, NULL, 'd'},
                                         {NULL, 0, NULL, 0}};
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        uint64_t v;
        if (c == 'n' && str_to_u64(optarg, &v) == 0 && v >= 10 && v <= 100000)
            n = (size_t)v;
        else if (c == 't' && str_to_u64(optarg, &v) == 0 && v >= 1 && v <= 64)
            threads = (unsigned)v;
        else if (c == 'd')
            dir = optarg;
        else {
            fprintf(stderr, "usage: port_bench [--ports 10..100000] [--threads 1..64] "
                            "[--dir DIR]\n");
            return 2;
        }
    }
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s/port-bench-XXXXXX", dir);
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    char path[300];
    snprintf(path, sizeof(path), "%s/nimbus.db", tmp);
    /* Room for 3n ports, and then some: a /16 covers 100,000. */
    unsigned prefix = n * 3 < 16000 ? 18 : 16;
    Bed b;
    bed_open(&b, path, prefix);

    double *lat = calloc(n, sizeof(*lat));
    Vm *vms = calloc(n, sizeof(*vms));
    if (!lat || !vms)
        return 1;
    printf("store IPAM on one /%u network, SQLite in %s (WAL, synchronous=NORMAL)\n", prefix, tmp);

    /* 1. Creates: a VM row, its task and one port, in one transaction. */
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        double s = now_s();
        insert_vm(&b, (unsigned)i, 1, &vms[i]);
        lat[i] = now_s() - s;
    }
    report("create: VM + task + 1 port (one transaction)", lat, n, now_s() - t0);

    /* 2. Hot-plug: one more port on each VM, one at a time. */
    t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        double s = now_s();
        add_port(&b, &vms[i]);
        lat[i] = now_s() - s;
    }
    report("nic add: 1 port on an existing VM", lat, n, now_s() - t0);

    /* 3. The same from several threads at once: the allocation is decided in the writer's
     * transaction, so no two threads get one address. */
    Worker *ws = calloc(threads, sizeof(*ws));
    pthread_t *tids = calloc(threads, sizeof(*tids));
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, threads + 1);
    for (unsigned k = 0; k < threads; k++) {
        ws[k] = (Worker){.b = &b,
                         .vms = vms,
                         .from = n * k / threads,
                         .to = n * (k + 1) / threads,
                         .lat = lat,
                         .go = &go};
        pthread_create(&tids[k], NULL, worker_run, &ws[k]);
    }
    pthread_barrier_wait(&go);
    t0 = now_s();
    for (unsigned k = 0; k < threads; k++)
        pthread_join(tids[k], NULL);
    char what[64];
    snprintf(what, sizeof(what), "nic add: %u threads at once", threads);
    report(what, lat, n, now_s() - t0);

    /* Every address handed out once. */
    Port *all = NULL;
    size_t n_all = 0;
    NbError *err = NULL;
    if (port_store_list(b.s, NULL, b.net.id, &all, &n_all, &err) < 0)
        die("port list", err);
    uint32_t *ips = calloc(n_all ? n_all : 1, sizeof(*ips));
    for (size_t i = 0; i < n_all; i++)
        ips[i] = all[i].ip;
    qsort(ips, n_all, sizeof(*ips), cmp_u32);
    size_t dup = 0;
    for (size_t i = 1; i < n_all; i++)
        dup += ips[i] == ips[i - 1];
    free(ips);
    printf("%zu ports on the network, %zu addresses given twice\n", n_all, dup);
    free(all);

    store_close(b.s);
    unlink(path);
    char side[320];
    snprintf(side, sizeof(side), "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    unlink(side);
    rmdir(tmp);
    free(lat);
    free(vms);
    free(ws);
    free(tids);
    pthread_barrier_destroy(&go);
    return 0;
}
