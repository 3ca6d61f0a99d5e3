/* The exposition writer and the control-plane metrics (src/core/metrics.c). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/metrics.h"
#include "store/store.h"

static void
test_histogram_buckets(void **state)
{
    (void)state;
    static const double bounds[] = {0.1, 1, 10};
    MetricsHistogram h;
    metrics_histogram_init(&h, bounds, 3);
    /* A value equal to a bound belongs to that bucket (le: less than or equal). */
    const double obs[] = {0.05, 0.1, 0.5, 1, 5, 50, 100};
    for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
        metrics_histogram_observe(&h, obs[i]);
    assert_int_equal(h.counts[0], 2);
    assert_int_equal(h.counts[1], 2);
    assert_int_equal(h.counts[2], 1);
    assert_int_equal(h.counts[3], 2);
    assert_int_equal(h.count, 7);
    MetricsBuf b = {0};
    metrics_histogram_write(&b, "x_seconds", "kind=\"a\"", &h);
    assert_false(b.oom);
    assert_string_equal(b.data, "x_seconds_bucket{kind=\"a\",le=\"0.1\"} 2\n"
                                "x_seconds_bucket{kind=\"a\",le=\"1\"} 4\n"
                                "x_seconds_bucket{kind=\"a\",le=\"10\"} 5\n"
                                "x_seconds_bucket{kind=\"a\",le=\"+Inf\"} 7\n"
                                "x_seconds_sum{kind=\"a\"} 156.65\n"
                                "x_seconds_count{kind=\"a\"} 7\n");
    metrics_buf_free(&b);
    /* Without labels: no empty braces on _sum and _count. */
    MetricsHistogram e;
    metrics_histogram_init(&e, bounds, 1);
    metrics_histogram_write(&b, "y", "", &e);
    assert_string_equal(b.data,
                        "y_bucket{le=\"0.1\"} 0\ny_bucket{le=\"+Inf\"} 0\ny_sum 0\ny_count 0\n");
    metrics_buf_free(&b);
}

static void
test_label_escaping(void **state)
{
    (void)state;
    MetricsBuf b = {0};
    metrics_buf_label_value(&b, "a\"b\\c\nd");
    assert_string_equal(b.data, "a\\\"b\\\\c\\nd");
    metrics_buf_free(&b);
    metrics_buf_label_value(&b, "plain");
    assert_string_equal(b.data, "plain");
    metrics_buf_free(&b);
    metrics_buf_label_value(&b, "");
    assert_int_equal(b.len, 0);
    metrics_buf_free(&b);
}

static void
test_values(void **state)
{
    (void)state;
    MetricsBuf b = {0};
    metrics_buf_value(&b, 3);
    metrics_buf_append(&b, " ", 1);
    metrics_buf_value(&b, 0.25);
    metrics_buf_append(&b, " ", 1);
    metrics_buf_value(&b, INFINITY);
    metrics_buf_append(&b, " ", 1);
    metrics_buf_value(&b, NAN);
    metrics_buf_append(&b, " ", 1);
    metrics_buf_value(&b, 17179869184.0);
    assert_string_equal(b.data, "3 0.25 +Inf NaN 17179869184");
    metrics_buf_free(&b);
}

static void
test_family_names(void **state)
{
    (void)state;
    MetricsBuf b = {0};
    metrics_write_family(&b, METRICS_FORMAT_TEXT, "a_total", "counter", "h");
    assert_string_equal(b.data, "# HELP a_total h\n# TYPE a_total counter\n");
    metrics_buf_free(&b);
    /* OpenMetrics: the counter's family has no _total; gauges keep their name. */
    metrics_write_family(&b, METRICS_FORMAT_OPENMETRICS, "a_total", "counter", "h");
    metrics_write_family(&b, METRICS_FORMAT_OPENMETRICS, "g_total", "gauge", "h");
    assert_string_equal(b.data,
                        "# HELP a h\n# TYPE a counter\n# HELP g_total h\n# TYPE g_total gauge\n");
    metrics_buf_free(&b);
    assert_non_null(strstr(metrics_content_type(METRICS_FORMAT_OPENMETRICS),
                           "application/openmetrics-text; version=1.0.0"));
    assert_non_null(strstr(metrics_content_type(METRICS_FORMAT_TEXT), "version=0.0.4"));
}

