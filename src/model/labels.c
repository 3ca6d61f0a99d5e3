#include "labels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool
label_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '/' ||
           c == '-';
}

static bool
label_value_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/* [a-z0-9][a-z0-9._/-]{0,62}; key is len bytes, not necessarily NUL-terminated. */
static bool
label_key_is_valid(const char *key, size_t len)
{
    if (len == 0 || len > NB_LABEL_KEY_MAX ||
        !((key[0] >= 'a' && key[0] <= 'z') || (key[0] >= '0' && key[0] <= '9')))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!label_key_char(key[i]))
            return false;
    return true;
}

/* [A-Za-z0-9._-]{0,63} */
static bool
label_value_is_valid(const char *value, size_t len)
{
    if (len > NB_LABEL_VALUE_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!label_value_char(value[i]))
            return false;
    return true;
}

/* Length of an item's key: the bytes before its '='. */
static size_t
label_item_key_len(const char *item)
{
    const char *eq = strchr(item, '=');
    return eq ? (size_t)(eq - item) : strlen(item);
}

/* Orders a key against an item's key, like strcmp on the keys alone ("a" < "a.b", which a
 * comparison of whole items would get wrong: '=' sorts after '.'). */
static int
label_key_cmp(const char *key, size_t len, const char *item)
{
    size_t ilen = label_item_key_len(item);
    int c = memcmp(key, item, len < ilen ? len : ilen);
    if (c != 0)
        return c;
    return len < ilen ? -1 : len > ilen ? 1 : 0;
}

/* Sets key to value (both already valid), replacing the value of an existing key and keeping
 * the items sorted. -1 when the set is full. */
static int
labels_set(Labels *l, const char *key, size_t klen, const char *value, size_t vlen)
{
    size_t i = 0;
    int c = 1;
    while (i < l->n && (c = label_key_cmp(key, klen, l->item[i])) > 0)
        i++;
    if (i == l->n || c != 0) {
        if (l->n >= NB_LABELS_MAX)
            return -1;
        memmove(l->item[i + 1], l->item[i], (l->n - i) * sizeof(l->item[0]));
        l->n++;
    }
    snprintf(l->item[i], sizeof(l->item[i]), "%.*s=%.*s", (int)klen, key, (int)vlen, value);
    return 0;
}

static int
labels_check_and_set(Labels *l, const char *key, size_t klen, const char *value, size_t vlen,
                     NbError **err)
{
    if (!label_key_is_valid(key, klen))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "label key '%.*s' must match [a-z0-9][a-z0-9._/-]{0,62}",
                            (int)(klen < 64 ? klen : 64), key);
    if (!label_value_is_valid(value, vlen))
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "label '%.*s': the value must match [A-Za-z0-9._-]{0,63}",
                            (int)(klen < 64 ? klen : 64), key);
    if (labels_set(l, key, klen, value, vlen) < 0)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST, "at most %d labels (at '%.*s')",
                            NB_LABELS_MAX, (int)(klen < 64 ? klen : 64), key);
    return 0;
}

int
labels_from_json(json_t *obj, Labels *ret, NbError **err)
{
    Labels l = {0};
    const char *key;
    json_t *v;

    if (obj && !json_is_null(obj)) {
        if (!json_is_object(obj))
            return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                                "labels must be an object of string values");
        /* jansson keys never hold a NUL; a value's is refused by its length. */
        json_object_foreach (obj, key, v) {
            if (!json_is_string(v))
                return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                                    "label '%.64s': the value must be a string", key);
            if (labels_check_and_set(&l, key, strlen(key), json_string_value(v),
                                     json_string_length(v), err) < 0)
                return -1;
        }
    }
    *ret = l;
    return 0;
}

json_t *
labels_to_json(const Labels *l)
{
    json_t *j = json_object();
    if (!j)
        return NULL;
    for (size_t i = 0; i < l->n; i++) {
        char key[NB_LABEL_KEY_MAX + 1];
        size_t klen = label_item_key_len(l->item[i]);
        snprintf(key, sizeof(key), "%.*s", (int)klen, l->item[i]);
        const char *value = l->item[i][klen] == '=' ? l->item[i] + klen + 1 : "";
        if (json_object_set_new(j, key, json_string(value)) < 0) {
            json_decref(j);
            return NULL;
        }
    }
    return j;
}

int
labels_add_text(Labels *l, const char *kv, NbError **err)
{
    const char *eq = strchr(kv, '=');
    if (!eq)
        return nb_error_set(err, NB_ERR_INVALID_REQUEST,
                            "label '%.64s' must be key=value (the value may be empty)", kv);
    return labels_check_and_set(l, kv, (size_t)(eq - kv), eq + 1, strlen(eq + 1), err);
}

char *
labels_to_text(const Labels *l)
{
    size_t len = 1;
    for (size_t i = 0; i < l->n; i++)
        len += strlen(l->item[i]) + 1;
    char *text = malloc(len);
    if (!text)
        return NULL;
    size_t at = 0;
    for (size_t i = 0; i < l->n; i++) {
        size_t n = strlen(l->item[i]);
        if (i > 0)
            text[at++] = '\n';
        memcpy(text + at, l->item[i], n);
        at += n;
    }
    text[at] = '\0';
    return text;
}

void
labels_from_text(const char *text, Labels *ret)
{
    Labels l = {0};
    const char *p = text ? text : "";
    while (*p) {
        const char *end = strchr(p, '\n');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (eq) {
            size_t klen = (size_t)(eq - p), vlen = n - klen - 1;
            if (label_key_is_valid(p, klen) && label_value_is_valid(eq + 1, vlen))
                (void)labels_set(&l, p, klen, eq + 1, vlen);
        }
        p += n;
        if (*p == '\n')
            p++;
    }
    *ret = l;
}

bool
labels_contain(const Labels *have, const Labels *want)
{
    for (size_t i = 0; i < want->n; i++) {
        bool found = false;
        for (size_t j = 0; j < have->n && !found; j++)
            found = strcmp(have->item[j], want->item[i]) == 0;
        if (!found)
            return false;
    }
    return true;
}
