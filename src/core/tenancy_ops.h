/*
 * The writes the API makes on tenancy records (flavors, projects, users, tokens, audit events,
 * server groups): no task, no hypervisor, each one store transaction. They live in core, not in
 * the API, so that the API reaches the store only through core or through the read-only
 * queries of src/store/store_query.h (scripts/check-layers.sh checks it).
 */
#pragma once

#include <jansson.h>

#include "core.h"

/* Decodes the request, gives the flavor an id and inserts it. NAME_TAKEN. */
int tenancy_ops_flavor_create(Core *core, json_t *body, Flavor *ret, NbError **err);
/* By id, else by name. FLAVOR_NOT_FOUND, FLAVOR_IN_USE. */
int tenancy_ops_flavor_delete(Core *core, const char *id_or_name, NbError **err);

int tenancy_ops_project_create(Core *core, json_t *body, Project *ret, NbError **err);
/* PROJECT_NOT_FOUND, PROJECT_NOT_EMPTY. */
int tenancy_ops_project_delete(Core *core, const char *id_or_name, NbError **err);
/* Replaces the project's quota with the one in body; ret: the project as it is now. */
int tenancy_ops_project_set_quota(Core *core, const char *id_or_name, json_t *body, Project *ret,
                                  NbError **err);

/* Creates a user in the request's project (PROJECT_NOT_FOUND, NAME_TAKEN). The password is
 * hashed by the caller: password_hash is what the store keeps. */
int tenancy_ops_user_create(Core *core, const UserCreateRequest *req, const char *password_hash,
                            User *ret, NbError **err);
/* Deletes the user and revokes its tokens. USER_NOT_FOUND. */
int tenancy_ops_user_delete(Core *core, const char *id_or_name, NbError **err);

/* Stores a token (only the hash of its secret). */
int tenancy_ops_token_insert(Core *core, const TokenInfo *t, const char *hash_hex, NbError **err);
/* Revokes a token of user_id (NULL: anyone's). TOKEN_NOT_FOUND. */
int tenancy_ops_token_revoke(Core *core, const char *id, const char *user_id, NbError **err);

int tenancy_ops_audit_record(Core *core, const AuditEvent *e, NbError **err);

/* Decodes the request and creates the group in project_id. NAME_TAKEN. */
int tenancy_ops_group_create(Core *core, json_t *body, const char *project_id, Group *ret,
                             NbError **err);
/* GROUP_NOT_FOUND (scoped like group_store_get), GROUP_NOT_EMPTY. */
int tenancy_ops_group_delete(Core *core, const char *scope, const char *id_or_name, NbError **err);
