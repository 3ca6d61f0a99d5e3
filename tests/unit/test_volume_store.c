/* Volumes in the store: names per project, quotas (counted in the insert's and the resize's
 * transaction, so racing creates cannot pass a limit), the state machine that is a volume's
 * lock, attach's target choice and its races, a VM's delete detaching its volumes, project
 * scoping, and volume snapshots. */
#include <pthread.h>

#include "store/store_internal.h"
#include "store_fixture.h"

#define BIT(st) (1u << (st))

typedef struct VFixture {
    Fixture *f;
    Pool shared; /* rbd: volumes reach every host */
    Pool local;  /* dir on host "local" only */
    Project a, b;
} VFixture;

static void
make_project(Fixture *f, const char *name, Project *p)
{
    NbError *err = NULL;
    memset(p, 0, sizeof(*p));
    nb_uuid_generate(p->id);
    snprintf(p->name, sizeof(p->name), "%s", name);
    for (int i = 0; i < _QUOTA_MAX; i++)
        p->quota.limit[i] = -1;
    nb_timestamp_now(p->created_at);
    assert_int_equal(project_store_insert(f->s, p, &err), 0);
}

static void
make_pool(Fixture *f, Pool *p, const char *name, PoolType type, const char *host)
{
    NbError *err = NULL;
    memset(p, 0, sizeof(*p));
    nb_uuid_generate(p->id);
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->type = type;
    snprintf(p->host, sizeof(p->host), "%s", host);
    pool_libvirt_name(p->id, p->libvirt_name);
    if (type == POOL_TYPE_DIR)
        snprintf(p->path, sizeof(p->path), "/srv/%s", name);
    nb_timestamp_now(p->created_at);
    assert_int_equal(pool_store_insert(f->s, p, &err), 0);
}

static int
setup(void **state)
{
    VFixture *v = calloc(1, sizeof(*v));
    assert_non_null(v);
    v->f = fixture_new("volume");
    fixture_open_seeded(v->f, IMAGE_STATE_ACTIVE);
    make_pool(v->f, &v->shared, "ceph", POOL_TYPE_RBD, "");
    make_pool(v->f, &v->local, "fast", POOL_TYPE_DIR, "local");
    make_project(v->f, "alpha", &v->a);
    make_project(v->f, "beta", &v->b);
    *state = v;
    return 0;
}

static int
teardown(void **state)
{
    VFixture *v = *state;
    void *f = v->f;
    free(v);
    return fixture_teardown(&f);
}

static void
make_volume(Volume *v, const char *project, const char *name, const Pool *pool, uint64_t size)
{
    memset(v, 0, sizeof(*v));
    nb_uuid_generate(v->id);
    snprintf(v->project, sizeof(v->project), "%s", project);
    snprintf(v->name, sizeof(v->name), "%s", name);
    snprintf(v->pool_id, sizeof(v->pool_id), "%s", pool->id);
    snprintf(v->host, sizeof(v->host), "%s", pool->host);
    snprintf(v->format, sizeof(v->format), "%s", pool->type == POOL_TYPE_DIR ? "qcow2" : "raw");
    v->size_gib = size;
    v->state = VOLUME_STATE_AVAILABLE;
    /* Each later than the one before: lists are by created_at, and a millisecond holds many. */
    static unsigned made;
    unsigned m = __atomic_fetch_add(&made, 1, __ATOMIC_RELAXED);
    snprintf(v->created_at, sizeof(v->created_at), "2026-01-01T%02u:%02u:%02u.000Z", m / 3600 % 24,
             m / 60 % 60, m % 60);
}

static void
add_volume(VFixture *vf, const char *project, const char *name, const Pool *pool, uint64_t size,
           Volume *v)
{
    NbError *err = NULL;
    make_volume(v, project, name, pool, size);
    if (volume_store_insert(vf->f->s, v, &err) < 0)
        fail_msg("insert %s: %s %s", name, err->code, err->message);
}

