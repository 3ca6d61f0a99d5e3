/* /v1/secgroups (a project's security groups and their rules) and a VM's groups
 * (/v1/vms/{id}/secgroups). Writes go through core (secgroup_ops.h), which updates the filters
 * on the hosts before answering. Another project's group is SECGROUP_NOT_FOUND. */
#include <string.h>

#include "../core/secgroup_ops.h"
#include "../model/secgroup.h"
#include "../util/strutil.h"
#include "api.h"

void
api_secgroups_list(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    SecGroup *list = NULL;
    size_t n = 0;
    if (secgroup_store_list(core->store, api_scope(r), &list, &n, &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, secgroup_to_json(&list[i], NULL, 0));
    secgroup_list_free(list, n);
    http_reply_json(r, 200, json_pack("{s:o}", "secgroups", arr));
}

/* The group with its rules. */
static void
secgroup_reply(HttpRequest *r, Core *core, unsigned status, const SecGroup *g)
{
    _cleanup_error_ NbError *err = NULL;
    SecRule *rules = NULL;
    size_t n = 0;
    if (secgroup_store_rules(core->store, g->id, &rules, &n, &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *j = secgroup_to_json(g, rules ? rules : (SecRule[1]){{{0}}}, n);
    secrule_list_free(rules, n);
    http_reply_json(r, status, j);
}

void
api_secgroups_create(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    SecGroup g;
    if (secgroup_ops_create(core, http_request_principal(r), http_request_json(r), &g, &err) < 0)
        return http_reply_nb_error(r, err);
    secgroup_reply(r, core, 201, &g);
}

void
api_secgroups_get(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    const char *key = http_request_param(r, 0);
    SecGroup g;
    if (secgroup_store_get(core->store, api_lookup_scope(r, key), key, &g, &err) < 0)
        return http_reply_nb_error(r, err);
    secgroup_reply(r, core, 200, &g);
}

void
api_secgroups_delete(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    if (secgroup_ops_delete(core, http_request_principal(r), http_request_param(r, 0), &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_empty(r, 204);
}

void
api_secgroups_rules_list(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    const char *key = http_request_param(r, 0);
    SecGroup g;
    SecRule *rules = NULL;
    size_t n = 0;
    if (secgroup_store_get(core->store, api_lookup_scope(r, key), key, &g, &err) < 0 ||
        secgroup_store_rules(core->store, g.id, &rules, &n, &err) < 0)
        return http_reply_nb_error(r, err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, secrule_to_json(&rules[i]));
    secrule_list_free(rules, n);
    http_reply_json(r, 200, json_pack("{s:o}", "rules", arr));
}

/* 201 with the new rule; 200 with the existing one when the group had it already. */
void
api_secgroups_rules_add(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    SecRule rule;
    int same = secgroup_ops_rule_add(core, http_request_principal(r), http_request_param(r, 0),
                                     http_request_json(r), &rule, &err);
    if (same < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, same ? 200 : 201, secrule_to_json(&rule));
}

void
api_secgroups_rules_delete(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    if (secgroup_ops_rule_delete(core, http_request_principal(r), http_request_param(r, 0),
                                 http_request_param(r, 1), &err) < 0)
        return http_reply_nb_error(r, err);
    http_reply_empty(r, 204);
}

/* Both answer with the VM's NICs, each with its groups. */
static void
vm_secgroups_reply(HttpRequest *r, Core *core)
{
    _cleanup_error_ NbError *err = NULL;
    Vm vm;
    json_t *nics = NULL;
    if (vm_store_get(core->store, api_scope(r), http_request_param(r, 0), &vm, &err) < 0)
        return http_reply_nb_error(r, err);
    int rc = api_vm_nics_json(core, &vm, &nics, &err);
    vm_clear(&vm);
    if (rc < 0)
        return http_reply_nb_error(r, err);
    http_reply_json(r, 200, json_pack("{s:o}", "nics", nics));
}

void
api_vms_secgroup_add(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    if (secgroup_ops_vm_add(core, http_request_principal(r), http_request_param(r, 0),
                            http_request_json(r), &err) < 0)
        return http_reply_nb_error(r, err);
    vm_secgroups_reply(r, core);
}

void
api_vms_secgroup_remove(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    _cleanup_error_ NbError *err = NULL;
    json_t *body = http_request_json(r);
    if (body && json_object_size(body) > 0)
        return http_reply_error(r, NB_ERR_INVALID_REQUEST, "this action takes no body");
    if (secgroup_ops_vm_remove(core, http_request_principal(r), http_request_param(r, 0),
                               http_request_param(r, 1), &err) < 0)
        return http_reply_nb_error(r, err);
    vm_secgroups_reply(r, core);
}
