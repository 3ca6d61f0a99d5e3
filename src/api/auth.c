/*
 * Bearer tokens: 256 random bits, shown once, stored only as a SHA-256 hash. A hash (not a
 * password KDF) is right here: the secret is random and long, so there is nothing to brute-force,
 * and every request checks it.
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <unistd.h>

#include "../util/log.h"
#include "../util/strutil.h"
#include "api.h"

#define TOKEN_PREFIX "nbt_"

static void
auth_hash_hex(const char *token, char out[crypto_hash_sha256_BYTES * 2 + 1])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)token, strlen(token));
    sodium_bin2hex(out, crypto_hash_sha256_BYTES * 2 + 1, h, sizeof(h));
}

bool
auth_check_token(const char *token, void *ctx)
{
    Core *core = ctx;
    char hex[crypto_hash_sha256_BYTES * 2 + 1];
    if (!token || strlen(token) > 256)
        return false;
    auth_hash_hex(token, hex);
    return token_store_check(core->store, hex) == 1;
}

int
auth_bootstrap_admin_token(Store *store, const char *path, NbError **err)
{
    int n = token_store_count(store, err);
    if (n < 0)
        return -1;
    if (n > 0)
        return 0;
    if (sodium_init() < 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "libsodium cannot initialise");
    unsigned char raw[32];
    char hex[sizeof(raw) * 2 + 1];
    char token[sizeof(TOKEN_PREFIX) + sizeof(hex)];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
    snprintf(token, sizeof(token), TOKEN_PREFIX "%s", hex);
    sodium_memzero(raw, sizeof(raw));

    /* The file first: a token nobody can read must not exist. */
    unlink(path);
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "create %s: %s", path, strerror(errno));
    if (write_full(fd, token, strlen(token)) < 0 || write_full(fd, "\n", 1) < 0 || fsync(fd) < 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "write %s: %s", path, strerror(errno));
    char id[NB_UUID_STRLEN], hash[crypto_hash_sha256_BYTES * 2 + 1];
    nb_uuid_generate(id);
    auth_hash_hex(token, hash);
    sodium_memzero(token, sizeof(token));
    if (token_store_insert(store, id, hash, "admin", err) < 0)
        return -1;
    log_info("wrote the admin API token to %s", path);
    return 0;
}
