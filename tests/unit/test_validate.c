#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/validate.h"
#include "util/strutil.h"
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include "util/uuid.h"

static void
test_names(void **state)
{
    const char *good[] = {"a", "web1", "Web-1.prod_2", "0", "a-", "a..b"};
    const char *bad[] = {"",    "-a",  ".a",  "_a",  "a/b",  "a b",  "a'b",  "a\"b",
                         "a<b", "a>b", "a&b", "..",  "../x", "a\nb", "é",    "a\\b",
                         "a;b", "a$b", "a:b", "a%b", "a@b",  "\t",   "a\x01"};
    char max[NB_NAME_MAX + 2];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(nb_name_is_valid(good[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(nb_name_is_valid(bad[i]));
    assert_false(nb_name_is_valid(NULL));
    memset(max, 'a', NB_NAME_MAX);
    max[NB_NAME_MAX] = '\0';
    assert_true(nb_name_is_valid(max));
    max[NB_NAME_MAX] = 'a';
    max[NB_NAME_MAX + 1] = '\0';
    assert_false(nb_name_is_valid(max));
    /* Names and ids share URLs: a UUID-shaped name would be ambiguous. */
    assert_false(nb_name_is_valid("5e2bf927-fa75-4387-ab96-a7ae3c76aee6"));
}

static void
test_name_check_sets_code(void **state)
{
    NbError *err = NULL;
    assert_int_equal(nb_name_check("VM", "a/b", &err), -1);
    assert_non_null(err);
    assert_string_equal(err->code, NB_ERR_INVALID_NAME);
    nb_error_free(err);
    err = NULL;
    assert_int_equal(nb_name_check("VM", "ok", &err), 0);
    assert_null(err);
}

static void
test_hostnames(void **state)
{
    assert_true(nb_hostname_is_valid("web1"));
    assert_true(nb_hostname_is_valid("a-b"));
    assert_false(nb_hostname_is_valid("-a"));
    assert_false(nb_hostname_is_valid("a-"));
    assert_false(nb_hostname_is_valid("a.b"));
    assert_false(nb_hostname_is_valid("a;reboot"));
    assert_false(nb_hostname_is_valid("a\nlocal-hostname: x"));
    assert_false(nb_hostname_is_valid(""));
    char h[70];
    memset(h, 'a', 64);
    h[64] = '\0';
    assert_false(nb_hostname_is_valid(h));
}

static void
test_hostname_from_name(void **state)
{
    char *h = nb_hostname_from_name("Web_1.prod");
    assert_string_equal(h, "web-1-prod");
    free(h);
    h = nb_hostname_from_name("a..");
    assert_string_equal(h, "a");
    free(h);
}

static void
test_uuid(void **state)
{
    char a[NB_UUID_STRLEN], b[NB_UUID_STRLEN];
    assert_int_equal(nb_uuid_generate(a), 0);
    assert_int_equal(nb_uuid_generate(b), 0);
    assert_true(nb_uuid_is_valid(a));
    assert_string_not_equal(a, b);
    assert_int_equal(a[14], '4');
    assert_false(nb_uuid_is_valid("5E2BF927-FA75-4387-AB96-A7AE3C76AEE6"));
    assert_false(nb_uuid_is_valid("5e2bf927-fa75-4387-ab96-a7ae3c76aee"));
}

static void
test_read_file_full_limit(void **state)
{
    char path[] = "/tmp/nimbus-test-read-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    char buf[5000];
    memset(buf, 'x', sizeof(buf));
    assert_int_equal(write_full(fd, buf, sizeof(buf)), 0);
    close(fd);
    char *data = NULL;
    size_t len = 0;
    /* Exactly at the limit is accepted; one byte under the size is refused. */
    assert_int_equal(read_file_full(path, sizeof(buf), &data, &len), 0);
    assert_int_equal(len, sizeof(buf));
    assert_int_equal(data[len], '\0');
    free(data);
    assert_int_equal(read_file_full(path, sizeof(buf) - 1, &data, &len), -EFBIG);
    assert_int_equal(read_file_full(path, 1 << 20, &data, &len), 0);
    assert_int_equal(len, sizeof(buf));
    free(data);
    unlink(path);
    uint64_t v = 0;
    assert_int_equal(str_to_u64("18446744073709551615", &v), 0);
    assert_int_equal(str_to_u64("18446744073709551616", &v), -ERANGE);
    assert_int_equal(str_to_u64("-1", &v), -EINVAL);
    assert_int_equal(str_to_u64("", &v), -EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),     cmocka_unit_test(test_name_check_sets_code),
        cmocka_unit_test(test_hostnames), cmocka_unit_test(test_hostname_from_name),
        cmocka_unit_test(test_uuid),      cmocka_unit_test(test_read_file_full_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
