/* Labels: "key=value" pairs on hosts, and the ones a VM asks its host to carry. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "../util/error.h"

#define NB_LABELS_MAX 16
#define NB_LABEL_KEY_MAX 63   /* [a-z0-9][a-z0-9._/-]* */
#define NB_LABEL_VALUE_MAX 63 /* [A-Za-z0-9._-]*, may be empty */

typedef struct Labels {
    size_t n;
    char item[NB_LABELS_MAX][NB_LABEL_KEY_MAX + 1 + NB_LABEL_VALUE_MAX + 1]; /* "key=value" */
} Labels;

/* Strict decode of a JSON object of string values; INVALID_REQUEST names the bad key. Sorted by
 * key, so equal sets compare equal. NULL json: empty. */
int labels_from_json(json_t *obj, Labels *ret, NbError **err);
json_t *labels_to_json(const Labels *l);
/* One "key=value" argument (the CLI's --label), checked like the JSON form. */
int labels_add_text(Labels *l, const char *kv, NbError **err);
/* Storage form: items joined by '\n' ("" when empty); newly allocated. Parsing it back trusts
 * the store and skips malformed items. */
char *labels_to_text(const Labels *l);
void labels_from_text(const char *text, Labels *ret);
/* True when have carries every item of want. */
bool labels_contain(const Labels *have, const Labels *want);
