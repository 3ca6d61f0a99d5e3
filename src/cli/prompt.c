#include "prompt.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "../util/strutil.h"
#include "cli.h"

/* What a signal handler needs to give the terminal its echo back. */
static int prompt_tty_fd = -1;
static struct termios prompt_saved;

void
password_clear(Password *p)
{
    explicit_bzero(p, sizeof(*p));
}

static void
prompt_on_signal(int sig)
{
    if (prompt_tty_fd >= 0) {
        tcsetattr(prompt_tty_fd, TCSAFLUSH, &prompt_saved);
        (void)!write(prompt_tty_fd, "\n", 1);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Reads up to a newline or EOF. 0, -EFBIG (longer than PROMPT_PASSWORD_MAX), -EINVAL (a NUL
 * byte), -ENODATA (EOF before anything) or -errno. */
static int
prompt_read_line(int fd, Password *p)
{
    bool eof = false;
    p->len = 0;
    for (;;) {
        char ch;
        ssize_t n = read(fd, &ch, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0) {
            eof = true;
            break;
        }
        if (ch == '\n')
            break;
        if (ch == '\0')
            return -EINVAL;
        if (p->len >= sizeof(p->buf) - 1) {
            /* Keep reading to the end of the line so nothing of it is left for the next read. */
            p->len = sizeof(p->buf);
            continue;
        }
        p->buf[p->len++] = ch;
    }
    if (p->len == sizeof(p->buf))
        return -EFBIG;
    if (p->len > 0 && p->buf[p->len - 1] == '\r')
        p->len--;
    p->buf[p->len] = '\0';
    if (eof && p->len == 0)
        return -ENODATA;
    return 0;
}

static int
prompt_report(int r, const char *where)
{
    if (r == -EFBIG)
        fprintf(stderr, "error: the password is longer than %d bytes\n", PROMPT_PASSWORD_MAX);
    else if (r == -EINVAL)
        fprintf(stderr, "error: the password contains a NUL byte\n");
    else if (r == -ENODATA)
        fprintf(stderr, "error: no password on %s\n", where);
    else
        fprintf(stderr, "error: cannot read the password from %s: %s\n", where, strerror(-r));
    return CLI_EXIT_USAGE;
}

static int
prompt_tty_once(int fd, const char *prompt, Password *p)
{
    struct termios quiet = prompt_saved;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK);
    quiet.c_lflag |= ECHONL | ICANON;
    if (write_full(fd, prompt, strlen(prompt)) < 0 || tcsetattr(fd, TCSAFLUSH, &quiet) < 0)
        return -errno;
    int r = prompt_read_line(fd, p);
    tcsetattr(fd, TCSAFLUSH, &prompt_saved);
    return r;
}

static int
prompt_tty(const char *prompt, bool confirm, Password *ret)
{
    int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "error: no terminal to ask for the password on; use --password-stdin\n");
        return CLI_EXIT_USAGE;
    }
    if (tcgetattr(fd, &prompt_saved) < 0) {
        fprintf(stderr, "error: cannot set up the terminal: %s\n", strerror(errno));
        close(fd);
        return CLI_EXIT_USAGE;
    }
    struct sigaction sa = {.sa_handler = prompt_on_signal}, old[4];
    static const int sigs[4] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    prompt_tty_fd = fd;
    for (size_t i = 0; i < 4; i++)
        sigaction(sigs[i], &sa, &old[i]);

    int exit_code = CLI_EXIT_OK;
    int r = prompt_tty_once(fd, prompt, ret);
    if (r < 0) {
        exit_code = prompt_report(r, "the terminal");
    } else if (confirm) {
        Password again;
        r = prompt_tty_once(fd, "Repeat the password: ", &again);
        if (r < 0)
            exit_code = prompt_report(r, "the terminal");
        else if (again.len != ret->len || memcmp(again.buf, ret->buf, ret->len) != 0) {
            fprintf(stderr, "error: the passwords do not match\n");
            exit_code = CLI_EXIT_USAGE;
        }
        password_clear(&again);
    }

    for (size_t i = 0; i < 4; i++)
        sigaction(sigs[i], &old[i], NULL);
    prompt_tty_fd = -1;
    close(fd);
    return exit_code;
}

int
prompt_password(const char *prompt, bool from_stdin, bool confirm, Password *ret)
{
    int exit_code;
    *ret = (Password){0};
    if (from_stdin) {
        int r = prompt_read_line(STDIN_FILENO, ret);
        exit_code = r < 0 ? prompt_report(r, "standard input") : CLI_EXIT_OK;
    } else {
        exit_code = prompt_tty(prompt, confirm, ret);
    }
    if (exit_code == CLI_EXIT_OK && ret->len == 0) {
        fprintf(stderr, "error: the password is empty\n");
        exit_code = CLI_EXIT_USAGE;
    }
    if (exit_code != CLI_EXIT_OK)
        password_clear(ret);
    return exit_code;
}
