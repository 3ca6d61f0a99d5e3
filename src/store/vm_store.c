#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

static void
vm_from_row(sqlite3_stmt *st, void *elem)
{
    Vm *vm = elem;
    memset(vm, 0, sizeof(*vm));
    store_column_copy(st, 0, vm->id, sizeof(vm->id));
    store_column_copy(st, 1, vm->name, sizeof(vm->name));
    store_column_copy(st, 2, vm->hostname, sizeof(vm->hostname));
    vm->state = vm_state_from_string((const char *)sqlite3_column_text(st, 3));
    vm->desired = vm_power_from_string((const char *)sqlite3_column_text(st, 4));
    store_column_copy(st, 5, vm->task_id, sizeof(vm->task_id));
    store_column_copy(st, 6, vm->host, sizeof(vm->host));
    store_column_copy(st, 7, vm->image_id, sizeof(vm->image_id));
    store_column_copy(st, 8, vm->flavor_id, sizeof(vm->flavor_id));
    vm->vcpus = (unsigned)sqlite3_column_int64(st, 9);
    vm->ram_mib = (uint64_t)sqlite3_column_int64(st, 10);
    vm->disk_gib = (uint64_t)sqlite3_column_int64(st, 11);
    store_column_copy(st, 12, vm->mac, sizeof(vm->mac));
    vm->user_data = store_column_strdup(st, 13);
    store_column_copy(st, 14, vm->ip, sizeof(vm->ip));
    vm->error = store_column_strdup(st, 15);
    store_column_copy(st, 16, vm->created_at, sizeof(vm->created_at));
    store_column_copy(st, 17, vm->updated_at, sizeof(vm->updated_at));
    store_column_copy(st, 18, vm->project, sizeof(vm->project));
    store_column_copy(st, 19, vm->migrate_to, sizeof(vm->migrate_to));
    store_column_copy(st, 20, vm->group_id, sizeof(vm->group_id));
    labels_from_text((const char *)sqlite3_column_text(st, 21), &vm->labels);
    store_column_copy(st, 22, vm->owner_user_id, sizeof(vm->owner_user_id));
    store_column_copy(st, 23, vm->pool_id, sizeof(vm->pool_id));
}

