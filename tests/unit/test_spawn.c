#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/cleanup.h"
#include "util/spawn.h"
#include "util/strutil.h"

static char *
find(const char *name)
{
    char *p = NULL;
    assert_int_equal(spawn_find_program(name, &p), 0);
    assert_non_null(p);
    return p;
}

static uint64_t
elapsed_ms(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)(now.tv_sec - start->tv_sec) * 1000u +
           (uint64_t)((now.tv_nsec - start->tv_nsec) / 1000000);
}

static void
test_echo_stdout(void **state)
{
    _cleanup_free_ char *echo = find("echo");
    const char *argv[] = {echo, "hello", "world", NULL};
    _cleanup_free_ char *out = NULL;
    _cleanup_free_ char *err = NULL;
    assert_int_equal(spawn_run(argv, NULL, 1024, &out, &err), 0);
    assert_string_equal(out, "hello world\n");
    assert_string_equal(err, "");
}

static void
test_exit_status(void **state)
{
    _cleanup_free_ char *f = find("false");
    const char *argv[] = {f, NULL};
    assert_int_equal(spawn_run(argv, NULL, 0, NULL, NULL), 1);

    _cleanup_free_ char *sh = find("sh");
    const char *argv2[] = {sh, "-c", "exit 7", NULL};
    assert_int_equal(spawn_run(argv2, NULL, 0, NULL, NULL), 7);
}

static void
test_argv_checks(void **state)
{
    const char *rel[] = {"echo", "x", NULL};
    assert_int_equal(spawn_run(rel, NULL, 0, NULL, NULL), -EINVAL);
    const char *empty[] = {NULL};
    assert_int_equal(spawn_run(empty, NULL, 0, NULL, NULL), -EINVAL);
    assert_int_equal(spawn_run(NULL, NULL, 0, NULL, NULL), -EINVAL);

    char *out = (char *)"sentinel";
    const char *missing[] = {"/nonexistent/nimbus-no-such-program", NULL};
    assert_int_equal(spawn_run(missing, NULL, 16, &out, NULL), -ENOENT);
    assert_null(out);

    const char *dir[] = {"/tmp", NULL};
    assert_int_equal(spawn_run(dir, NULL, 0, NULL, NULL), -EACCES);
}

static void
test_stderr_capture_bounded(void **state)
{
    _cleanup_free_ char *sh = find("sh");
    const char *argv[] = {sh, "-c", "echo oops >&2; exit 3", NULL};
    _cleanup_free_ char *err = NULL;
    assert_int_equal(spawn_run(argv, NULL, 0, NULL, &err), 3);
    assert_string_equal(err, "oops\n");

    /* 100000 bytes of stderr: the first 4 KiB are kept, the rest is drained (no deadlock). */
    const char *argv2[] = {sh, "-c",
                           "i=0; while [ $i -lt 2000 ]; do "
                           "echo 0123456789012345678901234567890123456789012345678 >&2;"
                           " i=$((i+1)); done; echo done",
                           NULL};
    _cleanup_free_ char *out2 = NULL;
    _cleanup_free_ char *err2 = NULL;
    assert_int_equal(spawn_run(argv2, NULL, 64, &out2, &err2), 0);
    assert_string_equal(out2, "done\n");
    assert_int_equal(strlen(err2), 4096);
}

static void
test_stdout_too_big(void **state)
{
    _cleanup_free_ char *yes = find("yes");
    const char *argv[] = {yes, NULL};
    const SpawnLimits lim = {.timeout_ms = 20000};
    _cleanup_free_ char *out = NULL;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(spawn_run(argv, &lim, 1000, &out, NULL), -EFBIG);
    assert_true(elapsed_ms(&t0) < 10000);
    assert_non_null(out);
    assert_int_equal(strlen(out), 1000);

    /* Exactly at the limit is fine. */
    _cleanup_free_ char *printf_prog = find("printf");
    const char *argv2[] = {printf_prog, "abcd", NULL};
    _cleanup_free_ char *out2 = NULL;
    assert_int_equal(spawn_run(argv2, NULL, 4, &out2, NULL), 0);
    assert_string_equal(out2, "abcd");
    _cleanup_free_ char *out3 = NULL;
    assert_int_equal(spawn_run(argv2, NULL, 3, &out3, NULL), -EFBIG);

    /* Output nobody asked for is discarded, not an error. */
    const char *argv3[] = {printf_prog, "abcd", NULL};
    assert_int_equal(spawn_run(argv3, NULL, 0, NULL, NULL), 0);
}

