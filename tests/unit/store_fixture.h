/* The store tests' common fixture: a store in a fresh temporary directory, a flavor and an image
 * for VMs to point at, and the error check. Included by the test_store*.c and test_host_store.c. */
#pragma once

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/store.h"

typedef struct Fixture {
    char dir[64];
    char path[96];
    Store *s;
    Flavor flavor;
    Image image;
    unsigned macs; /* MACs handed out so far (test_host_store.c) */
} Fixture;

/* A new temporary directory (tag names it) and the store's path in it; no store yet. */
static inline Fixture *
fixture_new(const char *tag)
{
    Fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/nimbus-test-%s-XXXXXX", tag);
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/nimbus.db", f->dir);
    return f;
}

/* Opens the store and adds the flavor "small" and the image "tiny" (in image_state). */
static inline void
fixture_open_seeded(Fixture *f, ImageState image_state)
{
    NbError *err = NULL;
    assert_int_equal(store_open(f->path, &f->s, &err), 0);

    nb_uuid_generate(f->flavor.id);
    snprintf(f->flavor.name, sizeof(f->flavor.name), "small");
    f->flavor.vcpus = 1;
    f->flavor.ram_mib = 256;
    f->flavor.disk_gib = 1;
    nb_timestamp_now(f->flavor.created_at);
    assert_int_equal(flavor_store_insert(f->s, &f->flavor, &err), 0);

    nb_uuid_generate(f->image.id);
    snprintf(f->image.name, sizeof(f->image.name), "tiny");
    snprintf(f->image.volume, sizeof(f->image.volume), "image-%s", f->image.id);
    snprintf(f->image.project, sizeof(f->image.project), NB_DEFAULT_PROJECT_ID);
    f->image.state = image_state;
    nb_timestamp_now(f->image.created_at);
    memcpy(f->image.updated_at, f->image.created_at, sizeof(f->image.updated_at));
    assert_int_equal(image_store_insert(f->s, &f->image, &err), 0);
}

/* cmocka teardown: closes the store and removes its files and directory. */
static inline int
fixture_teardown(void **state)
{
    Fixture *f = *state;
    char path[128];
    store_close(f->s);
    const char *files[] = {"nimbus.db", "nimbus.db-wal", "nimbus.db-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", f->dir, files[i]);
        unlink(path);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static inline void
make_host(Host *h, const char *name, const char *uri)
{
    memset(h, 0, sizeof(*h));
    nb_uuid_generate(h->id);
    snprintf(h->name, sizeof(h->name), "%s", name);
    snprintf(h->uri, sizeof(h->uri), "%s", uri);
    h->admin = HOST_ADMIN_ENABLED;
    h->conn = HOST_CONN_CONNECTING;
    h->cpu_ratio = HOST_DEFAULT_CPU_RATIO;
    h->ram_ratio = HOST_DEFAULT_RAM_RATIO;
    h->disk_ratio = HOST_DEFAULT_DISK_RATIO;
    nb_timestamp_now(h->created_at);
    memcpy(h->updated_at, h->created_at, sizeof(h->updated_at));
}

static inline void
insert_host(Fixture *f, Host *h, const char *name, const char *uri)
{
    NbError *err = NULL;
    make_host(h, name, uri);
    assert_int_equal(host_store_insert(f->s, h, &err), 0);
}

/* Inserts a VM of vcpus/ram/disk on host (in project, NULL: default), its create task finished
 * so that the VM is free for other tasks. */
static inline void
insert_vm(Fixture *f, const char *name, const char *host, const char *project, unsigned vcpus,
          uint64_t ram_mib, uint64_t disk_gib, const char *group_id, Vm *vm)
{
    NbError *err = NULL;
    Task t;
    memset(vm, 0, sizeof(*vm));
    nb_uuid_generate(vm->id);
    snprintf(vm->name, sizeof(vm->name), "%s", name);
    snprintf(vm->hostname, sizeof(vm->hostname), "%s", name);
    snprintf(vm->host, sizeof(vm->host), "%s", host);
    snprintf(vm->project, sizeof(vm->project), "%s", project ? project : NB_DEFAULT_PROJECT_ID);
    snprintf(vm->mac, sizeof(vm->mac), "52:54:00:00:%02x:%02x", (f->macs >> 8) & 0xff,
             f->macs & 0xff);
    f->macs++;
    if (group_id)
        snprintf(vm->group_id, sizeof(vm->group_id), "%s", group_id);
    memcpy(vm->image_id, f->image.id, sizeof(vm->image_id));
    memcpy(vm->flavor_id, f->flavor.id, sizeof(vm->flavor_id));
    vm->state = VM_STATE_BUILDING;
    vm->desired = VM_POWER_RUNNING;
    vm->vcpus = vcpus;
    vm->ram_mib = ram_mib;
    vm->disk_gib = disk_gib;
    nb_timestamp_now(vm->created_at);
    memcpy(vm->updated_at, vm->created_at, sizeof(vm->updated_at));
    memset(&t, 0, sizeof(t));
    nb_uuid_generate(t.id);
    t.kind = TASK_KIND_VM_CREATE;
    t.state = TASK_STATE_PENDING;
    t.steps = 4;
    t.progress = -1;
    memcpy(t.target_id, vm->id, sizeof(t.target_id));
    nb_timestamp_now(t.created_at);
    memcpy(t.updated_at, t.created_at, sizeof(t.updated_at));
    memcpy(vm->task_id, t.id, sizeof(vm->task_id));
    assert_int_equal(vm_store_insert_with_task(f->s, vm, &t, NULL, 0, NULL, &err), 0);
    assert_int_equal(task_store_finish(f->s, &t, TASK_STATE_SUCCEEDED, NULL, NULL, VM_STATE_RUNNING,
                                       VM_POWER_RUNNING, NULL, &err),
                     0);
    vm->task_id[0] = '\0';
}

static inline void
make_task(Task *t, TaskKind kind, const char *vm_id)
{
    memset(t, 0, sizeof(*t));
    nb_uuid_generate(t->id);
    t->kind = kind;
    t->state = TASK_STATE_PENDING;
    t->steps = 3;
    t->progress = -1;
    snprintf(t->target_id, sizeof(t->target_id), "%s", vm_id);
    nb_timestamp_now(t->created_at);
    memcpy(t->updated_at, t->created_at, sizeof(t->updated_at));
}

/* The call failed with this code; clears *err. */
static inline void
expect_code(NbError **err, const char *code)
{
    assert_non_null(*err);
    if (strcmp((*err)->code, code) != 0)
        fail_msg("got %s (%s), want %s", (*err)->code, (*err)->message, code);
    nb_error_free(*err);
    *err = NULL;
}
