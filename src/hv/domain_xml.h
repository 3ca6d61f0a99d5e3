/* VM spec -> libvirt domain XML. Pure: no I/O, no libvirt calls; golden-tested. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum VirtType {
    VIRT_TYPE_KVM,
    VIRT_TYPE_QEMU, /* TCG: tests, and hosts without hardware virtualisation */
    VIRT_TYPE_TEST, /* libvirt's test driver: simulated hosts, nothing runs */
    _VIRT_TYPE_MAX,
    _VIRT_TYPE_INVALID = -1,
} VirtType;

const char *virt_type_to_string(VirtType t);
VirtType virt_type_from_string(const char *s);

typedef enum DomainNicKind {
    DOMAIN_NIC_NETWORK, /* <interface type='network'>: a libvirt network */
    DOMAIN_NIC_BRIDGE,  /* <interface type='bridge'>: an existing host bridge */
    _DOMAIN_NIC_KIND_MAX,
} DomainNicKind;

typedef struct DomainNic {
    DomainNicKind kind;
    const char *source;     /* libvirt network name, or the bridge (an interface name) */
    const char *mac;        /* xx:xx:xx:xx:xx:xx, unicast */
    const char *target_dev; /* tap name (nbt...), or NULL: libvirt's vnetN */
    unsigned mtu;           /* 0: no <mtu>; else NETWORK_MTU_MIN..NETWORK_MTU_MAX */
    /* The port's security-group filter (nwfilter_xml.h), or NULL: none. Its <filterref> passes
     * filter_ip and the MAC to clean-traffic, which drops anything else the guest sends. */
    const char *filter;
    uint32_t filter_ip; /* host order; required with filter */
} DomainNic;

/* Disk QoS: a disk's libvirt <iotune> (QEMU's throttling of reads and writes together), each
 * 0 for no limit; both 0 writes no <iotune>. The same on vda and on every volume of a VM. */
typedef struct DiskIotune {
    uint64_t total_iops_sec;
    uint64_t total_bytes_sec;
} DiskIotune;

typedef struct XmlWriter XmlWriter;
/* Writes <iotune> with the limits that are set, nothing when none is. */
void domain_xml_write_iotune(XmlWriter *w, const DiskIotune *io);

#define DOMAIN_HOTPLUG_MAX 16
#define DOMAIN_RBD_HOSTS_MAX 8    /* POOL_MONITORS_MAX */
#define DOMAIN_VNC_PASSWORD_MAX 8 /* RFB's VNC authentication uses 8 bytes */

typedef struct DomainSpec {
    const char *uuid;        /* the VM id */
    const char *domain_name; /* "nimbus-<uuid>" */
    const char *vm_name;     /* user string: title and metadata only */
    const char *project;     /* metadata only: the project's name */
    const char *project_id;  /* metadata only: its id (NULL: the name stands for it) */
    /* metadata only: the user who created the VM, its id and name (NULL name: the id stands for
     * it); NULL id: unknown, no <nova:user> */
    const char *owner_user_id;
    const char *owner_user_name;
    const char *flavor_name; /* metadata only */
    const char *image_id;    /* metadata only */
    VirtType virt_type;
    unsigned vcpus;
    uint64_t ram_mib;
    uint64_t disk_gib;     /* metadata only */
    const char *disk_path; /* qcow2 overlay, virtio disk vda; NULL with disk_rbd */
    /* Or vda in Ceph RBD (disk_path NULL): a raw image QEMU opens through librbd. */
    struct {
        const char *name;                        /* "cephpool/image" */
        const char *hosts[DOMAIN_RBD_HOSTS_MAX]; /* monitors, "host[:port]", 1..max */
        size_t n_hosts;
        const char *user;   /* cephx user; NULL: no <auth> */
        const char *secret; /* with user: the libvirt ceph secret's UUID */
    } disk_rbd;
    DiskIotune disk_iotune; /* vda's limits (the flavor's); none on the seed CD-ROM */
    const char *seed_path;  /* NoCloud ISO as CD-ROM, may be NULL */
    const DomainNic *nics;  /* 1..VM_NICS_MAX, in guest order; MACs and target devs unique */
    size_t n_nics;
    /* kvm/qemu: empty PCIe root ports kept for hot-plugging this many NICs (0..DOMAIN_HOTPLUG_MAX;
     * ignored for test). 0 writes no controllers: libvirt then leaves one port free. A running
     * domain's PCI layout must not change under a migration: keep n_nics + hotplug_slots fixed
     * for a VM (VM_NICS_MAX), as hot-plugged NICs then take the spare ports. */
    unsigned hotplug_slots;
    const char *console_log; /* serial console is logged here by virtlogd */
    /* The VNC screen (NULL: none): its server listens on vnc_listen (an address of the host,
     * never a tenant's input) on a port libvirt picks, and asks for vnc_password (1 to
     * DOMAIN_VNC_PASSWORD_MAX letters and digits). Both or neither. */
    const char *vnc_listen;
    const char *vnc_password;
    const char *created_at; /* metadata only */
} DomainSpec;

/* Returns newly allocated XML, or NULL if a required field is missing or allocation failed. */
char *domain_xml_build(const DomainSpec *spec);
/* One <interface> element alone (for hot-plug: virDomainAttachDeviceFlags), the same as
 * domain_xml_build writes for that NIC. NULL if the NIC is invalid. */
char *domain_xml_nic(const DomainNic *nic);
