#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "strutil.h"

#define SPAWN_STDERR_MAX 4096
#define SPAWN_READ_CHUNK 16384
/* Without a pidfd, how often to look for the child's exit once both pipes are closed. */
#define SPAWN_POLL_TICK_MS 10

/* The fixed search list of spawn_find_program(), in order. */
static const char *const spawn_search_dirs[] = {
    "/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin",
};

typedef struct SpawnBuf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;    /* bytes kept */
    bool keep;     /* false: read and discard */
    bool overflow; /* more than max arrived */
} SpawnBuf;

static void
close_pair(int p[2])
{
    for (int i = 0; i < 2; i++) {
        if (p[i] >= 0)
            close(p[i]);
        p[i] = -1;
    }
}

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The child's stack: child_exec needs little, and what it calls is plain syscalls. */
#define SPAWN_CHILD_STACK (64 * 1024)

/* What the child needs, prepared by the parent: the child may not allocate. */
typedef struct SpawnChild {
    const char *const *argv;
    const struct rlimit *as, *cpu;
    int devnull, out_w, err_w, status_w, max_fd;
} SpawnChild;

/* The child side, between clone() and execv(). It shares the parent's memory (CLONE_VM, as
 * vfork: no page tables are copied, so a large daemon spawns as fast as a small one) while the
 * parent waits (CLONE_VFORK): only async-signal-safe calls (no malloc, no stdio, no locks), no
 * writes to anything but its own stack, and its signal dispositions and fd table are its own. */
static int
child_exec(void *arg)
{
    const SpawnChild *c = arg;
    const char *const *argv = c->argv;
    const struct rlimit *as = c->as, *cpu = c->cpu;
    int devnull = c->devnull, out_w = c->out_w, err_w = c->err_w, status_w = c->status_w;
    int max_fd = c->max_fd;
    int e;

    /* Move every fd we keep to >= 3 first, so the dup2()s below cannot clobber one another
     * even when the parent started with 0, 1 or 2 closed. */
    int in_fd = fcntl(devnull, F_DUPFD, 3);
    int o_fd = fcntl(out_w, F_DUPFD, 3);
    int e_fd = fcntl(err_w, F_DUPFD, 3);
    int s_fd = fcntl(status_w, F_DUPFD_CLOEXEC, 3);
    if (in_fd < 0 || o_fd < 0 || e_fd < 0 || s_fd < 0)
        goto fail;
    if (dup2(in_fd, 0) < 0 || dup2(o_fd, 1) < 0 || dup2(e_fd, 2) < 0)
        goto fail;
    /* The status pipe goes to fd 3 (close-on-exec) and everything above it is closed. */
    if (s_fd != 3) {
        if (dup2(s_fd, 3) < 0 || fcntl(3, F_SETFD, FD_CLOEXEC) < 0)
            goto fail;
    }
    s_fd = 3;
    if (close_range(4, ~0u, 0) < 0) {
        for (int fd = 4; fd < max_fd; fd++)
            close(fd);
    }

    /* Dispositions set to SIG_IGN survive execv (a daemon typically ignores SIGPIPE). */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        (void)sigaction(sig, &sa, NULL);

    /* Own process group, so a timeout also kills anything the program started. */
    if (setpgid(0, 0) < 0)
        goto fail;
    /* A program killed for its CPU limit must not leave a core file behind. */
    struct rlimit no_core = {0, 0};
    (void)setrlimit(RLIMIT_CORE, &no_core);
    if (as && setrlimit(RLIMIT_AS, as) < 0)
        goto fail;
    if (cpu && setrlimit(RLIMIT_CPU, cpu) < 0)
        goto fail;

    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
        goto fail;

    execv(argv[0], (char *const *)argv);
fail:
    e = errno;
    ssize_t r = write(s_fd >= 0 ? s_fd : status_w, &e, sizeof(e));
    (void)r;
    _exit(127);
}

/* Reads what is available on fd into b. Returns 1 at EOF, 0 otherwise, -errno on error. */
static int
drain(int fd, SpawnBuf *b)
{
    char chunk[SPAWN_READ_CHUNK];
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 0 : -errno;
    if (n == 0)
        return 1;
    if (!b->keep)
        return 0;
    size_t room = b->max - b->len;
    size_t take = (size_t)n < room ? (size_t)n : room;
    if ((size_t)n > room)
        b->overflow = true;
    if (take > 0) {
        if (b->len + take + 1 > b->cap) {
            size_t cap = b->cap ? b->cap : 4096;
            while (cap < b->len + take + 1)
                cap *= 2;
            if (cap > b->max + 1)
                cap = b->max + 1;
            char *d = realloc(b->data, cap);
            if (!d)
                return -ENOMEM;
            b->data = d;
            b->cap = cap;
        }
        memcpy(b->data + b->len, chunk, take);
        b->len += take;
    }
    return 0;
}

