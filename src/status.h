/* status.h - the status page on the metrics listener: GET / is a
 * self-contained HTML page (no external assets) that fetches
 * GET /status.json every few seconds and fills itself in; the JSON is the
 * same data for scripts. Main thread only, off the request path. */
#ifndef PORTICO_STATUS_H
#define PORTICO_STATUS_H

#include <stddef.h>

struct server;

/* The page: a constant, served as it is (it holds no data, so no name or
 * upstream is ever written into its HTML: the script sets them as text). */
extern const char status_page_html[];

/* The status of srv's current configuration as JSON: a malloc'd
 * NUL-terminated text (caller frees), or NULL when out of memory. */
char *status_render_json(const struct server *srv, size_t *len);

#endif
