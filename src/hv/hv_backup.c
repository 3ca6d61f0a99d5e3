/*
 * VM backups through libvirt's backup API (push mode) and checkpoints. One disk is backed up
 * (the target given, the root disk); the domain's other disks are named with backup='no' and
 * checkpoint='no' so that libvirt neither copies them nor gives them bitmaps.
 */
#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "../util/strutil.h"
#include "../util/xml_writer.h"
#include "hv_internal.h"

static void
hv_ckpt_freep(virDomainCheckpointPtr *p)
{
    if (*p)
        virDomainCheckpointFree(*p);
}
#define _cleanup_ckpt_ _cleanup_(hv_ckpt_freep)

int
hv_backup_disk_capacity(HvConn *c, const char *domain, const char *target, uint64_t *ret,
                        NbError **err)
{
    _cleanup_domain_ virDomainPtr dom = NULL;
    if (hv_domain_get(c, domain, &dom, err) < 0)
        return -1;
    virDomainBlockInfo info;
    if (virDomainGetBlockInfo(dom, target, &info, 0) < 0)
        return hv_error(err, "reading disk '%s' of domain '%s'", target, domain);
    *ret = info.capacity;
    return 0;
}

/* Every <target dev='X'/> of the domain's disks but `keep`, as <disk name='X' attr='no'/>. */
static void
hv_backup_other_disks(const char *xml, const char *keep, const char *attr, XmlWriter *w)
{
    for (const char *p = xml; (p = strstr(p, "<disk ")) != NULL;) {
        const char *end = strstr(p, "</disk>");
        if (!end)
            break;
        const char *t = strstr(p, "<target dev='");
        if (t && t < end) {
            t += strlen("<target dev='");
            const char *q = strchr(t, '\'');
            if (q && q - t < 32) {
                char dev[32];
                snprintf(dev, sizeof(dev), "%.*s", (int)(q - t), t);
                if (!streq(dev, keep))
                    xml_writer_empty(w, "disk", "name", dev, attr, "no", NULL);
            }
        }
        p = end;
    }
}

int
hv_checkpoint_exists(HvConn *c, const char *domain, const char *name, NbError **err)
{
    _cleanup_domain_ virDomainPtr dom = NULL;
    if (hv_conn_is_simulated(c))
        return 0;
    int r = hv_domain_lookup(c, domain, &dom, err);
    if (r <= 0)
        return r;
    _cleanup_ckpt_ virDomainCheckpointPtr ck = virDomainCheckpointLookupByName(dom, name, 0);
    if (ck)
        return 1;
    if (hv_last_error_code() == VIR_ERR_NO_DOMAIN_CHECKPOINT)
        return 0;
    return hv_error(err, "looking up checkpoint '%s' of domain '%s'", name, domain);
}

int
hv_checkpoint_delete(HvConn *c, const char *domain, const char *name, NbError **err)
{
    _cleanup_domain_ virDomainPtr dom = NULL;
    if (hv_conn_is_simulated(c))
        return 0;
    int r = hv_domain_lookup(c, domain, &dom, err);
    if (r <= 0)
        return r; /* no domain: no checkpoint */
    _cleanup_ckpt_ virDomainCheckpointPtr ck = virDomainCheckpointLookupByName(dom, name, 0);
    if (!ck)
        return hv_last_error_code() == VIR_ERR_NO_DOMAIN_CHECKPOINT
                   ? 0
                   : hv_error(err, "looking up checkpoint '%s' of domain '%s'", name, domain);
    /* A checkpoint with a child merges its bitmap into the child's parent: the chain stays
     * valid for the checkpoints that remain. */
    if (virDomainCheckpointDelete(ck, 0) < 0) {
        if (hv_last_error_code() == VIR_ERR_NO_DOMAIN_CHECKPOINT)
            return 0;
        return hv_error(err, "deleting checkpoint '%s' of domain '%s'", name, domain);
    }
    log_info("domain %s: checkpoint %s deleted", domain, name);
    return 0;
}

int
hv_checkpoint_count(HvConn *c, const char *domain, NbError **err)
{
    _cleanup_domain_ virDomainPtr dom = NULL;
    if (hv_conn_is_simulated(c))
        return 0;
    int r = hv_domain_lookup(c, domain, &dom, err);
    if (r <= 0)
        return r;
    int n = virDomainListAllCheckpoints(dom, NULL, 0);
    if (n < 0)
        return hv_last_error_code() == VIR_ERR_NO_SUPPORT
                   ? 0
                   : hv_error(err, "listing the checkpoints of domain '%s'", domain);
    return n;
}

