/*
 * Who is calling, and may they. Bearer tokens are 256 random bits, shown once, stored only as
 * a SHA-256 hash: a random secret that long leaves nothing to brute-force, so a slow KDF would
 * only cost every request. Passwords are another matter: argon2id (libsodium's interactive
 * limits), and login failures are rate-limited per user and per source address.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/metrics.h"
#include "../model/json_req.h"
#include "../util/log.h"
#include "../util/strutil.h"
#include "api.h"

#define TOKEN_PREFIX "nbt_"
#define LOGIN_TOKEN_SECONDS (24 * 3600)
/* A browser session: a working day. */
#define SESSION_TOKEN_SECONDS (8 * 3600)
#define TOKEN_DEFAULT_SECONDS (30 * 24 * 3600)
#define TOKEN_MIN_SECONDS 60
#define TOKEN_MAX_SECONDS (366 * 24 * 3600)
#define LOGIN_WINDOW_S 60.0
#define LOGIN_MAX_PER_USER 5
#define LOGIN_MAX_PER_SOURCE 20
#define LOGIN_TRACKED 512

typedef char TokenHash[crypto_hash_sha256_BYTES * 2 + 1];

static void
auth_hash_hex(const char *token, TokenHash out)
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)token, strlen(token));
    sodium_bin2hex(out, sizeof(TokenHash), h, sizeof(h));
}

void *
auth_authenticate(const char *token, void *ctx)
{
    Core *core = ctx;
    TokenHash hex;
    if (!token || strlen(token) > 256)
        return NULL;
    auth_hash_hex(token, hex);
    Principal *p = calloc(1, sizeof(*p));
    if (!p || token_store_lookup(core->store, hex, p) != 1) {
        free(p);
        return NULL;
    }
    return p;
}

void
auth_principal_free(void *p)
{
    free(p);
}

bool
auth_authorize(HttpRequest *r, void *ctx)
{
    const HttpRoute *route = http_request_route(r);
    const Principal *who = http_request_principal(r);
    if (!route || route->public_route)
        return true;
    if (!who)
        return false;
    if (!api_web_csrf_check(r))
        return false;
    /* A scraper's credential reads the metrics and manages its own tokens, nothing of any
     * project: the ANY routes (reads scoped to its project) are refused too. */
    if (who->role == ROLE_METRICS) {
        bool ok = route->access == API_ACCESS_METRICS ||
                  (route->action && (str_startswith(route->action, "token.") ||
                                     streq(route->action, "auth.whoami")));
        if (!ok)
            http_reply_error(r, NB_ERR_FORBIDDEN, "role %s may not %s", role_to_string(who->role),
                             route->action ? route->action : "do this");
        return ok;
    }
    if (route->access == API_ACCESS_ANY)
        return true;
    bool ok =
        who->role == ROLE_ADMIN || (route->access == API_ACCESS_WRITE && who->role == ROLE_MEMBER);
    if (!ok)
        http_reply_error(r, NB_ERR_FORBIDDEN, "role %s may not %s", role_to_string(who->role),
                         route->action ? route->action : "do this");
    return ok;
}

typedef char TokenSecret[sizeof(TOKEN_PREFIX) + 64];

/* A new secret: "nbt_" and 256 random bits in hex. */
static void
auth_new_secret(TokenSecret secret)
{
    unsigned char raw[32];
    char hex[sizeof(raw) * 2 + 1];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
    snprintf(secret, sizeof(TokenSecret), TOKEN_PREFIX "%s", hex);
    sodium_memzero(raw, sizeof(raw));
    sodium_memzero(hex, sizeof(hex));
}

/* Stores the hash of secret as a token of user_id (seconds 0: no expiry); fills info. */
static int
auth_store_token(Core *core, const TokenSecret secret, const char *user_id, const char *name,
                 uint64_t seconds, TokenInfo *info, NbError **err)
{
    TokenHash hash;
    memset(info, 0, sizeof(*info));
    nb_uuid_generate(info->id);
    snprintf(info->name, sizeof(info->name), "%s", name);
    snprintf(info->user_id, sizeof(info->user_id), "%s", user_id);
    double now = nb_epoch_now();
    nb_timestamp_format(now, info->created_at);
    if (seconds)
        nb_timestamp_format(now + (double)seconds, info->expires_at);
    auth_hash_hex(secret, hash);
    return tenancy_ops_token_insert(core, info, hash, err);
}

