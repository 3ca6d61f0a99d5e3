/* Storage pools in the store: every field round-trips (the secret too: core needs it for the
 * hosts' libvirt secrets), names are unique, the default pool is made once however many callers
 * race, a pool holding volumes or the default pool cannot go, and the per-host states. */
#include <pthread.h>

#include "store/store_internal.h"
#include "store_fixture.h"

static int
setup(void **state)
{
    Fixture *f = fixture_new("pool");
    fixture_open_seeded(f, IMAGE_STATE_ACTIVE);
    *state = f;
    return 0;
}

static void
make_pool(Pool *p, const char *name, PoolType type)
{
    memset(p, 0, sizeof(*p));
    nb_uuid_generate(p->id);
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->type = type;
    pool_libvirt_name(p->id, p->libvirt_name);
    nb_timestamp_now(p->created_at);
}

static void
make_rbd(Pool *p, const char *name)
{
    make_pool(p, name, POOL_TYPE_RBD);
    snprintf(p->monitors[0], sizeof(p->monitors[0]), "10.0.0.1:6789");
    snprintf(p->monitors[1], sizeof(p->monitors[1]), "[fd00::2]:3300");
    snprintf(p->monitors[2], sizeof(p->monitors[2]), "ceph3.example.com");
    p->n_monitors = 3;
    snprintf(p->source, sizeof(p->source), "volumes");
    snprintf(p->auth_user, sizeof(p->auth_user), "nimbus");
    snprintf(p->secret, sizeof(p->secret), "QVFCbG9yZW1pcHN1bWRvbG9yc2l0YW1ldA==");
}

static void
insert_volume_in(Fixture *f, const char *pool_id, const char *name, Volume *v)
{
    NbError *err = NULL;
    memset(v, 0, sizeof(*v));
    nb_uuid_generate(v->id);
    snprintf(v->project, sizeof(v->project), NB_DEFAULT_PROJECT_ID);
    snprintf(v->name, sizeof(v->name), "%s", name);
    snprintf(v->pool_id, sizeof(v->pool_id), "%s", pool_id);
    snprintf(v->format, sizeof(v->format), "raw");
    v->size_gib = 1;
    v->state = VOLUME_STATE_AVAILABLE;
    nb_timestamp_now(v->created_at);
    assert_int_equal(volume_store_insert(f->s, v, &err), 0);
}

static void
test_pool_round_trip(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Pool p, got;
    make_rbd(&p, "ceph");
    assert_int_equal(pool_store_insert(f->s, &p, &err), 0);

    /* By id and by name, every field, the secret as given. */
    const char *keys[] = {p.id, "ceph"};
    for (size_t k = 0; k < 2; k++) {
        assert_int_equal(pool_store_get(f->s, keys[k], &got, &err), 0);
        assert_string_equal(got.id, p.id);
        assert_string_equal(got.name, "ceph");
        assert_int_equal(got.type, POOL_TYPE_RBD);
        assert_string_equal(got.host, "");
        assert_string_equal(got.libvirt_name, p.libvirt_name);
        assert_false(got.is_default);
        assert_int_equal(got.n_monitors, 3);
        assert_string_equal(got.monitors[0], "10.0.0.1:6789");
        assert_string_equal(got.monitors[1], "[fd00::2]:3300");
        assert_string_equal(got.monitors[2], "ceph3.example.com");
        assert_string_equal(got.source, "volumes");
        assert_string_equal(got.auth_user, "nimbus");
        assert_string_equal(got.secret, p.secret);
        assert_string_equal(got.created_at, p.created_at);
    }

    /* A local pool on one host, no monitors, no secret. */
    Pool d;
    make_pool(&d, "fast", POOL_TYPE_DIR);
    snprintf(d.host, sizeof(d.host), "node1");
    snprintf(d.path, sizeof(d.path), "/srv/nimbus/fast");
    assert_int_equal(pool_store_insert(f->s, &d, &err), 0);
    assert_int_equal(pool_store_get(f->s, "fast", &got, &err), 0);
    assert_int_equal(got.type, POOL_TYPE_DIR);
    assert_string_equal(got.host, "node1");
    assert_string_equal(got.path, "/srv/nimbus/fast");
    assert_int_equal(got.n_monitors, 0);
    assert_string_equal(got.secret, "");

    /* An iSCSI pool: portal in monitors[0], target, initiator, CHAP. */
    Pool i;
    make_pool(&i, "san", POOL_TYPE_ISCSI);
    snprintf(i.monitors[0], sizeof(i.monitors[0]), "127.0.0.1:3260");
    i.n_monitors = 1;
    snprintf(i.source, sizeof(i.source), "iqn.2026-01.io.nimbus:san");
    snprintf(i.initiator, sizeof(i.initiator), "iqn.2026-01.io.nimbus:host");
    snprintf(i.auth_user, sizeof(i.auth_user), "chap");
    snprintf(i.secret, sizeof(i.secret), "a-chap-password!");
    assert_int_equal(pool_store_insert(f->s, &i, &err), 0);
    assert_int_equal(pool_store_get(f->s, i.id, &got, &err), 0);
    assert_int_equal(got.n_monitors, 1);
    assert_string_equal(got.monitors[0], "127.0.0.1:3260");
    assert_string_equal(got.source, "iqn.2026-01.io.nimbus:san");
    assert_string_equal(got.initiator, "iqn.2026-01.io.nimbus:host");
    assert_string_equal(got.secret, "a-chap-password!");

    /* Listed by name. */
    Pool *list = NULL;
    size_t n = 0;
    assert_int_equal(pool_store_list(f->s, &list, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].name, "ceph");
    assert_string_equal(list[1].name, "fast");
    assert_string_equal(list[2].name, "san");
    assert_string_equal(list[0].secret, p.secret);
    pool_list_free(list, n);

    assert_int_equal(pool_store_get(f->s, "nope", &got, &err), -1);
    expect_code(&err, NB_ERR_POOL_NOT_FOUND);
}