static unsigned long long
sample_value(const char *text, const char *series)
{
    const char *p = strstr(text, series);
    if (!p)
        return ~0ULL;
    return strtoull(p + strlen(series) + 1, NULL, 10);
}

static void
test_api_and_task_observations(void **state)
{
    (void)state;
    metrics_reset();
    static const char pattern[] = "/v1/vms/{}";
    metrics_api_observe(pattern, "GET", 200, 0.003);
    metrics_api_observe(pattern, "GET", 200, 0.2);
    metrics_api_observe(pattern, "GET", 404, 0.001);
    metrics_api_observe(NULL, "BREW", 404, 0.001); /* unknown route and method: bounded */
    metrics_task_observe(TASK_KIND_VM_CREATE, 12);
    metrics_task_observe((TaskKind)99, 1); /* ignored */
    metrics_login_failure();
    MetricsBuf b = {0};
    metrics_write_process(&b, METRICS_FORMAT_TEXT);
    assert_false(b.oom);
    const char *t = b.data;
    assert_int_equal(
        sample_value(
            t, "nimbus_api_requests_total{route=\"/v1/vms/{}\",method=\"GET\",status=\"200\"}"),
        2);
    assert_int_equal(
        sample_value(
            t, "nimbus_api_requests_total{route=\"/v1/vms/{}\",method=\"GET\",status=\"404\"}"),
        1);
    assert_int_equal(
        sample_value(t,
                     "nimbus_api_requests_total{route=\"other\",method=\"other\",status=\"404\"}"),
        1);
    assert_int_equal(sample_value(t, "nimbus_api_request_duration_seconds_bucket{route=\"/v1/vms/"
                                     "{}\",method=\"GET\",le=\"0.005\"}"),
                     2);
    assert_int_equal(sample_value(t, "nimbus_api_request_duration_seconds_count{route=\"/v1/vms/"
                                     "{}\",method=\"GET\"}"),
                     3);
    assert_int_equal(sample_value(t, "nimbus_task_duration_seconds_bucket{kind=\"vm.create\",le="
                                     "\"10\"}"),
                     0);
    assert_int_equal(sample_value(t, "nimbus_task_duration_seconds_bucket{kind=\"vm.create\",le="
                                     "\"30\"}"),
                     1);
    assert_int_equal(sample_value(t, "\nnimbus_login_failures_total"), 1);
    /* Every family is announced once, before its samples. */
    const char *type = strstr(t, "# TYPE nimbus_api_requests_total counter");
    assert_non_null(type);
    assert_true(type < strstr(t, "nimbus_api_requests_total{"));
    assert_null(strstr(type + 1, "# TYPE nimbus_api_requests_total "));
    metrics_buf_free(&b);
    metrics_reset();
}

