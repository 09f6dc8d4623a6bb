/* tspolicy.c - service definitions and the policy fragment for portico's
 * services, as text; see tspolicy.h for where each shape comes from. */
#include "tspolicy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* tsjson_errorf, for functions that return a pointer */
#define fail_null(...) (tsjson_errorf(__VA_ARGS__), (char *)NULL)

bool tspolicy_tag_valid(const char *t)
{
    if (!t || strncmp(t, "tag:", 4) != 0 || !t[4] || strlen(t) > LIMIT_TS_STRING_BYTES)
        return false;
    for (const char *p = t + 4; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-'))
            return false;
    return true;
}

static json_t *service_def(const struct servecfg_service *s, const char *service_tag)
{
    char name[4 + LIMIT_SERVICE_NAME + 1], port[16];
    snprintf(name, sizeof name, "svc:%s", s->name);
    snprintf(port, sizeof port, "tcp:%u", (unsigned)s->port);
    return json_pack("{s:s,s:s,s:[s],s:[s]}", "name", name, "comment", "published by portico",
                     "ports", port, "tags", service_tag);
}

char *tspolicy_service_body(const struct servecfg_service *s, const char *service_tag)
{
    json_t *j = service_def(s, service_tag);
    char *out = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    return out;
}

static json_t *strings(const char *const *v, size_t n, const char *dflt)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < (n ? n : 1); i++)
        if (json_array_append_new(a, json_string(n ? v[i] : dflt)) < 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* Print the policy fragment: one line per section and per grant, so that 64
 * services make 64 grant lines, each easy to copy or drop. */
static bool print_fragment(FILE *f, const struct tspolicy_input *in)
{
    char dst[4 + LIMIT_SERVICE_NAME + 1], port[16];
    const size_t flags = JSON_COMPACT | JSON_PRESERVE_ORDER;
    json_t *owners = strings(in->owners, in->n_owners, "autogroup:admin");
    json_t *src = strings(in->sources, in->n_sources, "autogroup:member");
    json_t *tag_owners = json_pack("{s:O,s:O}", in->host_tag, owners, in->service_tag, owners);
    json_t *approvers = json_pack("{s:{s:[s]}}", "services", in->service_tag, in->host_tag);
    char *a = tag_owners ? json_dumps(tag_owners, flags) : NULL;
    char *b = approvers ? json_dumps(approvers, flags) : NULL;
    bool ok = a && b && src;
    if (ok)
        fprintf(f, "{\n  \"tagOwners\": %s,\n  \"autoApprovers\": %s,\n  \"grants\": [\n", a, b);
    for (size_t i = 0; ok && i < in->n_services; i++) {
        snprintf(dst, sizeof dst, "svc:%s", in->services[i].name);
        snprintf(port, sizeof port, "tcp:%u", (unsigned)in->services[i].port);
        json_t *g = json_pack("{s:O,s:[s],s:[s]}", "src", src, "dst", dst, "ip", port);
        char *line = g ? json_dumps(g, flags) : NULL;
        json_decref(g);
        ok = line != NULL;
        if (ok)
            fprintf(f, "    %s%s\n", line, i + 1 < in->n_services ? "," : "");
        free(line);
    }
    if (ok)
        fprintf(f, "  ]\n}\n");
    free(a);
    free(b);
    json_decref(owners);
    json_decref(src);
    json_decref(tag_owners);
    json_decref(approvers);
    return ok;
}

char *tspolicy_print(const struct tspolicy_input *in, char *err, size_t errlen)
{
    if (!tspolicy_tag_valid(in->host_tag) || !tspolicy_tag_valid(in->service_tag))
        return fail_null(err, errlen,
                         "the node tag \"%.80s\" and the service tag \"%.80s\" must "
                         "both be tag:NAME (letters, digits, '-')",
                         in->host_tag ? in->host_tag : "", in->service_tag ? in->service_tag : "");
    if (strcmp(in->host_tag, in->service_tag) == 0)
        return fail_null(err, errlen,
                         "the node tag and the service tag are both %s: auto-approval "
                         "needs the services to carry a tag of their own",
                         in->host_tag);
    for (size_t i = 0; i < in->n_services; i++)
        if (!in->services[i].name || !tsjson_service_label_valid(in->services[i].name) ||
            !in->services[i].port)
            return fail_null(err, errlen,
                             "service \"%.80s\" cannot be defined: its name must be a "
                             "lower-case DNS label and its port not 0",
                             in->services[i].name ? in->services[i].name : "");
    size_t len = 0;
    char *text = NULL;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return fail_null(err, errlen, "policy: out of memory");
    fprintf(f, "// Service definitions: add each in the admin console (Services), or\n"
               "// PUT https://api.tailscale.com/api/v2/tailnet/-/vip-services/svc:NAME\n"
               "// with its line as the body.\n");
    bool ok = true;
    for (size_t i = 0; ok && i < in->n_services; i++) {
        char *body = tspolicy_service_body(&in->services[i], in->service_tag);
        ok = body != NULL;
        if (ok)
            fprintf(f, "%s\n", body);
        free(body);
    }
    if (ok) {
        fprintf(f,
                "\n// Policy: merge into the tailnet policy file. The node running\n"
                "// tailscaled must carry %s; services tagged %s are then\n"
                "// approved on it without a click.\n",
                in->host_tag, in->service_tag);
        ok = print_fragment(f, in);
    }
    if (fclose(f) != 0 || !ok) {
        free(text);
        return fail_null(err, errlen,
                         "policy: out of memory, or an owner or source that is not UTF-8");
    }
    return text;
}
