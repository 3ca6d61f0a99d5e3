/*
 * VMs whose root disk is in a dir pool other than the default (a qcow2 overlay there, backed by
 * the image's copy in the host's default pool, as for any VM) or in an rbd pool
 * (docs/storage.md, "VM disks in pools").
 *
 * VMs whose root disk is in an rbd pool (docs/storage.md, "VM disks in pools"): the image is
 * written once into the pool as a raw RBD image, and each VM's disk is an RBD clone of it
 * (libvirt's vol-clone: a protected snapshot of the base and a copy-on-write child), grown to the
 * flavor's disk. The seed ISO and the console log stay in the host's default pool.
 */
#pragma once

#include "core.h"

/* The pool a create asks for (name or id; "" or the default pool: none) into vm->pool_id.
 * POOL_NOT_FOUND, or INVALID_REQUEST for a pool a root disk cannot live in (not dir or rbd). */
int vm_rbd_resolve_pool(Core *core, const char *ref, Vm *vm, NbError **err);
/* The VM's pool (its secret wiped), when it has one: 1, 0 when on the default pool, -1. */
int vm_rbd_pool(Core *core, const Vm *vm, Pool *ret, NbError **err);
/* The libvirt pool of the VM's root disk (the default pool's when it has none) and its type
 * (the default pool: POOL_TYPE_DIR). 0 or -1. */
int vm_disk_pool(Core *core, const Vm *vm, char name[POOL_LIBVIRT_NAME_MAX + 1], PoolType *type,
                 NbError **err);
/* 1 when the VM's root disk is in an rbd pool, 0 when not, -1. */
int vm_disk_on_rbd(Core *core, const Vm *vm, NbError **err);
/* What is not done yet to a VM whose root disk is in a pool (dir or rbd): 0 when it is in the
 * default pool, else INVALID_STATE "VM 'x' has its root disk in <type> pool 'p': <what> in this
 * version" (-1). */
int vm_disk_refuse_in_pool(Core *core, const Vm *vm, const char *what, NbError **err);
/* The pool pool_id, its secret wiped. 0 or -1. */
int vm_rbd_pool_get(Core *core, const char *pool_id, Pool *ret, NbError **err);
/* The RBD image of the VM's root disk: "vm-<id>-disk". */
void vm_rbd_disk_name(const Vm *vm, char out[96]);
/* The base of image_id in an rbd pool: "nimbus-image-<image id>". */
void vm_rbd_base_name(const char *image_id, char out[96]);

/* The pool's key, base64 as the pool keeps it, in a new 0600 file of nimbusd's at path (one a
 * crash left there is replaced), for the Ceph tools run on nimbusd's host (qemu-img, rbd); the
 * caller unlinks it when they are done. */
int vm_rbd_key_file(const char *path, const char *key, NbError **err);

/* rbd's exit status is the errno of what failed. */
#define VM_RBD_ABSENT 2
#define VM_RBD_BUSY 16
#define VM_RBD_EXISTS 17

/* Runs `rbd <args>` (at most 12) on nimbusd's host against the rbd pool pool_id (its monitors,
 * user and key; no ceph.conf), with a timeout (rbd hangs while no monitor or OSD answers): its
 * exit status (0..255) in *status and 0, or -1 when it could not run or timed out. tag names the
 * key file (a task id). Its standard output in *ret_out when ret_out is not NULL. */
int vm_rbd_run(Core *core, const char *tag, const char *pool_id, const char *const *args,
               size_t n_args, int *status, char **ret_out, NbError **err);

/* VM snapshots on RBD (snapshot_ops.c): `rbd <verb>` for the RBD snapshot snap of each of the
 * VM's disks, its root disk's image and its attached volumes' in rbd pools (a volume in
 * another kind of pool is skipped: snapshot_ops refuses such a VM). verb: "create" (one there
 * already: done), "rm" (absent: done), "rollback", "check" (`rbd info` of each disk's snapshot:
 * INVALID_STATE when one is missing). tag names the key file (a task id). 0 or -1. */
int vm_rbd_snap_disks(Core *core, const char *tag, const Vm *vm, const char *verb, const char *snap,
                      NbError **err);

/* `rbd snap <verb> <pool>/<image>@<snap>` (verb: create, rm, protect, unprotect), done already
 * counting as done (EEXIST on create, ENOENT on rm, ...): 0, or -1 (unprotect while clones of the
 * snapshot exist: INVALID_STATE). tag as for vm_rbd_run. */
int vm_rbd_snap(Core *core, const char *tag, const Pool *pool, const char *image, const char *snap,
                const char *verb, NbError **err);
/* Copies the RBD snapshot image@snap of the rbd pool pool_id into a new qcow2 file at path on
 * nimbusd's host (qemu-img's rbd driver, the key through QEMU's secret object; a file there is
 * replaced). 0 or -1. */
int vm_rbd_read_snapshot(Core *core, const char *tag, const char *pool_id, const char *image,
                         const char *snap, const char *path, NbError **err);

/* The snapshots of a VM's RBD disk that clones are made of ("nimbus-clone-<task id>") and that
 * images are read from ("nimbus-image-copy-<task id>"). */
#define VM_RBD_CLONE_SNAP_PREFIX "nimbus-clone-"
#define VM_RBD_COPY_SNAP_PREFIX "nimbus-image-copy-"
void vm_rbd_clone_snap_name(const char *task_id, char out[96]);
/* The disk of vm, a clone of src's disk in the same rbd pool: a protected snapshot of src's
 * disk and an RBD clone of it; unless linked, flattened, and the snapshot removed. Each part
 * done already counts as done (a restart goes through them again). 0 or -1. */
int vm_rbd_clone_disk(Core *core, const Task *task, const Vm *src, const Vm *vm, bool linked,
                      HvConn *hv, NbError **err);
/* A failed clone's snapshot of src's disk, unless the clone is still its child: the clone's
 * delete removes it then. */
void vm_rbd_clone_cleanup(Core *core, const Task *task, const Vm *src);

/* The create's disk step in an rbd pool (vm_ops makes a dir pool's overlay as the default
 * pool's): the image's base in the pool (written once, on nimbusd's host), then the VM's clone,
 * grown to the flavor's disk. 0, a delay (> 0) while another task writes the base, or -1.
 * Idempotent: a clone already there is kept, a base cut short is written again. */
int vm_rbd_create_disk(Core *core, Task *task, Vm *vm, HvConn *hv, TaskRun *run, NbError **err);
/* The delete's (and a failed create's) disk step: the overlay or clone goes; absent: 0. An RBD
 * clone goes with its snapshots (the VM's snapshots), and those snapshots go from the volumes
 * still attached to the VM too (they outlive it). */
/* An RBD disk's linked clones are flattened first (they outlive it) and the snapshots they were
 * made of go; a linked clone's own snapshot of its source goes after it. */
int vm_rbd_delete_disk(Core *core, const Vm *vm, HvConn *hv, NbError **err);
/* 1 when the VM's disk (overlay or clone) exists, 0 when not, -1. */
int vm_rbd_disk_exists(Core *core, const Vm *vm, HvConn *hv, NbError **err);

/* An image's copies recorded as "rbd:<pool id>" (image_copies): its base in that pool, deleted
 * with its snapshots, unless a clone still depends on it (then kept, and the record too). */
#define VM_RBD_COPY_PREFIX "rbd:"
void vm_rbd_base_delete(Core *core, const Image *img, const char *copy_key);