int
vm_task_hold_locked(Store *s, const Task *task, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    char now[NB_TIMESTAMP_LEN];
    nb_timestamp_now(now);
    if (store_prepare(s,
                      "UPDATE vms SET task_id = ?1, error = NULL, updated_at = ?2 "
                      "WHERE id = ?3 AND task_id IS NULL",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, task->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, task->target_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "claim vm", err);
    if (sqlite3_changes(s->db) == 0)
        return nb_error_set(err, NB_ERR_VM_BUSY,
                            "another task is working on this VM; retry when it has finished");
    return 0;
}

/* With the lock held: the group exists and is one of the project's (a VM never joins another
 * project's group, whatever id it was given). */
static int
vm_group_check_locked(Store *s, const char *group_id, const char *project, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "SELECT 1 FROM groups WHERE id = ? AND project = ?", &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, group_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, project, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return nb_error_set(err, NB_ERR_GROUP_NOT_FOUND, "group '%.64s' not found", group_id);
    if (rc != SQLITE_ROW)
        return store_db_error(s, "check group", err);
    return 0;
}

/* What a VM counts against its project's quota. */
static void
vm_quota_claim(const Vm *vm, int64_t add[_QUOTA_MAX])
{
    memset(add, 0, sizeof(int64_t) * _QUOTA_MAX);
    add[QUOTA_VCPUS] = vm->vcpus;
    add[QUOTA_RAM_MIB] = (int64_t)vm->ram_mib;
    add[QUOTA_DISK_GIB] = (int64_t)vm->disk_gib;
    add[QUOTA_VMS] = 1;
}

int
vm_store_quota_check(Store *s, const Vm *vm, NbError **err)
{
    STORE_READING(s);
    int64_t add[_QUOTA_MAX];
    vm_quota_claim(vm, add);
    return project_quota_check_locked(s, vm->project, add, err);
}

/* With the lock held, after the VM's row: its ports, and that its own MAC is no other VM's
 * port's. */
static int
vm_ports_insert_locked(Store *s, const Vm *vm, Port *ports, size_t n_ports, NbError **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, "SELECT 1 FROM ports WHERE mac = ?1 AND vm_id != ?2", &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, vm->mac, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, vm->id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return nb_error_set(err, NB_ERR_MAC_TAKEN, "MAC address %s is taken", vm->mac);
    if (rc != SQLITE_DONE)
        return store_db_error(s, "check vm mac", err);
    for (size_t i = 0; i < n_ports; i++) {
        snprintf(ports[i].vm_id, sizeof(ports[i].vm_id), "%s", vm->id);
        if (port_insert_locked(s, vm->project, &ports[i], err) < 0)
            return -1;
    }
    if (n_ports == 0)
        return 0;
    /* The VM's address is its first NIC's, fixed from now on. */
    char ip[NB_IPV4_STRLEN];
    ipv4_format(ports[0].ip, ip);
    _cleanup_stmt_ sqlite3_stmt *up = NULL;
    if (store_prepare(s, "UPDATE vms SET ip = ?1 WHERE id = ?2", &up, err) < 0)
        return -1;
    sqlite3_bind_text(up, 1, ip, -1, SQLITE_STATIC);
    sqlite3_bind_text(up, 2, vm->id, -1, SQLITE_STATIC);
    if (sqlite3_step(up) != SQLITE_DONE)
        return store_db_error(s, "record the vm's address", err);
    return 0;
}

int
vm_store_insert_with_task(Store *s, const Vm *vm, const Task *task, Port *ports, size_t n_ports,
                          uint64_t *ret_gen, NbError **err)
{
    if (n_ports > VM_NICS_MAX)
        return nb_error_set(err, NB_ERR_TOO_MANY_NICS, "a VM has at most %d NICs (%zu asked)",
                            VM_NICS_MAX, n_ports);
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    _cleanup_free_ char *labels = labels_to_text(&vm->labels);
    if (!labels)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    if (store_prepare(s,
                      "INSERT INTO vms (" VM_COLUMNS
                      ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                      "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      &st, err) < 0 ||
        store_begin(s, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, vm->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, vm->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, vm->hostname, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, vm_state_to_string(vm->state), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, vm_power_to_string(vm->desired), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, task->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, vm->host, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, vm->image_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, vm->flavor_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 10, vm->vcpus);
    sqlite3_bind_int64(st, 11, (sqlite3_int64)vm->ram_mib);
    sqlite3_bind_int64(st, 12, (sqlite3_int64)vm->disk_gib);
    sqlite3_bind_text(st, 13, vm->mac, -1, SQLITE_STATIC);
    store_bind_text(st, 14, vm->user_data);
    store_bind_text(st, 15, vm->ip);
    store_bind_text(st, 16, vm->error);
    sqlite3_bind_text(st, 17, vm->created_at, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 18, vm->updated_at, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 19, vm->project, -1, SQLITE_STATIC);
    store_bind_text(st, 20, vm->migrate_to);
    store_bind_text(st, 21, vm->group_id);
    sqlite3_bind_text(st, 22, labels, -1, SQLITE_STATIC);
    store_bind_text(st, 23, vm->owner_user_id);
    store_bind_text(st, 24, vm->pool_id);
    int64_t add[_QUOTA_MAX];
    vm_quota_claim(vm, add);
    add[QUOTA_PORTS] = (int64_t)n_ports;
    if (project_quota_check_locked(s, vm->project, add, err) < 0 ||
        (vm->group_id[0] && vm_group_check_locked(s, vm->group_id, vm->project, err) < 0)) {
        store_rollback(s);
        return -1;
    }
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        int xrc = sqlite3_extended_errcode(s->db);
        if (rc == SQLITE_CONSTRAINT && strstr(sqlite3_errmsg(s->db), "vms.mac"))
            nb_error_set(err, NB_ERR_MAC_TAKEN, "MAC address %s is taken", vm->mac);
        else if (xrc == SQLITE_CONSTRAINT_UNIQUE || xrc == SQLITE_CONSTRAINT_PRIMARYKEY)
            nb_error_set(err, NB_ERR_NAME_TAKEN, "a VM named '%s' already exists", vm->name);
        else
            /* e.g. a foreign key: the image, flavor or group went away meanwhile */
            store_db_error(s, "insert vm", err);
        store_rollback(s);
        return -1;
    }
    if (vm_ports_insert_locked(s, vm, ports, n_ports, err) < 0 ||
        task_insert_locked(s, task, NULL, err) < 0 || store_commit(s, err) < 0) {
        store_rollback(s);
        return -1;
    }
    store_placement_changed_locked(s);
    if (ret_gen)
        *ret_gen = s->placement_gen;
    return 0;
}

int
vm_store_get(Store *s, const char *scope, const char *id_or_name, Vm *ret, NbError **err)
{
    STORE_READING(s);
    return store_get_by_id_or_name(s, STORE_SQL_VM_BY_ID, STORE_SQL_VM_BY_NAME, id_or_name, scope,
                                   vm_from_row, ret, NB_ERR_VM_NOT_FOUND, "VM", err);
}

static void
vm_clear_elem(void *elem)
{
    vm_clear(elem);
}

void
vm_list_free(Vm *vms, size_t n)
{
    for (size_t i = 0; i < n; i++)
        vm_clear(&vms[i]);
    free(vms);
}

int
vm_store_list(Store *s, const char *scope, Vm **ret, size_t *ret_n, NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "SELECT " VM_COLUMNS " FROM vms WHERE ?1 IS NULL OR project = ?1 "
                      "ORDER BY name",
                      &st, err) < 0)
        return -1;
    store_bind_text(st, 1, scope);
    return store_collect(s, st, sizeof(Vm), vm_from_row, vm_clear_elem, (void **)ret, ret_n, err);
}