/* Issues a token for user_id; fills info and the secret (shown once). */
static int
auth_issue_token(Core *core, const char *user_id, const char *name, uint64_t seconds,
                 TokenInfo *info, TokenSecret secret, NbError **err)
{
    auth_new_secret(secret);
    return auth_store_token(core, secret, user_id, name, seconds, info, err);
}

static json_t *
token_to_json(const TokenInfo *t)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o}", "id", t->id, "name", t->name, "user_id",
                     t->user_id, "created_at", t->created_at, "expires_at",
                     json_string_or_null(t->expires_at), "revoked_at",
                     json_string_or_null(t->revoked_at));
}

int
auth_bootstrap_admin_token(Core *core, const char *path, NbError **err)
{
    int n = token_store_count(core->store, err);
    if (n < 0)
        return -1;
    if (n > 0)
        return 0;
    TokenInfo info;
    TokenSecret secret;
    /* The file first: a token nobody can read must not exist. */
    unlink(path);
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "create %s: %s", path, strerror(errno));
    auth_new_secret(secret);
    int r =
        write_full(fd, secret, strlen(secret)) < 0 || write_full(fd, "\n", 1) < 0 || fsync(fd) < 0
            ? nb_error_set(err, NB_ERR_INTERNAL, "write %s: %s", path, strerror(errno))
            : auth_store_token(core, secret, NB_ADMIN_USER_ID, "bootstrap", 0, &info, err);
    sodium_memzero(secret, sizeof(secret));
    if (r < 0)
        return -1;
    log_info("wrote the admin API token to %s", path);
    return 0;
}

/* ---- login rate limiting: failures per key within a sliding window ---- */

typedef struct LoginFailures {
    char key[96]; /* "u:<name>" or "s:<address>" */
    double at[LOGIN_MAX_PER_SOURCE];
    unsigned n; /* entries in at[], a ring once full */
    double last;
} LoginFailures;

static pthread_mutex_t login_lock = PTHREAD_MUTEX_INITIALIZER;
static LoginFailures login_table[LOGIN_TRACKED];

/* Slot for key, or the least recently used one (recycled). Lock held. */
static LoginFailures *
login_slot(const char *key, bool create)
{
    LoginFailures *oldest = &login_table[0];
    for (size_t i = 0; i < LOGIN_TRACKED; i++) {
        if (streq(login_table[i].key, key))
            return &login_table[i];
        if (login_table[i].last < oldest->last)
            oldest = &login_table[i];
    }
    if (!create)
        return NULL;
    memset(oldest, 0, sizeof(*oldest));
    snprintf(oldest->key, sizeof(oldest->key), "%s", key);
    return oldest;
}

/* Seconds until key may try again (0: now). Lock held. */
static unsigned
login_wait(const char *key, unsigned max, double now)
{
    LoginFailures *f = login_slot(key, false);
    if (!f)
        return 0;
    unsigned recent = 0;
    double oldest = now;
    for (unsigned i = 0; i < f->n && i < LOGIN_MAX_PER_SOURCE; i++) {
        if (now - f->at[i] < LOGIN_WINDOW_S) {
            recent++;
            if (f->at[i] < oldest)
                oldest = f->at[i];
        }
    }
    if (recent < max)
        return 0;
    return (unsigned)ceil(LOGIN_WINDOW_S - (now - oldest));
}

static void
login_record_failure(const char *key, double now)
{
    LoginFailures *f = login_slot(key, true);
    f->at[f->n % LOGIN_MAX_PER_SOURCE] = now;
    f->n++;
    f->last = now;
}

