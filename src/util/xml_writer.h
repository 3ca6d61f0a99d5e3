/*
 * A small XML writer that escapes every attribute value and text node. It is the only way user
 * strings reach libvirt XML.
 */
#pragma once

#include <stddef.h>

typedef struct XmlWriter XmlWriter;

XmlWriter *xml_writer_new(void);
void xml_writer_free(XmlWriter *w);
/* Opens <name ...>; attributes are name/value pairs ending with NULL. Values are escaped. */
void xml_writer_open(XmlWriter *w, const char *name, ...) __attribute__((sentinel));
/* Writes an empty element <name .../>. */
void xml_writer_empty(XmlWriter *w, const char *name, ...) __attribute__((sentinel));
/* Writes <name attrs...>escaped text</name>. */
void xml_writer_text_element(XmlWriter *w, const char *name, const char *text, ...)
    __attribute__((sentinel));
void xml_writer_close(XmlWriter *w); /* closes the innermost open element */
/* Returns the document (indented 2 spaces per level, ending with a newline), or NULL if an
 * allocation failed or elements are still open. The writer keeps ownership. */
const char *xml_writer_result(XmlWriter *w);
/* Escapes &<>"' into a new string. */
char *xml_escape(const char *s);
