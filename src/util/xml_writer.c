/*
 * Every attribute value and text node goes through put_escaped(), so a caller cannot emit markup
 * by accident.
 *
 * Characters that XML 1.0 cannot carry (C0 controls other than tab, LF and CR; surrogates;
 * U+FFFE/U+FFFF; malformed or overlong UTF-8) are REFUSED, not replaced: the writer enters its
 * failed state and xml_writer_result() returns NULL. Replacing them would silently change a
 * user's string, and since names are validated before they get here, such a character means
 * something upstream is wrong. Tab, LF and CR are kept, written as character references where the
 * parser would otherwise normalise them away (all three in attributes, CR in text), so values
 * survive a parse unchanged.
 *
 * After any failure (allocation or refused input) every later call is a no-op.
 */
#include "xml_writer.h"

#include <assert.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct XmlWriter {
    char *buf;
    size_t len;
    size_t cap;
    const char **open; /* names of the open elements, innermost last */
    size_t depth;
    size_t open_cap;
    bool failed;
};

XmlWriter *
xml_writer_new(void)
{
    return calloc(1, sizeof(XmlWriter));
}

void
xml_writer_free(XmlWriter *w)
{
    if (!w)
        return;
    free(w->buf);
    free(w->open);
    free(w);
}

static bool
usable(const XmlWriter *w)
{
    return w && !w->failed;
}

static bool
reserve(XmlWriter *w, size_t extra)
{
    if (!usable(w))
        return false;
    if (extra >= SIZE_MAX - w->len) {
        w->failed = true;
        return false;
    }
    size_t need = w->len + extra + 1;
    if (need <= w->cap)
        return true;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(w->buf, cap);
    if (!p) {
        w->failed = true;
        return false;
    }
    w->buf = p;
    w->cap = cap;
    return true;
}

static void
put_mem(XmlWriter *w, const char *s, size_t n)
{
    if (!reserve(w, n))
        return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

static void
put(XmlWriter *w, const char *s)
{
    put_mem(w, s, strlen(s));
}

static void
put_indent(XmlWriter *w)
{
    for (size_t i = 0; i < w->depth; i++)
        put_mem(w, "  ", 2);
}

/* Length of the UTF-8 sequence at s if it encodes a character XML 1.0 allows, else 0. */
static size_t
xml_char_len(const unsigned char *s)
{
    static const uint32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
    uint32_t c;
    size_t n;

    if (s[0] < 0x80) {
        c = s[0];
        n = 1;
    } else if ((s[0] & 0xE0) == 0xC0) {
        c = s[0] & 0x1F;
        n = 2;
    } else if ((s[0] & 0xF0) == 0xE0) {
        c = s[0] & 0x0F;
        n = 3;
    } else if ((s[0] & 0xF8) == 0xF0) {
        c = s[0] & 0x07;
        n = 4;
    } else {
        return 0;
    }
    /* A NUL terminator is not a continuation byte, so this never reads past the string. */
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (n > 1 && c < min_for_len[n])
        return 0;
    if (c == 0x9 || c == 0xA || c == 0xD)
        return n;
    if (c < 0x20 || (c >= 0xD800 && c <= 0xDFFF) || c == 0xFFFE || c == 0xFFFF || c > 0x10FFFF)
        return 0;
    return n;
}

static const char *
replacement(unsigned char c, bool in_attr)
{
    switch (c) {
    case '&':
        return "&amp;";
    case '<':
        return "&lt;";
    case '>':
        return "&gt;";
    case '"':
        return "&quot;";
    case '\'':
        return "&apos;";
    case '\r':
        return "&#13;";
    case '\t':
        return in_attr ? "&#9;" : NULL;
    case '\n':
        return in_attr ? "&#10;" : NULL;
    default:
        return NULL;
    }
}

static void
put_escaped(XmlWriter *w, const char *s, bool in_attr)
{
    if (!usable(w))
        return;
    if (!s) {
        w->failed = true;
        return;
    }
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *run = p; /* start of bytes that can be copied verbatim */
    while (*p) {
        size_t n = xml_char_len(p);
        if (n == 0) {
            w->failed = true;
            return;
        }
        const char *rep = n == 1 ? replacement(*p, in_attr) : NULL;
        if (rep) {
            put_mem(w, (const char *)run, (size_t)(p - run));
            put(w, rep);
            run = p + 1;
        }
        p += n;
    }
    put_mem(w, (const char *)run, (size_t)(p - run));
}

/* Names are program constants; this catches a typo or a user string passed by mistake. */
static bool
name_ok(const char *n)
{
    if (!n)
        return false;
    if (!((n[0] >= 'A' && n[0] <= 'Z') || (n[0] >= 'a' && n[0] <= 'z') || n[0] == '_'))
        return false;
    for (const char *p = n + 1; *p; p++) {
        char c = *p;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || c == ':'))
            return false;
    }
    return true;
}

static bool
check_name(XmlWriter *w, const char *name)
{
    bool ok = name_ok(name);
    assert(ok && "XML names must be plain ASCII identifiers");
    if (!ok)
        w->failed = true;
    return ok;
}

/* Writes indentation, "<name" and the attributes; the caller finishes the tag. */
static void
start_tag(XmlWriter *w, const char *name, va_list ap)
{
    if (!usable(w) || !check_name(w, name))
        return;
    put_indent(w);
    put(w, "<");
    put(w, name);
    for (;;) {
        const char *key = va_arg(ap, const char *);
        if (!key)
            break;
        const char *value = va_arg(ap, const char *);
        if (!check_name(w, key) || !value) {
            w->failed = true;
            return;
        }
        put(w, " ");
        put(w, key);
        put(w, "='");
        put_escaped(w, value, true);
        put(w, "'");
    }
}

void
xml_writer_open(XmlWriter *w, const char *name, ...)
{
    va_list ap;
    va_start(ap, name);
    start_tag(w, name, ap);
    va_end(ap);
    put(w, ">\n");
    if (!usable(w))
        return;
    if (w->depth == w->open_cap) {
        size_t cap = w->open_cap ? w->open_cap * 2 : 16;
        const char **p = realloc(w->open, cap * sizeof(*p));
        if (!p) {
            w->failed = true;
            return;
        }
        w->open = p;
        w->open_cap = cap;
    }
    w->open[w->depth++] = name;
}

void
xml_writer_empty(XmlWriter *w, const char *name, ...)
{
    va_list ap;
    va_start(ap, name);
    start_tag(w, name, ap);
    va_end(ap);
    put(w, "/>\n");
}

void
xml_writer_text_element(XmlWriter *w, const char *name, const char *text, ...)
{
    va_list ap;
    va_start(ap, text);
    start_tag(w, name, ap);
    va_end(ap);
    put(w, ">");
    put_escaped(w, text, false);
    put(w, "</");
    if (usable(w))
        put(w, name);
    put(w, ">\n");
}

void
xml_writer_close(XmlWriter *w)
{
    if (!usable(w))
        return;
    if (w->depth == 0) {
        w->failed = true;
        return;
    }
    const char *name = w->open[--w->depth];
    put_indent(w);
    put(w, "</");
    put(w, name);
    put(w, ">\n");
}

const char *
xml_writer_result(XmlWriter *w)
{
    if (!usable(w) || w->depth > 0)
        return NULL;
    return w->buf ? w->buf : "";
}

char *
xml_escape(const char *s)
{
    XmlWriter w = {0};
    put_escaped(&w, s, true);
    if (w.failed) {
        free(w.buf);
        return NULL;
    }
    return w.buf ? w.buf : strdup("");
}