static void
test_stdin_is_dev_null(void **state)
{
    _cleanup_free_ char *cat = find("cat");
    const char *argv[] = {cat, NULL};
    const SpawnLimits lim = {.timeout_ms = 10000};
    _cleanup_free_ char *out = NULL;
    assert_int_equal(spawn_run(argv, &lim, 16, &out, NULL), 0);
    assert_string_equal(out, "");
}

static void
test_timeout_kills(void **state)
{
    _cleanup_free_ char *sleep_prog = find("sleep");
    const char *argv[] = {sleep_prog, "30", NULL};
    const SpawnLimits lim = {.timeout_ms = 200};
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(spawn_run(argv, &lim, 0, NULL, NULL), -ETIMEDOUT);
    uint64_t ms = elapsed_ms(&t0);
    assert_true(ms >= 150);
    assert_true(ms < 5000);
}

static bool
process_gone(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    for (int i = 0; i < 200; i++) {
        _cleanup_free_ char *stat = NULL;
        if (read_file_full(path, 4096, &stat, NULL) < 0)
            return true;
        const char *rp = strrchr(stat, ')');
        if (rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'))
            return true;
        usleep(10000);
    }
    return false;
}

static void
test_timeout_kills_process_group(void **state)
{
    /* A grandchild that keeps the pipes open must not outlive the timeout either. */
    char dir[] = "/tmp/nb-spawn-XXXXXX";
    assert_non_null(mkdtemp(dir));
    _cleanup_free_ char *pidfile = str_printf("%s/pid", dir);
    _cleanup_free_ char *script = str_printf("sleep 30 & echo $! > %s; wait", pidfile);
    _cleanup_free_ char *sh = find("sh");
    const char *argv[] = {sh, "-c", script, NULL};
    const SpawnLimits lim = {.timeout_ms = 500};
    assert_int_equal(spawn_run(argv, &lim, 0, NULL, NULL), -ETIMEDOUT);
    _cleanup_free_ char *pidtext = NULL;
    assert_int_equal(read_file_full(pidfile, 64, &pidtext, NULL), 0);
    pidtext[strcspn(pidtext, "\n")] = '\0';
    uint64_t pid = 0;
    assert_int_equal(str_to_u64(pidtext, &pid), 0);
    assert_true(process_gone((pid_t)pid));
    unlink(pidfile);
    rmdir(dir);
}

static void
test_killed_by_signal(void **state)
{
    _cleanup_free_ char *sh = find("sh");
    const char *argv[] = {sh, "-c", "kill -9 $$", NULL};
    assert_int_equal(spawn_run(argv, NULL, 0, NULL, NULL), -ECHILD);
}

static void
test_rlimits_applied(void **state)
{
    _cleanup_free_ char *sh = find("sh");
    const char *argv[] = {sh, "-c", "ulimit -v; ulimit -t", NULL};
    const SpawnLimits lim = {.address_space_bytes = 256u << 20, .cpu_seconds = 7};
    _cleanup_free_ char *out = NULL;
    assert_int_equal(spawn_run(argv, &lim, 256, &out, NULL), 0);
    assert_string_equal(out, "262144\n7\n");

    /* A CPU-bound loop dies from its CPU limit well before the wall-clock timeout. */
    const char *spin[] = {sh, "-c", "while :; do :; done", NULL};
    const SpawnLimits lim2 = {.cpu_seconds = 1, .timeout_ms = 30000};
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(spawn_run(spin, &lim2, 0, NULL, NULL), -ECHILD);
    assert_true(elapsed_ms(&t0) < 20000);
}

static void
test_fds_not_inherited(void **state)
{
    /* Deliberately inheritable: spawn_run must close it in the child anyway. */
    int fd = open("/dev/null", O_RDONLY);
    assert_true(fd > 2);
    _cleanup_free_ char *script = str_printf("test -e /proc/$$/fd/%d", fd);
    _cleanup_free_ char *sh = find("sh");
    const char *argv[] = {sh, "-c", script, NULL};
    assert_int_equal(spawn_run(argv, NULL, 0, NULL, NULL), 1);
    close(fd);

    const char *argv2[] = {sh, "-c", "ls /proc/$$/fd", NULL};
    _cleanup_free_ char *out = NULL;
    assert_int_equal(spawn_run(argv2, NULL, 4096, &out, NULL), 0);
    /* The shell holds exactly stdin, stdout and stderr. */
    assert_string_equal(out, "0\n1\n2\n");
}

static void
test_sigpipe_reset(void **state)
{
    /* A daemon ignores SIGPIPE; the child must get the default disposition back. */
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigaction(SIGPIPE, &ign, &old);
    _cleanup_free_ char *sh = find("sh");
    const char *argv[] = {sh, "-c", "grep SigIgn /proc/self/status", NULL};
    _cleanup_free_ char *out = NULL;
    assert_int_equal(spawn_run(argv, NULL, 256, &out, NULL), 0);
    /* SIGPIPE is signal 13: bit 12 of the mask. */
    const char *hex = strchr(out, '\t');
    assert_non_null(hex);
    unsigned long long mask = strtoull(hex + 1, NULL, 16);
    assert_int_equal(mask & (1ull << 12), 0);
    sigaction(SIGPIPE, &old, NULL);
}

typedef struct ThreadArg {
    int id;
    int failures;
} ThreadArg;

static void *
spawn_thread(void *p)
{
    ThreadArg *a = p;
    char *echo = NULL;
    if (spawn_find_program("echo", &echo) < 0) {
        a->failures++;
        return NULL;
    }
    for (int i = 0; i < 20; i++) {
        char arg[32], want[40];
        snprintf(arg, sizeof(arg), "t%d-%d", a->id, i);
        snprintf(want, sizeof(want), "%s\n", arg);
        const char *argv[] = {echo, arg, NULL};
        const SpawnLimits lim = {.timeout_ms = 20000};
        char *out = NULL;
        int r = spawn_run(argv, &lim, 64, &out, NULL);
        if (r != 0 || !out || strcmp(out, want) != 0)
            a->failures++;
        free(out);
    }
    free(echo);
    return NULL;
}

static void
test_threads(void **state)
{
    pthread_t th[8];
    ThreadArg args[8];
    for (int i = 0; i < 8; i++) {
        args[i] = (ThreadArg){.id = i};
        assert_int_equal(pthread_create(&th[i], NULL, spawn_thread, &args[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
}

static void
test_find_program(void **state)
{
    _cleanup_free_ char *p = NULL;
    assert_int_equal(spawn_find_program("true", &p), 0);
    assert_true(p[0] == '/');
    assert_true(strlen(p) > 5 && streq(p + strlen(p) - 5, "/true"));
    assert_int_equal(access(p, X_OK), 0);

    char *q = NULL;
    assert_int_equal(spawn_find_program("nimbus-no-such-program-xyz", &q), -ENOENT);
    assert_int_equal(spawn_find_program("bin/true", &q), -EINVAL);
    assert_int_equal(spawn_find_program("/usr/bin/true", &q), -EINVAL);
    assert_int_equal(spawn_find_program("", &q), -EINVAL);
    assert_int_equal(spawn_find_program(".", &q), -EINVAL);
    assert_int_equal(spawn_find_program("..", &q), -EINVAL);
    assert_null(q);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_stdout),
        cmocka_unit_test(test_exit_status),
        cmocka_unit_test(test_argv_checks),
        cmocka_unit_test(test_stderr_capture_bounded),
        cmocka_unit_test(test_stdout_too_big),
        cmocka_unit_test(test_stdin_is_dev_null),
        cmocka_unit_test(test_timeout_kills),
        cmocka_unit_test(test_timeout_kills_process_group),
        cmocka_unit_test(test_killed_by_signal),
        cmocka_unit_test(test_rlimits_applied),
        cmocka_unit_test(test_fds_not_inherited),
        cmocka_unit_test(test_sigpipe_reset),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_find_program),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
