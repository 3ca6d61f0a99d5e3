/*
 * Builds the libvirt domain XML for a VM. Every string from the spec goes through the escaping
 * XML writer, including the ones callers have already validated: the writer refuses characters
 * XML cannot carry, and we return NULL rather than a partial or altered document.
 */
#include "domain_xml.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "model/pool.h"
#include "model/validate.h"
#include "network_xml.h"
#include "nwfilter_xml.h"
#include "util/cleanup.h"
#include "util/strutil.h"
#include "util/xml_writer.h"

/* Nova's metadata namespace: existing libvirt exporters and dashboards read VM labels from it. */
#define NOVA_NS "http://openstack.org/xmlns/libvirt/nova/1.1"
#define NIMBUS_NS "https://nimbus.dev/xmlns/vm/1"
#define NIMBUS_PACKAGE "nimbus-0.1"

DEFINE_TRIVIAL_CLEANUP_FUNC(XmlWriter, xml_writer_free)

static const char *const virt_type_table[_VIRT_TYPE_MAX] = {
    [VIRT_TYPE_KVM] = "kvm",
    [VIRT_TYPE_QEMU] = "qemu",
    [VIRT_TYPE_TEST] = "test",
};

const char *
virt_type_to_string(VirtType t)
{
    if ((int)t < 0 || (int)t >= _VIRT_TYPE_MAX)
        return NULL;
    return virt_type_table[t];
}

VirtType
virt_type_from_string(const char *s)
{
    for (int i = 0; i < _VIRT_TYPE_MAX; i++)
        if (streq(s, virt_type_table[i]))
            return (VirtType)i;
    return _VIRT_TYPE_INVALID;
}

static bool
present(const char *s)
{
    return s && s[0] != '\0';
}

static bool
nic_valid(const DomainNic *n)
{
    if (!n || !present(n->source) || !network_xml_mac_is_valid(n->mac))
        return false;
    if (n->kind == DOMAIN_NIC_BRIDGE) {
        if (!network_ifname_is_valid(n->source))
            return false;
    } else if (n->kind != DOMAIN_NIC_NETWORK) {
        return false;
    }
    /* libvirt hands out vnetN itself and would rename a tap asked for under that prefix. */
    if (n->target_dev &&
        (!network_ifname_is_valid(n->target_dev) || str_startswith(n->target_dev, "vnet")))
        return false;
    if (n->filter && (!nb_token_is_valid(n->filter, NWFILTER_NAME_MAX) || n->filter_ip == 0 ||
                      n->filter_ip == UINT32_MAX))
        return false;
    return n->mtu == 0 || (n->mtu >= NETWORK_MTU_MIN && n->mtu <= NETWORK_MTU_MAX);
}

/* libvirt accepts two NICs with one MAC (or one tap name) and the guest or the host then
 * breaks in odd ways: refuse it here. */
static bool
nics_valid(const DomainNic *nics, size_t n)
{
    if (!nics || n == 0 || n > VM_NICS_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!nic_valid(&nics[i]))
            return false;
        for (size_t j = 0; j < i; j++) {
            if (strcasecmp(nics[i].mac, nics[j].mac) == 0 ||
                (nics[i].target_dev && nics[j].target_dev &&
                 streq(nics[i].target_dev, nics[j].target_dev)))
                return false;
        }
    }
    return true;
}

/* Both or neither; an address or host name, and a short password of letters and digits. */
static bool
vnc_valid(const DomainSpec *s)
{
    if (!s->vnc_listen && !s->vnc_password)
        return true;
    if (!present(s->vnc_listen) || !present(s->vnc_password) ||
        strlen(s->vnc_password) > DOMAIN_VNC_PASSWORD_MAX || strlen(s->vnc_listen) > 255)
        return false;
    for (const char *p = s->vnc_password; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
            return false;
    for (const char *p = s->vnc_listen; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == ':' || *p == '-'))
            return false;
    return true;
}

