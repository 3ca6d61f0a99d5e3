/* nimbus image create|list|show|delete */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../model/validate.h"
#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "../util/timeutil.h"
#include "api.h"
#include "args.h"
#include "resource.h"

#define PROGRESS_BAR_WIDTH 30
#define PROGRESS_REDRAW_MS 100

static const OutputField image_columns[] = {
    {"NAME", "name", NULL, false},
    {"STATE", "state", NULL, false},
    {"FORMAT", "disk_format", NULL, false},
    {"SIZE", "size_bytes", output_fmt_bytes, false},
    {"VIRTUAL SIZE", "virtual_size_bytes", output_fmt_bytes, false},
    {"CREATED", "created_at", NULL, true},
    {"ID", "id", NULL, true},
};

static const OutputField image_fields[] = {
    {"id", "id", NULL, false},
    {"name", "name", NULL, false},
    {"state", "state", NULL, false},
    {"disk_format", "disk_format", NULL, false},
    {"size_bytes", "size_bytes", output_fmt_bytes_exact, false},
    {"virtual_size_bytes", "virtual_size_bytes", output_fmt_bytes_exact, false},
    {"created_at", "created_at", NULL, false},
    {"updated_at", "updated_at", NULL, false},
};

static const Resource image_resource = {
    .collection = "images",
    .columns = image_columns,
    .n_columns = ELEMENTSOF(image_columns),
    .fields = image_fields,
    .n_fields = ELEMENTSOF(image_fields),
};

typedef struct Progress {
    bool draw;
    uint64_t start_ms;
    uint64_t last_ms;
} Progress;

static volatile sig_atomic_t upload_interrupted;

static void
image_on_sigint(int sig)
{
    upload_interrupted = 1;
}

static void
progress_draw(Progress *p, uint64_t sent, uint64_t total)
{
    uint64_t now = nb_monotonic_ms();
    unsigned pct = total ? (unsigned)(sent * 100 / total) : 100;
    unsigned fill = total ? (unsigned)(sent * PROGRESS_BAR_WIDTH / total) : PROGRESS_BAR_WIDTH;
    char bar[PROGRESS_BAR_WIDTH + 1];
    for (unsigned i = 0; i < PROGRESS_BAR_WIDTH; i++)
        bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    bar[PROGRESS_BAR_WIDTH] = '\0';
    uint64_t elapsed = now - p->start_ms;
    _cleanup_free_ char *done = output_human_bytes(sent);
    _cleanup_free_ char *all = output_human_bytes(total);
    _cleanup_free_ char *rate = elapsed ? output_human_bytes(sent * 1000 / elapsed) : NULL;
    fprintf(stderr, "\r\033[K[%s] %3u%%  %s / %s  %s/s", bar, pct, done ?: "?", all ?: "?",
            rate ?: "-");
    p->last_ms = now;
}

static int
image_progress(void *userdata, uint64_t sent, uint64_t total)
{
    Progress *p = userdata;
    if (upload_interrupted)
        return 1;
    /* curl reports 0 totals until the upload starts. */
    if (p->draw && total > 0 && nb_monotonic_ms() - p->last_ms >= PROGRESS_REDRAW_MS)
        progress_draw(p, sent, total);
    return 0;
}

/* A failed upload leaves nothing behind: the queued image goes too. */
static void
image_discard(Cli *cli, const char *id)
{
    _cleanup_free_ char *path = NULL;
    if (api_path(cli, "images", id, NULL, &path) != 0)
        return;
    if (api_call_full(cli, "DELETE", path, NULL, true, NULL, NULL) != 0)
        fprintf(stderr, "warning: could not delete the incomplete image %s\n", id);
}

static int
image_upload(Cli *cli, const char *id, int fd, uint64_t size, bool progress, json_t **ret)
{
    Client *c;
    _cleanup_free_ char *path = NULL;
    _cleanup_free_ char *err = NULL;
    int r = api_path(cli, "images", id, "/file", &path);
    if (r != 0)
        return r;
    r = api_client(cli, &c);
    if (r != 0)
        return r;

    Progress p = {.draw = progress, .start_ms = nb_monotonic_ms()};
    struct sigaction sa = {.sa_handler = image_on_sigint}, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    upload_interrupted = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    ClientResponse resp = {0};
    r = client_upload(c, path, fd, size, image_progress, &p, &resp, &err);

    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (progress) {
        if (r == 0 && resp.status >= 200 && resp.status < 300)
            progress_draw(&p, size, size);
        fputc('\n', stderr);
    }

    if (r < 0) {
        if (upload_interrupted) {
            fprintf(stderr, "error: upload interrupted\n");
            return CLI_EXIT_API;
        }
        fprintf(stderr, "error: upload to %s failed: %s\n", cli->url, err ?: "out of memory");
        return CLI_EXIT_CONNECT;
    }
    if (resp.status < 200 || resp.status >= 300) {
        api_print_error(&resp);
        client_response_clear(&resp);
        return CLI_EXIT_API;
    }
    *ret = json_loadb(resp.body, resp.body_len, 0, NULL);
    client_response_clear(&resp);
    if (!json_is_object(*ret)) {
        json_decref(*ret);
        *ret = NULL;
        fprintf(stderr, "error: INVALID_RESPONSE: the server sent invalid JSON\n");
        return CLI_EXIT_API;
    }
    return CLI_EXIT_OK;
}