static void
test_volume_round_trip_and_scope(void **state)
{
    VFixture *vf = *state;
    Fixture *f = vf->f;
    NbError *err = NULL;
    Volume v, got;
    make_volume(&v, vf->a.id, "data", &vf->shared, 10);
    snprintf(v.source_image, sizeof(v.source_image), "%s", f->image.id);
    v.state = VOLUME_STATE_CREATING;
    assert_int_equal(volume_store_insert(f->s, &v, &err), 0);

    const char *keys[] = {v.id, "data"};
    for (size_t k = 0; k < 2; k++) {
        assert_int_equal(volume_store_get(f->s, vf->a.id, keys[k], &got, &err), 0);
        assert_string_equal(got.id, v.id);
        assert_string_equal(got.project, vf->a.id);
        assert_string_equal(got.name, "data");
        assert_string_equal(got.pool_id, vf->shared.id);
        assert_string_equal(got.host, "");
        assert_int_equal(got.size_gib, 10);
        assert_string_equal(got.format, "raw");
        assert_int_equal(got.state, VOLUME_STATE_CREATING);
        assert_string_equal(got.vm_id, "");
        assert_int_equal(got.bus, VOLUME_BUS_VIRTIO);
        assert_string_equal(got.target, "");
        assert_string_equal(got.source_image, f->image.id);
        assert_string_equal(got.created_at, v.created_at);
        /* The admin scope sees it too. */
        assert_int_equal(volume_store_get(f->s, NULL, keys[k], &got, &err), 0);
        assert_string_equal(got.id, v.id);
        /* Another project's volume is not found, by id or by name. */
        assert_int_equal(volume_store_get(f->s, vf->b.id, keys[k], &got, &err), -1);
        expect_code(&err, NB_ERR_VOLUME_NOT_FOUND);
    }
    assert_int_equal(volume_store_get(f->s, NULL, "nope", &got, &err), -1);
    expect_code(&err, NB_ERR_VOLUME_NOT_FOUND);

    /* Lists: by project, all, by pool, oldest first. */
    Volume w, x;
    add_volume(vf, vf->b.id, "data", &vf->local, 2, &w);
    add_volume(vf, vf->a.id, "logs", &vf->local, 3, &x);
    Volume *list = NULL;
    size_t n = 0;
    assert_int_equal(volume_store_list(f->s, vf->a.id, NULL, NULL, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, v.id);
    assert_string_equal(list[1].id, x.id);
    volume_list_free(list, n);
    assert_int_equal(volume_store_list(f->s, NULL, NULL, NULL, &list, &n, &err), 0);
    assert_int_equal(n, 3);
    volume_list_free(list, n);
    assert_int_equal(volume_store_list(f->s, NULL, NULL, vf->local.id, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, w.id);
    assert_string_equal(list[0].host, "local");
    assert_string_equal(list[1].id, x.id);
    volume_list_free(list, n);
    assert_int_equal(volume_store_list(f->s, vf->b.id, NULL, vf->local.id, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, w.id);
    volume_list_free(list, n);
    assert_int_equal(volume_store_list(f->s, vf->b.id, NULL, vf->shared.id, &list, &n, &err), 0);
    assert_int_equal(n, 0);
    volume_list_free(list, n);

    /* In a pool that does not exist. */
    Volume bad;
    make_volume(&bad, vf->a.id, "bad", &vf->shared, 1);
    snprintf(bad.pool_id, sizeof(bad.pool_id), "no-such-pool");
    assert_int_equal(volume_store_insert(f->s, &bad, &err), -1);
    expect_code(&err, NB_ERR_POOL_NOT_FOUND);
}

static void
test_volume_name_taken_per_project(void **state)
{
    VFixture *vf = *state;
    Fixture *f = vf->f;
    NbError *err = NULL;
    Volume v;
    add_volume(vf, vf->a.id, "data", &vf->shared, 1, &v);
    make_volume(&v, vf->a.id, "data", &vf->local, 1);
    assert_int_equal(volume_store_insert(f->s, &v, &err), -1);
    expect_code(&err, NB_ERR_NAME_TAKEN);
    /* The same name in another project is fine. */
    add_volume(vf, vf->b.id, "data", &vf->shared, 1, &v);
}

typedef struct InsertRace {
    Store *s;
    const char *project;
    const Pool *pool;
    int index;
    int ok;
    int quota;
} InsertRace;

static void *
insert_thread(void *arg)
{
    InsertRace *r = arg;
    for (int i = 0; i < 3; i++) {
        NbError *err = NULL;
        Volume v;
        char name[32];
        snprintf(name, sizeof(name), "v%d-%d", r->index, i);
        make_volume(&v, r->project, name, r->pool, 1);
        if (volume_store_insert(r->s, &v, &err) == 0)
            r->ok++;
        else if (strcmp(err->code, NB_ERR_QUOTA_EXCEEDED) == 0)
            r->quota++;
        nb_error_free(err);
    }
    return NULL;
}

static void
test_volume_quota_race(void **state)
{
    VFixture *vf = *state;
    Fixture *f = vf->f;
    NbError *err = NULL;
    vf->a.quota.limit[QUOTA_VOLUMES] = 5;
    assert_int_equal(project_store_set_quota(f->s, vf->a.id, &vf->a.quota, &err), 0);
    enum { THREADS = 8 };
    pthread_t th[THREADS];
    InsertRace r[THREADS];
    for (int i = 0; i < THREADS; i++) {
        r[i] = (InsertRace){.s = f->s, .project = vf->a.id, .pool = &vf->shared, .index = i};
        assert_int_equal(pthread_create(&th[i], NULL, insert_thread, &r[i]), 0);
    }
    int ok = 0, quota = 0;
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        ok += r[i].ok;
        quota += r[i].quota;
    }
    assert_int_equal(ok, 5);
    assert_int_equal(quota, THREADS * 3 - 5);
    int64_t in_use[_QUOTA_MAX];
    assert_int_equal(project_store_quota_usage(f->s, vf->a.id, in_use, &err), 0);
    assert_int_equal(in_use[QUOTA_VOLUMES], 5);
    assert_int_equal(in_use[QUOTA_VOLUME_GIB], 5);
    /* The other project is not limited by it. */
    Volume v;
    add_volume(vf, vf->b.id, "free", &vf->shared, 1, &v);
}

static void
test_volume_gib_quota_and_resize(void **state)
{
    VFixture *vf = *state;
    Fixture *f = vf->f;
    NbError *err = NULL;
    vf->a.quota.limit[QUOTA_VOLUME_GIB] = 10;
    assert_int_equal(project_store_set_quota(f->s, vf->a.id, &vf->a.quota, &err), 0);
    Volume v, w, got;
    add_volume(vf, vf->a.id, "six", &vf->shared, 6, &v);
    make_volume(&w, vf->a.id, "five", &vf->shared, 5);
    assert_int_equal(volume_store_insert(f->s, &w, &err), -1);
    expect_code(&err, NB_ERR_QUOTA_EXCEEDED);
    add_volume(vf, vf->a.id, "four", &vf->shared, 4, &w);

    /* Growth counts against the quota: 6 -> 7 would make 11. */
    assert_int_equal(volume_store_set_size(f->s, v.id, 7, &err), -1);
    expect_code(&err, NB_ERR_QUOTA_EXCEEDED);
    assert_int_equal(volume_store_set_size(f->s, v.id, 5, &err), -1);
    expect_code(&err, NB_ERR_VOLUME_SHRINK);
    assert_int_equal(volume_store_set_size(f->s, v.id, 6, &err), 0);
    assert_int_equal(volume_store_delete(f->s, w.id, &err), 0);
    assert_int_equal(volume_store_set_size(f->s, v.id, 10, &err), 0);
    assert_int_equal(volume_store_get(f->s, NULL, v.id, &got, &err), 0);
    assert_int_equal(got.size_gib, 10);
    int64_t in_use[_QUOTA_MAX];
    assert_int_equal(project_store_quota_usage(f->s, vf->a.id, in_use, &err), 0);
    assert_int_equal(in_use[QUOTA_VOLUMES], 1);
    assert_int_equal(in_use[QUOTA_VOLUME_GIB], 10);
    assert_int_equal(volume_store_set_size(f->s, "nope", 10, &err), -1);
    expect_code(&err, NB_ERR_VOLUME_NOT_FOUND);
}

static void
test_volume_transitions(void **state)
{
    VFixture *vf = *state;
    Fixture *f = vf->f;
    NbError *err = NULL;
    Volume v, got;
    make_volume(&v, vf->a.id, "data", &vf->shared, 1);
    v.state = VOLUME_STATE_CREATING;
    assert_int_equal(volume_store_insert(f->s, &v, &err), 0);

    /* A create's task holds it: busy for everyone else. */
    unsigned deletable = BIT(VOLUME_STATE_AVAILABLE) | BIT(VOLUME_STATE_ERROR);
    assert_int_equal(
        volume_store_transition(f->s, v.id, deletable, VOLUME_STATE_DELETING, &got, &err), -1);
    expect_code(&err, NB_ERR_VOLUME_BUSY);
    assert_int_equal(volume_store_transition(f->s, v.id, BIT(VOLUME_STATE_CREATING),
                                             VOLUME_STATE_ERROR, &got, &err),
                     0);
    assert_int_equal(got.state, VOLUME_STATE_ERROR);
    /* In error: only a delete. */
    assert_int_equal(volume_store_transition(f->s, v.id, BIT(VOLUME_STATE_AVAILABLE),
                                             VOLUME_STATE_DETACHING, NULL, &err),
                     -1);
    expect_code(&err, NB_ERR_INVALID_STATE);
    assert_int_equal(volume_store_attach_begin(f->s, v.id, "any", VOLUME_BUS_VIRTIO, NULL, &err),
                     -1);
    expect_code(&err, NB_ERR_INVALID_STATE);
    assert_int_equal(
        volume_store_transition(f->s, v.id, deletable, VOLUME_STATE_DELETING, NULL, &err), 0);
    assert_int_equal(volume_store_get(f->s, NULL, v.id, &got, &err), 0);
    assert_int_equal(got.state, VOLUME_STATE_DELETING);
    assert_int_equal(
        volume_store_transition(f->s, v.id, deletable, VOLUME_STATE_DELETING, NULL, &err), -1);
    expect_code(&err, NB_ERR_VOLUME_BUSY);

    /* Attached: in use. */
    Vm vm;
    Volume w;
    insert_vm(f, "web", "local", vf->a.id, 1, 256, 1, NULL, &vm);
    add_volume(vf, vf->a.id, "w", &vf->shared, 1, &w);
    assert_int_equal(volume_store_attach_begin(f->s, w.id, vm.id, VOLUME_BUS_VIRTIO, NULL, &err),
                     0);
    assert_int_equal(volume_store_attach_end(f->s, w.id, true, &err), 0);
    assert_int_equal(
        volume_store_transition(f->s, w.id, deletable, VOLUME_STATE_DELETING, NULL, &err), -1);
    expect_code(&err, NB_ERR_VOLUME_IN_USE);
    assert_int_equal(volume_store_delete(f->s, w.id, &err), -1);
    expect_code(&err, NB_ERR_VOLUME_IN_USE);
    assert_int_equal(
        volume_store_transition(f->s, "nope", deletable, VOLUME_STATE_DELETING, NULL, &err), -1);
    expect_code(&err, NB_ERR_VOLUME_NOT_FOUND);
    assert_int_equal(volume_store_delete(f->s, "nope", &err), -1);
    expect_code(&err, NB_ERR_VOLUME_NOT_FOUND);
}

static void
test_volume_attach_detach(void **state)
{
    VFixture *vf = *state;
    Fixture *f = vf->f;
    NbError *err = NULL;
    Vm vm;
    insert_vm(f, "web", "local", vf->a.id, 1, 256, 1, NULL, &vm);
    Volume v[10], got;
    char name[16];
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "d%d", i);
        add_volume(vf, vf->a.id, name, &vf->shared, 1, &v[i]);
    }
    /* vdb, vdc, vdd in order; the VM's root disk is vda. */
    const char *want[] = {"vdb", "vdc", "vdd"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(
            volume_store_attach_begin(f->s, v[i].id, vm.id, VOLUME_BUS_VIRTIO, &got, &err), 0);
        assert_int_equal(got.state, VOLUME_STATE_ATTACHING);
        assert_string_equal(got.vm_id, vm.id);
        assert_string_equal(got.target, want[i]);
        assert_int_equal(got.bus, VOLUME_BUS_VIRTIO);
        assert_int_equal(volume_store_attach_end(f->s, v[i].id, true, &err), 0);
        /* Ending twice (a step run again) changes nothing. */
        assert_int_equal(volume_store_attach_end(f->s, v[i].id, true, &err), 0);
        assert_int_equal(volume_store_get(f->s, vf->a.id, v[i].id, &got, &err), 0);
        assert_int_equal(got.state, VOLUME_STATE_ATTACHED);
    }
    /* Attached: a second attach is refused. */
    assert_int_equal(volume_store_attach_begin(f->s, v[0].id, vm.id, VOLUME_BUS_VIRTIO, NULL, &err),
                     -1);
    expect_code(&err, NB_ERR_VOLUME_IN_USE);

    /* Detach vdc: its target is free again and the next attach takes it. */
    assert_int_equal(volume_store_transition(f->s, v[1].id, BIT(VOLUME_STATE_ATTACHED),
                                             VOLUME_STATE_DETACHING, &got, &err),
                     0);
    assert_string_equal(got.target, "vdc");
    assert_int_equal(volume_store_attach_end(f->s, v[1].id, true, &err), -1);
    expect_code(&err, NB_ERR_INVALID_STATE);
    assert_int_equal(volume_store_detach_end(f->s, v[1].id, &err), 0);
    assert_int_equal(volume_store_detach_end(f->s, v[1].id, &err), 0);
    assert_int_equal(volume_store_get(f->s, NULL, v[1].id, &got, &err), 0);
    assert_int_equal(got.state, VOLUME_STATE_AVAILABLE);
    assert_string_equal(got.vm_id, "");
    assert_string_equal(got.target, "");
    assert_int_equal(volume_store_attach_begin(f->s, v[3].id, vm.id, VOLUME_BUS_VIRTIO, &got, &err),
                     0);
    assert_string_equal(got.target, "vdc");
    /* A failed attach gives the volume and its target back. */
    assert_int_equal(volume_store_attach_end(f->s, v[3].id, false, &err), 0);
    assert_int_equal(volume_store_attach_end(f->s, v[3].id, false, &err), 0);
    assert_int_equal(volume_store_get(f->s, NULL, v[3].id, &got, &err), 0);
    assert_int_equal(got.state, VOLUME_STATE_AVAILABLE);
    assert_string_equal(got.vm_id, "");
    assert_string_equal(got.target, "");
    /* detach_end of an attached (not detaching) volume is refused. */
    assert_int_equal(volume_store_detach_end(f->s, v[0].id, &err), -1);
    expect_code(&err, NB_ERR_INVALID_STATE);

    /* scsi takes sdb (sda is the seed CD-ROM). Then fill up to VOLUMES_PER_VM_MAX: the ninth is
     * refused. */
    assert_int_equal(volume_store_attach_begin(f->s, v[1].id, vm.id, VOLUME_BUS_SCSI, &got, &err),
                     0);
    assert_string_equal(got.target, "sdb");
    assert_int_equal(got.bus, VOLUME_BUS_SCSI);
    /* Held: vdb, vdd, sdb (attaching); five more make eight. */
    for (int i = 3; i < 8; i++)
        assert_int_equal(
            volume_store_attach_begin(f->s, v[i].id, vm.id, VOLUME_BUS_VIRTIO, &got, &err), 0);
    assert_string_equal(got.target, "vdh");
    Volume *list = NULL;
    size_t n = 0;
    assert_int_equal(volume_store_list(f->s, vf->a.id, vm.id, NULL, &list, &n, &err), 0);
    assert_int_equal(n, VOLUMES_PER_VM_MAX);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            assert_string_not_equal(list[i].target, list[j].target);
    volume_list_free(list, n);
    assert_int_equal(volume_store_attach_begin(f->s, v[8].id, vm.id, VOLUME_BUS_VIRTIO, NULL, &err),
                     -1);
    expect_code(&err, NB_ERR_TOO_MANY_VOLUMES);
    assert_int_equal(volume_store_attach_begin(f->s, v[8].id, vm.id, VOLUME_BUS_SCSI, NULL, &err),
                     -1);
    expect_code(&err, NB_ERR_TOO_MANY_VOLUMES);
    assert_int_equal(volume_store_get(f->s, NULL, v[8].id, &got, &err), 0);
    assert_int_equal(got.state, VOLUME_STATE_AVAILABLE);

    /* A VM that does not exist, or another project's. */
    assert_int_equal(
        volume_store_attach_begin(f->s, v[9].id, "nope", VOLUME_BUS_VIRTIO, NULL, &err), -1);
    expect_code(&err, NB_ERR_VM_NOT_FOUND);
    Vm other;
    insert_vm(f, "other", "local", vf->b.id, 1, 256, 1, NULL, &other);
    assert_int_equal(
        volume_store_attach_begin(f->s, v[9].id, other.id, VOLUME_BUS_VIRTIO, NULL, &err), -1);
    expect_code(&err, NB_ERR_VM_NOT_FOUND);
    assert_int_equal(volume_store_attach_begin(f->s, "nope", vm.id, VOLUME_BUS_VIRTIO, NULL, &err),
                     -1);
    expect_code(&err, NB_ERR_VOLUME_NOT_FOUND);
}

