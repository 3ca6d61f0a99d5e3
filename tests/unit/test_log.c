/* The JSON log format: every record is one valid JSON object on one line, whatever the message
 * holds (quotes, control characters, bytes that are not UTF-8, a message longer than a record),
 * with the calling thread's request, task and VM ids as fields while they are set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "util/log.h"

/* Runs fn with stderr going to a file; returns what it wrote (malloc'd). */
static char *
capture(void (*fn)(void))
{
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fileno(tmp), 2), 2);
    fn();
    fflush(stderr);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    long len = ftell(tmp);
    assert_true(len >= 0);
    char *out = calloc(1, (size_t)len + 1);
    assert_non_null(out);
    rewind(tmp);
    assert_int_equal(fread(out, 1, (size_t)len, tmp), (size_t)len);
    fclose(tmp);
    return out;
}

/* The records, each parsed; fails on a line that is not one JSON object. */
static json_t *
records(const char *text)
{
    json_t *all = json_array();
    const char *line = text;
    while (*line) {
        const char *end = strchr(line, '\n');
        assert_non_null(end);
        json_error_t e;
        json_t *j = json_loadb(line, (size_t)(end - line), 0, &e);
        if (!j)
            fail_msg("not JSON (%s): %.*s", e.text, (int)(end - line), line);
        assert_true(json_is_object(j));
        json_array_append_new(all, j);
        line = end + 1;
    }
    return all;
}

static const char *
field(json_t *rec, const char *key)
{
    return json_string_value(json_object_get(rec, key));
}

static void
write_plain(void)
{
    log_context_request(NULL);
    log_context_task(NULL, NULL);
    log_info("plain %d", 42);
    log_debug("below the level: not written");
}

static void
test_plain_record(void **state)
{
    log_set_format(LOG_FORMAT_JSON);
    char *out = capture(write_plain);
    json_t *r = records(out);
    assert_int_equal(json_array_size(r), 1);
    json_t *rec = json_array_get(r, 0);
    assert_string_equal(field(rec, "msg"), "plain 42");
    assert_string_equal(field(rec, "level"), "info");
    assert_non_null(field(rec, "time"));
    assert_null(json_object_get(rec, "request_id"));
    assert_null(json_object_get(rec, "task_id"));
    json_decref(r);
    free(out);
}

static void
write_hostile(void)
{
    log_warn("quote \" backslash \\ newline \n tab \t bell \a del \x7f");
    log_warn("bad utf-8: \xff \xc3\x28 \xed\xa0\x80 ok: caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    char big[3000];
    memset(big, '"', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    log_error("%s", big);
}

static void
test_hostile_messages_stay_json(void **state)
{
    log_set_format(LOG_FORMAT_JSON);
    char *out = capture(write_hostile);
    json_t *r = records(out);
    assert_int_equal(json_array_size(r), 3);
    assert_string_equal(field(json_array_get(r, 0), "msg"),
                        "quote \" backslash \\ newline \n tab \t bell \a del \x7f");
    assert_string_equal(field(json_array_get(r, 1), "msg"),
                        "bad utf-8: \xef\xbf\xbd \xef\xbf\xbd( \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                        " ok: caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    /* Cut, but whole: the long message ends the record, which stays one object. */
    const char *big = field(json_array_get(r, 2), "msg");
    assert_non_null(big);
    assert_true(strlen(big) > 1000);
    json_decref(r);
    free(out);
}

static void
write_with_context(void)
{
    log_context_request("req-1234");
    log_info("in a request");
    log_context_request(NULL);
    log_context_task("3f2a1b7c-0000-4000-8000-000000000001",
                     "9d8e7f6a-0000-4000-8000-000000000002");
    log_info("in a task");
    log_context_task(NULL, NULL);
    log_info("after");
}

static void
test_context_fields(void **state)
{
    log_set_format(LOG_FORMAT_JSON);
    char *out = capture(write_with_context);
    json_t *r = records(out);
    assert_int_equal(json_array_size(r), 3);
    assert_string_equal(field(json_array_get(r, 0), "request_id"), "req-1234");
    assert_null(json_object_get(json_array_get(r, 0), "task_id"));
    json_t *t = json_array_get(r, 1);
    assert_null(json_object_get(t, "request_id"));
    assert_string_equal(field(t, "task_id"), "3f2a1b7c-0000-4000-8000-000000000001");
    assert_string_equal(field(t, "vm_id"), "9d8e7f6a-0000-4000-8000-000000000002");
    assert_null(json_object_get(json_array_get(r, 2), "task_id"));
    json_decref(r);
    free(out);
}

static void
test_text_format_unchanged(void **state)
{
    log_set_format(LOG_FORMAT_TEXT);
    char *out = capture(write_plain);
    assert_non_null(strstr(out, " info  plain 42\n"));
    assert_int_equal(out[0] == '{', 0);
    free(out);
    LogFormat f;
    assert_int_equal(log_format_from_string("json", &f), 0);
    assert_int_equal(f, LOG_FORMAT_JSON);
    assert_int_equal(log_format_from_string("text", &f), 0);
    assert_int_equal(f, LOG_FORMAT_TEXT);
    assert_int_equal(log_format_from_string("xml", &f), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_record),
        cmocka_unit_test(test_hostile_messages_stay_json),
        cmocka_unit_test(test_context_fields),
        cmocka_unit_test(test_text_format_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