/* Takes back an attempt recorded at `at` that turned out right. Lock held. */
static void
login_forget(const char *key, double at)
{
    LoginFailures *f = login_slot(key, false);
    if (!f)
        return;
    for (unsigned i = 0; i < f->n && i < LOGIN_MAX_PER_SOURCE; i++)
        if (f->at[i] == at) {
            f->at[i] = 0;
            return;
        }
}

/* The peer without its port: "127.0.0.1:5000" -> "127.0.0.1", "[::1]:5000" -> "::1". */
void
auth_source_address(const HttpRequest *r, char *out, size_t len)
{
    const char *peer = http_request_peer(r);
    const char *colon = strrchr(peer, ':');
    size_t n = colon ? (size_t)(colon - peer) : strlen(peer);
    if (n >= 2 && peer[0] == '[' && peer[n - 1] == ']') {
        peer++;
        n -= 2;
    }
    snprintf(out, len, "%.*s", (int)n, peer);
}

static void
login_audit(Core *core, HttpRequest *r, const char *user, const char *project, unsigned status,
            const char *result)
{
    const HttpRoute *route = http_request_route(r);
    AuditEvent e = {0};
    _cleanup_error_ NbError *err = NULL;
    nb_timestamp_now(e.at);
    snprintf(e.request_id, sizeof(e.request_id), "%s", http_request_id(r));
    /* The user is known only once the login succeeded; the name tried is the target. */
    if (status < 400)
        snprintf(e.user, sizeof(e.user), "%s", user);
    snprintf(e.project_id, sizeof(e.project_id), "%s", project ? project : "");
    auth_source_address(r, e.source, sizeof(e.source));
    snprintf(e.method, sizeof(e.method), "POST");
    snprintf(e.path, sizeof(e.path), "%s", route ? route->pattern : "/v1/auth/login");
    snprintf(e.action, sizeof(e.action), "auth.login");
    snprintf(e.target, sizeof(e.target), "%s", user);
    e.status = status;
    snprintf(e.result, sizeof(e.result), "%s", result);
    if (tenancy_ops_audit_record(core, &e, &err) < 0)
        log_error("audit: %s", err->message);
}

/* Checks {"user","password"} under the rate limits and issues a token of `seconds`; -1 after
 * replying. Shared by the CLI's login and the browser's session. */