static void
test_volume_local_reach(void **state)
{
    VFixture *vf = *state;
    Fixture *f = vf->f;
    NbError *err = NULL;
    Vm here, there;
    insert_vm(f, "here", "local", vf->a.id, 1, 256, 1, NULL, &here);
    insert_vm(f, "there", "node2", vf->a.id, 1, 256, 1, NULL, &there);
    Volume v, got;
    add_volume(vf, vf->a.id, "fast", &vf->local, 1, &v);
    assert_int_equal(volume_store_attach_begin(f->s, v.id, there.id, VOLUME_BUS_VIRTIO, NULL, &err),
                     -1);
    expect_code(&err, NB_ERR_VOLUME_NOT_REACHABLE);
    assert_int_equal(volume_store_attach_begin(f->s, v.id, here.id, VOLUME_BUS_VIRTIO, &got, &err),
                     0);
    assert_string_equal(got.target, "vdb");
}

typedef struct AttachRace {
    Store *s;
    const char *volume;
    const char *vm;
    int rc;
    char code[64];
} AttachRace;

static void *
attach_thread(void *arg)
{
    AttachRace *r = arg;
    NbError *err = NULL;
    r->rc = volume_store_attach_begin(r->s, r->volume, r->vm, VOLUME_BUS_VIRTIO, NULL, &err);
    if (err)
        snprintf(r->code, sizeof(r->code), "%s", err->code);
    nb_error_free(err);
    return NULL;
}