static void
test_task_step_observations(void **state)
{
    (void)state;
    metrics_reset();
    metrics_task_step_observe(TASK_KIND_VM_CREATE, 0, "create_disk", 0.3);
    metrics_task_step_observe(TASK_KIND_VM_CREATE, 0, "create_disk", 4);
    metrics_task_step_observe(TASK_KIND_VM_CREATE, 3, "define", 0.02);
    metrics_task_step_observe(TASK_KIND_VM_STOP, 0, "st\"op", 1);
    /* Outside the bounded label set: ignored. */
    metrics_task_step_observe(TASK_KIND_VM_CREATE, METRICS_MAX_TASK_STEPS, "late", 1);
    metrics_task_step_observe(TASK_KIND_VM_CREATE, -1, "early", 1);
    metrics_task_step_observe((TaskKind)99, 0, "x", 1);
    metrics_task_step_observe(TASK_KIND_VM_CREATE, 1, NULL, 1);
    MetricsBuf b = {0};
    metrics_write_process(&b, METRICS_FORMAT_TEXT);
    assert_false(b.oom);
    const char *t = b.data;
    assert_non_null(strstr(t, "# TYPE nimbus_task_step_duration_seconds histogram\n"));
    assert_int_equal(sample_value(t, "nimbus_task_step_duration_seconds_bucket{kind=\"vm.create\","
                                     "step=\"create_disk\",le=\"0.25\"}"),
                     0);
    assert_int_equal(sample_value(t, "nimbus_task_step_duration_seconds_bucket{kind=\"vm.create\","
                                     "step=\"create_disk\",le=\"0.5\"}"),
                     1);
    assert_int_equal(sample_value(t, "nimbus_task_step_duration_seconds_bucket{kind=\"vm.create\","
                                     "step=\"create_disk\",le=\"5\"}"),
                     2);
    assert_int_equal(sample_value(t, "nimbus_task_step_duration_seconds_bucket{kind=\"vm.create\","
                                     "step=\"create_disk\",le=\"+Inf\"}"),
                     2);
    assert_int_equal(sample_value(t, "nimbus_task_step_duration_seconds_count{kind=\"vm.create\","
                                     "step=\"create_disk\"}"),
                     2);
    assert_non_null(strstr(t, "nimbus_task_step_duration_seconds_sum{kind=\"vm.create\",step="
                              "\"create_disk\"} 4.3\n"));
    assert_int_equal(sample_value(t, "nimbus_task_step_duration_seconds_count{kind=\"vm.create\","
                                     "step=\"define\"}"),
                     1);
    assert_int_equal(sample_value(t, "nimbus_task_step_duration_seconds_count{kind=\"vm.stop\","
                                     "step=\"st\\\"op\"}"),
                     1);
    /* Steps never observed have no series; neither have the ignored ones. */
    assert_null(strstr(t, "step=\"create_seed\""));
    assert_null(strstr(t, "step=\"late\""));
    assert_null(strstr(t, "step=\"early\""));
    assert_null(strstr(t, "step=\"x\""));
    metrics_buf_free(&b);

    /* A reset forgets them. */
    metrics_reset();
    metrics_write_process(&b, METRICS_FORMAT_TEXT);
    assert_non_null(strstr(b.data, "# TYPE nimbus_task_step_duration_seconds histogram\n"));
    assert_null(strstr(b.data, "nimbus_task_step_duration_seconds_count"));
    metrics_buf_free(&b);
}

static void
fake_store_stats(StoreStats *ret)
{
    memset(ret, 0, sizeof(*ret));
    for (int i = 0; i < STORE_LATENCY_BUCKETS; i++)
        ret->bounds[i] = 0.001 * (i + 1);
    ret->tx[STORE_TX_WRITE].kind = "write";
    ret->tx[STORE_TX_WRITE].counts[0] = 2;
    ret->tx[STORE_TX_WRITE].counts[2] = 1;
    ret->tx[STORE_TX_WRITE].counts[STORE_LATENCY_BUCKETS] = 4; /* +Inf */
    ret->tx[STORE_TX_WRITE].sum = 9.5;
    ret->tx[STORE_TX_READ].kind = "read";
    ret->tx[STORE_TX_READ].counts[1] = 7;
    ret->tx[STORE_TX_READ].sum = 0.0125;
}

static void
test_store_latency(void **state)
{
    (void)state;
    MetricsBuf b = {0};
    /* No source set: no family. */
    metrics_set_store_stats(NULL);
    metrics_write_process(&b, METRICS_FORMAT_TEXT);
    assert_null(strstr(b.data, "nimbus_store_transaction_duration_seconds"));
    metrics_buf_free(&b);

    metrics_set_store_stats(fake_store_stats);
    metrics_write_process(&b, METRICS_FORMAT_OPENMETRICS);
    assert_false(b.oom);
    const char *t = b.data;
    assert_non_null(strstr(t, "# TYPE nimbus_store_transaction_duration_seconds histogram\n"));
    /* Cumulative buckets from the store's per-bucket counts. */
    assert_int_equal(sample_value(t, "nimbus_store_transaction_duration_seconds_bucket{kind="
                                     "\"write\",le=\"0.001\"}"),
                     2);
    assert_int_equal(sample_value(t, "nimbus_store_transaction_duration_seconds_bucket{kind="
                                     "\"write\",le=\"0.002\"}"),
                     2);
    assert_int_equal(sample_value(t, "nimbus_store_transaction_duration_seconds_bucket{kind="
                                     "\"write\",le=\"0.003\"}"),
                     3);
    assert_int_equal(sample_value(t, "nimbus_store_transaction_duration_seconds_bucket{kind="
                                     "\"write\",le=\"+Inf\"}"),
                     7);
    assert_int_equal(
        sample_value(t, "nimbus_store_transaction_duration_seconds_count{kind=\"write\"}"), 7);
    assert_non_null(
        strstr(t, "nimbus_store_transaction_duration_seconds_sum{kind=\"write\"} 9.5\n"));
    assert_int_equal(sample_value(t, "nimbus_store_transaction_duration_seconds_bucket{kind="
                                     "\"read\",le=\"0.001\"}"),
                     0);
    assert_int_equal(sample_value(t, "nimbus_store_transaction_duration_seconds_bucket{kind="
                                     "\"read\",le=\"0.002\"}"),
                     7);
    assert_int_equal(
        sample_value(t, "nimbus_store_transaction_duration_seconds_count{kind=\"read\"}"), 7);
    metrics_buf_free(&b);
    metrics_set_store_stats(NULL);
}