/* "cephpool/image", monitors "host[:port]", and a user with its secret's UUID, or neither. */
static bool
rbd_valid(const DomainSpec *s)
{
    const char *name = s->disk_rbd.name, *slash = strchr(name, '/');
    char pool[NB_NAME_MAX + 1], host[256];
    unsigned port;
    if (!slash || (size_t)(slash - name) > NB_NAME_MAX)
        return false;
    memcpy(pool, name, (size_t)(slash - name));
    pool[slash - name] = '\0';
    if (!nb_token_is_valid(pool, NB_NAME_MAX) || !nb_token_is_valid(slash + 1, NB_NAME_MAX) ||
        s->disk_rbd.n_hosts < 1 || s->disk_rbd.n_hosts > DOMAIN_RBD_HOSTS_MAX)
        return false;
    for (size_t i = 0; i < s->disk_rbd.n_hosts; i++)
        if (pool_hostport_parse(s->disk_rbd.hosts[i], host, sizeof(host), &port) < 0)
            return false;
    if (!s->disk_rbd.user)
        return !s->disk_rbd.secret;
    return nb_token_is_valid(s->disk_rbd.user, NB_NAME_MAX) && nb_uuid_is_valid(s->disk_rbd.secret);
}

static bool
spec_complete(const DomainSpec *s)
{
    return s && present(s->uuid) && present(s->domain_name) && present(s->vm_name) &&
           present(s->project) && present(s->flavor_name) && present(s->image_id) &&
           virt_type_to_string(s->virt_type) && s->vcpus > 0 && s->ram_mib > 0 && s->disk_gib > 0 &&
           (s->disk_rbd.name ? !s->disk_path && rbd_valid(s) : present(s->disk_path)) &&
           (!s->seed_path || present(s->seed_path)) && nics_valid(s->nics, s->n_nics) &&
           s->hotplug_slots <= DOMAIN_HOTPLUG_MAX && present(s->console_log) &&
           present(s->created_at) && vnc_valid(s);
}

static void
write_metadata(XmlWriter *w, const DomainSpec *s, const char *ram, const char *disk,
               const char *vcpus)
{
    xml_writer_open(w, "metadata", NULL);

    xml_writer_open(w, "nova:instance", "xmlns:nova", NOVA_NS, NULL);
    xml_writer_empty(w, "nova:package", "version", NIMBUS_PACKAGE, NULL);
    xml_writer_text_element(w, "nova:name", s->vm_name, NULL);
    xml_writer_text_element(w, "nova:creationTime", s->created_at, NULL);
    xml_writer_open(w, "nova:flavor", "name", s->flavor_name, NULL);
    xml_writer_text_element(w, "nova:memory", ram, NULL);
    xml_writer_text_element(w, "nova:disk", disk, NULL);
    xml_writer_text_element(w, "nova:swap", "0", NULL);
    xml_writer_text_element(w, "nova:ephemeral", "0", NULL);
    xml_writer_text_element(w, "nova:vcpus", vcpus, NULL);
    xml_writer_close(w);
    /* Exporters label a VM's series with the owner project's name and id from here, and with
     * its user's where there is one (Nova's order: user, then project). */
    xml_writer_open(w, "nova:owner", NULL);
    if (present(s->owner_user_id))
        xml_writer_text_element(w, "nova:user",
                                present(s->owner_user_name) ? s->owner_user_name : s->owner_user_id,
                                "uuid", s->owner_user_id, NULL);
    xml_writer_text_element(w, "nova:project", s->project, "uuid",
                            s->project_id ? s->project_id : s->project, NULL);
    xml_writer_close(w);
    xml_writer_empty(w, "nova:root", "type", "image", "uuid", s->image_id, NULL);
    xml_writer_close(w);

    xml_writer_open(w, "nimbus:vm", "xmlns:nimbus", NIMBUS_NS, NULL);
    xml_writer_text_element(w, "nimbus:id", s->uuid, NULL);
    xml_writer_text_element(w, "nimbus:name", s->vm_name, NULL);
    xml_writer_close(w);

    xml_writer_close(w);
}

static void
write_nic(XmlWriter *w, const DomainNic *n)
{
    bool bridge = n->kind == DOMAIN_NIC_BRIDGE;
    xml_writer_open(w, "interface", "type", bridge ? "bridge" : "network", NULL);
    xml_writer_empty(w, "source", bridge ? "bridge" : "network", n->source, NULL);
    xml_writer_empty(w, "mac", "address", n->mac, NULL);
    xml_writer_empty(w, "model", "type", "virtio", NULL);
    if (n->target_dev)
        xml_writer_empty(w, "target", "dev", n->target_dev, NULL);
    if (n->mtu != 0) {
        char mtu[16];
        snprintf(mtu, sizeof(mtu), "%u", n->mtu);
        xml_writer_empty(w, "mtu", "size", mtu, NULL);
    }
    if (n->filter) {
        char ip[NB_IPV4_STRLEN];
        ipv4_format(n->filter_ip, ip);
        xml_writer_open(w, "filterref", "filter", n->filter, NULL);
        xml_writer_empty(w, "parameter", "name", "IP", "value", ip, NULL);
        xml_writer_empty(w, "parameter", "name", "MAC", "value", n->mac, NULL);
        xml_writer_close(w);
    }
    xml_writer_close(w);
}