static void
test_volume_attach_race(void **state)
{
    VFixture *vf = *state;
    Fixture *f = vf->f;
    NbError *err = NULL;
    Vm vm[2];
    insert_vm(f, "a", "local", vf->a.id, 1, 256, 1, NULL, &vm[0]);
    insert_vm(f, "b", "local", vf->a.id, 1, 256, 1, NULL, &vm[1]);
    for (int round = 0; round < 20; round++) {
        Volume v, got;
        char name[16];
        snprintf(name, sizeof(name), "r%d", round);
        add_volume(vf, vf->a.id, name, &vf->shared, 1, &v);
        pthread_t th[2];
        AttachRace r[2];
        for (int i = 0; i < 2; i++) {
            r[i] = (AttachRace){.s = f->s, .volume = v.id, .vm = vm[i].id};
            assert_int_equal(pthread_create(&th[i], NULL, attach_thread, &r[i]), 0);
        }
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_join(th[i], NULL), 0);
        int winner = r[0].rc == 0 ? 0 : 1;
        assert_int_equal(r[winner].rc, 0);
        assert_int_equal(r[!winner].rc, -1);
        if (strcmp(r[!winner].code, NB_ERR_VOLUME_BUSY) != 0 &&
            strcmp(r[!winner].code, NB_ERR_VOLUME_IN_USE) != 0)
            fail_msg("the loser got %s", r[!winner].code);
        assert_int_equal(volume_store_get(f->s, NULL, v.id, &got, &err), 0);
        assert_string_equal(got.vm_id, vm[winner].id);
        /* Detach it again so that the VMs never fill up. */
        assert_int_equal(volume_store_attach_end(f->s, v.id, false, &err), 0);
    }
}