static int
auth_password_login(Core *core, HttpRequest *r, const char *token_name, uint64_t seconds,
                    User *ret_user, TokenInfo *info, TokenSecret secret)
{
    static const char *const fields[] = {"user", "password", NULL};
    _cleanup_error_ NbError *err = NULL;
    json_t *body = http_request_json(r);
    char name[NB_NAME_MAX + 1], source[64], ukey[96], skey[96];
    if (json_req_check_fields(body, fields, &err) < 0 ||
        json_req_string(body, "user", 1, name, sizeof(name), &err) < 0) {
        http_reply_nb_error(r, err);
        return -1;
    }
    json_t *pw = json_object_get(body, "password");
    if (!json_is_string(pw)) {
        http_reply_error(r, NB_ERR_INVALID_REQUEST, "field 'password' must be a string");
        return -1;
    }

    auth_source_address(r, source, sizeof(source));
    snprintf(ukey, sizeof(ukey), "u:%s", name);
    snprintf(skey, sizeof(skey), "s:%s", source);
    /* Each attempt counts as a failure from the moment it is let through, and is taken back
     * only once it proved right: attempts sent at once cannot all pass the check while the
     * first ones are still hashing. */
    double now = nb_epoch_now();
    pthread_mutex_lock(&login_lock);
    unsigned wait_user = login_wait(ukey, LOGIN_MAX_PER_USER, now);
    unsigned wait_source = login_wait(skey, LOGIN_MAX_PER_SOURCE, now);
    unsigned wait = wait_user > wait_source ? wait_user : wait_source;
    if (wait == 0) {
        login_record_failure(ukey, now);
        login_record_failure(skey, now);
    }
    pthread_mutex_unlock(&login_lock);
    if (wait > 0) {
        char retry[16];
        snprintf(retry, sizeof(retry), "%u", wait);
        login_audit(core, r, name, NULL, 429, NB_ERR_TOO_MANY_ATTEMPTS);
        http_reply_error(r, NB_ERR_TOO_MANY_ATTEMPTS,
                         "too many failed logins; try again in %u seconds", wait);
        http_reply_add_header(r, "Retry-After", retry);
        return -1;
    }

    User user;
    _cleanup_free_ char *hash = NULL;
    int found =
        nb_name_is_valid(name) ? user_store_get_password_hash(core->store, name, &user, &hash) : 0;
    if (found < 0) {
        http_reply_error(r, NB_ERR_INTERNAL, "cannot read the user");
        return -1;
    }
    const char *password = json_string_value(pw);
    bool ok = found == 1 && hash[0] == '$' &&
              crypto_pwhash_str_verify(hash, password, json_string_length(pw)) == 0;
    if (found != 1 || hash[0] != '$') {
        /* Spend the same time as a real check, so user names cannot be probed. */
        char dummy[crypto_pwhash_STRBYTES];
        if (crypto_pwhash_str(dummy, password, json_string_length(pw),
                              crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0)
            sodium_memzero(dummy, sizeof(dummy));
    }
    if (!ok) {
        metrics_login_failure();
        login_audit(core, r, name, NULL, 401, NB_ERR_INVALID_CREDENTIALS);
        http_reply_error(r, NB_ERR_INVALID_CREDENTIALS, "wrong user name or password");
        return -1;
    }

    pthread_mutex_lock(&login_lock);
    login_forget(ukey, now);
    login_forget(skey, now);
    pthread_mutex_unlock(&login_lock);

    if (auth_issue_token(core, user.id, token_name, seconds, info, secret, &err) < 0) {
        sodium_memzero(secret, sizeof(TokenSecret));
        http_reply_nb_error(r, err);
        return -1;
    }
    login_audit(core, r, name, user.project_id, 201, "ok");
    *ret_user = user;
    return 0;
}

void
api_auth_login(HttpRequest *r, void *ctx)
{
    User user;
    TokenInfo info;
    TokenSecret secret;
    if (auth_password_login(ctx, r, "login", LOGIN_TOKEN_SECONDS, &user, &info, secret) < 0)
        return;
    http_reply_json(r, 201,
                    json_pack("{s:s, s:s, s:s, s:o}", "token", secret, "id", info.id, "expires_at",
                              info.expires_at, "user", user_to_json(&user)));
    sodium_memzero(secret, sizeof(secret));
}

/* The cookie's attributes: HttpOnly keeps it from scripts (an injected one cannot steal it),
 * SameSite=Strict keeps other sites' pages from sending it, Secure keeps it off plain HTTP. */
static char *
session_cookie(HttpRequest *r, const char *value, uint64_t max_age)
{
    return str_printf(
        API_WEB_SESSION_COOKIE "=%s; Path=/; Max-Age=%llu; HttpOnly; SameSite=Strict%s", value,
        (unsigned long long)max_age, api_web_cookie_secure(r) ? "; Secure" : "");
}

void
api_auth_session_create(HttpRequest *r, void *ctx)
{
    /* A login is a change too: a foreign page must not log a browser in to an account of its
     * choosing (login CSRF). Its JSON body already needs a CORS preflight that is never
     * granted; the Origin check says so outright. */
    if (!api_web_origin_ok(r))
        return http_reply_error(r, NB_ERR_CSRF_REJECTED, "request from a foreign origin");
    User user;
    TokenInfo info;
    TokenSecret secret;
    if (auth_password_login(ctx, r, "web-session", SESSION_TOKEN_SECONDS, &user, &info, secret) < 0)
        return;
    char csrf[API_WEB_CSRF_LEN];
    api_web_csrf_value(secret, csrf);
    _cleanup_free_ char *cookie = session_cookie(r, secret, SESSION_TOKEN_SECONDS);
    sodium_memzero(secret, sizeof(secret));
    if (!cookie)
        return http_reply_error(r, NB_ERR_INTERNAL, "out of memory");
    http_reply_json(r, 201,
                    json_pack("{s:s, s:s, s:s, s:o}", "id", info.id, "expires_at", info.expires_at,
                              "csrf", csrf, "user", user_to_json(&user)));
    http_reply_add_header(r, "Set-Cookie", cookie);
    http_reply_add_header(r, "Cache-Control", "no-store");
    sodium_memzero(cookie, strlen(cookie));
}

/* Revokes the token the request came with (the session's, or a bearer token's) and clears the
 * cookie either way. The cookie caller got here through the CSRF check: a foreign page cannot
 * log a user out. */
void
api_auth_session_delete(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    const Principal *who = http_request_principal(r);
    _cleanup_error_ NbError *err = NULL;
    if (tenancy_ops_token_revoke(core, who->token_id, who->user_id, &err) < 0)
        return http_reply_nb_error(r, err);
    _cleanup_free_ char *cookie = session_cookie(r, "", 0);
    http_reply_empty(r, 204);
    if (cookie)
        http_reply_add_header(r, "Set-Cookie", cookie);
}

void
api_auth_whoami(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    const Principal *who = http_request_principal(r);
    _cleanup_error_ NbError *err = NULL;
    User user;
    Project project;
    if (user_store_get(core->store, who->user_id, &user, &err) < 0 ||
        project_store_get(core->store, NULL, who->project_id, &project, &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *j = json_pack("{s:o, s:{s:s, s:s}, s:s}", "user", user_to_json(&user), "project", "id",
                          project.id, "name", project.name, "token_id", who->token_id);
    /* A page that reloads has lost the value it got at login; the cookie proves the session. */
    if (j && http_request_cookie_auth(r)) {
        char csrf[API_WEB_CSRF_LEN];
        api_web_csrf_value(http_request_credential(r), csrf);
        json_object_set_new(j, "csrf", json_string(csrf));
    }
    http_reply_json(r, 200, j);
}

void
api_tokens_create(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    const Principal *who = http_request_principal(r);
    static const char *const fields[] = {"name", "expires_in", NULL};
    _cleanup_error_ NbError *err = NULL;
    json_t *body = http_request_json(r);
    char name[NB_NAME_MAX + 1] = "token";
    uint64_t seconds = TOKEN_DEFAULT_SECONDS;
    if (body) {
        if (json_req_check_fields(body, fields, &err) < 0)
            return http_reply_nb_error(r, err);
        if (json_object_get(body, "name") && (json_req_name(body, "name", "token", name, &err) < 0))
            return http_reply_nb_error(r, err);
        if (json_object_get(body, "expires_in") &&
            json_req_uint(body, "expires_in", TOKEN_MIN_SECONDS, TOKEN_MAX_SECONDS, &seconds,
                          &err) < 0)
            return http_reply_nb_error(r, err);
    }
    TokenInfo info;
    TokenSecret secret;
    if (auth_issue_token(core, who->user_id, name, seconds, &info, secret, &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *j = token_to_json(&info);
    json_object_set_new(j, "token", json_string(secret));
    sodium_memzero(secret, sizeof(secret));
    http_reply_json(r, 201, j);
}

void
api_tokens_list(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    const Principal *who = http_request_principal(r);
    _cleanup_error_ NbError *err = NULL;
    TokenInfo *list = NULL;
    size_t n = 0;
    if (token_store_list(core->store, who->role == ROLE_ADMIN ? NULL : who->user_id, &list, &n,
                         &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, token_to_json(&list[i]));
    free(list);
    http_reply_json(r, 200, json_pack("{s:o}", "tokens", arr));
}

void
api_tokens_revoke(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    const Principal *who = http_request_principal(r);
    _cleanup_error_ NbError *err = NULL;
    if (tenancy_ops_token_revoke(core, http_request_param(r, 0),
                                 who->role == ROLE_ADMIN ? NULL : who->user_id, &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_empty(r, 204);
}

int
auth_hash_password(const char *password, char out[crypto_pwhash_STRBYTES], NbError **err)
{
    if (crypto_pwhash_str(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        return nb_error_set(err, NB_ERR_INTERNAL, "cannot hash the password (out of memory)");
    return 0;
}
