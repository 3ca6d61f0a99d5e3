#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/cleanup.h"
#include "util/xml_writer.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(XmlWriter, xml_writer_free)

static void
test_nesting(void **state)
{
    _cleanup_(xml_writer_freep) XmlWriter *w = xml_writer_new();
    assert_non_null(w);
    xml_writer_open(w, "a", "x", "1", NULL);
    xml_writer_open(w, "b", NULL);
    xml_writer_text_element(w, "c", "text", "k", "v", "k2", "v2", NULL);
    xml_writer_open(w, "d", NULL);
    xml_writer_empty(w, "e", NULL);
    xml_writer_close(w);
    xml_writer_close(w);
    xml_writer_empty(w, "f", "y", "2", NULL);
    xml_writer_close(w);
    assert_string_equal(xml_writer_result(w), "<a x='1'>\n"
                                              "  <b>\n"
                                              "    <c k='v' k2='v2'>text</c>\n"
                                              "    <d>\n"
                                              "      <e/>\n"
                                              "    </d>\n"
                                              "  </b>\n"
                                              "  <f y='2'/>\n"
                                              "</a>\n");
}

static void
test_empty_elements(void **state)
{
    _cleanup_(xml_writer_freep) XmlWriter *w = xml_writer_new();
    xml_writer_open(w, "root", NULL);
    xml_writer_empty(w, "readonly", NULL);
    xml_writer_empty(w, "nova:root", "type", "image", "uuid", "", NULL);
    xml_writer_text_element(w, "t", "", NULL);
    xml_writer_open(w, "open-close", NULL);
    xml_writer_close(w);
    xml_writer_close(w);
    assert_string_equal(xml_writer_result(w), "<root>\n"
                                              "  <readonly/>\n"
                                              "  <nova:root type='image' uuid=''/>\n"
                                              "  <t></t>\n"
                                              "  <open-close>\n"
                                              "  </open-close>\n"
                                              "</root>\n");
}

static void
test_empty_document(void **state)
{
    _cleanup_(xml_writer_freep) XmlWriter *w = xml_writer_new();
    assert_string_equal(xml_writer_result(w), "");
}

static void
test_escape_attr_and_text(void **state)
{
    _cleanup_(xml_writer_freep) XmlWriter *w = xml_writer_new();
    xml_writer_text_element(w, "t", "a'\"<>&/../b", "v", "&<>\"'", NULL);
    assert_string_equal(xml_writer_result(w),
                        "<t v='&amp;&lt;&gt;&quot;&apos;'>a&apos;&quot;&lt;&gt;&amp;/../b</t>\n");
}

static void
test_escape_each_character(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"&", "&amp;"},    {"<", "&lt;"},
        {">", "&gt;"},     {"\"", "&quot;"},
        {"'", "&apos;"},   {"plain", "plain"},
        {"", ""},          {"&amp;", "&amp;amp;"},
        {"]]>", "]]&gt;"}, {"\xc3\xa9t\xc3\xa9", "\xc3\xa9t\xc3\xa9"},
    };
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        _cleanup_free_ char *s = xml_escape(cases[i].in);
        assert_non_null(s);
        assert_string_equal(s, cases[i].out);

        _cleanup_(xml_writer_freep) XmlWriter *w = xml_writer_new();
        xml_writer_text_element(w, "t", cases[i].in, "a", cases[i].in, NULL);
        _cleanup_free_ char *want = NULL;
        assert_true(asprintf(&want, "<t a='%s'>%s</t>\n", cases[i].out, cases[i].out) > 0);
        assert_string_equal(xml_writer_result(w), want);
    }
}

/* Tab, LF and CR are legal XML but a parser normalises them in attributes (and CR in text), so
 * they are written as character references there. */
static void
test_whitespace_controls(void **state)
{
    _cleanup_(xml_writer_freep) XmlWriter *w = xml_writer_new();
    xml_writer_text_element(w, "t", "a\tb\nc\rd", "v", "a\tb\nc\rd", NULL);
    assert_string_equal(xml_writer_result(w), "<t v='a&#9;b&#10;c&#13;d'>a\tb\nc&#13;d</t>\n");

    _cleanup_free_ char *s = xml_escape("\t\n\r");
    assert_string_equal(s, "&#9;&#10;&#13;");
}