static void
test_vm_delete_detaches(void **state)
{
    VFixture *vf = *state;
    Fixture *f = vf->f;
    NbError *err = NULL;
    Vm vm, keep;
    insert_vm(f, "web", "local", vf->a.id, 1, 256, 1, NULL, &vm);
    insert_vm(f, "keep", "local", vf->a.id, 1, 256, 1, NULL, &keep);
    Volume v, w, k, got;
    add_volume(vf, vf->a.id, "v", &vf->shared, 1, &v);
    add_volume(vf, vf->a.id, "w", &vf->shared, 1, &w);
    add_volume(vf, vf->a.id, "k", &vf->shared, 1, &k);
    assert_int_equal(volume_store_attach_begin(f->s, v.id, vm.id, VOLUME_BUS_VIRTIO, NULL, &err),
                     0);
    assert_int_equal(volume_store_attach_end(f->s, v.id, true, &err), 0);
    assert_int_equal(volume_store_attach_begin(f->s, w.id, vm.id, VOLUME_BUS_SCSI, NULL, &err), 0);
    assert_int_equal(volume_store_attach_begin(f->s, k.id, keep.id, VOLUME_BUS_VIRTIO, NULL, &err),
                     0);
    assert_int_equal(volume_store_attach_end(f->s, k.id, true, &err), 0);

    /* A delete task that does not hold the VM deletes nothing, and detaches nothing. */
    Task stray;
    make_task(&stray, TASK_KIND_VM_DELETE, vm.id);
    assert_int_equal(task_store_finish_delete(f->s, &stray, &err), 0);
    assert_int_equal(volume_store_get(f->s, NULL, v.id, &got, &err), 0);
    assert_int_equal(got.state, VOLUME_STATE_ATTACHED);

    Task t;
    make_task(&t, TASK_KIND_VM_DELETE, vm.id);
    assert_int_equal(vm_store_claim(f->s, vm.id, &t, VM_POWER_STOPPED, -1, &err), 0);
    assert_int_equal(task_store_finish_delete(f->s, &t, &err), 0);
    const char *gone[] = {v.id, w.id};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(volume_store_get(f->s, vf->a.id, gone[i], &got, &err), 0);
        assert_int_equal(got.state, VOLUME_STATE_AVAILABLE);
        assert_string_equal(got.vm_id, "");
        assert_string_equal(got.target, "");
    }
    /* Another VM's volume stays attached. */
    assert_int_equal(volume_store_get(f->s, vf->a.id, k.id, &got, &err), 0);
    assert_int_equal(got.state, VOLUME_STATE_ATTACHED);
    assert_string_equal(got.vm_id, keep.id);
    assert_string_equal(got.target, "vdb");
    /* The freed volumes can go. */
    assert_int_equal(volume_store_delete(f->s, v.id, &err), 0);
    assert_int_equal(volume_store_get(f->s, NULL, v.id, &got, &err), -1);
    expect_code(&err, NB_ERR_VOLUME_NOT_FOUND);
}