int
vm_store_list_page(Store *s, const char *scope, const char *marker, unsigned limit, Vm **ret,
                   size_t *ret_n, char ret_next_marker[STORE_MARKER_MAX], NbError **err)
{
    char name[NB_NAME_MAX + 1] = "", id[NB_UUID_STRLEN] = "";
    if (marker && *marker &&
        store_marker_parse(marker, "._-", name, sizeof(name), id, sizeof(id), err) < 0)
        return -1;
    limit = store_page_limit(limit);
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, scope ? STORE_SQL_VM_PAGE_SCOPED : STORE_SQL_VM_PAGE_ALL, &st, err) < 0)
        return -1;
    if (scope)
        sqlite3_bind_text(st, 1, scope, -1, SQLITE_STATIC);
    /* ("", "") sorts before every row: the first page. */
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
    /* One row more than asked tells whether another page follows. */
    sqlite3_bind_int64(st, 4, (sqlite3_int64)limit + 1);
    Vm *list = NULL;
    size_t n = 0;
    if (store_collect(s, st, sizeof(Vm), vm_from_row, vm_clear_elem, (void **)&list, &n, err) < 0)
        return -1;
    ret_next_marker[0] = '\0';
    if (n > limit) {
        vm_clear(&list[limit]);
        n = limit;
        store_marker_make(ret_next_marker, list[n - 1].name, list[n - 1].id);
    }
    *ret = list;
    *ret_n = n;
    return 0;
}

/* vm_store_claim, and with dest also the start of a migration (migrate_to = dest), in the
 * same transaction. */
static int
vm_store_claim_full(Store *s, const char *vm_id, const Task *task, VmPower desired, int state,
                    const char *dest, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    char now[NB_TIMESTAMP_LEN];
    nb_timestamp_now(now);
    if (store_prepare(s, STORE_SQL_VM_CLAIM, &st, err) < 0 || store_begin(s, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, task->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, vm_power_to_string(desired), -1, SQLITE_STATIC);
    if (state >= 0)
        sqlite3_bind_text(st, 3, vm_state_to_string((VmState)state), -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 3);
    sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, vm_id, -1, SQLITE_STATIC);
    store_bind_text(st, 6, dest);
    if (sqlite3_step(st) != SQLITE_DONE) {
        store_db_error(s, "claim vm", err);
        store_rollback(s);
        return -1;
    }
    if (sqlite3_changes(s->db) == 0) {
        store_rollback(s);
        return nb_error_set(err, NB_ERR_VM_BUSY,
                            "another task is working on this VM; retry when it has finished");
    }
    if (task_insert_locked(s, task, NULL, err) < 0 || store_commit(s, err) < 0) {
        store_rollback(s);
        return -1;
    }
    if (dest && *dest)
        store_placement_changed_locked(s);
    return 0;
}

int
vm_store_claim(Store *s, const char *vm_id, const Task *task, VmPower desired, int state,
               NbError **err)
{
    return vm_store_claim_full(s, vm_id, task, desired, state, NULL, err);
}

int
vm_store_claim_for_migration(Store *s, const char *vm_id, const Task *task, VmPower desired,
                             const char *dest, NbError **err)
{
    if (!dest || !*dest)
        return nb_error_set(err, NB_ERR_INTERNAL, "store: a migration needs a destination");
    return vm_store_claim_full(s, vm_id, task, desired, -1, dest, err);
}