static void
test_host_sync(void **state)
{
    (void)state;
    MetricsHistogram d;
    metrics_host_sync_histogram_init(&d);
    metrics_histogram_observe(&d, 0.003);
    metrics_histogram_observe(&d, 0.04);
    metrics_histogram_observe(&d, 21);
    const MetricsHostSync hosts[] = {
        {"kvm1", 1764921600.25, 0},
        {"kvm\"2", 0, 3}, /* never synced: a failure count, no timestamp */
    };
    MetricsBuf b = {0};
    metrics_write_host_sync(&b, METRICS_FORMAT_OPENMETRICS, &d, hosts, 2);
    assert_false(b.oom);
    const char *t = b.data;
    /* One histogram over all hosts: no host label on its series. */
    assert_non_null(strstr(t, "# TYPE nimbus_host_sync_duration_seconds histogram\n"));
    assert_non_null(strstr(t, "nimbus_host_sync_duration_seconds_bucket{le=\"0.005\"} 1\n"));
    assert_non_null(strstr(t, "nimbus_host_sync_duration_seconds_bucket{le=\"0.05\"} 2\n"));
    assert_non_null(strstr(t, "nimbus_host_sync_duration_seconds_bucket{le=\"10\"} 2\n"));
    assert_non_null(strstr(t, "nimbus_host_sync_duration_seconds_bucket{le=\"30\"} 3\n"));
    assert_non_null(strstr(t, "nimbus_host_sync_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(t, "nimbus_host_sync_duration_seconds_count 3\n"));
    assert_null(strstr(t, "nimbus_host_sync_duration_seconds_bucket{host"));
    assert_non_null(strstr(t, "# TYPE nimbus_host_last_sync_success_timestamp_seconds gauge\n"
                              "nimbus_host_last_sync_success_timestamp_seconds{host=\"kvm1\"} "
                              "1764921600.250\n# HELP"));
    assert_null(strstr(t, "nimbus_host_last_sync_success_timestamp_seconds{host=\"kvm\\\"2\"}"));
    /* OpenMetrics names the counter's family without _total; the samples keep it. */
    assert_non_null(strstr(t, "# TYPE nimbus_host_sync_failures counter\n"));
    assert_non_null(strstr(t, "nimbus_host_sync_failures_total{host=\"kvm1\"} 0\n"));
    assert_non_null(strstr(t, "nimbus_host_sync_failures_total{host=\"kvm\\\"2\"} 3\n"));
    metrics_buf_free(&b);

    /* No hosts: the families are still there, the histogram at zero. */
    metrics_host_sync_histogram_init(&d);
    metrics_write_host_sync(&b, METRICS_FORMAT_TEXT, &d, NULL, 0);
    assert_non_null(strstr(b.data, "nimbus_host_sync_duration_seconds_count 0\n"));
    assert_non_null(strstr(b.data, "# TYPE nimbus_host_sync_failures_total counter\n"));
    assert_null(strstr(b.data, "{host="));
    metrics_buf_free(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_histogram_buckets),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_family_names),
        cmocka_unit_test(test_api_and_task_observations),
        cmocka_unit_test(test_task_step_observations),
        cmocka_unit_test(test_store_latency),
        cmocka_unit_test(test_host_sync),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
