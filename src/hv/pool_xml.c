/*
 * The shapes follow what was verified against libvirt 9.0 on the test machines
 * (docs: /work/shared/design/recipes/storage-backends.md): rbd and iSCSI disks are
 * type='network' (libvirt refuses <disk type='volume'> on an rbd pool), the pool's <auth> names
 * its secret by UUID (ceph) or usage (iSCSI CHAP), and the disk's <auth> the same secret.
 */
#include "pool_xml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/validate.h"
#include "util/cleanup.h"
#include "util/strutil.h"
#include "util/uuid.h"
#include "util/xml_writer.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(XmlWriter, xml_writer_free)

#define ISCSI_DEFAULT_PORT 3260u
#define SERIAL_MAX 20 /* QEMU's virtio-blk serial: 20 bytes */

static char *
writer_take(XmlWriter *w)
{
    const char *doc = xml_writer_result(w);
    return doc ? strdup(doc) : NULL;
}

/* <host name='..' [port='..']/> of a "host[:port]"; default_port when it has none (0: none). */
static bool
write_host(XmlWriter *w, const char *hostport, unsigned default_port)
{
    char host[256], port[16];
    unsigned p;
    if (pool_hostport_parse(hostport, host, sizeof(host), &p) < 0)
        return false;
    if (!p)
        p = default_port;
    if (p) {
        snprintf(port, sizeof(port), "%u", p);
        xml_writer_empty(w, "host", "name", host, "port", port, NULL);
    } else {
        xml_writer_empty(w, "host", "name", host, NULL);
    }
    return true;
}

static bool
hosts_valid(const char *const *hosts, size_t n, size_t max, bool with_port)
{
    if (n < 1 || n > max || !hosts)
        return false;
    for (size_t i = 0; i < n; i++) {
        char host[256];
        unsigned p;
        if (pool_hostport_parse(hosts[i], host, sizeof(host), &p) < 0 || (!with_port && p))
            return false;
    }
    return true;
}

static bool
pool_valid(const Pool *p)
{
    if (!p || !nb_token_is_valid(p->libvirt_name, POOL_LIBVIRT_NAME_MAX))
        return false;
    /* The secret is named by the pool's id: without a valid one there is nothing to name. */
    if (p->auth_user[0] &&
        (!nb_token_is_valid(p->auth_user, NB_NAME_MAX) || !nb_uuid_is_valid(p->id) ||
         p->type == POOL_TYPE_DIR || p->type == POOL_TYPE_LOGICAL || p->type == POOL_TYPE_NETFS))
        return false;
    const char *mons[POOL_MONITORS_MAX];
    size_t n = p->n_monitors <= POOL_MONITORS_MAX ? p->n_monitors : 0;
    for (size_t i = 0; i < n; i++)
        mons[i] = p->monitors[i];
    switch (p->type) {
    case POOL_TYPE_DIR:
        return pool_path_valid(p->path);
    case POOL_TYPE_LOGICAL:
        return pool_vg_name_valid(p->source);
    case POOL_TYPE_RBD:
        return hosts_valid(mons, n, POOL_MONITORS_MAX, true) &&
               nb_token_is_valid(p->source, NB_NAME_MAX);
    case POOL_TYPE_ISCSI:
        return hosts_valid(mons, n, 1, true) && pool_iqn_valid(p->source) &&
               pool_iqn_valid(p->initiator);
    case POOL_TYPE_NETFS:
        return hosts_valid(mons, n, 1, false) && pool_path_valid(p->source) &&
               pool_path_valid(p->path);
    default:
        return false;
    }
}

