/* nimbus: the command-line client of the Nimbus API. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/cleanup.h"
#include "../util/strutil.h"
#include "api.h"
#include "cli.h"
#include "output.h"

static const char global_help[] =
    "usage: nimbus [--json] [--url URL] [--token TOKEN] [--cacert FILE] COMMAND [ARGS]\n"
    "\n"
    "Commands:\n"
    "  login --user NAME [--password-stdin]\n"
    "  logout | whoami\n"
    "  image create NAME --file PATH [--format qcow2|raw]\n"
    "  image list | show NAME | delete NAME\n"
    "  flavor create NAME --vcpus N --ram MIB --disk GIB\n"
    "  flavor list | show NAME | delete NAME\n"
    "  vm create NAME --image IMAGE --flavor FLAVOR [--hostname H] [--user-data FILE]\n"
    "            [--group G] [--host H] [--label K=V]... [--network NET[:ip=IP]]...\n"
    "            [--secgroup G]... [--wait]\n"
    "  vm list | show NAME | console-log NAME [--bytes N]\n"
    "  vm start|stop|reboot|pause|resume|delete NAME [--wait]\n"
    "  vm migrate NAME [--host H] [--offline] [--wait]\n"
    "  vm nic add NAME --network NET [--ip IP] [--secgroup G]... [--wait]\n"
    "  vm nic remove NAME MAC [--wait]\n"
    "  vm secgroup add|remove NAME GROUP\n"
    "  vm label set NAME [KEY=VALUE]...\n"
    "  task show ID | list [--vm NAME] | cancel ID\n"
    "  host add NAME --uri URI [--cpu-ratio X] [--ram-ratio X] [--disk-ratio X] [--label K=V]...\n"
    "  host list | show NAME | enable NAME | disable NAME | remove NAME\n"
    "  host set NAME [--cpu-ratio X] [--ram-ratio X] [--disk-ratio X] [--label K=V]...\n"
    "           [--clear-labels]\n"
    "  host maintenance NAME [--wait]\n"
    "  group create NAME --policy affinity|anti-affinity|soft-anti-affinity\n"
    "  group list | show NAME | delete NAME\n"
    "  network create NAME --cidr CIDR [--type nat|isolated|vxlan|bridged|vlan]\n"
    "            [--gateway IP|none] [--dhcp on|off] [--dns IP]... [--mtu N] [--vni N]\n"
    "            [--vlan N] [--bridge IF] [--parent IF] [--shared]\n"
    "  network list | show NAME | delete NAME\n"
    "  port list [--network NET]\n"
    "  secgroup create NAME [--description D] | list | show NAME | delete NAME\n"
    "  secgroup rule add GROUP --ingress|--egress [--proto tcp|udp|icmp|any] [--port N[-M]]\n"
    "            [--cidr A.B.C.D/N | --remote-group G] | rule list GROUP | rule delete GROUP ID\n"
    "  pool create NAME --type dir|logical|rbd|iscsi|netfs [--host H] [--path P]\n"
    "            [--monitors A,B] [--rbd-pool P] [--user U] [--key-file F] [--portal H:P]\n"
    "            [--target IQN] [--initiator IQN] [--server S] [--export P] [--vg VG]\n"
    "  pool list | show NAME | delete NAME\n"
    "  volume create NAME --size GIB [--pool P] [--host H] [--from-image I]\n"
    "            [--from-snapshot VOL/SNAP] [--wait]\n"
    "  volume list [--vm VM] | show NAME | delete NAME | resize NAME --size GIB\n"
    "  volume attach NAME VM [--bus virtio|scsi] | detach NAME [VM]\n"
    "  volume snapshot create VOL NAME [--wait] | list VOL | show VOL NAME | delete VOL NAME\n"
    "  snapshot create VM NAME [--memory] [--description D] [--wait]\n"
    "  snapshot list VM | show VM NAME | revert VM NAME | delete VM NAME\n"
    "  backup create VM [--incremental] [--pool P] [--wait] | list [VM] | show ID\n"
    "  backup delete ID | restore ID --as NAME [--pool P] | --as-vm NAME [--wait]\n"
    "  project create NAME [--quota vcpus=N,ram=MIB,disk=GIB,vms=N,images=N]\n"
    "  project list | show NAME | delete NAME | set-quota NAME [--quota ...] [--unlimited ...]\n"
    "  user create NAME --project P --role admin|member|reader|metrics [--password-stdin]\n"
    "  user list | show NAME | delete NAME\n"
    "  token create [--name N] [--expires 30d] | list | revoke ID\n"
    "  quota show [--project P]\n"
    "  usage [--project P] [--from DATE] [--to DATE]\n"
    "  audit list [--project P] [--since 1h] [--limit N]\n"
    "  events [--follow] [--since 10m|DATE|ID]\n"
    "  apply -f STACK.yaml [--dry-run] | delete -f STACK.yaml [--dry-run]\n"
    "  export vm NAME     (the stack YAML that recreates it)\n"
    "  version\n"
    "\n"
    "Global options (anywhere on the line):\n"
    "  --json          print the API's JSON instead of tables\n"
    "  --url URL       API address (else $NIMBUS_URL, the config file, " CLI_DEFAULT_URL ")\n"
    "  --token TOKEN   API token (else $NIMBUS_TOKEN, the config file)\n"
    "  --cacert FILE   CA certificates (PEM) to verify an https:// API with (else\n"
    "                  $NIMBUS_CACERT, the config file, the system's)\n"
    "  -h, --help      help; 'nimbus GROUP COMMAND --help' for a command\n"
    "\n"
    "Config file: $NIMBUS_CONFIG, ~/.config/nimbus/config or /etc/nimbus/cli.conf (the first\n"
    "that exists), with 'url = ...', 'token = ...' and 'cacert = ...' lines. 'nimbus login'\n"
    "writes $NIMBUS_CONFIG or ~/.config/nimbus/config.\n"
    "\n"
    "Exit status: 0 ok, 1 API error or failed task, 2 usage error, 3 cannot connect.\n";

void
cli_clear(Cli *cli)
{
    client_free(cli->client);
    cli->client = NULL;
    free(cli->url);
    cli->url = NULL;
    free(cli->cacert);
    cli->cacert = NULL;
    free(cli->config_path);
    cli->config_path = NULL;
}

static int
cmd_version(Cli *cli, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (streq(argv[i], "-h") || streq(argv[i], "--help")) {
            printf("usage: nimbus version\n\nPrint the versions of the CLI and the server.\n");
            return CLI_EXIT_OK;
        }
        fprintf(stderr, "error: unexpected argument '%s'\nusage: nimbus version\n", argv[i]);
        return CLI_EXIT_USAGE;
    }
    if (!cli->json)
        printf("client: %s\n", NIMBUS_VERSION);
    json_auto_t *health = NULL;
    int r = api_call(cli, "GET", "/v1/health", NULL, &health);
    if (cli->json) {
        json_auto_t *out =
            json_pack("{s:s, s:O?}", "client", NIMBUS_VERSION, "server", r == 0 ? health : NULL);
        if (out)
            output_json(out);
    } else if (r == 0) {
        _cleanup_free_ char *v = output_sanitize(api_str(health, "version") ?: "unknown");
        _cleanup_free_ char *s = output_sanitize(api_str(health, "status") ?: "unknown");
        printf("server: %s (%s)\n", v ?: "", s ?: "");
    }
    return r;
}

/*
 * Global options may come before or after the command: they are taken out of argv here, so
 * the command groups see only their own. "--" ends them.
 */
