/* tsfixture.h - read a file of tests/fixtures/tailscale/ (JSON written from
 * the Tailscale source's types) for the Tailscale unit tests. The path is
 * found from this file's own, so the tests run from the repository root,
 * where make and tests/run.sh start them. */
#ifndef PORTICO_TSFIXTURE_H
#define PORTICO_TSFIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *ts_fixture(const char *name, size_t *len)
{
    char path[1024];
    const char *here = __FILE__, *slash = strrchr(here, '/');
    int dir = slash ? (int)(slash - here) : 1;
    snprintf(path, sizeof path, "%.*s/../fixtures/tailscale/%s", dir, slash ? here : ".", name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open fixture %s\n", path);
        abort();
    }
    char *buf = malloc(1 << 20);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

#endif
