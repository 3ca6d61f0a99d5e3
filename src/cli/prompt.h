/* Reading passwords: on the terminal without echo, or one line from stdin. Never from argv. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* The API accepts passwords of 8 to 1024 bytes. */
#define PROMPT_PASSWORD_MIN 8
#define PROMPT_PASSWORD_MAX 1024

typedef struct Password {
    char buf[PROMPT_PASSWORD_MAX + 2]; /* one more byte tells "too long" */
    size_t len;
} Password;

/*
 * Reads a password into *ret: with from_stdin one line of standard input (without its line
 * end), else from /dev/tty after printing `prompt`, with echo off (asked twice, and both must
 * match, when confirm). Returns an exit code after printing why it failed; on failure *ret is
 * zeroed. Call password_clear() once done with it.
 */
int prompt_password(const char *prompt, bool from_stdin, bool confirm, Password *ret);
void password_clear(Password *p);