static void
test_project_with_volumes_not_empty(void **state)
{
    VFixture *vf = *state;
    Fixture *f = vf->f;
    NbError *err = NULL;
    Volume v;
    add_volume(vf, vf->b.id, "data", &vf->shared, 3, &v);
    int64_t in_use[_QUOTA_MAX];
    assert_int_equal(project_store_quota_usage(f->s, vf->b.id, in_use, &err), 0);
    assert_int_equal(in_use[QUOTA_VOLUMES], 1);
    assert_int_equal(in_use[QUOTA_VOLUME_GIB], 3);
    assert_int_equal(project_store_delete(f->s, vf->b.id, &err), -1);
    expect_code(&err, NB_ERR_PROJECT_NOT_EMPTY);
    assert_int_equal(volume_store_delete(f->s, v.id, &err), 0);
    assert_int_equal(project_store_delete(f->s, vf->b.id, &err), 0);

    /* The new quota columns are read and written. */
    Project p;
    vf->a.quota.limit[QUOTA_VOLUMES] = 7;
    vf->a.quota.limit[QUOTA_VOLUME_GIB] = 700;
    assert_int_equal(project_store_set_quota(f->s, vf->a.id, &vf->a.quota, &err), 0);
    assert_int_equal(project_store_get(f->s, NULL, vf->a.id, &p, &err), 0);
    assert_int_equal(p.quota.limit[QUOTA_VOLUMES], 7);
    assert_int_equal(p.quota.limit[QUOTA_VOLUME_GIB], 700);
    assert_int_equal(p.quota.limit[QUOTA_SECGROUPS], -1);
    Project q;
    make_project(f, "gamma", &q);
    q.quota.limit[QUOTA_VOLUME_GIB] = 5;
    Project r = q;
    nb_uuid_generate(r.id);
    snprintf(r.name, sizeof(r.name), "delta");
    assert_int_equal(project_store_insert(f->s, &r, &err), 0);
    assert_int_equal(project_store_get(f->s, NULL, "delta", &p, &err), 0);
    assert_int_equal(p.quota.limit[QUOTA_VOLUME_GIB], 5);
    assert_int_equal(p.quota.limit[QUOTA_VOLUMES], -1);
}