char *
pool_xml_pool(const Pool *p)
{
    if (!pool_valid(p))
        return NULL;
    _cleanup_(xml_writer_freep) XmlWriter *w = xml_writer_new();
    if (!w)
        return NULL;
    char secret_usage[POOL_LIBVIRT_NAME_MAX + 1];
    pool_libvirt_name(p->id, secret_usage);

    xml_writer_open(w, "pool", "type", pool_type_libvirt(p->type), NULL);
    xml_writer_text_element(w, "name", p->libvirt_name, NULL);
    switch (p->type) {
    case POOL_TYPE_DIR:
        xml_writer_open(w, "target", NULL);
        xml_writer_text_element(w, "path", p->path, NULL);
        xml_writer_close(w);
        break;
    case POOL_TYPE_LOGICAL: {
        xml_writer_open(w, "source", NULL);
        xml_writer_text_element(w, "name", p->source, NULL);
        xml_writer_empty(w, "format", "type", "lvm2", NULL);
        xml_writer_close(w);
        /* Where LVM puts the group's device nodes: the disks' block paths. */
        char dev[POOL_PATH_MAX + 8];
        snprintf(dev, sizeof(dev), "/dev/%s", p->source);
        xml_writer_open(w, "target", NULL);
        xml_writer_text_element(w, "path", dev, NULL);
        xml_writer_close(w);
        break;
    }
    case POOL_TYPE_RBD:
        xml_writer_open(w, "source", NULL);
        xml_writer_text_element(w, "name", p->source, NULL);
        for (size_t i = 0; i < p->n_monitors; i++)
            write_host(w, p->monitors[i], 0);
        if (p->auth_user[0]) {
            xml_writer_open(w, "auth", "type", "ceph", "username", p->auth_user, NULL);
            xml_writer_empty(w, "secret", "uuid", p->id, NULL);
            xml_writer_close(w);
        }
        xml_writer_close(w);
        break;
    case POOL_TYPE_ISCSI:
        xml_writer_open(w, "source", NULL);
        write_host(w, p->monitors[0], ISCSI_DEFAULT_PORT);
        xml_writer_empty(w, "device", "path", p->source, NULL);
        if (p->auth_user[0]) {
            xml_writer_open(w, "auth", "type", "chap", "username", p->auth_user, NULL);
            xml_writer_empty(w, "secret", "usage", secret_usage, NULL);
            xml_writer_close(w);
        }
        xml_writer_open(w, "initiator", NULL);
        xml_writer_empty(w, "iqn", "name", p->initiator, NULL);
        xml_writer_close(w);
        xml_writer_close(w);
        break;
    case POOL_TYPE_NETFS:
        xml_writer_open(w, "source", NULL);
        write_host(w, p->monitors[0], 0);
        xml_writer_empty(w, "dir", "path", p->source, NULL);
        xml_writer_empty(w, "format", "type", "nfs", NULL);
        xml_writer_close(w);
        xml_writer_open(w, "target", NULL);
        xml_writer_text_element(w, "path", p->path, NULL);
        xml_writer_close(w);
        break;
    default:
        return NULL;
    }
    xml_writer_close(w);
    return writer_take(w);
}

char *
pool_xml_secret(const Pool *p)
{
    if (!pool_valid(p) || !p->auth_user[0])
        return NULL;
    _cleanup_(xml_writer_freep) XmlWriter *w = xml_writer_new();
    if (!w)
        return NULL;
    char usage[POOL_LIBVIRT_NAME_MAX + 1];
    pool_libvirt_name(p->id, usage);
    /* private: libvirt never hands the value back through its API; not ephemeral: it survives a
     * libvirtd restart, as the pools that use it do. */
    xml_writer_open(w, "secret", "ephemeral", "no", "private", "yes", NULL);
    xml_writer_text_element(w, "uuid", p->id, NULL);
    if (nb_name_is_valid(p->name)) {
        _cleanup_free_ char *desc = str_printf("Nimbus storage pool %s", p->name);
        if (!desc)
            return NULL;
        xml_writer_text_element(w, "description", desc, NULL);
    }
    if (p->type == POOL_TYPE_RBD) {
        xml_writer_open(w, "usage", "type", "ceph", NULL);
        xml_writer_text_element(w, "name", usage, NULL);
    } else {
        xml_writer_open(w, "usage", "type", "iscsi", NULL);
        xml_writer_text_element(w, "target", usage, NULL);
    }
    xml_writer_close(w);
    xml_writer_close(w);
    return writer_take(w);
}

static bool
format_valid(const char *f)
{
    return streq(f, "qcow2") || streq(f, "raw");
}

char *
pool_xml_volume(const char *name, uint64_t capacity_bytes, const char *format)
{
    if (!nb_token_is_valid(name, NB_NAME_MAX) || capacity_bytes == 0 ||
        (format && !format_valid(format)))
        return NULL;
    _cleanup_(xml_writer_freep) XmlWriter *w = xml_writer_new();
    if (!w)
        return NULL;
    char cap[24];
    snprintf(cap, sizeof(cap), "%ju", (uintmax_t)capacity_bytes);
    xml_writer_open(w, "volume", NULL);
    xml_writer_text_element(w, "name", name, NULL);
    xml_writer_text_element(w, "capacity", cap, "unit", "bytes", NULL);
    if (format) {
        xml_writer_text_element(w, "allocation", "0", "unit", "bytes", NULL);
        xml_writer_open(w, "target", NULL);
        xml_writer_empty(w, "format", "type", format, NULL);
        xml_writer_close(w);
    } else {
        /* The pool's own format (raw); the schema wants the element all the same. */
        xml_writer_empty(w, "target", NULL);
    }
    xml_writer_close(w);
    return writer_take(w);
}

/* "vd" + one letter on virtio, "sd" + one letter on scsi. */
static bool
target_valid(const char *target, const char *bus)
{
    const char *prefix = streq(bus, "virtio") ? "vd" : streq(bus, "scsi") ? "sd" : NULL;
    return prefix && target && strncmp(target, prefix, 2) == 0 && target[2] >= 'a' &&
           target[2] <= 'z' && target[3] == '\0';
}

static bool
serial_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > SERIAL_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '-'))
            return false;
    return true;
}

/* "cephpool/image" */
static bool
rbd_name_valid(const char *s)
{
    const char *slash = s ? strchr(s, '/') : NULL;
    if (!slash || (size_t)(slash - s) > NB_NAME_MAX)
        return false;
    char pool[NB_NAME_MAX + 1];
    memcpy(pool, s, (size_t)(slash - s));
    pool[slash - s] = '\0';
    return nb_token_is_valid(pool, NB_NAME_MAX) && nb_token_is_valid(slash + 1, NB_NAME_MAX);
}

