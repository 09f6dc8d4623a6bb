/* identity.h - what portico knows of a tailnet caller, and the identity
 * headers it gives an upstream.
 *
 * Not wired into the request path yet: these are the pure parts of
 * "identity" for portico behind one tailscaled node (the backend listener,
 * whois, allow lists and auth_bypass_tailnet use them once the request path
 * can call them). Sources read, with the exact commits:
 *   - tailscaled: ipn/ipnlocal/serve.go (addTailscaleIdentityHeaders,
 *     encTailscaleHeaderValue, addAppCapabilitiesHeader) at
 *     tailscale/tailscale de9ec7ee2562 (v1.103.0); tailcfg/tailcfg.go for
 *     UserID/NodeID.String() ("userid:%d", "nodeid:%d", decimal since
 *     v1.86.0) and Node.IsTagged (len(Tags) > 0).
 *   - tsnsrv: proxy.go (setWhoisHeaders) at boinkor-net/tsnsrv 9f36a4f26454
 *     (2026-03-17, tailscale.com v1.96.1).
 *   - Go's net/http Header.writeSubset: header names go out in canonical
 *     form (textproto.CanonicalMIMEHeaderKey, so "X-Tailscale-User-Loginname"),
 *     sorted by name, values trimmed of leading and trailing white space.
 *
 * An identity comes from tailscaled's headers on the backend listener
 * (identity_from_headers) or from a whois answer, which its reader stores
 * with identity_set / identity_add. When both exist, whois is the
 * authority: it has the node, tags and capabilities, and JSON strings carry
 * no encoding to get wrong. Every string is checked when stored: valid
 * UTF-8 without control characters, so no value can split a header line. A
 * value that fails makes the whole identity absent, never a cut-down one. */
#ifndef PORTICO_IDENTITY_H
#define PORTICO_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "headers.h"
#include "http1.h"
#include "limits.h"

enum identity_source {
    IDENTITY_NONE = 0, /* nothing known: no headers, whois failed or not asked */
    IDENTITY_HEADERS,  /* tailscaled's Tailscale-User-* (or Tailscale-Funnel-Request) */
    IDENTITY_WHOIS,    /* a LocalAPI whois answer */
};

enum identity_field {
    IDENTITY_LOGIN,        /* UserProfile.LoginName: "alice@example.com", "tagged-devices" */
    IDENTITY_DISPLAY_NAME, /* UserProfile.DisplayName */
    IDENTITY_PROFILE_PIC,  /* UserProfile.ProfilePicURL */
    IDENTITY_NODE_NAME,    /* Node.ComputedName (the MagicDNS short name) */
    IDENTITY_APP_CAPS,     /* Tailscale-App-Capabilities as tailscaled sent it, decoded (JSON) */
    IDENTITY_NFIELDS
};

enum identity_list {
    IDENTITY_TAGS,      /* Node.Tags ("tag:server") */
    IDENTITY_NODE_CAPS, /* keys of Node.CapMap */
    IDENTITY_PEER_CAPS, /* keys of the whois CapMap (capabilities granted to the caller) */
    IDENTITY_NLISTS
};

/* A string in identity.store: NUL-terminated at off + len. */
struct identity_str {
    uint16_t off;
    uint16_t len;
};

/* Self-contained (no pointers), so it can be copied with memcpy into a
 * cache entry or a request. */
struct identity {
    /* Lists first: what identity_init writes (the fields after them and
     * store[0]) is then one run just before the store, whose rest a caller
     * off the tailnet never writes, through the end of the exchange. */
    struct identity_str list[IDENTITY_NLISTS][LIMIT_IDENTITY_LIST];
    enum identity_source source;
    bool funnel; /* came in through Funnel: anonymous whatever else is set */
    bool local;  /* came in through portico's local (hairpin) listener */
    bool has_user_id;
    bool has_node_id;
    int64_t user_id; /* UserProfile.ID */
    int64_t node_id; /* Node.ID */
    struct identity_str field[IDENTITY_NFIELDS];
    uint8_t nlist[IDENTITY_NLISTS];
    uint16_t used;
    /* Last: the whois cache keeps copies cut after its first used bytes. */
    char store[LIMIT_IDENTITY_BYTES];
};

#define IDENTITY_ERR_TOO_LONG  (-1) /* the strings do not fit LIMIT_IDENTITY_BYTES */
#define IDENTITY_ERR_TOO_MANY  (-2) /* more than LIMIT_IDENTITY_LIST tags or capabilities */
#define IDENTITY_ERR_TEXT      (-3) /* not UTF-8, or a control character (CR, LF, NUL, ...) */
#define IDENTITY_ERR_ENCODING  (-4) /* a header value tailscaled cannot have written */
#define IDENTITY_ERR_DUPLICATE (-5) /* an identity header sent twice */
#define IDENTITY_ERR_EMPTY     (-6) /* an empty tag or capability name */

/* The pseudo-login control gives every tagged node's user profile. */
#define IDENTITY_TAGGED_LOGIN "tagged-devices"

void identity_init(struct identity *id);

/* Store a string field (replacing an earlier value), or add a list entry.
 * 0, or a negative IDENTITY_ERR_*: the caller then treats the caller as
 * unidentified (identity_init). */
int identity_set(struct identity *id, enum identity_field f, const char *s, size_t len);
int identity_add(struct identity *id, enum identity_list l, const char *s, size_t len);

/* A field's value, "" when unset. */
const char *identity_get(const struct identity *id, enum identity_field f);
size_t identity_count(const struct identity *id, enum identity_list l);
const char *identity_item(const struct identity *id, enum identity_list l, size_t i);

