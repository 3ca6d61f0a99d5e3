#include "seed.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../model/network.h"
#include "../model/validate.h"
#include "../util/cleanup.h"
#include "../util/spawn.h"
#include "../util/strutil.h"
#include "../util/uuid.h"

#define SEED_DEFAULT_USER_DATA "#cloud-config\n{}\n"
#define SEED_TIMEOUT_MS 30000
#define SEED_STDOUT_MAX 4096
#define SEED_MSG_MAX 300

static const char *const seed_files[] = {"user-data", "meta-data", "network-config"};

/* Exactly xx:xx:xx:xx:xx:xx in lower-case hex: it is written into YAML unescaped. */
static bool
mac_is_valid(const char *mac)
{
    if (!mac || strlen(mac) != 17)
        return false;
    for (size_t i = 0; i < 17; i++) {
        char c = mac[i];
        if (i % 3 == 2) {
            if (c != ':')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

char *
seed_meta_data(const SeedSpec *spec)
{
    /* Both values go into YAML unquoted, so only validated ones are ever formatted. */
    if (!spec || !nb_uuid_is_valid(spec->instance_id) || !nb_hostname_is_valid(spec->hostname))
        return NULL;
    return str_printf("instance-id: %s\nlocal-hostname: %s\n", spec->instance_id, spec->hostname);
}

/* Dotted quad of a host-order address; a local formatter keeps seed.c free of model code. */
static void
ip_format(uint32_t ip, char out[16])
{
    (void)snprintf(out, 16, "%u.%u.%u.%u", (unsigned)(ip >> 24), (unsigned)(ip >> 16) & 0xffu,
                   (unsigned)(ip >> 8) & 0xffu, (unsigned)ip & 0xffu);
}

static bool
nic_is_valid(const SeedNic *nic)
{
    if (!mac_is_valid(nic->mac))
        return false;
    if (nic->prefix < NETWORK_PREFIX_MIN || nic->prefix > NETWORK_PREFIX_MAX)
        return false;
    uint32_t mask = UINT32_MAX << (32 - nic->prefix);
    uint32_t net = nic->ip & mask, bcast = net | ~mask;
    if (nic->ip == net || nic->ip == bcast)
        return false;
    if (nic->gateway != 0 && ((nic->gateway & mask) != net || nic->gateway == net ||
                              nic->gateway == bcast || nic->gateway == nic->ip))
        return false;
    if (nic->n_dns > NETWORK_DNS_MAX || (nic->n_dns > 0 && !nic->dns))
        return false;
    for (size_t i = 0; i < nic->n_dns; i++) {
        if (nic->dns[i] == 0)
            return false;
    }
    if (nic->mtu != 0 && (nic->mtu < NETWORK_MTU_MIN || nic->mtu > NETWORK_MTU_MAX))
        return false;
    return true;
}

static char *
legacy_network_config(const char *mac)
{
    if (!mac_is_valid(mac))
        return NULL;
    return str_printf("version: 2\n"
                      "ethernets:\n"
                      "  eth0:\n"
                      "    match:\n"
                      "      macaddress: \"%s\"\n"
                      "    set-name: eth0\n"
                      "    dhcp4: true\n",
                      mac);
}

/* Appends one formatted piece to *buf; frees *buf and leaves it NULL when out of memory. */
static void append(char **buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
append(char **buf, const char *fmt, ...)
{
    if (!*buf)
        return;
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *piece = NULL;
    if (vasprintf(&piece, fmt, ap) < 0)
        piece = NULL;
    va_end(ap);
    char *joined = piece ? str_printf("%s%s", *buf, piece) : NULL;
    free(*buf);
    *buf = joined;
}

char *
seed_network_config(const SeedSpec *spec)
{
    if (!spec)
        return NULL;
    if (spec->n_nics == 0)
        return legacy_network_config(spec->mac);
    if (!spec->nics || spec->n_nics > VM_NICS_MAX)
        return NULL;
    for (size_t i = 0; i < spec->n_nics; i++) {
        if (!nic_is_valid(&spec->nics[i]))
            return NULL;
        /* Two entries matching one MAC would leave the guest to pick one. */
        for (size_t j = 0; j < i; j++) {
            if (streq(spec->nics[i].mac, spec->nics[j].mac))
                return NULL;
        }
    }

    char *out = strdup("version: 2\nethernets:\n");
    bool routed = false;
    for (size_t i = 0; i < spec->n_nics; i++) {
        const SeedNic *nic = &spec->nics[i];
        char ip[16];
        ip_format(nic->ip, ip);
        /* A comment, so cloud-init ignores it and still applies the static address (which
         * equals the lease); the test guest reads it to exercise the DHCP path instead. */
        if (nic->dhcp)
            append(&out, "  # nimbus: dhcp\n");
        append(&out,
               "  eth%zu:\n"
               "    match:\n"
               "      macaddress: \"%s\"\n"
               "    set-name: eth%zu\n"
               "    dhcp4: false\n"
               "    addresses: [%s/%u]\n",
               i, nic->mac, i, ip, nic->prefix);
        if (nic->mtu)
            append(&out, "    mtu: %u\n", nic->mtu);
        if (nic->n_dns > 0) {
            append(&out, "    nameservers:\n      addresses: [");
            for (size_t d = 0; d < nic->n_dns; d++) {
                char dns[16];
                ip_format(nic->dns[d], dns);
                append(&out, "%s%s", d ? ", " : "", dns);
            }
            append(&out, "]\n");
        }
        /* One default route only: a second would make the guest's egress depend on order. */
        if (nic->gateway && !routed) {
            char gw[16];
            ip_format(nic->gateway, gw);
            append(&out, "    routes: [{to: default, via: %s}]\n", gw);
            routed = true;
        }
    }
    return out;
}

static int
write_new_file(int dir_fd, const char *name, const char *content)
{
    _cleanup_close_ int fd =
        openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int r = write_full(fd, content, strlen(content));
    if (r < 0)
        return r;
    if (close(TAKE_FD(fd)) < 0)
        return -errno;
    return 0;
}

/* Removes the private directory and whatever of our files it holds. */
static void
remove_work_dir(const char *dir)
{
    _cleanup_close_ int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir_fd >= 0) {
        for (size_t i = 0; i < ELEMENTSOF(seed_files); i++)
            (void)unlinkat(dir_fd, seed_files[i], 0);
    }
    (void)rmdir(dir);
}

/* genisoimage takes a leading '-' as an option: keep every path it sees absolute or "./". */
static char *
safe_path(const char *p)
{
    return p[0] == '/' ? strdup(p) : str_printf("./%s", p);
}

/* A message fit for the error: the tool's stderr, control characters flattened, cut short. */
static void
flatten_message(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
    if (n > SEED_MSG_MAX)
        s[SEED_MSG_MAX] = '\0';
    for (char *p = s; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    }
}

static int
run_genisoimage(const char *dir, const char *out_tmp, NbError **err)
{
    _cleanup_free_ char *prog = NULL;
    int r = spawn_find_program("genisoimage", &prog);
    if (r < 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "genisoimage not found: %s", strerror(-r));

    _cleanup_free_ char *user_data = str_printf("%s/%s", dir, seed_files[0]);
    _cleanup_free_ char *meta_data = str_printf("%s/%s", dir, seed_files[1]);
    _cleanup_free_ char *net_config = str_printf("%s/%s", dir, seed_files[2]);
    if (!user_data || !meta_data || !net_config)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");

    const char *argv[] = {prog,       "-quiet", "-output",        out_tmp, "-volid",  "cidata",
                          "-joliet",  "-rock",  "-input-charset", "utf-8", user_data, meta_data,
                          net_config, NULL};
    const SpawnLimits limits = {.timeout_ms = SEED_TIMEOUT_MS};
    _cleanup_free_ char *errout = NULL;
    r = spawn_run(argv, &limits, SEED_STDOUT_MAX, NULL, &errout);
    if (r == 0)
        return 0;
    if (errout)
        flatten_message(errout);
    if (r > 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "genisoimage failed (exit status %d): %s", r,
                            errout && *errout ? errout : "(no message)");
    return nb_error_set(err, NB_ERR_INTERNAL, "genisoimage failed: %s%s%s", strerror(-r),
                        errout && *errout ? ": " : "", errout ? errout : "");
}

static int
fsync_path(const char *path)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0)
        return -errno;
    return 0;
}

int
seed_build_iso(const SeedSpec *spec, const char *work_dir, const char *out_path, NbError **err)
{
    if (!spec || !work_dir || !*work_dir || !out_path || !*out_path)
        return nb_error_set(err, NB_ERR_INTERNAL, "seed_build_iso: invalid arguments");
    if (!nb_uuid_is_valid(spec->instance_id))
        return nb_error_set(err, NB_ERR_INTERNAL, "seed: instance id is not a UUID");
    if (!nb_hostname_is_valid(spec->hostname))
        return nb_error_set(err, NB_ERR_INVALID_HOSTNAME,
                            "hostname must be 1 to 63 letters, digits or '-', not starting or "
                            "ending with '-'");
    const char *user_data = spec->user_data ? spec->user_data : SEED_DEFAULT_USER_DATA;
    if (strlen(user_data) > NB_USER_DATA_MAX)
        return nb_error_set(err, NB_ERR_USER_DATA_TOO_LARGE, "user-data is larger than %d bytes",
                            NB_USER_DATA_MAX);

    _cleanup_free_ char *meta = seed_meta_data(spec);
    _cleanup_free_ char *net = seed_network_config(spec);
    _cleanup_free_ char *base = safe_path(work_dir);
    _cleanup_free_ char *out = safe_path(out_path);
    /* Every value it formats was validated: NULL here is a malformed NIC, not memory. */
    if (!net)
        return nb_error_set(err, NB_ERR_INTERNAL, "seed: a NIC's MAC or address is malformed");
    if (!meta || !base || !out)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
    _cleanup_free_ char *dir = str_printf("%s/seed-XXXXXX", base);
    _cleanup_free_ char *out_tmp = str_printf("%s.tmp-XXXXXX", out);
    if (!dir || !out_tmp)
        return nb_error_set(err, NB_ERR_INTERNAL, "out of memory");

    /* mkdtemp creates the directory 0700: nobody else sees user-data on its way in. */
    if (!mkdtemp(dir))
        return nb_error_set(err, NB_ERR_INTERNAL, "cannot create a directory under %s: %s",
                            work_dir, strerror(errno));

    int r = 0;
    bool have_tmp = false;
    _cleanup_close_ int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir_fd < 0) {
        r = nb_error_set(err, NB_ERR_INTERNAL, "cannot open %s: %s", dir, strerror(errno));
        goto out;
    }
    const char *contents[] = {user_data, meta, net};
    for (size_t i = 0; i < ELEMENTSOF(seed_files); i++) {
        int w = write_new_file(dir_fd, seed_files[i], contents[i]);
        if (w < 0) {
            r = nb_error_set(err, NB_ERR_INTERNAL, "cannot write the seed file %s: %s",
                             seed_files[i], strerror(-w));
            goto out;
        }
    }

    /* The ISO is built under a temporary name beside out_path and renamed into place, so
     * out_path is only ever absent, the old seed, or a complete new one. */
    int tmp_fd = mkostemp(out_tmp, O_CLOEXEC);
    if (tmp_fd < 0) {
        r = nb_error_set(err, NB_ERR_INTERNAL, "cannot create a file beside %s: %s", out_path,
                         strerror(errno));
        goto out;
    }
    close(tmp_fd);
    have_tmp = true;

    if (run_genisoimage(dir, out_tmp, err) < 0) {
        r = -1;
        goto out;
    }
    int f = fsync_path(out_tmp);
    if (f < 0) {
        r = nb_error_set(err, NB_ERR_INTERNAL, "cannot sync %s: %s", out_tmp, strerror(-f));
        goto out;
    }
    if (rename(out_tmp, out) < 0) {
        r = nb_error_set(err, NB_ERR_INTERNAL, "cannot move the seed ISO to %s: %s", out_path,
                         strerror(errno));
        goto out;
    }
    have_tmp = false;

out:
    if (have_tmp)
        (void)unlink(out_tmp);
    remove_work_dir(dir);
    return r;
}
