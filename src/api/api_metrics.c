/* GET /metrics for Prometheus, and the request observations every API call feeds. */
#include <gnutls/x509.h>
#include <malloc.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "../core/metrics.h"
#include "api.h"

#ifndef NIMBUS_VERSION
#define NIMBUS_VERSION "0.1.0"
#endif

/* OpenMetrics only when the scraper asks for it (Prometheus does when it may), else the text
 * format every scraper reads. */
static MetricsFormat
api_metrics_format(HttpRequest *r)
{
    const char *accept = http_request_header(r, "Accept");
    return accept && strstr(accept, "application/openmetrics-text") ? METRICS_FORMAT_OPENMETRICS
                                                                    : METRICS_FORMAT_TEXT;
}

static double api_metrics_cert_expiry; /* epoch seconds; 0: no TLS */

int
api_metrics_set_tls_cert(const char *pem)
{
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0)
        return -1;
    gnutls_datum_t d = {(unsigned char *)(uintptr_t)pem, (unsigned)strlen(pem)};
    time_t t = (time_t)-1;
    if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) >= 0)
        t = gnutls_x509_crt_get_expiration_time(crt);
    gnutls_x509_crt_deinit(crt);
    if (t == (time_t)-1)
        return -1;
    api_metrics_cert_expiry = (double)t;
    return 0;
}

void
api_metrics(HttpRequest *r, void *ctx)
{
    Core *core = ctx;
    MetricsFormat f = api_metrics_format(r);
    MetricsBuf b = {0};
    metrics_write_family(&b, f, "nimbus_build_info", "gauge", "The running nimbusd's version.");
    metrics_buf_printf(&b, "nimbus_build_info{version=\"%s\"} 1\n", NIMBUS_VERSION);
    if (api_metrics_cert_expiry > 0) {
        metrics_write_family(&b, f, "nimbus_tls_cert_expiry_timestamp_seconds", "gauge",
                             "When the certificate nimbusd serves HTTPS with expires.");
        metrics_buf_printf(&b, "nimbus_tls_cert_expiry_timestamp_seconds %.0f\n",
                           api_metrics_cert_expiry);
    }
    metrics_render(core, metrics_collector_current(), f, &b);
    if (f == METRICS_FORMAT_OPENMETRICS)
        metrics_buf_append(&b, "# EOF\n", 6);
    if (b.oom) {
        metrics_buf_free(&b);
        return http_reply_error(r, NB_ERR_INTERNAL, "out of memory rendering the metrics");
    }
    http_reply_text(r, 200, metrics_content_type(f), b.data ? b.data : "", b.len);
    bool large = b.cap > (1u << 20);
    metrics_buf_free(&b);
    if (large)
        malloc_trim(0); /* see metrics_collect: do not keep a large scrape's buffers resident */
}

void
api_on_complete(HttpRequest *r, void *ctx)
{
    api_audit_request(r, ctx);
    const HttpRoute *route = http_request_route(r);
    double seconds = (double)(nb_monotonic_ms() - http_request_start_ms(r)) / 1000.0;
    metrics_api_observe(route ? route->pattern : NULL, http_request_method(r),
                        http_request_status(r), seconds);
}
