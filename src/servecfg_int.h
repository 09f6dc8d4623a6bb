/* servecfg_int.h - what servecfg.c shares with servecfg_funnel.c: the
 * merge in progress and its plan. */
#ifndef PORTICO_SERVECFG_INT_H
#define PORTICO_SERVECFG_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "servecfg.h"
#include "strbuf.h"

struct plan_line {
    char *name; /* sort key: "svc:NAME" */
    size_t seq; /* then the order of addition */
    char *text;
};

struct plan {
    struct plan_line *v;
    size_t n;
    bool oom;
};

struct merge {
    const struct servecfg_input *in;
    json_t *cur, *new, *interim;
    json_t *cur_svcs, *new_svcs; /* borrowed */
    struct plan plan;
};

/* Add one plan line for name (the sort key); takes line's text. */
void servecfg_plan_add(struct plan *p, const char *name, struct strbuf *line);
bool servecfg_in_list(const char *const *v, size_t n, const char *s);

/* servecfg_funnel.c: check input.funnel and input.funnel_owned; merge them
 * into m->new (result.funnel_owned filled). 0, or -1 with err. */
int servecfg_check_funnel(const struct servecfg_input *in, char *err, size_t errlen);
int servecfg_merge_funnel(struct merge *m, struct servecfg_result *out, char *err, size_t errlen);

#endif
