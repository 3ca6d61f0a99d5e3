/* VM spec -> libvirt domain XML. Pure: no I/O, no libvirt calls; golden-tested. */
#pragma once

#include <stdbool.h>
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

typedef struct DomainSpec {
    const char *uuid;        /* the VM id */
    const char *domain_name; /* "nimbus-<uuid>" */
    const char *vm_name;     /* user string: title and metadata only */
    const char *project;     /* metadata only; "default" for now */
    const char *flavor_name; /* metadata only */
    const char *image_id;    /* metadata only */
    VirtType virt_type;
    unsigned vcpus;
    uint64_t ram_mib;
    uint64_t disk_gib;       /* metadata only */
    const char *disk_path;   /* qcow2 overlay, virtio disk vda */
    const char *seed_path;   /* NoCloud ISO as CD-ROM, may be NULL */
    const char *network;     /* libvirt network name, e.g. "default" */
    const char *mac;         /* 52:54:00:xx:xx:xx */
    const char *console_log; /* serial console is logged here by virtlogd */
    const char *created_at;  /* metadata only */
} DomainSpec;

/* Returns newly allocated XML, or NULL if a required field is missing or allocation failed. */
char *domain_xml_build(const DomainSpec *spec);