/* Characters XML 1.0 cannot represent are refused: the writer fails, result() is NULL. */
static void
test_invalid_characters_refused(void **state)
{
    static const char *const bad[] = {
        "a\x01z",           /* C0 control */
        "\x1b[31m",         /* escape sequence */
        "a\x7f\x1f",        /* DEL is allowed, 0x1f is not */
        "\xc3",             /* truncated UTF-8 */
        "\xc0\xbc",         /* overlong '<' */
        "\xe0\x80\xbc",     /* overlong '<', 3 bytes */
        "\xed\xa0\x80",     /* surrogate */
        "\xef\xbf\xbe",     /* U+FFFE */
        "\xef\xbf\xbf",     /* U+FFFF */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\xff",             /* never valid */
        "\x80",             /* stray continuation byte */
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        assert_null(xml_escape(bad[i]));

        _cleanup_(xml_writer_freep) XmlWriter *t = xml_writer_new();
        xml_writer_text_element(t, "t", bad[i], NULL);
        assert_null(xml_writer_result(t));

        _cleanup_(xml_writer_freep) XmlWriter *a = xml_writer_new();
        xml_writer_empty(a, "t", "v", bad[i], NULL);
        assert_null(xml_writer_result(a));
    }
    /* Valid multi-byte characters at the edges of the allowed ranges pass. */
    _cleanup_free_ char *ok =
        xml_escape("\xc2\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbd\xf4\x8f\xbf\xbf");
    assert_non_null(ok);
}

static void
test_failure_is_sticky(void **state)
{
    _cleanup_(xml_writer_freep) XmlWriter *w = xml_writer_new();
    xml_writer_open(w, "a", NULL);
    xml_writer_text_element(w, "t", "\x02", NULL);
    xml_writer_close(w);
    xml_writer_open(w, "b", NULL);
    xml_writer_close(w);
    assert_null(xml_writer_result(w));
}

static void
test_result_null_while_open(void **state)
{
    _cleanup_(xml_writer_freep) XmlWriter *w = xml_writer_new();
    xml_writer_open(w, "a", NULL);
    xml_writer_open(w, "b", NULL);
    assert_null(xml_writer_result(w));
    xml_writer_close(w);
    assert_null(xml_writer_result(w));
    xml_writer_close(w);
    assert_string_equal(xml_writer_result(w), "<a>\n  <b>\n  </b>\n</a>\n");
}

static void
test_close_without_open(void **state)
{
    _cleanup_(xml_writer_freep) XmlWriter *w = xml_writer_new();
    xml_writer_empty(w, "a", NULL);
    xml_writer_close(w);
    assert_null(xml_writer_result(w));
}

static void
test_null_values(void **state)
{
    _cleanup_(xml_writer_freep) XmlWriter *t = xml_writer_new();
    xml_writer_text_element(t, "t", NULL, NULL);
    assert_null(xml_writer_result(t));

    /* A NULL in value position is an error, not the terminator. */
    _cleanup_(xml_writer_freep) XmlWriter *a = xml_writer_new();
    const char *missing = NULL;
    xml_writer_empty(a, "t", "k", missing, NULL);
    assert_null(xml_writer_result(a));

    assert_null(xml_escape(NULL));
}

static void
test_null_writer(void **state)
{
    xml_writer_free(NULL);
    xml_writer_open(NULL, "a", NULL);
    xml_writer_empty(NULL, "a", NULL);
    xml_writer_text_element(NULL, "a", "b", NULL);
    xml_writer_close(NULL);
    assert_null(xml_writer_result(NULL));
}

static void
test_deep_nesting(void **state)
{
    _cleanup_(xml_writer_freep) XmlWriter *w = xml_writer_new();
    for (int i = 0; i < 100; i++)
        xml_writer_open(w, "n", NULL);
    assert_null(xml_writer_result(w));
    for (int i = 0; i < 100; i++)
        xml_writer_close(w);
    const char *r = xml_writer_result(w);
    assert_non_null(r);
    /* The innermost open tag is indented 99 levels. */
    char want[2 + 99 * 2 + 8] = "\n";
    memset(want + 1, ' ', 99 * 2);
    memcpy(want + 1 + 99 * 2, "<n>\n", 5);
    assert_non_null(strstr(r, want));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nesting),
        cmocka_unit_test(test_empty_elements),
        cmocka_unit_test(test_empty_document),
        cmocka_unit_test(test_escape_attr_and_text),
        cmocka_unit_test(test_escape_each_character),
        cmocka_unit_test(test_whitespace_controls),
        cmocka_unit_test(test_invalid_characters_refused),
        cmocka_unit_test(test_failure_is_sticky),
        cmocka_unit_test(test_result_null_while_open),
        cmocka_unit_test(test_close_without_open),
        cmocka_unit_test(test_null_values),
        cmocka_unit_test(test_null_writer),
        cmocka_unit_test(test_deep_nesting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