/* Devices on q35's root bus (pcie.0) cannot be hot-plugged, and libvirt adds only the root
 * ports the defined devices need, plus one. Explicit ports are used for the defined devices
 * first, so there must be one for each of them as well: the USB controller libvirt adds, vda,
 * each NIC, the balloon and the RNG (the SATA CD-ROM sits on the root bus). */
#define DOMAIN_PCIE_FIXED_DEVICES 4

static void
write_pcie_ports(XmlWriter *w, const DomainSpec *s)
{
    xml_writer_empty(w, "controller", "type", "pci", "index", "0", "model", "pcie-root", NULL);
    size_t ports = DOMAIN_PCIE_FIXED_DEVICES + s->n_nics + s->hotplug_slots;
    for (size_t i = 0; i < ports; i++)
        xml_writer_empty(w, "controller", "type", "pci", "model", "pcie-root-port", NULL);
}

void
domain_xml_write_iotune(XmlWriter *w, const DiskIotune *io)
{
    if (!io->total_iops_sec && !io->total_bytes_sec)
        return;
    char v[24];
    xml_writer_open(w, "iotune", NULL);
    if (io->total_bytes_sec) {
        snprintf(v, sizeof(v), "%" PRIu64, io->total_bytes_sec);
        xml_writer_text_element(w, "total_bytes_sec", v, NULL);
    }
    if (io->total_iops_sec) {
        snprintf(v, sizeof(v), "%" PRIu64, io->total_iops_sec);
        xml_writer_text_element(w, "total_iops_sec", v, NULL);
    }
    xml_writer_close(w);
}

/* vda's <disk> up to its <source>, in RBD. libvirt 9.0 refuses <disk type='volume'> on an rbd
 * pool: the disk names the image and the monitors itself, and the pool's secret for its key.
 * librbd's cache with writeback honours the guest's flushes, and libvirt counts rbd as shared
 * storage (a live migration copies nothing). */
static void
write_rbd_disk(XmlWriter *w, const DomainSpec *s)
{
    xml_writer_open(w, "disk", "type", "network", "device", "disk", NULL);
    xml_writer_empty(w, "driver", "name", "qemu", "type", "raw", "cache", "writeback", "discard",
                     "unmap", NULL);
    if (s->disk_rbd.user) {
        xml_writer_open(w, "auth", "username", s->disk_rbd.user, NULL);
        xml_writer_empty(w, "secret", "type", "ceph", "uuid", s->disk_rbd.secret, NULL);
        xml_writer_close(w);
    }
    xml_writer_open(w, "source", "protocol", "rbd", "name", s->disk_rbd.name, NULL);
    for (size_t i = 0; i < s->disk_rbd.n_hosts; i++) {
        char host[256], port[16];
        unsigned p = 0;
        pool_hostport_parse(s->disk_rbd.hosts[i], host, sizeof(host), &p);
        if (p) {
            snprintf(port, sizeof(port), "%u", p);
            xml_writer_empty(w, "host", "name", host, "port", port, NULL);
        } else {
            xml_writer_empty(w, "host", "name", host, NULL);
        }
    }
    xml_writer_close(w);
}