/* "iqn.../LUN", LUN 0..16383 (SAM's flat space), no leading zero. */
static bool
iscsi_name_valid(const char *s)
{
    const char *slash = s ? strrchr(s, '/') : NULL;
    if (!slash || (size_t)(slash - s) > POOL_IQN_MAX)
        return false;
    char iqn[POOL_IQN_MAX + 1];
    memcpy(iqn, s, (size_t)(slash - s));
    iqn[slash - s] = '\0';
    const char *lun = slash + 1;
    size_t n = strspn(lun, "0123456789");
    if (n == 0 || n > 5 || lun[n] || (n > 1 && lun[0] == '0'))
        return false;
    return pool_iqn_valid(iqn) && strtoul(lun, NULL, 10) <= 16383;
}

static bool
disk_valid(const DiskSpec *d)
{
    if (!d || !target_valid(d->target, d->bus) || !serial_valid(d->serial) ||
        !format_valid(d->format))
        return false;
    if (d->auth_user && !nb_token_is_valid(d->auth_user, NB_NAME_MAX))
        return false;
    switch (d->kind) {
    case DISK_SOURCE_FILE:
    case DISK_SOURCE_BLOCK:
        return pool_path_valid(d->path) && !d->auth_user && !d->n_hosts;
    case DISK_SOURCE_RBD:
        /* QEMU reads an rbd image as it is: Nimbus keeps raw there. */
        return streq(d->format, "raw") && rbd_name_valid(d->name) &&
               hosts_valid(d->hosts, d->n_hosts, POOL_MONITORS_MAX, true) &&
               (!d->auth_user || nb_uuid_is_valid(d->secret_uuid));
    case DISK_SOURCE_ISCSI:
        return streq(d->format, "raw") && iscsi_name_valid(d->name) &&
               hosts_valid(d->hosts, d->n_hosts, 1, true) && pool_iqn_valid(d->initiator) &&
               (!d->auth_user || nb_token_is_valid(d->secret_usage, POOL_LIBVIRT_NAME_MAX));
    default:
        return false;
    }
}

char *
pool_xml_disk(const DiskSpec *d)
{
    if (!disk_valid(d))
        return NULL;
    _cleanup_(xml_writer_freep) XmlWriter *w = xml_writer_new();
    if (!w)
        return NULL;
    static const char *const disk_type[] = {
        [DISK_SOURCE_FILE] = "file",
        [DISK_SOURCE_BLOCK] = "block",
        [DISK_SOURCE_RBD] = "network",
        [DISK_SOURCE_ISCSI] = "network",
    };
    xml_writer_open(w, "disk", "type", disk_type[d->kind], "device", "disk", NULL);
    /* cache='none' (O_DIRECT) keeps a host crash from losing what the guest flushed and lets
     * libvirt migrate the VM; librbd's own cache is safe with writeback (it honours flushes,
     * and libvirt counts rbd as shared storage). */
    xml_writer_empty(w, "driver", "name", "qemu", "type", d->format, "cache",
                     d->kind == DISK_SOURCE_RBD ? "writeback" : "none", "discard", "unmap", NULL);
    switch (d->kind) {
    case DISK_SOURCE_FILE:
        xml_writer_empty(w, "source", "file", d->path, NULL);
        break;
    case DISK_SOURCE_BLOCK:
        xml_writer_empty(w, "source", "dev", d->path, NULL);
        break;
    case DISK_SOURCE_RBD:
        if (d->auth_user) {
            xml_writer_open(w, "auth", "username", d->auth_user, NULL);
            xml_writer_empty(w, "secret", "type", "ceph", "uuid", d->secret_uuid, NULL);
            xml_writer_close(w);
        }
        xml_writer_open(w, "source", "protocol", "rbd", "name", d->name, NULL);
        for (size_t i = 0; i < d->n_hosts; i++)
            write_host(w, d->hosts[i], 0);
        xml_writer_close(w);
        break;
    case DISK_SOURCE_ISCSI:
        if (d->auth_user) {
            xml_writer_open(w, "auth", "username", d->auth_user, NULL);
            xml_writer_empty(w, "secret", "type", "iscsi", "usage", d->secret_usage, NULL);
            xml_writer_close(w);
        }
        xml_writer_open(w, "source", "protocol", "iscsi", "name", d->name, NULL);
        write_host(w, d->hosts[0], ISCSI_DEFAULT_PORT);
        xml_writer_open(w, "initiator", NULL);
        xml_writer_empty(w, "iqn", "name", d->initiator, NULL);
        xml_writer_close(w);
        xml_writer_close(w);
        break;
    }
    xml_writer_empty(w, "target", "dev", d->target, "bus", d->bus, NULL);
    xml_writer_text_element(w, "serial", d->serial, NULL);
    domain_xml_write_iotune(w, &d->iotune);
    xml_writer_close(w);
    return writer_take(w);
}
