/* tsapply.h - publishing portico's services on the local tailscaled node,
 * as a sequence of LocalAPI calls that does no I/O itself, so the blocking
 * `portico tailscale` commands (tscli.c) and the daemon's event loop
 * (tspublish.c) run exactly the same steps.
 *
 * The steps: GET status (the MagicDNS suffix, the version), GET prefs
 * (AdvertiseServices), GET serve-config; merge (servecfg.c); then, to
 * apply, POST the serve config with If-Match (412: another client wrote in
 * between, so read and merge again, at most TSAPPLY_ATTEMPTS times; an
 * interim config is written first when a port changes type) and PATCH
 * prefs when AdvertiseServices changes. Nothing to change: no write.
 *
 * The driver asks tsapply_next for the call to make, makes it however it
 * can, and hands the outcome back with tsapply_answer or
 * tsapply_unreachable, until tsapply_next says DONE or FAILED. Once DONE,
 * result.owned is the list to keep in the state file (tsapply_save_owned
 * when it differs from the one read). */
#ifndef PORTICO_TSAPPLY_H
#define PORTICO_TSAPPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "limits.h"
#include "localapi.h"
#include "servecfg.h"
#include "tsjson.h"
#include "tstarget.h"

struct config;

#define TSAPPLY_ATTEMPTS    5 /* serve config writes lost to another client before giving up */
#define TSAPPLY_STATE_FILE  "tailscale-services"
#define TSAPPLY_FUNNEL_FILE "tailscale-funnel" /* beside it: the Funnel HOST:PORT published */

enum tsapply_mode {
    TSAPPLY_READ,  /* status, prefs and serve config; no merge */
    TSAPPLY_PLAN,  /* ... and the merge; no write */
    TSAPPLY_APPLY, /* ... and the writes */
};

enum tsapply_step {
    TSAPPLY_CALL,   /* make the call tsapply_next filled in */
    TSAPPLY_DONE,   /* finished: see result, written, advertise_set */
    TSAPPLY_FAILED, /* err says why; refused says whether it was a permission */
};

struct tsapply {
    enum tsapply_mode mode;
    /* what to publish: the caller's, until status is read when cfg is set;
     * then tg's, worked out for this node */
    const struct servecfg_service *svcs;
    size_t n;
    const struct config *cfg;             /* tsapply_use_config; NULL: svcs as given */
    struct tstarget tg;                   /* once status is read, with cfg: see tstarget.h */
    const char *host_tag;                 /* the tag the node should carry (a warning otherwise) */
    struct tsjson_strlist owned;          /* the state file's list; tsapply_read_owned fills it */
    struct tsjson_strlist funnel_owned;   /* the Funnel state file's, the same way */
    struct tsjson_status st;              /* once status is read */
    struct tsjson_strlist adv;            /* AdvertiseServices, once prefs is read */
    char *sc;                             /* the serve config as read last; owned */
    size_t sc_len;                        /* bytes of sc */
    char etag[LIMIT_LOCALAPI_ETAG_BYTES]; /* its Etag; "" when it had none */
    struct servecfg_result result;        /* the merge, once the serve config is read */
    bool node_read;                       /* status and prefs were read */
    bool untagged_host;                   /* the node does not carry host_tag */
    bool written;                         /* a serve config was written */
    bool advertise_set;                   /* AdvertiseServices was written */
    unsigned lost_races;                  /* 412 answers so far */
    bool refused;                         /* FAILED: tailscaled answered 401 or 403 */
    int phase;                            /* what the next or pending call is (tsapply.c) */
    unsigned attempt;                     /* serve config writes begun */
    char *body;                           /* the pending call's body; owned */
    char err[800];                        /* FAILED: one sentence */
};

/* Start a run over svcs (kept by the caller until tsapply_free). */
void tsapply_init(struct tsapply *x, enum tsapply_mode mode, const struct servecfg_service *svcs,
                  size_t n, const char *host_tag);
void tsapply_free(struct tsapply *x);

/* Work the services out again from c once status is read (tstarget.c:
 * where tailscaled forwards each, the PROXY header for this tailscaled
 * version), replacing svcs; a service that cannot be published then fails
 * the run. tg.warnings has what the driver should show. c is the
 * caller's until tsapply_free. */
void tsapply_use_config(struct tsapply *x, const struct config *c);

/* The next call to make (its strings stay valid until the next
 * tsapply_answer or tsapply_unreachable), or DONE / FAILED. */
enum tsapply_step tsapply_next(struct tsapply *x, struct localapi_request *req);

/* The answer to that call: its status, body and Etag header (NULL: none). */
void tsapply_answer(struct tsapply *x, int status, const char *body, size_t len, const char *etag);

/* The call got no answer; why is a sentence. The run has FAILED. */
void tsapply_unreachable(struct tsapply *x, const char *why);

/* The services c publishes (tstarget.c, for a node not read yet: no
 * version or suffix checks): none when tailscale.services is false, so that
 * a run removes what was published before. *out is one malloc'ed block
 * (its backend strings in it or in c). 0, or -1 with a sentence in err. */
int tsapply_collect(const struct config *c, struct servecfg_service **out, size_t *n, char *err,
                    size_t errlen);

/* STATE_DIR/tailscale-services into path: 0, or -1 when it does not fit. */
int tsapply_state_path(const struct config *c, char *path, size_t cap);

/* The owned list from the state file at path into x->owned, and the
 * Funnel one beside it into x->funnel_owned (a missing file is an empty
 * list): 0, or -1 with a sentence in err. */
int tsapply_read_owned(struct tsapply *x, const char *path, char *err, size_t errlen);

/* Replace the state file with l (a temporary file renamed over it, so a
 * crash leaves either list), creating dir: 0, or -1 with a sentence. */
int tsapply_save_owned(const char *dir, const char *path, const struct tsjson_strlist *l, char *err,
                       size_t errlen);

/* Whether the owned list changed (the state file needs writing). */
bool tsapply_owned_changed(const struct tsapply *x);

/* Once DONE: write the state files (path and the Funnel one beside it)
 * whose list changed, with tsapply_save_owned. 0, or -1 with a sentence. */
int tsapply_save_state(const struct tsapply *x, const char *dir, const char *path, char *err,
                       size_t errlen);

bool tsapply_list_has(const struct tsjson_strlist *l, const char *s);

/* How many of the configured services each stage reached, once status
 * and prefs were read (node_read), whether the run ended DONE or FAILED:
 * advertised in AdvertiseServices as the node has it now (the new list
 * once written), approved in status's Self.CapMap["service-host"]. */
size_t tsapply_count_advertised(const struct tsapply *x);
size_t tsapply_count_approved(const struct tsapply *x);

#endif