static void
write_devices(XmlWriter *w, const DomainSpec *s)
{
    xml_writer_open(w, "devices", NULL);

    if (s->disk_rbd.name)
        write_rbd_disk(w, s);
    else {
        xml_writer_open(w, "disk", "type", "file", "device", "disk", NULL);
        xml_writer_empty(w, "driver", "name", "qemu", "type", "qcow2", "cache", "none", "discard",
                         "unmap", NULL);
        xml_writer_empty(w, "source", "file", s->disk_path, NULL);
    }
    xml_writer_empty(w, "target", "dev", "vda", "bus", "virtio", NULL);
    domain_xml_write_iotune(w, &s->disk_iotune);
    xml_writer_close(w);

    if (s->seed_path) {
        /* Read-only, so left out of VM snapshots (internal ones need qcow2). */
        xml_writer_open(w, "disk", "type", "file", "device", "cdrom", "snapshot", "no", NULL);
        xml_writer_empty(w, "driver", "name", "qemu", "type", "raw", NULL);
        xml_writer_empty(w, "source", "file", s->seed_path, NULL);
        xml_writer_empty(w, "target", "dev", "sda", "bus", "sata", NULL);
        xml_writer_empty(w, "readonly", NULL);
        xml_writer_close(w);
    }

    for (size_t i = 0; i < s->n_nics; i++)
        write_nic(w, &s->nics[i]);
    if (s->hotplug_slots > 0 && s->virt_type != VIRT_TYPE_TEST)
        write_pcie_ports(w, s);

    xml_writer_open(w, "serial", "type", "pty", NULL);
    xml_writer_empty(w, "log", "file", s->console_log, "append", "on", NULL);
    xml_writer_empty(w, "target", "port", "0", NULL);
    xml_writer_close(w);

    xml_writer_open(w, "console", "type", "pty", NULL);
    xml_writer_empty(w, "target", "type", "serial", "port", "0", NULL);
    xml_writer_close(w);

    if (s->vnc_listen) {
        /* The browser console's screen (docs/console.md): nimbusd connects to it over TCP. */
        xml_writer_open(w, "graphics", "type", "vnc", "port", "-1", "autoport", "yes", "listen",
                        s->vnc_listen, "passwd", s->vnc_password, NULL);
        xml_writer_empty(w, "listen", "type", "address", "address", s->vnc_listen, NULL);
        xml_writer_close(w);
        /* Standard VGA: it shows the firmware and boot loader, whatever the guest's drivers. */
        xml_writer_open(w, "video", NULL);
        xml_writer_empty(w, "model", "type", "vga", NULL);
        xml_writer_close(w);
    }

    xml_writer_empty(w, "memballoon", "model", "virtio", NULL);

    xml_writer_open(w, "rng", "model", "virtio", NULL);
    xml_writer_text_element(w, "backend", "/dev/urandom", "model", "random", NULL);
    xml_writer_close(w);

    xml_writer_close(w);
}

char *
domain_xml_build(const DomainSpec *spec)
{
    if (!spec_complete(spec))
        return NULL;

    char ram[24], disk[24], vcpus[24];
    snprintf(ram, sizeof(ram), "%" PRIu64, spec->ram_mib);
    snprintf(disk, sizeof(disk), "%" PRIu64, spec->disk_gib);
    snprintf(vcpus, sizeof(vcpus), "%u", spec->vcpus);

    _cleanup_(xml_writer_freep) XmlWriter *w = xml_writer_new();
    if (!w)
        return NULL;

    xml_writer_open(w, "domain", "type", virt_type_to_string(spec->virt_type), NULL);
    xml_writer_text_element(w, "name", spec->domain_name, NULL);
    xml_writer_text_element(w, "uuid", spec->uuid, NULL);
    xml_writer_text_element(w, "title", spec->vm_name, NULL);
    write_metadata(w, spec, ram, disk, vcpus);
    xml_writer_text_element(w, "memory", ram, "unit", "MiB", NULL);
    xml_writer_text_element(w, "currentMemory", ram, "unit", "MiB", NULL);
    xml_writer_text_element(w, "vcpu", vcpus, "placement", "static", NULL);

    xml_writer_open(w, "os", NULL);
    xml_writer_text_element(w, "type", "hvm", "arch", "x86_64", "machine", "q35", NULL);
    xml_writer_empty(w, "boot", "dev", "hd", NULL);
    xml_writer_close(w);

    xml_writer_open(w, "features", NULL);
    xml_writer_empty(w, "acpi", NULL);
    xml_writer_empty(w, "apic", NULL);
    xml_writer_close(w);

    /* TCG cannot provide a host CPU model, so under qemu the default CPU is left alone. */
    if (spec->virt_type == VIRT_TYPE_KVM)
        xml_writer_empty(w, "cpu", "mode", "host-model", NULL);

    xml_writer_empty(w, "clock", "offset", "utc", NULL);
    xml_writer_text_element(w, "on_poweroff", "destroy", NULL);
    xml_writer_text_element(w, "on_reboot", "restart", NULL);
    xml_writer_text_element(w, "on_crash", "destroy", NULL);

    write_devices(w, spec);
    xml_writer_close(w);

    const char *doc = xml_writer_result(w);
    return doc ? strdup(doc) : NULL;
}

char *
domain_xml_nic(const DomainNic *nic)
{
    if (!nic_valid(nic))
        return NULL;
    _cleanup_(xml_writer_freep) XmlWriter *w = xml_writer_new();
    if (!w)
        return NULL;
    write_nic(w, nic);
    const char *doc = xml_writer_result(w);
    return doc ? strdup(doc) : NULL;
}
