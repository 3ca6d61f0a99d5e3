/* Security groups in the store: the defaults a new group gets, names and scoping, the quota,
 * rules (dedupe, remote groups of the same project only), a port's groups (replace, project),
 * members' addresses, the ports a change reaches, and what keeps a group from going. */
#include "store/store_internal.h"
#include "store_fixture.h"

#define POOL 0x0ac80000u /* 10.200.0.0/16 */

static int
setup(void **state)
{
    Fixture *f = fixture_new("sg");
    fixture_open_seeded(f, IMAGE_STATE_ACTIVE);
    *state = f;
    return 0;
}

static void
make_project(Fixture *f, const char *name, Project *p)
{
    NbError *err = NULL;
    memset(p, 0, sizeof(*p));
    nb_uuid_generate(p->id);
    snprintf(p->name, sizeof(p->name), "%s", name);
    for (int i = 0; i < _QUOTA_MAX; i++)
        p->quota.limit[i] = -1;
    nb_timestamp_now(p->created_at);
    assert_int_equal(project_store_insert(f->s, p, &err), 0);
}

static int
add_group(Fixture *f, const char *project, const char *name, SecGroup *g, NbError **err)
{
    memset(g, 0, sizeof(*g));
    nb_uuid_generate(g->id);
    snprintf(g->project, sizeof(g->project), "%s", project);
    snprintf(g->name, sizeof(g->name), "%s", name);
    nb_timestamp_now(g->created_at);
    return secgroup_store_insert(f->s, g, err);
}

static void
group_ok(Fixture *f, const char *project, const char *name, SecGroup *g)
{
    NbError *err = NULL;
    if (add_group(f, project, name, g, &err) < 0)
        fail_msg("%s: %s %s", name, err->code, err->message);
}

/* A rule from its JSON, added to group (id or name) in scope: 0 added, 1 existed, -1. */
static int
add_rule(Fixture *f, const char *scope, const char *group, const char *body, SecRule *r,
         NbError **err)
{
    json_error_t e;
    json_t *j = json_loads(body, 0, &e);
    assert_non_null(j);
    NbError *perr = NULL;
    if (secrule_from_request(j, r, &perr) < 0)
        fail_msg("%s: %s", body, perr->message);
    json_decref(j);
    snprintf(r->group_id, sizeof(r->group_id), "%s", group);
    return secgroup_store_rule_add(f->s, scope, r, err);
}

/* A VM of project with one port on the project's default network. */
static void
vm_port(Fixture *f, const char *name, const char *project, Port *p)
{
    NbError *err = NULL;
    Vm vm;
    Network n;
    insert_vm(f, name, "local", project, 1, 256, 1, NULL, &vm);
    assert_int_equal(network_store_ensure_default(f->s, project, POOL, 16, &n, &err), 0);
    memset(p, 0, sizeof(*p));
    snprintf(p->vm_id, sizeof(p->vm_id), "%s", vm.id);
    snprintf(p->network_id, sizeof(p->network_id), "%s", n.id);
    snprintf(p->mac, sizeof(p->mac), "52:54:00:05:%02x:%02x", (f->macs >> 8) & 0xff,
             f->macs & 0xff);
    f->macs++;
    if (port_store_add(f->s, p, &err) < 0)
        fail_msg("port: %s", err->message);
}

