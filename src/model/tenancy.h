/* Projects, users and roles: who may do what, and within which project. */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "../util/error.h"
#include "../util/timeutil.h"
#include "../util/uuid.h"
#include "validate.h"

/* The project every install starts with; the bootstrap admin belongs to it. */
#define NB_DEFAULT_PROJECT_ID "00000000-0000-4000-8000-000000000001"
#define NB_DEFAULT_PROJECT_NAME "default"
#define NB_ADMIN_USER_ID "00000000-0000-4000-8000-000000000002"

#define NB_PASSWORD_MIN 8
#define NB_PASSWORD_MAX 1024

typedef enum Role {
    ROLE_ADMIN,   /* everything, every project */
    ROLE_MEMBER,  /* its project's VMs and images */
    ROLE_READER,  /* reads its project */
    ROLE_METRICS, /* reads GET /metrics only (a Prometheus scraper), and manages its tokens */
    _ROLE_MAX,
    _ROLE_INVALID = -1,
} Role;

const char *role_to_string(Role r);
Role role_from_string(const char *s);

/* What a request may touch: resolved from its bearer token. */
typedef struct Principal {
    char user_id[NB_UUID_STRLEN];
    char user_name[NB_NAME_MAX + 1];
    char project_id[NB_UUID_STRLEN];
    char token_id[NB_UUID_STRLEN];
    Role role;
} Principal;

/* The project filter for store queries: NULL (every project) for admins. */
static inline const char *
principal_scope(const Principal *p)
{
    return p->role == ROLE_ADMIN ? NULL : p->project_id;
}

/* Quota limits; a negative value means unlimited. */
typedef enum QuotaResource {
    QUOTA_VCPUS,
    QUOTA_RAM_MIB,
    QUOTA_DISK_GIB,
    QUOTA_VMS,
    QUOTA_IMAGES,
    QUOTA_NETWORKS,   /* networks the project owns (its default network too) */
    QUOTA_PORTS,      /* NICs of its VMs, on any network */
    QUOTA_SECGROUPS,  /* security groups the project owns */
    QUOTA_VOLUMES,    /* data volumes the project owns, in any state */
    QUOTA_VOLUME_GIB, /* the sum of their sizes */
    QUOTA_SNAPSHOTS,  /* VM snapshots of the project's VMs, in any state */
    QUOTA_BACKUPS,    /* backups the project owns, in any state */
    _QUOTA_MAX,
} QuotaResource;

extern const char *const quota_resource_names[_QUOTA_MAX]; /* JSON keys: "vcpus", ... */

typedef struct Quota {
    int64_t limit[_QUOTA_MAX];
} Quota;

typedef struct Project {
    char id[NB_UUID_STRLEN];
    char name[NB_NAME_MAX + 1];
    Quota quota;
    char created_at[NB_TIMESTAMP_LEN];
} Project;

typedef struct User {
    char id[NB_UUID_STRLEN];
    char name[NB_NAME_MAX + 1];
    char project_id[NB_UUID_STRLEN];
    Role role;
    char created_at[NB_TIMESTAMP_LEN];
} User;

/* Strict decode of a quota object: known keys only, each a non-negative integer or null
 * (unlimited); absent keys are unlimited. NULL json: everything unlimited. */
int quota_from_json(json_t *j, Quota *ret, NbError **err);
json_t *quota_to_json(const Quota *q);
/* {name, quota?} */
int project_from_request(json_t *body, Project *ret, NbError **err);
json_t *project_to_json(const Project *p);

typedef struct UserCreateRequest {
    char name[NB_NAME_MAX + 1];
    char project[NB_NAME_MAX + 1]; /* id or name, to resolve */
    Role role;
    char *password; /* owned; zeroed on clear */
} UserCreateRequest;

/* {name, password, project, role} */
int user_create_request_parse(json_t *body, UserCreateRequest *ret, NbError **err);
void user_create_request_clear(UserCreateRequest *r);
json_t *user_to_json(const User *u);