int
hv_checkpoint_delete_all(HvConn *c, const char *domain, NbError **err)
{
    _cleanup_domain_ virDomainPtr dom = NULL;
    if (hv_conn_is_simulated(c))
        return 0; /* libvirt's test driver has no checkpoints */
    int r = hv_domain_lookup(c, domain, &dom, err);
    if (r <= 0)
        return r;
    virDomainCheckpointPtr *list = NULL;
    int n = virDomainListAllCheckpoints(dom, &list, VIR_DOMAIN_CHECKPOINT_LIST_ROOTS);
    if (n < 0)
        return hv_last_error_code() == VIR_ERR_NO_SUPPORT
                   ? 0
                   : hv_error(err, "listing the checkpoints of domain '%s'", domain);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (rc == 0 &&
            virDomainCheckpointDelete(list[i], VIR_DOMAIN_CHECKPOINT_DELETE_CHILDREN) < 0 &&
            hv_last_error_code() != VIR_ERR_NO_DOMAIN_CHECKPOINT)
            rc = hv_error(err, "deleting the checkpoints of domain '%s'", domain);
        virDomainCheckpointFree(list[i]);
    }
    free(list);
    return rc;
}

static char *hv_backup_checkpoint_xml(const char *dxml, const char *target, const char *checkpoint);

int
hv_backup_begin(HvConn *c, const char *domain, const char *target, const char *path,
                const char *incremental, const char *checkpoint, bool reuse, NbError **err)
{
    if (hv_conn_is_simulated(c))
        return nb_error_set(err, NB_ERR_BACKUP_UNSUPPORTED, "a simulated host has no backup API");
    _cleanup_domain_ virDomainPtr dom = NULL;
    if (hv_domain_get(c, domain, &dom, err) < 0)
        return -1;
    _cleanup_free_ char *dxml = virDomainGetXMLDesc(dom, 0);
    if (!dxml)
        return hv_error(err, "reading the definition of domain '%s'", domain);

    XmlWriter *w = xml_writer_new();
    if (!w)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    xml_writer_open(w, "domainbackup", "mode", "push", NULL);
    if (incremental)
        xml_writer_text_element(w, "incremental", incremental, NULL);
    xml_writer_open(w, "disks", NULL);
    xml_writer_open(w, "disk", "name", target, "backup", "yes", "type", "file", NULL);
    xml_writer_empty(w, "target", "file", path, NULL);
    xml_writer_empty(w, "driver", "type", "qcow2", NULL);
    xml_writer_close(w);
    hv_backup_other_disks(dxml, target, "backup", w);
    xml_writer_close(w);
    xml_writer_close(w);
    _cleanup_free_ char *bxml = xml_writer_result(w) ? strdup(xml_writer_result(w)) : NULL;
    xml_writer_free(w);

    if (!bxml)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    _cleanup_free_ char *cxml = NULL;
    if (checkpoint && (cxml = hv_backup_checkpoint_xml(dxml, target, checkpoint)) == NULL)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");

    /* reuse: the target file exists (made by the caller, with the previous backup's file as its
     * backing file when incremental) and QEMU writes only the clusters it copies into it; else
     * libvirt makes it. */
    if (virDomainBackupBegin(dom, bxml, cxml, reuse ? VIR_DOMAIN_BACKUP_BEGIN_REUSE_EXTERNAL : 0) <
        0)
        return hv_error(err, "starting the backup of domain '%s'", domain);
    log_info("domain %s: backup of %s into %s started (%s), checkpoint %s", domain, target, path,
             incremental ? incremental : "full", checkpoint ? checkpoint : "none");
    return 0;
}

static char *
hv_backup_checkpoint_xml(const char *dxml, const char *target, const char *checkpoint)
{
    XmlWriter *w = xml_writer_new();
    if (!w)
        return NULL;
    xml_writer_open(w, "domaincheckpoint", NULL);
    xml_writer_text_element(w, "name", checkpoint, NULL);
    xml_writer_open(w, "disks", NULL);
    xml_writer_empty(w, "disk", "name", target, "checkpoint", "bitmap", NULL);
    hv_backup_other_disks(dxml, target, "checkpoint", w);
    xml_writer_close(w);
    xml_writer_close(w);
    char *cxml = xml_writer_result(w) ? strdup(xml_writer_result(w)) : NULL;
    xml_writer_free(w);
    return cxml;
}