int
vm_store_observe(Store *s, const char *vm_id, VmState state, int desired, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    char now[NB_TIMESTAMP_LEN];
    nb_timestamp_now(now);
    if (store_prepare(s, STORE_SQL_VM_OBSERVE, &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, vm_state_to_string(state), -1, SQLITE_STATIC);
    if (desired >= 0)
        sqlite3_bind_text(st, 2, vm_power_to_string((VmPower)desired), -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 2);
    sqlite3_bind_text(st, 3, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, vm_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "observe vm", err);
    return sqlite3_changes(s->db) > 0 ? 1 : 0;
}

int
vm_store_set_ip(Store *s, const char *vm_id, const char *ip, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, STORE_SQL_VM_SET_IP, &st, err) < 0)
        return -1;
    store_bind_text(st, 1, ip);
    sqlite3_bind_text(st, 2, vm_id, -1, SQLITE_STATIC);
    store_bind_text(st, 3, ip);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "set vm ip", err);
    return 0;
}

int
vm_store_mark_host_unknown(Store *s, const char *host, NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, STORE_SQL_VM_MARK_UNKNOWN, &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "mark vms unknown", err);
    return 0;
}

/* One UPDATE of a VM's placement columns: ?1 the VM, ?2 the value, ?3 now. */
static int
vm_store_set_placement(Store *s, const char *sql, const char *vm_id, const char *value,
                       NbError **err)
{
    STORE_LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    char now[NB_TIMESTAMP_LEN];
    nb_timestamp_now(now);
    if (store_prepare(s, sql, &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, vm_id, -1, SQLITE_STATIC);
    store_bind_text(st, 2, value);
    sqlite3_bind_text(st, 3, now, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "update vm placement", err);
    if (sqlite3_changes(s->db) == 0)
        return nb_error_set(err, NB_ERR_VM_NOT_FOUND, "VM '%.64s' not found", vm_id);
    store_placement_changed_locked(s);
    return 0;
}

int
vm_store_set_migration(Store *s, const char *vm_id, const char *dest, NbError **err)
{
    return vm_store_set_placement(
        s, "UPDATE vms SET migrate_to = ?2, updated_at = ?3 WHERE id = ?1", vm_id, dest, err);
}

int
vm_store_set_labels(Store *s, const char *vm_id, const Labels *labels, NbError **err)
{
    _cleanup_free_ char *text = labels_to_text(labels);
    if (!text)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    /* COALESCE: the placement helper binds "" (no labels) as NULL; the column is NOT NULL. */
    return vm_store_set_placement(s,
                                  "UPDATE vms SET labels = COALESCE(?2, ''), updated_at = ?3 "
                                  "WHERE id = ?1",
                                  vm_id, text, err);
}

int
vm_store_move(Store *s, const char *vm_id, const char *host, NbError **err)
{
    if (!host || !*host)
        return nb_error_set(err, NB_ERR_INTERNAL, "store: moving a VM needs a host");
    return vm_store_set_placement(
        s, "UPDATE vms SET host = ?2, migrate_to = NULL, updated_at = ?3 WHERE id = ?1", vm_id,
        host, err);
}

static int
vm_store_list_where(Store *s, const char *sql, const char *key, Vm **ret, size_t *ret_n,
                    NbError **err)
{
    STORE_READING(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s, sql, &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    return store_collect(s, st, sizeof(Vm), vm_from_row, vm_clear_elem, (void **)ret, ret_n, err);
}

int
vm_store_list_by_host(Store *s, const char *host, Vm **ret, size_t *ret_n, NbError **err)
{
    return vm_store_list_where(s, STORE_SQL_VM_BY_HOST, host, ret, ret_n, err);
}

int
vm_store_list_by_group(Store *s, const char *group_id, Vm **ret, size_t *ret_n, NbError **err)
{
    return vm_store_list_where(
        s, "SELECT " VM_COLUMNS " FROM vms WHERE group_id = ? ORDER BY name, id", group_id, ret,
        ret_n, err);
}

int
vm_volumes_detach_locked(Store *s, const char *vm_id, const char *task_id, NbError **err)
{
    /* Before the VM's row goes (its ON DELETE SET NULL would leave them "attached" to nothing),
     * and only when that delete will happen: the VM is still held by the task. */
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (store_prepare(s,
                      "UPDATE volumes SET state = 'available', vm_id = NULL, target = NULL "
                      "WHERE vm_id = ?1 AND EXISTS (SELECT 1 FROM vms WHERE id = ?1 AND "
                      "task_id = ?2)",
                      &st, err) < 0)
        return -1;
    sqlite3_bind_text(st, 1, vm_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, task_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return store_db_error(s, "detach a deleted VM's volumes", err);
    return 0;
}