static void
test_insert_defaults(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Project a;
    make_project(f, "a", &a);
    SecGroup g, got;
    group_ok(f, a.id, "web", &g);
    SecRule *rules = NULL;
    size_t n = 0;
    assert_int_equal(secgroup_store_rules(f->s, g.id, &rules, &n, &err), 0);
    assert_int_equal(n, 2);
    SecRule want[2];
    secgroup_default_rules(g.id, want);
    /* Egress anywhere and ingress from the group itself, in either order. */
    bool seen[2] = {false, false};
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(rules[i].group_id, g.id);
        assert_true(nb_uuid_is_valid(rules[i].id));
        for (int k = 0; k < 2; k++)
            seen[k] = seen[k] || secrule_same(&rules[i], &want[k]);
    }
    assert_true(seen[0] && seen[1]);
    secrule_list_free(rules, n);
    /* By id and by name, in its project; another project sees nothing. */
    assert_int_equal(secgroup_store_get(f->s, a.id, "web", &got, &err), 0);
    assert_string_equal(got.id, g.id);
    assert_int_equal(secgroup_store_get(f->s, a.id, g.id, &got, &err), 0);
    assert_int_equal(secgroup_store_get(f->s, NULL, "web", &got, &err), 0);
    assert_int_equal(secgroup_store_get(f->s, NB_DEFAULT_PROJECT_ID, g.id, &got, &err), -1);
    expect_code(&err, NB_ERR_SECGROUP_NOT_FOUND);
    assert_int_equal(secgroup_store_get(f->s, NB_DEFAULT_PROJECT_ID, "web", &got, &err), -1);
    expect_code(&err, NB_ERR_SECGROUP_NOT_FOUND);
    /* Names are per project. */
    SecGroup dup;
    assert_int_equal(add_group(f, a.id, "web", &dup, &err), -1);
    expect_code(&err, NB_ERR_NAME_TAKEN);
    group_ok(f, NB_DEFAULT_PROJECT_ID, "web", &dup);
    SecGroup *list = NULL;
    assert_int_equal(secgroup_store_list(f->s, a.id, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    secgroup_list_free(list, n);
    assert_int_equal(secgroup_store_list(f->s, NULL, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    secgroup_list_free(list, n);
    /* A failed insert leaves no rules behind. */
    sqlite3_stmt *st = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(f->s->db, "SELECT count(*) FROM secgroup_rules", -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 4);
    sqlite3_finalize(st);
}

static void
test_quota(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Project a;
    make_project(f, "a", &a);
    a.quota.limit[QUOTA_SECGROUPS] = 2;
    assert_int_equal(project_store_set_quota(f->s, a.id, &a.quota, &err), 0);
    SecGroup g;
    group_ok(f, a.id, "one", &g);
    group_ok(f, a.id, "two", &g);
    assert_int_equal(add_group(f, a.id, "three", &g, &err), -1);
    expect_code(&err, NB_ERR_QUOTA_EXCEEDED);
    int64_t in_use[_QUOTA_MAX];
    assert_int_equal(project_store_quota_usage(f->s, a.id, in_use, &err), 0);
    assert_int_equal(in_use[QUOTA_SECGROUPS], 2);
    assert_int_equal(secgroup_store_delete(f->s, a.id, "two", &err), 0);
    group_ok(f, a.id, "three", &g);
}

static void
test_rules(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Project a, b;
    make_project(f, "a", &a);
    make_project(f, "b", &b);
    SecGroup web, db, other;
    group_ok(f, a.id, "web", &web);
    group_ok(f, a.id, "db", &db);
    group_ok(f, b.id, "db", &other);
    SecRule r, r2;
    const char *http = "{\"direction\":\"ingress\",\"protocol\":\"tcp\",\"port_min\":80,"
                       "\"cidr\":\"0.0.0.0/0\"}";
    assert_int_equal(add_rule(f, a.id, "web", http, &r, &err), 0);
    assert_string_equal(r.group_id, web.id);
    assert_true(nb_uuid_is_valid(r.id));
    /* The same rule again: the existing one, nothing added. */
    assert_int_equal(add_rule(f, a.id, web.id, http, &r2, &err), 1);
    assert_string_equal(r2.id, r.id);
    SecRule *rules = NULL;
    size_t n = 0;
    assert_int_equal(secgroup_store_rules(f->s, web.id, &rules, &n, &err), 0);
    assert_int_equal(n, 3);
    secrule_list_free(rules, n);
    /* A remote group by name, of the same project: stored as its id. */
    const char *pg = "{\"direction\":\"ingress\",\"protocol\":\"tcp\",\"port_min\":5432,"
                     "\"remote_group\":\"web\"}";
    assert_int_equal(add_rule(f, a.id, "db", pg, &r, &err), 0);
    assert_string_equal(r.remote_group, web.id);
    assert_int_equal(add_rule(f, NULL, db.id, pg, &r2, &err), 1); /* admin, same rule */
    assert_string_equal(r2.id, r.id);
    /* Another project's group as remote group: not found, whoever asks. */
    assert_int_equal(
        add_rule(f, b.id, "db", "{\"direction\":\"ingress\",\"remote_group\":\"web\"}", &r2, &err),
        -1);
    expect_code(&err, NB_ERR_SECGROUP_NOT_FOUND);
    char body[160];
    snprintf(body, sizeof(body), "{\"direction\":\"ingress\",\"remote_group\":\"%s\"}", other.id);
    assert_int_equal(add_rule(f, NULL, web.id, body, &r2, &err), -1);
    expect_code(&err, NB_ERR_SECGROUP_NOT_FOUND);
    /* Another project's group to add to: not found. */
    assert_int_equal(add_rule(f, b.id, web.id, http, &r2, &err), -1);
    expect_code(&err, NB_ERR_SECGROUP_NOT_FOUND);
    /* A rule the decoder would refuse is refused by the store too. */
    SecRule bad = {
        .direction = SECRULE_INGRESS, .protocol = SECRULE_PROTO_ICMP, .port_min = 1, .port_max = 1};
    snprintf(bad.group_id, sizeof(bad.group_id), "%s", web.id);
    assert_int_equal(secgroup_store_rule_add(f->s, a.id, &bad, &err), -1);
    expect_code(&err, NB_ERR_SECGROUP_RULE_INVALID);
    bad = (SecRule){.direction = SECRULE_INGRESS, .remote_net = 0x0a000001u, .remote_prefix = 8};
    snprintf(bad.group_id, sizeof(bad.group_id), "%s", web.id);
    assert_int_equal(secgroup_store_rule_add(f->s, a.id, &bad, &err), -1);
    expect_code(&err, NB_ERR_SECGROUP_RULE_INVALID);
    /* Delete: scoped. */
    assert_int_equal(secgroup_store_rule_delete(f->s, b.id, r.id, &err), -1);
    expect_code(&err, NB_ERR_SECGROUP_RULE_NOT_FOUND);
    /* web is db's remote group: it cannot go. */
    assert_int_equal(secgroup_store_delete(f->s, a.id, "web", &err), -1);
    expect_code(&err, NB_ERR_SECGROUP_IN_USE);
    assert_int_equal(secgroup_store_rule_delete(f->s, a.id, r.id, &err), 0);
    assert_int_equal(secgroup_store_rule_delete(f->s, a.id, r.id, &err), -1);
    expect_code(&err, NB_ERR_SECGROUP_RULE_NOT_FOUND);
    /* Its own rule naming itself does not keep it; its rules go with it. */
    assert_int_equal(secgroup_store_delete(f->s, b.id, "web", &err), -1);
    expect_code(&err, NB_ERR_SECGROUP_NOT_FOUND);
    assert_int_equal(secgroup_store_delete(f->s, a.id, "web", &err), 0);
    assert_int_equal(secgroup_store_rules(f->s, web.id, &rules, &n, &err), 0);
    assert_int_equal(n, 0);
    secrule_list_free(rules, n);
    assert_int_equal(secgroup_store_delete(f->s, a.id, web.id, &err), -1);
    expect_code(&err, NB_ERR_SECGROUP_NOT_FOUND);
}

static void
test_ports(void **state)
{
    Fixture *f = *state;
    NbError *err = NULL;
    Project a, b;
    make_project(f, "a", &a);
    make_project(f, "b", &b);
    SecGroup web, db, ssh, theirs;
    group_ok(f, a.id, "web", &web);
    group_ok(f, a.id, "db", &db);
    group_ok(f, a.id, "ssh", &ssh);
    group_ok(f, b.id, "web", &theirs);
    Port p1, p2, p3, pb;
    vm_port(f, "vm1", a.id, &p1);
    vm_port(f, "vm2", a.id, &p2);
    vm_port(f, "vm3", a.id, &p3);
    vm_port(f, "vmb", b.id, &pb);
    const char *const g1[] = {"web", ssh.id, "web"};
    assert_int_equal(secgroup_store_port_set(f->s, p1.id, g1, 3, &err), 0);
    const char *const g2[] = {"web"};
    assert_int_equal(secgroup_store_port_set(f->s, p2.id, g2, 1, &err), 0);
    const char *const g3[] = {"db"};
    assert_int_equal(secgroup_store_port_set(f->s, p3.id, g3, 1, &err), 0);
    SecGroup *groups = NULL;
    size_t n = 0;
    assert_int_equal(secgroup_store_port_groups(f->s, p1.id, &groups, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(groups[0].name, "ssh");
    assert_string_equal(groups[1].name, "web");
    secgroup_list_free(groups, n);
    /* Another project's group, by name or id: not found, and nothing changed. */
    const char *const gb[] = {"ssh", theirs.id};
    assert_int_equal(secgroup_store_port_set(f->s, p1.id, gb, 2, &err), -1);
    expect_code(&err, NB_ERR_SECGROUP_NOT_FOUND);
    assert_int_equal(secgroup_store_port_groups(f->s, p1.id, &groups, &n, &err), 0);
    assert_int_equal(n, 2);
    secgroup_list_free(groups, n);
    const char *const gdb[] = {"db"};
    assert_int_equal(secgroup_store_port_set(f->s, pb.id, gdb, 1, &err), -1);
    expect_code(&err, NB_ERR_SECGROUP_NOT_FOUND);
    assert_int_equal(secgroup_store_port_set(f->s, "no-such-port", gdb, 1, &err), -1);
    expect_code(&err, NB_ERR_PORT_NOT_FOUND);
    /* Members and their addresses. */
    Port *ports = NULL;
    assert_int_equal(secgroup_store_group_ports(f->s, web.id, &ports, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_true(streq(ports[0].id, p1.id) || streq(ports[1].id, p1.id));
    port_list_free(ports, n);
    uint32_t *ips = NULL;
    assert_int_equal(secgroup_store_member_ips(f->s, web.id, &ips, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ips[0], p1.ip < p2.ip ? p1.ip : p2.ip);
    assert_int_equal(ips[1], p1.ip < p2.ip ? p2.ip : p1.ip);
    free(ips);
    /* Where the groups' filters are: the hosts of their ports' VMs (all on "local" here); a
     * group still has a port on a host unless the only ones are the VM's being unplugged. */
    char(*hosts)[NB_NAME_MAX + 1] = NULL;
    assert_int_equal(secgroup_store_group_hosts(f->s, web.id, &hosts, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(hosts[0], "local");
    free(hosts);
    assert_int_equal(secgroup_store_group_on_host(f->s, web.id, "local", NULL, &err), 1);
    assert_int_equal(secgroup_store_group_on_host(f->s, web.id, "local", p1.vm_id, &err), 1);
    assert_int_equal(secgroup_store_group_on_host(f->s, web.id, "kvm9", NULL, &err), 0);
    assert_int_equal(secgroup_store_group_on_host(f->s, ssh.id, "local", NULL, &err), 1);
    assert_int_equal(secgroup_store_group_on_host(f->s, ssh.id, "local", p1.vm_id, &err), 0);
    /* db allows web in: a change of web's members reaches db's ports (p3) too. */
    SecRule r;
    assert_int_equal(add_rule(f, a.id, "db",
                              "{\"direction\":\"ingress\",\"protocol\":\"tcp\","
                              "\"port_min\":5432,\"remote_group\":\"web\"}",
                              &r, &err),
                     0);
    assert_int_equal(secgroup_store_affected_ports(f->s, web.id, &ports, &n, &err), 0);
    assert_int_equal(n, 3);
    port_list_free(ports, n);
    assert_int_equal(secgroup_store_affected_ports(f->s, ssh.id, &ports, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ports[0].id, p1.id);
    port_list_free(ports, n);
    /* In use by a port; replacing the port's groups frees it. */
    assert_int_equal(secgroup_store_delete(f->s, a.id, "ssh", &err), -1);
    expect_code(&err, NB_ERR_SECGROUP_IN_USE);
    assert_int_equal(secgroup_store_port_set(f->s, p1.id, g2, 1, &err), 0);
    assert_int_equal(secgroup_store_delete(f->s, a.id, "ssh", &err), 0);
    /* A port's delete takes its memberships with it. */
    assert_int_equal(port_store_delete(f->s, p2.id, &err), 0);
    assert_int_equal(secgroup_store_member_ips(f->s, web.id, &ips, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ips[0], p1.ip);
    free(ips);
    /* Clearing. */
    assert_int_equal(secgroup_store_port_set(f->s, p1.id, NULL, 0, &err), 0);
    assert_int_equal(secgroup_store_member_ips(f->s, web.id, &ips, &n, &err), 0);
    assert_int_equal(n, 0);
    free(ips);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_insert_defaults, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_quota, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_rules, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_ports, setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