static char *
buf_finish(SpawnBuf *b)
{
    if (!b->data) {
        b->data = malloc(1);
        if (!b->data)
            return NULL;
    }
    b->data[b->len] = '\0';
    char *s = b->data;
    b->data = NULL;
    return s;
}

/* Non-blocking check for the child's exit, leaving it a zombie so its pid (and process group
 * id) cannot be reused before we reap it. */
static bool
child_exited(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    for (;;) {
        if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0)
            return si.si_pid == pid;
        if (errno != EINTR)
            return true; /* nothing left to wait for */
    }
}

static int
reap(pid_t pid, int *ret_status)
{
    for (;;) {
        if (waitpid(pid, ret_status, 0) == pid)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

int
spawn_run(const char *const argv[], const SpawnLimits *limits, size_t stdout_max, char **ret_stdout,
          char **ret_stderr)
{
    if (ret_stdout)
        *ret_stdout = NULL;
    if (ret_stderr)
        *ret_stderr = NULL;
    if (!argv || !argv[0] || argv[0][0] != '/')
        return -EINVAL;

    /* Everything the child needs is prepared here: after clone it may not allocate. */
    struct rlimit as_lim, cpu_lim;
    const struct rlimit *as = NULL, *cpu = NULL;
    if (limits && limits->address_space_bytes) {
        as_lim.rlim_cur = as_lim.rlim_max = (rlim_t)limits->address_space_bytes;
        as = &as_lim;
    }
    if (limits && limits->cpu_seconds) {
        /* The soft limit sends SIGXCPU; the hard limit one second later is SIGKILL. */
        cpu_lim.rlim_cur = (rlim_t)limits->cpu_seconds;
        cpu_lim.rlim_max = (rlim_t)limits->cpu_seconds + 1;
        cpu = &cpu_lim;
    }
    long open_max = sysconf(_SC_OPEN_MAX);
    int max_fd = open_max > 0 && open_max < 65536 ? (int)open_max : 65536;

    _cleanup_close_ int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0)
        return -errno;
    int out_p[2] = {-1, -1}, err_p[2] = {-1, -1}, st_p[2] = {-1, -1};
    if (pipe2(out_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0 || pipe2(st_p, O_CLOEXEC) < 0) {
        int r = -errno;
        close_pair(out_p);
        close_pair(err_p);
        close_pair(st_p);
        return r;
    }

    void *stack = mmap(NULL, SPAWN_CHILD_STACK, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        int r = -errno;
        close_pair(out_p);
        close_pair(err_p);
        close_pair(st_p);
        return r;
    }
    SpawnChild child = {
        .argv = argv,
        .as = as,
        .cpu = cpu,
        .devnull = devnull,
        .out_w = out_p[1],
        .err_w = err_p[1],
        .status_w = st_p[1],
        .max_fd = max_fd,
    };
    /* Block signals across the clone so no handler of ours runs in the child (on our memory)
     * before it resets the dispositions; the child unblocks them just before execv. */
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    pid_t pid = clone(child_exec, (char *)stack + SPAWN_CHILD_STACK,
                      CLONE_VM | CLONE_VFORK | SIGCHLD, &child);
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    /* CLONE_VFORK: the child has exec'd or exited, and uses the stack no more. */
    munmap(stack, SPAWN_CHILD_STACK);

    close(out_p[1]);
    close(err_p[1]);
    close(st_p[1]);
    out_p[1] = err_p[1] = st_p[1] = -1;
    if (pid < 0) {
        close_pair(out_p);
        close_pair(err_p);
        close_pair(st_p);
        return -fork_errno;
    }
    /* The status pipe closes on a successful execv, or carries the errno of the failure. */
    int child_errno = 0;
    size_t got = 0;
    while (got < sizeof(child_errno)) {
        ssize_t n = read(st_p[0], (char *)&child_errno + got, sizeof(child_errno) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close_pair(st_p);
    if (got == sizeof(child_errno)) {
        int status;
        close_pair(out_p);
        close_pair(err_p);
        (void)reap(pid, &status);
        return child_errno > 0 ? -child_errno : -EIO;
    }

    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    uint64_t deadline = 0;
    if (limits && limits->timeout_ms) {
        uint64_t start = now_ms();
        deadline = limits->timeout_ms < UINT64_MAX - start ? start + limits->timeout_ms : 0;
    }
    SpawnBuf out = {.max = stdout_max, .keep = ret_stdout != NULL};
    SpawnBuf err = {.max = SPAWN_STDERR_MAX, .keep = true};
    bool out_open = true, err_open = true, exited = false, timed_out = false;
    int r = 0;

    while ((out_open || err_open || !exited) && r == 0) {
        struct pollfd fds[3];
        SpawnBuf *bufs[3];
        int *pipes[3];
        nfds_t n = 0;
        if (out_open) {
            fds[n] = (struct pollfd){.fd = out_p[0], .events = POLLIN};
            bufs[n] = &out;
            pipes[n++] = &out_p[0];
        }
        if (err_open) {
            fds[n] = (struct pollfd){.fd = err_p[0], .events = POLLIN};
            bufs[n] = &err;
            pipes[n++] = &err_p[0];
        }
        nfds_t n_pipes = n;
        if (!exited && pidfd >= 0)
            fds[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};

        int wait_ms = -1;
        if (deadline) {
            uint64_t now = now_ms();
            if (now >= deadline) {
                timed_out = true;
                break;
            }
            uint64_t left = deadline - now;
            wait_ms = left > INT32_MAX ? INT32_MAX : (int)left;
        }
        if (!exited && pidfd < 0 && !out_open && !err_open)
            wait_ms = wait_ms >= 0 && wait_ms < SPAWN_POLL_TICK_MS ? wait_ms : SPAWN_POLL_TICK_MS;

        int pr = poll(fds, n, wait_ms);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            r = -errno;
            break;
        }
        for (nfds_t i = 0; i < n_pipes; i++) {
            if (!fds[i].revents)
                continue;
            int d = drain(fds[i].fd, bufs[i]);
            if (d < 0) {
                r = d;
                break;
            }
            if (d > 0) {
                close(*pipes[i]);
                *pipes[i] = -1;
                if (bufs[i] == &out)
                    out_open = false;
                else
                    err_open = false;
            }
        }
        if (out.overflow)
            r = -EFBIG;
        if (!exited && (pidfd < 0 || (n > n_pipes && fds[n - 1].revents)))
            exited = child_exited(pid);
    }

    if (pidfd >= 0)
        close(pidfd);
    close_pair(out_p);
    close_pair(err_p);

    /* The child is not reaped yet, so its pid still names our process group. */
    if (timed_out || r < 0)
        (void)kill(-pid, SIGKILL);
    int status = 0;
    int wr = reap(pid, &status);

    if (ret_stderr)
        *ret_stderr = buf_finish(&err);
    if (ret_stdout)
        *ret_stdout = buf_finish(&out);
    free(out.data);
    free(err.data);

    if (timed_out)
        return -ETIMEDOUT;
    if (r < 0)
        return r;
    if (wr < 0)
        return wr;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return -ECHILD;
}

int
spawn_find_program(const char *name, char **ret_path)
{
    if (!name || !*name || strchr(name, '/') || streq(name, ".") || streq(name, ".."))
        return -EINVAL;
    for (size_t i = 0; i < ELEMENTSOF(spawn_search_dirs); i++) {
        _cleanup_free_ char *p = str_printf("%s/%s", spawn_search_dirs[i], name);
        if (!p)
            return -ENOMEM;
        struct stat st;
        if (stat(p, &st) < 0 || !S_ISREG(st.st_mode) || access(p, X_OK) < 0)
            continue;
        *ret_path = TAKE_PTR(p);
        return 0;
    }
    return -ENOENT;
}

int
spawn_start(const char *const argv[], int (*pre_exec)(void *arg), void *arg)
{
    if (!argv || !argv[0] || argv[0][0] != '/')
        return -EINVAL;
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(devnull);
        return -e;
    }
    if (pid == 0) {
        if (pre_exec && pre_exec(arg) < 0)
            _exit(127);
        if (dup2(devnull, 0) < 0 || dup2(2, 1) < 0)
            _exit(127);
        if (close_range(3, ~0u, 0) < 0) {
            for (int fd = 3; fd < 65536; fd++)
                close(fd);
        }
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; sig++)
            (void)sigaction(sig, &sa, NULL);
        sigset_t none;
        sigemptyset(&none);
        (void)sigprocmask(SIG_SETMASK, &none, NULL);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(devnull);
    return pid;
}
