/*
 * Fuzzes stack_parse(), the decoder of nimbus apply's YAML files, run before any request. Beyond
 * memory errors, it checks the contract: a refusal says where ("FILE:LINE:COLUMN: ..."), a
 * success has a name and items in apply order, each with a name (and a VM with its count).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/stack.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Stack s = {0};
    char *err = NULL;
    int r = stack_parse((const char *)data, size, "f.yaml", &s, &err);
    if (r < 0) {
        FUZZ_CHECK(r == -EINVAL || r == -ENOMEM);
        FUZZ_CHECK(r == -ENOMEM || (err && strncmp(err, "f.yaml:", 7) == 0));
        free(err);
        return 0;
    }
    FUZZ_CHECK(r == 0 && !err && s.name && s.dir);
    for (size_t i = 0; i < s.n_items; i++) {
        const StackItem *it = &s.items[i];
        FUZZ_CHECK(it->kind < _STACK_KIND_MAX && it->line >= 1 && it->column >= 1);
        FUZZ_CHECK(i == 0 || s.items[i - 1].kind <= it->kind);
        FUZZ_CHECK(json_is_string(json_object_get(it->spec, "name")));
        if (it->kind == STACK_VM) {
            json_int_t count = json_integer_value(json_object_get(it->spec, "count"));
            FUZZ_CHECK(count >= 1 && count <= STACK_VM_COUNT_MAX);
        }
    }
    stack_clear(&s);
    return 0;
}
