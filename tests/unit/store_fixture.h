/* The store tests' common fixture: a store in a fresh temporary directory, a flavor and an image
 * for VMs to point at, and the error check. Included by test_store.c and test_host_store.c. */
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
