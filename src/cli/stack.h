/* Declarative stacks (nimbus apply/delete -f): the YAML file decoded and checked into JSON
 * specs, before any request is made. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* In the order apply creates them (delete goes in reverse). */
typedef enum StackKind {
    STACK_FLAVOR,
    STACK_IMAGE,
    STACK_NETWORK,
    STACK_SECGROUP,
    STACK_GROUP,
    STACK_VM,
    _STACK_KIND_MAX,
} StackKind;

#define STACK_VM_COUNT_MAX 100

typedef struct StackItem {
    StackKind kind;
    /* The item's keys with their YAML values as JSON (integers, booleans, strings, objects and
     * arrays as the schema says); a VM's count is always set (default 1). */
    json_t *spec;
    unsigned line, column; /* 1-based, where the item starts */
} StackItem;

typedef struct Stack {
    char *name;
    char *dir;        /* the file's directory: relative file and user_data_file paths start there */
    StackItem *items; /* sorted by kind, then in file order */
    size_t n_items;
} Stack;

/* "flavor", "vm" ... */
const char *stack_kind_name(StackKind k);
/* The API collection and the file's section: "flavors", "vms" ... */
const char *stack_kind_collection(StackKind k);

/*
 * Decodes a stack from text (file: the name used in messages and to find relative paths).
 * Unknown keys, wrong types, missing required keys, invalid names and duplicate names are
 * refused. 0, or -EINVAL with "FILE:LINE:COLUMN: message" in *ret_error (to free); -ENOMEM.
 */
int stack_parse(const char *text, size_t len, const char *file, Stack *ret, char **ret_error);
/* stack_parse of a file's content; an unreadable file is -errno with a message too. */
int stack_load(const char *path, Stack *ret, char **ret_error);
void stack_clear(Stack *s);

/* The name of instance n (1-based) of a VM item with this base name and count: the base
 * name itself when count is 1, else "<base>-<n>". NULL on OOM. */
char *stack_vm_instance_name(const char *base, unsigned count, unsigned n);
/* The hostname pattern with every "{n}" replaced by n. NULL on OOM. */
char *stack_vm_hostname(const char *pattern, unsigned n);
/* Whether name is "<base>-<k>" (k a decimal > 0, no leading zero), and k in *ret_k. */
bool stack_vm_instance_number(const char *base, const char *name, unsigned *ret_k);

/* s as a YAML scalar that reads back as the same string (double-quoted when needed).
 * NULL on OOM. */
char *stack_yaml_quote(const char *s);