static void
image_print_answer(Cli *cli, json_t *img, json_t *resp)
{
    resource_print(cli, &image_resource, img);
}

/* image create NAME --from-vm VM: a task on the server (202 {image, task}); with --wait the
 * image once the task has ended, and the task's error when it failed. */
static int
image_create_from_vm(Cli *cli, const Args *a, const char *name, const char *vm)
{
    uint64_t wait_s;
    int r = cli_wait_timeout(a, &wait_s);
    if (r != 0)
        return r;
    json_auto_t *body = json_pack("{s:s, s:s}", "name", name, "from_vm", vm);
    json_auto_t *resp = NULL;
    if (!body)
        return CLI_EXIT_API;
    r = api_call(cli, "POST", "/v1/images", body, &resp);
    if (r != 0)
        return r;
    json_t *img;
    const char *task_id;
    r = cli_task_answer(cli, a, resp, "image", image_print_answer, &img, &task_id);
    if (r != 0 || !task_id)
        return r;
    json_auto_t *final = NULL, *now = NULL;
    r = task_wait(cli, task_id, wait_s, &final);
    if (r != 0)
        return r;
    if (streq(api_str(final, "state"), "failed"))
        return cli_task_failed(final);
    r = resource_get(cli, &image_resource, api_str(img, "id"), &now);
    if (r == 0)
        resource_print(cli, &image_resource, now);
    return r;
}

static int
image_create(Cli *cli, const Args *a)
{
    const char *name = a->positional[0];
    const char *file = args_get(a, "file"), *format = args_get(a, "format");
    const char *from_vm = args_get(a, "from-vm");
    if (!nb_name_is_valid(name))
        return args_usage_error(a,
                                "invalid name '%s': use [A-Za-z0-9][A-Za-z0-9._-]{0,62}, "
                                "not a UUID",
                                name);
    if (from_vm && file)
        return args_usage_error(a, "--file and --from-vm exclude each other");
    if (from_vm)
        return image_create_from_vm(cli, a, name, from_vm);
    if (!file)
        return args_usage_error(a, "--file or --from-vm is required");
    if (format && !streq(format, "qcow2") && !streq(format, "raw"))
        return args_usage_error(a, "--format must be qcow2 or raw");

    _cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        fprintf(stderr, "error: cannot open %s: %s\n", file, strerror(errno));
        return CLI_EXIT_USAGE;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "error: %s is not a regular file\n", file);
        return CLI_EXIT_USAGE;
    }

    json_auto_t *body = json_pack("{s:s}", "name", name);
    if (!body)
        return CLI_EXIT_API;
    if (format)
        json_object_set_new(body, "disk_format", json_string(format));
    json_auto_t *queued = NULL;
    int r = api_call(cli, "POST", "/v1/images", body, &queued);
    if (r != 0)
        return r;
    const char *id = api_str(queued, "id");
    if (!id) {
        fprintf(stderr, "error: INVALID_RESPONSE: the new image has no id\n");
        return CLI_EXIT_API;
    }

    bool progress = args_has(a, "progress") || isatty(STDERR_FILENO);
    json_auto_t *image = NULL;
    r = image_upload(cli, id, fd, (uint64_t)st.st_size, progress, &image);
    if (r != 0) {
        image_discard(cli, id);
        return r;
    }
    resource_print(cli, &image_resource, image);
    return CLI_EXIT_OK;
}

static int
image_list(Cli *cli, const Args *a)
{
    return resource_list(cli, &image_resource, "", args_has(a, "wide"));
}

static int
image_show(Cli *cli, const Args *a)
{
    return resource_show(cli, &image_resource, a->positional[0]);
}

static int
image_delete(Cli *cli, const Args *a)
{
    return resource_delete(cli, &image_resource, a->positional[0]);
}

static const ArgSpec create_specs[] = {{"file", true},    {"format", true}, {"progress", false},
                                       {"from-vm", true}, {"wait", false},  {"timeout-wait", true}};
static const ArgSpec list_specs[] = {{"wide", false}};

static const Command image_commands[] = {
    {"create", "NAME --file PATH [--format qcow2|raw] [--progress] | NAME --from-vm VM [--wait]",
     "Upload a disk image, or make one from a VM's root disk.",
     "  --file PATH            the image file; the server detects the format from the content\n"
     "  --format FORMAT        qcow2 or raw: refused if the content is something else\n"
     "  --progress             draw the progress bar even when stderr is not a terminal\n"
     "  --from-vm VM           the VM's root disk, flattened into a qcow2 image (running VMs:\n"
     "                         a point-in-time copy, the VM keeps running)\n"
     "  --wait                 follow the task until it ends; exit 1 if it failed\n"
     "  --timeout-wait SECONDS give up waiting after this long (default 600)\n",
     image_create, create_specs, ELEMENTSOF(create_specs), 1, 1, NULL},
    {"list", "[--wide]", "List images.",
     "  --wide                 also show creation time and id\n", image_list, list_specs,
     ELEMENTSOF(list_specs), 0, 0, NULL},
    {"show", "NAME|ID", "Show an image.", NULL, image_show, NULL, 0, 1, 1, NULL},
    {"delete", "NAME|ID", "Delete an image that no VM uses.", NULL, image_delete, NULL, 0, 1, 1,
     NULL},
};

int
cmd_image(Cli *cli, int argc, char **argv)
{
    return args_dispatch(cli, "image", "Manage disk images.", image_commands,
                         ELEMENTSOF(image_commands), argc, argv);
}
