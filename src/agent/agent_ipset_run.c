#include "agent_ipset_run.h"

#include <errno.h>
#include <libipset/ipset.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/error_codes.h"
#include "../util/log.h"
#include "../util/strutil.h"
#include "agent_model.h"

struct AgentIpsetRun {
    struct ipset *ipset;
    char msg[256]; /* the last command's error */
};

/* libipset's reports go here rather than to stderr (and never exit(), as its defaults may in a
 * non-interactive session). */
__attribute__((format(printf, 4, 5))) static int
on_custom_error(struct ipset *ipset, void *p, int status, const char *fmt, ...)
{
    AgentIpsetRun *r = p;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
    va_end(ap);
    ipset_session_report_reset(ipset_session(ipset));
    return status ? -1 : 0;
}

static int
on_standard_error(struct ipset *ipset, void *p)
{
    AgentIpsetRun *r = p;
    struct ipset_session *s = ipset_session(ipset);
    enum ipset_err_type type = ipset_session_report_type(s);
    const char *m = ipset_session_report_msg(s);
    if (type == IPSET_ERROR || type == IPSET_NOTICE)
        snprintf(r->msg, sizeof(r->msg), "%s", m ? m : "error");
    ipset_session_report_reset(s);
    return type == IPSET_ERROR || type == IPSET_NOTICE ? -1 : 0;
}

__attribute__((format(printf, 3, 4))) static int
on_print(struct ipset_session *session, void *p, const char *fmt, ...)
{
    return 0; /* no listing is asked for */
}

AgentIpsetRun *
agent_ipset_run_new(NbError **err)
{
    static bool types_loaded;
    if (!types_loaded) {
        ipset_load_types();
        types_loaded = true;
    }
    AgentIpsetRun *r = calloc(1, sizeof(*r));
    if (!r) {
        nb_error_set(err, NB_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    r->ipset = ipset_init();
    if (!r->ipset) {
        free(r);
        nb_error_set(err, NB_ERR_HYPERVISOR, "libipset: cannot open a session");
        return NULL;
    }
    ipset_custom_printf(r->ipset, on_custom_error, on_standard_error, on_print, r);
    return r;
}

void
agent_ipset_run_free(AgentIpsetRun *r)
{
    if (!r)
        return;
    ipset_fini(r->ipset);
    free(r);
}

/* One command, as the ipset tool's argv (argv[0] is the program's name), NULL-terminated. 0 or
 * -1 with r->msg. */
static int
run(AgentIpsetRun *r, const char *const *args)
{
    char *argv[12];
    int argc = 0;
    argv[argc++] = (char *)"ipset";
    for (; *args && argc < (int)ELEMENTSOF(argv) - 1; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    r->msg[0] = '\0';
    int ret = ipset_parse_argv(r->ipset, argc, argv);
    if (ret != 0 && !r->msg[0])
        snprintf(r->msg, sizeof(r->msg), "error %d", ret);
    return ret == 0 ? 0 : -1;
}

/* Whether the last error says the set does not exist. */
static bool
msg_absent(const AgentIpsetRun *r)
{
    return strstr(r->msg, "does not exist") != NULL;
}

static bool
msg_in_use(const AgentIpsetRun *r)
{
    return strstr(r->msg, "in use") != NULL;
}

int
agent_ipset_run_apply(AgentIpsetRun *r, const AgentIpset *s, NbError **err)
{
    char tmp[AGENT_IPSET_NAME_MAX + 1];
    agent_ipset_tmp_name(s->name, tmp);
    /* A temporary left by a crash first, then a fresh one. */
    if (run(r, (const char *const[]){"destroy", tmp, NULL}) < 0 && !msg_absent(r))
        return nb_error_set(err, NB_ERR_HYPERVISOR, "ipset %s: %s", tmp, r->msg);
    if (run(r, (const char *const[]){"create", s->name, "hash:ip", "family", "inet", "-exist",
                                     NULL}) < 0 ||
        run(r, (const char *const[]){"create", tmp, "hash:ip", "family", "inet", NULL}) < 0)
        return nb_error_set(err, NB_ERR_HYPERVISOR, "ipset %s: %s", s->name, r->msg);
    for (size_t i = 0; i < s->n_members; i++) {
        char ip[16];
        agent_ipv4_format(s->members[i], ip);
        if (run(r, (const char *const[]){"add", tmp, ip, "-exist", NULL}) < 0) {
            nb_error_set(err, NB_ERR_HYPERVISOR, "ipset %s: adding %s: %s", tmp, ip, r->msg);
            run(r, (const char *const[]){"destroy", tmp, NULL});
            return -1;
        }
    }
    if (run(r, (const char *const[]){"swap", tmp, s->name, NULL}) < 0) {
        nb_error_set(err, NB_ERR_HYPERVISOR, "ipset %s: swap: %s", s->name, r->msg);
        run(r, (const char *const[]){"destroy", tmp, NULL});
        return -1;
    }
    /* The old members, now in the temporary, which no rule references. */
    if (run(r, (const char *const[]){"destroy", tmp, NULL}) < 0)
        log_warn("ipset %s: left behind: %s", tmp, r->msg);
    return 0;
}

int
agent_ipset_run_destroy(AgentIpsetRun *r, const char *name, NbError **err)
{
    char tmp[AGENT_IPSET_NAME_MAX + 1];
    agent_ipset_tmp_name(name, tmp);
    if (run(r, (const char *const[]){"destroy", tmp, NULL}) < 0 && !msg_absent(r))
        log_warn("ipset %s: %s", tmp, r->msg);
    if (run(r, (const char *const[]){"destroy", name, NULL}) == 0 || msg_absent(r))
        return 0;
    if (msg_in_use(r))
        return 1;
    return nb_error_set(err, NB_ERR_HYPERVISOR, "ipset %s: %s", name, r->msg);
}
