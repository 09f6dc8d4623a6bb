/* metrics_http.h - the /metrics endpoint: a tiny HTTP/1 server on the main
 * thread's loop that answers GET /metrics with the workers' counters.
 *
 * It is separate from the proxy's HTTP path on purpose: a scrape never
 * competes with client connections for a worker, and it keeps answering
 * while the workers are saturated. One request per connection; a scrape
 * must send its request within METRICS_TIMEOUT_MS. */
#ifndef PORTICO_METRICS_HTTP_H
#define PORTICO_METRICS_HTTP_H

#include <stddef.h>

#include "loop.h"

struct config;
struct listener;
struct server;

struct metrics_http {
    struct loop_io io; /* the listening socket's watch; fd -1 before the first open */
    struct loop *loop;
    const struct server *srv; /* its workers' counters are rendered */
    struct listener *l;       /* a reference; NULL while the endpoint is off */
    size_t nclients;
};

/* Before the first metrics_http_apply: nothing open yet. */
void metrics_http_init(struct metrics_http *mh, struct loop *loop, const struct server *srv);

/* Serve what c asks for: open the endpoint, keep its socket when c's
 * address still fits it (else take one from pool, the sockets inherited on
 * start, or bind a new one), or close it when c turns it off. Returns 0 or
 * -1 with a sentence in err. */
int metrics_http_apply(struct metrics_http *mh, const struct config *c, struct listener **pool,
                       size_t npool, char *err, size_t errlen);

/* Stop listening and drop the socket (connections in progress are not
 * waited for: the process is exiting). */
void metrics_http_close(struct metrics_http *mh);

#endif