static int
main_take_global_options(Cli *cli, int *argc, char **argv)
{
    int out = 1;
    bool done = false;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        const char **target = NULL;
        const char *name = NULL;
        if (done) {
            argv[out++] = argv[i];
            continue;
        }
        if (streq(a, "--")) {
            done = true;
            argv[out++] = argv[i];
            continue;
        }
        if (streq(a, "--json")) {
            cli->json = true;
            continue;
        }
        if (str_startswith(a, "--url")) {
            target = &cli->url_opt;
            name = "--url";
        } else if (str_startswith(a, "--token")) {
            target = &cli->token_opt;
            name = "--token";
        } else if (str_startswith(a, "--cacert")) {
            target = &cli->cacert_opt;
            name = "--cacert";
        }
        const char *rest = target ? a + strlen(name) : NULL;
        if (!rest || (*rest != '\0' && *rest != '=')) {
            argv[out++] = argv[i];
            continue;
        }
        if (*rest == '=') {
            *target = rest + 1;
        } else if (i + 1 < *argc) {
            *target = argv[++i];
        } else {
            fprintf(stderr, "error: option '%s' needs a value\n", name);
            return CLI_EXIT_USAGE;
        }
    }
    *argc = out;
    argv[out] = NULL;
    return 0;
}

int
main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(Cli *cli, int argc, char **argv);
    } groups[] = {
        {"vm", cmd_vm},         {"image", cmd_image},       {"flavor", cmd_flavor},
        {"task", cmd_task},     {"version", cmd_version},   {"login", cmd_login},
        {"logout", cmd_logout}, {"whoami", cmd_whoami},     {"project", cmd_project},
        {"user", cmd_user},     {"token", cmd_token},       {"quota", cmd_quota},
        {"usage", cmd_usage},   {"audit", cmd_audit},       {"events", cmd_events},
        {"host", cmd_host},     {"group", cmd_group},       {"network", cmd_network},
        {"port", cmd_port},     {"secgroup", cmd_secgroup}, {"pool", cmd_pool},
        {"volume", cmd_volume}, {"apply", cmd_apply},       {"delete", cmd_delete},
        {"export", cmd_export}, {"snapshot", cmd_snapshot}, {"backup", cmd_backup},
    };
    Cli cli = {0};
    int r = main_take_global_options(&cli, &argc, argv);
    if (r != 0)
        return r;
    if (argc < 2) {
        fputs(global_help, stderr);
        return CLI_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (streq(cmd, "-h") || streq(cmd, "--help") || streq(cmd, "help")) {
        fputs(global_help, stdout);
        return CLI_EXIT_OK;
    }
    if (streq(cmd, "--version"))
        cmd = "version";

    r = -1;
    for (size_t i = 0; i < ELEMENTSOF(groups); i++) {
        if (streq(cmd, groups[i].name)) {
            r = groups[i].run(&cli, argc - 2, argv + 2);
            break;
        }
    }
    if (r < 0) {
        fprintf(stderr, "error: unknown command '%s'\nTry 'nimbus --help'.\n", cmd);
        r = CLI_EXIT_USAGE;
    }
    cli_clear(&cli);
    if (fflush(stdout) != 0 && r == CLI_EXIT_OK)
        r = CLI_EXIT_API;
    return r;
}