static void
test_pool_name_taken(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Pool a, b;
    make_rbd(&a, "ceph");
    make_rbd(&b, "ceph");
    assert_int_equal(pool_store_insert(f->s, &a, &err), 0);
    assert_int_equal(pool_store_insert(f->s, &b, &err), -1);
    expect_code(&err, NB_ERR_NAME_TAKEN);
    /* Another name but the same libvirt pool. */
    snprintf(b.name, sizeof(b.name), "ceph2");
    memcpy(b.libvirt_name, a.libvirt_name, sizeof(b.libvirt_name));
    assert_int_equal(pool_store_insert(f->s, &b, &err), -1);
    expect_code(&err, NB_ERR_NAME_TAKEN);
    Pool *list = NULL;
    size_t n = 0;
    assert_int_equal(pool_store_list(f->s, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    pool_list_free(list, n);
}

static void
make_default(Pool *p, const char *path)
{
    make_pool(p, "default", POOL_TYPE_DIR);
    snprintf(p->libvirt_name, sizeof(p->libvirt_name), "nimbus");
    snprintf(p->path, sizeof(p->path), "%s", path);
    p->is_default = true;
}

static void
test_pool_ensure_default(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Pool p, got, again;
    assert_int_equal(pool_store_get_default(f->s, &got, &err), -1);
    expect_code(&err, NB_ERR_POOL_NOT_FOUND);

    make_default(&p, "/var/lib/nimbus/pool");
    assert_int_equal(pool_store_ensure_default(f->s, &p, &got, &err), 0);
    assert_string_equal(got.id, p.id);
    assert_true(got.is_default);
    assert_string_equal(got.libvirt_name, "nimbus");
    assert_string_equal(got.path, "/var/lib/nimbus/pool");

    /* A second start (another id, another path): the pool made first stays, unchanged. */
    Pool p2;
    make_default(&p2, "/elsewhere");
    assert_int_equal(pool_store_ensure_default(f->s, &p2, &again, &err), 0);
    assert_string_equal(again.id, p.id);
    assert_string_equal(again.path, "/var/lib/nimbus/pool");
    Pool *list = NULL;
    size_t n = 0;
    assert_int_equal(pool_store_list(f->s, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    pool_list_free(list, n);
    assert_int_equal(pool_store_get_default(f->s, &got, &err), 0);
    assert_string_equal(got.id, p.id);

    /* is_default given to a plain insert: the index keeps it to one. */
    Pool other;
    make_pool(&other, "other", POOL_TYPE_DIR);
    other.is_default = true;
    assert_int_equal(pool_store_insert(f->s, &other, &err), -1);
    assert_non_null(err);
    nb_error_free(err);
    err = NULL;
}

typedef struct EnsureRace {
    Store *s;
    Pool got;
    int rc;
} EnsureRace;

static void *
ensure_default_thread(void *arg)
{
    EnsureRace *r = arg;
    NbError *err = NULL;
    Pool p;
    make_default(&p, "/var/lib/nimbus/pool");
    r->rc = pool_store_ensure_default(r->s, &p, &r->got, &err);
    nb_error_free(err);
    return NULL;
}

static void
test_pool_ensure_default_race(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    enum { THREADS = 6 };
    pthread_t th[THREADS];
    EnsureRace r[THREADS];
    for (int i = 0; i < THREADS; i++) {
        r[i] = (EnsureRace){.s = f->s};
        assert_int_equal(pthread_create(&th[i], NULL, ensure_default_thread, &r[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(r[i].rc, 0);
        assert_string_equal(r[i].got.id, r[0].got.id);
    }
    Pool *list = NULL;
    size_t n = 0;
    assert_int_equal(pool_store_list(f->s, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    pool_list_free(list, n);
}

static void
test_pool_delete(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Pool def, got, p;
    make_default(&def, "/var/lib/nimbus/pool");
    assert_int_equal(pool_store_ensure_default(f->s, &def, &got, &err), 0);
    assert_int_equal(pool_store_delete(f->s, def.id, &err), -1);
    expect_code(&err, NB_ERR_POOL_IN_USE);

    make_rbd(&p, "ceph");
    assert_int_equal(pool_store_insert(f->s, &p, &err), 0);
    PoolHostState hs = {.capacity = 100, .allocation = 10};
    snprintf(hs.host, sizeof(hs.host), "local");
    snprintf(hs.state, sizeof(hs.state), "active");
    assert_int_equal(pool_store_host_set(f->s, p.id, &hs, &err), 0);
    Volume v;
    insert_volume_in(f, p.id, "data", &v);
    assert_int_equal(pool_store_delete(f->s, p.id, &err), -1);
    expect_code(&err, NB_ERR_POOL_IN_USE);
    assert_int_equal(pool_store_get(f->s, p.id, &got, &err), 0);

    assert_int_equal(volume_store_delete(f->s, v.id, &err), 0);
    assert_int_equal(pool_store_delete(f->s, p.id, &err), 0);
    assert_int_equal(pool_store_get(f->s, p.id, &got, &err), -1);
    expect_code(&err, NB_ERR_POOL_NOT_FOUND);
    /* Its host records went with it. */
    PoolHostState *hosts = NULL;
    size_t n = 0;
    assert_int_equal(pool_store_hosts(f->s, p.id, &hosts, &n, &err), 0);
    assert_int_equal(n, 0);
    free(hosts);
    assert_int_equal(pool_store_delete(f->s, p.id, &err), -1);
    expect_code(&err, NB_ERR_POOL_NOT_FOUND);
    /* The default pool is still there. */
    assert_int_equal(pool_store_get_default(f->s, &got, &err), 0);
}

static void
test_pool_hosts(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Pool p;
    make_rbd(&p, "ceph");
    assert_int_equal(pool_store_insert(f->s, &p, &err), 0);

    PoolHostState a = {.capacity = 1000, .allocation = 200}, b = {.capacity = -1, .allocation = -1};
    snprintf(a.host, sizeof(a.host), "node2");
    snprintf(a.state, sizeof(a.state), "active");
    snprintf(b.host, sizeof(b.host), "node1");
    snprintf(b.state, sizeof(b.state), "error");
    snprintf(b.error, sizeof(b.error), "cannot connect to the monitors");
    assert_int_equal(pool_store_host_set(f->s, p.id, &a, &err), 0);
    assert_int_equal(pool_store_host_set(f->s, p.id, &b, &err), 0);

    PoolHostState *hosts = NULL;
    size_t n = 0;
    assert_int_equal(pool_store_hosts(f->s, p.id, &hosts, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(hosts[0].host, "node1");
    assert_string_equal(hosts[0].state, "error");
    assert_string_equal(hosts[0].error, "cannot connect to the monitors");
    assert_int_equal(hosts[0].capacity, -1);
    assert_int_equal(hosts[0].allocation, -1);
    assert_true(hosts[0].updated_at[0]);
    assert_string_equal(hosts[1].host, "node2");
    assert_string_equal(hosts[1].state, "active");
    assert_string_equal(hosts[1].error, "");
    assert_int_equal(hosts[1].capacity, 1000);
    assert_int_equal(hosts[1].allocation, 200);
    free(hosts);

    /* The state changes in place: node1 came up. */
    b = (PoolHostState){.capacity = 5000, .allocation = 0};
    snprintf(b.host, sizeof(b.host), "node1");
    snprintf(b.state, sizeof(b.state), "active");
    assert_int_equal(pool_store_host_set(f->s, p.id, &b, &err), 0);
    assert_int_equal(pool_store_hosts(f->s, p.id, &hosts, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(hosts[0].state, "active");
    assert_string_equal(hosts[0].error, "");
    assert_int_equal(hosts[0].capacity, 5000);
    assert_int_equal(hosts[0].allocation, 0);
    free(hosts);

    assert_int_equal(pool_store_host_remove(f->s, p.id, "node2", &err), 0);
    assert_int_equal(pool_store_host_remove(f->s, p.id, "node2", &err), 0);
    assert_int_equal(pool_store_hosts(f->s, p.id, &hosts, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(hosts[0].host, "node1");
    free(hosts);

    assert_int_equal(pool_store_host_set(f->s, "no-such-pool", &a, &err), -1);
    expect_code(&err, NB_ERR_POOL_NOT_FOUND);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pool_round_trip, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_pool_name_taken, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_pool_ensure_default, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_pool_ensure_default_race, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_pool_delete, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_pool_hosts, setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