/* Tagged: the node has tags (Node.IsTagged), or its profile is control's
 * "tagged-devices" pseudo-user. A tagged node has no user identity. */
bool identity_is_tagged(const struct identity *id);

/* A person: known login, not tagged, not Funnel. This is the
 * auth_bypass_tailnet predicate: only such a caller may skip forward auth
 * (a failed whois leaves the identity IDENTITY_NONE, never a user). */
bool identity_is_user(const struct identity *id);

/* Read tailscaled's identity headers from a request that came through the
 * backend listener (no other listener may call this: anyone can send these
 * names). Tailscale-Funnel-Request: ?1 gives an anonymous Funnel caller;
 * Tailscale-User-Login (RFC 2047 as encTailscaleHeaderValue writes it) gives
 * a user with Tailscale-User-Name and -Profile-Pic; none of them gives
 * IDENTITY_NONE (tailscaled sends nothing for tagged nodes, unknown or local
 * sources: ask whois). Tailscale-App-Capabilities is kept for passing on.
 * Returns 0, or a negative IDENTITY_ERR_* with id left IDENTITY_NONE (a
 * value tailscaled would not send, or a name sent twice). */
int identity_from_headers(struct identity *id, const struct http_request *req);

/* Which headers identity_build_headers writes. */
#define IDENTITY_SEND_TSNSRV     0x1 /* tsnsrv's 11 X-Tailscale-* (needs a whois identity) */
#define IDENTITY_SEND_TAILSCALED 0x2 /* tailscaled's Tailscale-* as `tailscale serve` sends */

#define IDENTITY_HEADERS_MAX 17 /* 11 + 6 */
/* Room for every value: three encoded (3.75 times plus words) and the login
 * twice more (LoginName, then Localpart and Domain) never exceed this. */
#define IDENTITY_HEADERS_BYTES (6 * LIMIT_IDENTITY_BYTES + 1024)

struct identity_headers {
    struct header_set h[IDENTITY_HEADERS_MAX]; /* values point into store */
    size_t n;
    size_t used;
    char store[IDENTITY_HEADERS_BYTES];
};

/* The identity headers for the upstream, as request_rewrite.add entries.
 * Every client-sent copy must be gone first (identity_header_reserved;
 * headers_is_identity covers X-Tailscale-* and Tailscale-User-* today, not
 * yet Tailscale-Headers-Info, -App-Capabilities or -Funnel-Request).
 *
 * IDENTITY_SEND_TSNSRV, for a whois identity that is not Funnel, exactly as
 * tsnsrv's setWhoisHeaders (tagged nodes included; raw UTF-8 values):
 *   X-Tailscale-Caps                      peer caps joined ", " (if any)
 *   X-Tailscale-Node                      "nodeid:<decimal>"
 *   X-Tailscale-Node-Caps                 node caps joined ", " (if any)
 *   X-Tailscale-Node-Name                 ComputedName
 *   X-Tailscale-Node-Tags                 tags joined ", " (if any)
 *   X-Tailscale-User                      "userid:<decimal>"
 *   X-Tailscale-User-Displayname          DisplayName
 *   X-Tailscale-User-Loginname            LoginName
 *   X-Tailscale-User-Loginname-Domain     after the first '@' (if there is one)
 *   X-Tailscale-User-Loginname-Localpart  before the first '@' (if there is one)
 *   X-Tailscale-User-Profilepicurl        ProfilePicURL (if not empty)
 * IDENTITY_SEND_TAILSCALED, as tailscaled's serve proxy sends them:
 *   Tailscale-App-Capabilities  encoded, if it came with the request (not Funnel)
 *   Tailscale-Funnel-Request    "?1" for Funnel, and then nothing else
 *   Tailscale-Headers-Info, Tailscale-User-Login, -Name (both encoded) and
 *   -Profile-Pic (even empty) for a user (identity_is_user).
 * Returns the number of headers (0 for an anonymous caller), or -1 if out
 * is too small (it cannot be, with IDENTITY_HEADERS_BYTES). */
int identity_build_headers(const struct identity *id, unsigned what, struct identity_headers *out);

/* True for a header name only tailscaled or portico may set: X-Tailscale-*
 * and Tailscale-* (Tailscale-User-*, -Headers-Info, -App-Capabilities,
 * -Funnel-Request and whatever tailscaled adds later), case-insensitively
 * with '_' equal to '-'. Client-sent copies must be removed on every
 * listener; on the backend listener after identity_from_headers read them. */
bool identity_header_reserved(struct http_slice name);

/* What tailscaled says about the request on the backend listener. */
enum identity_forward {
    IDENTITY_FWD_OK,
    IDENTITY_FWD_NO_HOST,    /* no X-Forwarded-Host (tailscaled always sends one) */
    IDENTITY_FWD_MANY_HOSTS, /* more than one X-Forwarded-Host field */
};

/* The caller's Host as tailscaled forwarded it, X-Forwarded-Host (tailscaled
 * replaces Host with the socket URL's host for a Unix backend), into *host.
 * The caller address: the last element of the last X-Forwarded-For field,
 * which is what tailscaled wrote (it sets the field to the caller's tailnet
 * address; a proxy that appends puts its own peer last too, so whatever a
 * client sent comes before it). Written to addr as a canonical IP (an
 * IPv4-mapped IPv6 address as IPv4), or "" when absent or not an IP.
 * addr must hold INET6_ADDRSTRLEN bytes. */
enum identity_forward identity_forwarded(const struct http_request *req, struct http_slice *host,
                                         char *addr, size_t cap);

const char *identity_strerror(int err);

#endif