static void
hv_backup_params_read(virTypedParameterPtr params, int n, HvBackupJob *ret)
{
    unsigned long long v = 0;
    int op = 0;
    if (virTypedParamsGetInt(params, n, VIR_DOMAIN_JOB_OPERATION, &op) == 1)
        ret->is_backup = op == VIR_DOMAIN_JOB_OPERATION_BACKUP;
    if (virTypedParamsGetULLong(params, n, VIR_DOMAIN_JOB_DISK_PROCESSED, &v) == 1)
        ret->processed = v;
    if (virTypedParamsGetULLong(params, n, VIR_DOMAIN_JOB_DISK_TOTAL, &v) == 1)
        ret->total = v;
    if (virTypedParamsGetULLong(params, n, VIR_DOMAIN_JOB_TIME_ELAPSED, &v) == 1)
        ret->elapsed_ms = v;
    const char *msg = NULL;
    if (virTypedParamsGetString(params, n, VIR_DOMAIN_JOB_ERRMSG, &msg) == 1 && msg)
        snprintf(ret->error, sizeof(ret->error), "%s", msg);
}

/* 1 when the domain's running backup job writes path, 0 when it writes elsewhere (another
 * task's), 2 when it ended since its stats were read (a small disk's backup takes a second),
 * -1. */
static int
hv_backup_job_writes(virDomainPtr dom, const char *domain, const char *path, NbError **err)
{
    _cleanup_free_ char *xml = virDomainBackupGetXMLDesc(dom, 0);
    if (!xml && virGetLastErrorCode() == VIR_ERR_NO_DOMAIN_BACKUP) {
        virResetLastError();
        return 2;
    }
    if (!xml)
        return hv_error(err, "reading the backup job of domain '%s'", domain);
    _cleanup_free_ char *needle = str_printf("file='%s'", path);
    if (!needle)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    return strstr(xml, needle) != NULL;
}

int
hv_backup_job(HvConn *c, const char *domain, const char *path, HvBackupJob *ret, NbError **err)
{
    memset(ret, 0, sizeof(*ret));
    _cleanup_domain_ virDomainPtr dom = NULL;
    int r = hv_domain_lookup(c, domain, &dom, err);
    if (r <= 0) {
        ret->state = HV_BACKUP_JOB_NONE;
        return r;
    }
    /* A domain that is not running has no job (and libvirt refuses to say so). */
    int active = virDomainIsActive(dom);
    if (active < 0)
        return hv_error(err, "looking at domain '%s'", domain);
    if (!active) {
        ret->state = HV_BACKUP_JOB_NONE;
        return 0;
    }
    int type = VIR_DOMAIN_JOB_NONE;
    virTypedParameterPtr params = NULL;
    int n = 0;
    if (virDomainGetJobStats(dom, &type, &params, &n, 0) < 0)
        return hv_error(err, "reading the job of domain '%s'", domain);
    if (type != VIR_DOMAIN_JOB_NONE) {
        hv_backup_params_read(params, n, ret);
        virTypedParamsFree(params, n);
        ret->state = ret->is_backup ? HV_BACKUP_JOB_RUNNING : HV_BACKUP_JOB_OTHER;
        int mine = ret->is_backup && path ? hv_backup_job_writes(dom, domain, path, err) : 1;
        if (mine < 0)
            return -1;
        if (mine == 0)
            ret->state = HV_BACKUP_JOB_OTHER;
        if (mine != 2)
            return 0;
        /* Ended meanwhile: its end is read as below. */
        memset(ret, 0, sizeof(*ret));
    } else {
        virTypedParamsFree(params, n);
    }
    params = NULL;
    n = 0;
    /* No job now: the last one's end, kept until another job ends. */
    if (virDomainGetJobStats(dom, &type, &params, &n,
                             VIR_DOMAIN_JOB_STATS_COMPLETED | VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED) <
        0)
        return hv_error(err, "reading the last job of domain '%s'", domain);
    hv_backup_params_read(params, n, ret);
    virTypedParamsFree(params, n);
    if (!ret->is_backup)
        ret->state = HV_BACKUP_JOB_NONE;
    else if (type == VIR_DOMAIN_JOB_COMPLETED)
        ret->state = HV_BACKUP_JOB_COMPLETED;
    else
        ret->state = HV_BACKUP_JOB_FAILED;
    return 0;
}

int
hv_backup_abort(HvConn *c, const char *domain, const char *path, NbError **err)
{
    HvBackupJob job;
    if (hv_backup_job(c, domain, path, &job, err) < 0)
        return -1;
    /* Only a backup job to path: another task's, or a migration, is not this caller's. */
    if (job.state == HV_BACKUP_JOB_OTHER && job.is_backup)
        return 1;
    if (job.state != HV_BACKUP_JOB_RUNNING)
        return 0;
    _cleanup_domain_ virDomainPtr dom = NULL;
    if (hv_domain_get(c, domain, &dom, err) < 0)
        return -1;
    if (virDomainAbortJob(dom) < 0 && hv_last_error_code() != VIR_ERR_OPERATION_INVALID)
        return hv_error(err, "aborting the backup job of domain '%s'", domain);
    log_warn("domain %s: backup job to %s aborted", domain, path);
    return 0;
}