static void
make_vsnap(VolumeSnapshot *snap, const Volume *v, const char *name)
{
    memset(snap, 0, sizeof(*snap));
    nb_uuid_generate(snap->id);
    snprintf(snap->volume_id, sizeof(snap->volume_id), "%s", v->id);
    snprintf(snap->name, sizeof(snap->name), "%s", name);
    snap->state = VOLUME_SNAPSHOT_STATE_CREATING;
    nb_timestamp_now(snap->created_at);
}

/* Volume snapshots: taken from the volume's row (project, pool, host, size), a copy only of a
 * detached volume, names per volume, scoping, the shared snapshots quota, a volume with
 * snapshots not deleted, an attach waiting for a copy, and a clone keeping its snapshot. */
static void
test_volume_snapshots(void **state)
{
    VFixture *vf = *state;
    Fixture *f = vf->f;
    NbError *err = NULL;
    Vm vm;
    insert_vm(f, "web", "local", vf->a.id, 1, 256, 1, NULL, &vm);
    Volume rv, dv, got;
    add_volume(vf, vf->a.id, "r", &vf->shared, 3, &rv);
    add_volume(vf, vf->a.id, "d", &vf->local, 2, &dv);
    /* rbd: live while attached. */
    assert_int_equal(volume_store_attach_begin(f->s, rv.id, vm.id, VOLUME_BUS_VIRTIO, NULL, &err),
                     0);
    assert_int_equal(volume_store_attach_end(f->s, rv.id, true, &err), 0);
    VolumeSnapshot rs, ds, ds2, gs;
    make_vsnap(&rs, &rv, "s1");
    assert_int_equal(volume_snapshot_store_create(f->s, &rs, false, NULL, &err), 0);
    assert_string_equal(rs.project, vf->a.id);
    assert_string_equal(rs.pool_id, vf->shared.id);
    assert_int_equal(rs.size_gib, 3);
    /* dir: a copy, only while detached; an attach waits for the copy. */
    assert_int_equal(volume_store_attach_begin(f->s, dv.id, vm.id, VOLUME_BUS_VIRTIO, NULL, &err),
                     0);
    assert_int_equal(volume_store_attach_end(f->s, dv.id, true, &err), 0);
    make_vsnap(&ds, &dv, "s1");
    assert_int_equal(volume_snapshot_store_create(f->s, &ds, true, NULL, &err), -1);
    expect_code(&err, NB_ERR_VOLUME_IN_USE);
    assert_int_equal(volume_store_transition(f->s, dv.id, BIT(VOLUME_STATE_ATTACHED),
                                             VOLUME_STATE_DETACHING, NULL, &err),
                     0);
    assert_int_equal(volume_store_detach_end(f->s, dv.id, &err), 0);
    assert_int_equal(volume_snapshot_store_create(f->s, &ds, true, NULL, &err), 0);
    assert_string_equal(ds.host, "local");
    assert_int_equal(volume_store_attach_begin(f->s, dv.id, vm.id, VOLUME_BUS_VIRTIO, NULL, &err),
                     -1);
    expect_code(&err, NB_ERR_VOLUME_BUSY);
    assert_int_equal(volume_store_set_size(f->s, dv.id, 3, &err), -1);
    expect_code(&err, NB_ERR_VOLUME_BUSY);
    /* Names per volume. */
    make_vsnap(&ds2, &dv, "s1");
    assert_int_equal(volume_snapshot_store_create(f->s, &ds2, true, NULL, &err), -1);
    expect_code(&err, NB_ERR_NAME_TAKEN);
    /* Scoping: by id or by name within the volume, the project's only. */
    assert_int_equal(volume_snapshot_store_get(f->s, vf->a.id, dv.id, "s1", &gs, &err), 0);
    assert_string_equal(gs.id, ds.id);
    assert_int_equal(volume_snapshot_store_get(f->s, vf->b.id, NULL, ds.id, &gs, &err), -1);
    expect_code(&err, NB_ERR_SNAPSHOT_NOT_FOUND);
    VolumeSnapshot *list = NULL;
    size_t n = 0;
    assert_int_equal(volume_snapshot_store_list(f->s, vf->a.id, NULL, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    volume_snapshot_list_free(list, n);
    /* The snapshots quota counts VM and volume snapshots together. */
    int64_t in_use[_QUOTA_MAX];
    assert_int_equal(project_store_quota_usage(f->s, vf->a.id, in_use, &err), 0);
    assert_int_equal(in_use[QUOTA_SNAPSHOTS], 2);
    vf->a.quota.limit[QUOTA_SNAPSHOTS] = 2;
    assert_int_equal(project_store_set_quota(f->s, vf->a.id, &vf->a.quota, &err), 0);
    make_vsnap(&ds2, &dv, "s2");
    assert_int_equal(volume_snapshot_store_create(f->s, &ds2, true, NULL, &err), -1);
    expect_code(&err, NB_ERR_QUOTA_EXCEEDED);
    /* A volume with snapshots is not deleted. */
    assert_int_equal(volume_store_transition(f->s, dv.id, BIT(VOLUME_STATE_AVAILABLE),
                                             VOLUME_STATE_DELETING, NULL, &err),
                     -1);
    expect_code(&err, NB_ERR_VOLUME_HAS_SNAPSHOTS);
    /* A volume from a snapshot being made is refused; from a ready one, it depends on it: an
     * RBD clone for ever, a copy while it is made. */
    Volume from_r, from_d;
    make_volume(&from_r, vf->a.id, "fr", &vf->shared, 3);
    snprintf(from_r.source_snapshot, sizeof(from_r.source_snapshot), "%s", rs.id);
    assert_int_equal(volume_store_insert(f->s, &from_r, &err), -1);
    expect_code(&err, NB_ERR_SNAPSHOT_BUSY);
    assert_int_equal(volume_snapshot_store_claim(f->s, rs.id, BIT(VOLUME_SNAPSHOT_STATE_CREATING),
                                                 VOLUME_SNAPSHOT_STATE_READY, NULL, &err),
                     0);
    assert_int_equal(volume_snapshot_store_claim(f->s, ds.id, BIT(VOLUME_SNAPSHOT_STATE_CREATING),
                                                 VOLUME_SNAPSHOT_STATE_READY, NULL, &err),
                     0);
    assert_int_equal(volume_store_insert(f->s, &from_r, &err), 0);
    assert_int_equal(volume_store_get(f->s, vf->a.id, "fr", &got, &err), 0);
    assert_string_equal(got.source_snapshot, rs.id);
    make_volume(&from_d, vf->a.id, "fd", &vf->local, 2);
    from_d.state = VOLUME_STATE_CREATING;
    snprintf(from_d.source_snapshot, sizeof(from_d.source_snapshot), "%s", ds.id);
    assert_int_equal(volume_store_insert(f->s, &from_d, &err), 0);
    unsigned ready = BIT(VOLUME_SNAPSHOT_STATE_READY) | BIT(VOLUME_SNAPSHOT_STATE_ERROR);
    assert_int_equal(
        volume_snapshot_store_claim(f->s, rs.id, ready, VOLUME_SNAPSHOT_STATE_DELETING, NULL, &err),
        -1);
    expect_code(&err, NB_ERR_SNAPSHOT_HAS_CLONES);
    assert_int_equal(
        volume_snapshot_store_claim(f->s, ds.id, ready, VOLUME_SNAPSHOT_STATE_DELETING, NULL, &err),
        -1);
    expect_code(&err, NB_ERR_SNAPSHOT_HAS_CLONES);
    assert_int_equal(volume_store_transition(f->s, from_d.id, BIT(VOLUME_STATE_CREATING),
                                             VOLUME_STATE_AVAILABLE, NULL, &err),
                     0);
    assert_int_equal(
        volume_snapshot_store_claim(f->s, ds.id, ready, VOLUME_SNAPSHOT_STATE_DELETING, NULL, &err),
        0);
    /* Deleting: busy for another claim; gone, the volume can go. */
    assert_int_equal(
        volume_snapshot_store_claim(f->s, ds.id, ready, VOLUME_SNAPSHOT_STATE_DELETING, NULL, &err),
        -1);
    expect_code(&err, NB_ERR_SNAPSHOT_BUSY);
    assert_int_equal(volume_snapshot_store_delete(f->s, ds.id, &err), 0);
    assert_int_equal(volume_snapshot_store_delete(f->s, ds.id, &err), -1);
    expect_code(&err, NB_ERR_SNAPSHOT_NOT_FOUND);
    assert_int_equal(volume_store_transition(f->s, dv.id, BIT(VOLUME_STATE_AVAILABLE),
                                             VOLUME_STATE_DELETING, NULL, &err),
                     0);
    assert_int_equal(volume_store_delete(f->s, dv.id, &err), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_volume_round_trip_and_scope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_volume_name_taken_per_project, setup, teardown),
        cmocka_unit_test_setup_teardown(test_volume_quota_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_volume_gib_quota_and_resize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_volume_transitions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_volume_attach_detach, setup, teardown),
        cmocka_unit_test_setup_teardown(test_volume_local_reach, setup, teardown),
        cmocka_unit_test_setup_teardown(test_volume_attach_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vm_delete_detaches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_project_with_volumes_not_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_volume_snapshots, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
