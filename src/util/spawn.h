/* Running helper programs (qemu-img, genisoimage) safely: argv arrays and execv, never a shell. */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct SpawnLimits {
    uint64_t address_space_bytes; /* RLIMIT_AS, 0 = unlimited */
    uint64_t cpu_seconds;         /* RLIMIT_CPU, 0 = unlimited */
    uint64_t timeout_ms;          /* wall clock; the child is SIGKILLed past it; 0 = none */
} SpawnLimits;

/*
 * Runs argv[0] (an absolute path) with argv, stdin from /dev/null, closing every other fd.
 * Captures up to stdout_max bytes of stdout into *ret_stdout (NUL-terminated, may be NULL when
 * not wanted) and up to 4 KiB of stderr into *ret_stderr (may be NULL).
 * Returns the exit status (0..255) on a normal exit, or -errno: -ETIMEDOUT when killed for the
 * timeout, -EFBIG when stdout passed stdout_max, -ECHILD when killed by a signal.
 */
int spawn_run(const char *const argv[], const SpawnLimits *limits, size_t stdout_max,
              char **ret_stdout, char **ret_stderr);
/* Finds an executable by name in a fixed list of system directories (not $PATH). */
int spawn_find_program(const char *name, char **ret_path);
/*
 * Starts argv[0] (an absolute path) in the background and returns its pid, or -errno, without
 * waiting: stdin from /dev/null, stdout and stderr the caller's stderr, every other fd closed,
 * default signal dispositions and an empty signal mask. pre_exec (may be NULL) runs in the
 * child first, right after fork(): async-signal-safe calls only (the caller may have threads);
 * a negative return ends the child with status 127. The caller reaps the child (waitpid).
 * For daemons the caller supervises (nimbus-agent's dnsmasq), where spawn_run would wait.
 */
int spawn_start(const char *const argv[], int (*pre_exec)(void *arg), void *arg);
