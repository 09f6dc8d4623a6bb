/* identity.c - a tailnet caller's identity and its headers (see identity.h). */
#include "identity.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "rfc2047.h"

_Static_assert(LIMIT_IDENTITY_BYTES <= UINT16_MAX, "identity offsets are 16-bit");
_Static_assert(LIMIT_IDENTITY_LIST <= UINT8_MAX, "identity list counts are 8-bit");

void identity_init(struct identity *id)
{
    id->source = IDENTITY_NONE;
    id->funnel = false;
    id->local = false;
    id->has_user_id = false;
    id->has_node_id = false;
    id->user_id = 0;
    id->node_id = 0;
    memset(id->field, 0, sizeof id->field);
    memset(id->nlist, 0, sizeof id->nlist);
    /* Offset 0 with length 0 is the empty string every unset field reads. */
    id->store[0] = '\0';
    id->used = 1;
}

/* Room for len bytes and a NUL at the end of the store. */
static bool store_fits(const struct identity *id, size_t len)
{
    return len < (size_t)LIMIT_IDENTITY_BYTES - id->used;
}

static int store_put(struct identity *id, const char *s, size_t len, struct identity_str *out)
{
    int e = rfc2047_check_text(s, len);
    if (e < 0)
        return IDENTITY_ERR_TEXT;
    if (!store_fits(id, len))
        return IDENTITY_ERR_TOO_LONG;
    memcpy(id->store + id->used, s, len);
    id->store[id->used + len] = '\0';
    out->off = id->used;
    out->len = (uint16_t)len;
    id->used = (uint16_t)(id->used + len + 1);
    return 0;
}

int identity_set(struct identity *id, enum identity_field f, const char *s, size_t len)
{
    return store_put(id, s, len, &id->field[f]);
}

int identity_add(struct identity *id, enum identity_list l, const char *s, size_t len)
{
    if (len == 0)
        return IDENTITY_ERR_EMPTY;
    if (id->nlist[l] >= LIMIT_IDENTITY_LIST)
        return IDENTITY_ERR_TOO_MANY;
    int e = store_put(id, s, len, &id->list[l][id->nlist[l]]);
    if (e == 0)
        id->nlist[l]++;
    return e;
}

const char *identity_get(const struct identity *id, enum identity_field f)
{
    return id->store + id->field[f].off;
}

size_t identity_count(const struct identity *id, enum identity_list l)
{
    return id->nlist[l];
}

const char *identity_item(const struct identity *id, enum identity_list l, size_t i)
{
    return i < id->nlist[l] ? id->store + id->list[l][i].off : "";
}

bool identity_is_tagged(const struct identity *id)
{
    return id->nlist[IDENTITY_TAGS] > 0 ||
           strcmp(identity_get(id, IDENTITY_LOGIN), IDENTITY_TAGGED_LOGIN) == 0;
}

bool identity_is_user(const struct identity *id)
{
    return id->source != IDENTITY_NONE && !id->funnel && !identity_is_tagged(id) &&
           id->field[IDENTITY_LOGIN].len > 0;
}

/* ---- tailscaled's headers ------------------------------------------------------ */

enum {
    TS_LOGIN,
    TS_NAME,
    TS_PIC,
    TS_FUNNEL,
    TS_APP_CAPS,
    TS_NHEADERS,
};

/* The names tailscaled sets (canonical, as Go's Header.Set writes them). */
static const char *const ts_names[TS_NHEADERS] = {
    "Tailscale-User-Login",     "Tailscale-User-Name",        "Tailscale-User-Profile-Pic",
    "Tailscale-Funnel-Request", "Tailscale-App-Capabilities",
};

/* Store a value tailscaled wrote with encTailscaleHeaderValue, decoding it
 * straight into the store. */
static int store_decoded(struct identity *id, enum identity_field f, struct http_slice v)
{
    size_t room = (size_t)LIMIT_IDENTITY_BYTES - id->used;
    long n = rfc2047_decode_tailscale(v.p, v.len, id->store + id->used, room);
    if (n == RFC2047_ERR_SPACE)
        return IDENTITY_ERR_TOO_LONG;
    if (n < 0)
        return n == RFC2047_ERR_ENCODING ? IDENTITY_ERR_ENCODING : IDENTITY_ERR_TEXT;
    id->field[f].off = id->used;
    id->field[f].len = (uint16_t)n;
    id->used = (uint16_t)(id->used + (size_t)n + 1);
    return 0;
}

static int read_headers(struct identity *id, const struct http_request *req)
{
    const struct http_slice *seen[TS_NHEADERS] = {0};
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http_header *h = &req->headers[i];
        for (int k = 0; k < TS_NHEADERS; k++) {
            if (!headers_name_alias_eq(h->name, ts_names[k]))
                continue;
            /* tailscaled removes only the exact name before setting it, so
             * a "Tailscale_User_Login" here was written by the client. */
            if (!http_slice_eq(h->name, ts_names[k]) || seen[k])
                return IDENTITY_ERR_DUPLICATE;
            seen[k] = &h->value;
        }
    }
    if (seen[TS_FUNNEL]) {
        /* Anonymous whatever else came: tailscaled sets nothing else then. */
        if (!http_slice_eq(*seen[TS_FUNNEL], "?1"))
            return IDENTITY_ERR_ENCODING;
        id->source = IDENTITY_HEADERS;
        id->funnel = true;
        return 0;
    }
    int e;
    if (seen[TS_APP_CAPS] && (e = store_decoded(id, IDENTITY_APP_CAPS, *seen[TS_APP_CAPS])) < 0)
        return e;
    if (seen[TS_LOGIN]) {
        if ((e = store_decoded(id, IDENTITY_LOGIN, *seen[TS_LOGIN])) < 0)
            return e;
        if (seen[TS_NAME] && (e = store_decoded(id, IDENTITY_DISPLAY_NAME, *seen[TS_NAME])) < 0)
            return e;
        /* The profile picture URL is sent as it is, never encoded. */
        if (seen[TS_PIC] &&
            (e = identity_set(id, IDENTITY_PROFILE_PIC, seen[TS_PIC]->p, seen[TS_PIC]->len)) < 0)
            return e;
    }
    /* An empty login is what encTailscaleHeaderValue gives for a login that
     * is not UTF-8: no usable identity. */
    if (id->field[IDENTITY_LOGIN].len > 0 || id->field[IDENTITY_APP_CAPS].len > 0)
        id->source = IDENTITY_HEADERS;
    return 0;
}

int identity_from_headers(struct identity *id, const struct http_request *req)
{
    identity_init(id);
    int e = read_headers(id, req);
    if (e < 0)
        identity_init(id);
    return e;
}

/* ---- headers for the upstream ---------------------------------------------------- */

struct hb {
    struct identity_headers *o;
    bool over;
};

static char *hb_room(struct hb *b, size_t len)
{
    if (b->over || b->o->n >= IDENTITY_HEADERS_MAX || len >= IDENTITY_HEADERS_BYTES - b->o->used) {
        b->over = true;
        return NULL;
    }
    return b->o->store + b->o->used;
}

/* Go trims a header value's leading and trailing white space when it
 * writes it (net/http Header.writeSubset, textproto.TrimString). */
static void hb_commit(struct hb *b, const char *name, char *v, size_t len)
{
    size_t s = 0;
    while (s < len && (v[s] == ' ' || v[s] == '\t'))
        s++;
    while (len > s && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    v[len] = '\0';
    b->o->h[b->o->n].name = name;
    b->o->h[b->o->n].value = v + s;
    b->o->n++;
    b->o->used += len + 1;
}

static void hb_put(struct hb *b, const char *name, const char *v, size_t len)
{
    char *p = hb_room(b, len);
    if (!p)
        return;
    memcpy(p, v, len);
    hb_commit(b, name, p, len);
}

static void hb_put_str(struct hb *b, const char *name, const char *v)
{
    hb_put(b, name, v, strlen(v));
}

static void hb_put_id(struct hb *b, const char *name, const char *prefix, int64_t v)
{
    char num[48];
    int n = snprintf(num, sizeof num, "%s%" PRId64, prefix, v);
    hb_put(b, name, num, (size_t)n);
}

/* Go's strings.Join(list, ", "). */
static void hb_put_joined(struct hb *b, const char *name, const struct identity *id,
                          enum identity_list l)
{
    size_t len = 0;
    for (size_t i = 0; i < id->nlist[l]; i++)
        len += id->list[l][i].len + (i ? 2u : 0u);
    char *p = hb_room(b, len);
    if (!p)
        return;
    size_t at = 0;
    for (size_t i = 0; i < id->nlist[l]; i++) {
        if (i) {
            memcpy(p + at, ", ", 2);
            at += 2;
        }
        memcpy(p + at, identity_item(id, l, i), id->list[l][i].len);
        at += id->list[l][i].len;
    }
    hb_commit(b, name, p, len);
}

/* encTailscaleHeaderValue: mime.QEncoding.Encode("utf-8", v). */
static void hb_put_encoded(struct hb *b, const char *name, const struct identity *id,
                           enum identity_field f)
{
    size_t len = id->field[f].len;
    char *p = hb_room(b, RFC2047_ENCODED_MAX(len));
    if (!p)
        return;
    long n = rfc2047_encode_q(identity_get(id, f), len, p, RFC2047_ENCODED_MAX(len));
    if (n < 0) {
        b->over = true;
        return;
    }
    hb_commit(b, name, p, (size_t)n);
}

/* tsnsrv's setWhoisHeaders, in the order Go writes them (sorted by name). */
static void put_tsnsrv(struct hb *b, const struct identity *id)
{
    const char *login = identity_get(id, IDENTITY_LOGIN);
    const char *at = strchr(login, '@'); /* strings.Cut: the first '@' */
    if (id->nlist[IDENTITY_PEER_CAPS])
        hb_put_joined(b, "X-Tailscale-Caps", id, IDENTITY_PEER_CAPS);
    hb_put_id(b, "X-Tailscale-Node", "nodeid:", id->node_id);
    if (id->nlist[IDENTITY_NODE_CAPS])
        hb_put_joined(b, "X-Tailscale-Node-Caps", id, IDENTITY_NODE_CAPS);
    hb_put_str(b, "X-Tailscale-Node-Name", identity_get(id, IDENTITY_NODE_NAME));
    if (id->nlist[IDENTITY_TAGS])
        hb_put_joined(b, "X-Tailscale-Node-Tags", id, IDENTITY_TAGS);
    hb_put_id(b, "X-Tailscale-User", "userid:", id->user_id);
    hb_put_str(b, "X-Tailscale-User-Displayname", identity_get(id, IDENTITY_DISPLAY_NAME));
    hb_put_str(b, "X-Tailscale-User-Loginname", login);
    if (at) {
        hb_put_str(b, "X-Tailscale-User-Loginname-Domain", at + 1);
        hb_put(b, "X-Tailscale-User-Loginname-Localpart", login, (size_t)(at - login));
    }
    if (id->field[IDENTITY_PROFILE_PIC].len)
        hb_put_str(b, "X-Tailscale-User-Profilepicurl", identity_get(id, IDENTITY_PROFILE_PIC));
}

/* tailscaled's addTailscaleIdentityHeaders and addAppCapabilitiesHeader. */
static void put_tailscaled(struct hb *b, const struct identity *id)
{
    if (id->funnel) {
        hb_put_str(b, "Tailscale-Funnel-Request", "?1");
        return;
    }
    if (id->field[IDENTITY_APP_CAPS].len)
        hb_put_encoded(b, "Tailscale-App-Capabilities", id, IDENTITY_APP_CAPS);
    if (!identity_is_user(id))
        return;
    hb_put_str(b, "Tailscale-Headers-Info", "https://tailscale.com/s/serve-headers");
    hb_put_encoded(b, "Tailscale-User-Login", id, IDENTITY_LOGIN);
    hb_put_encoded(b, "Tailscale-User-Name", id, IDENTITY_DISPLAY_NAME);
    hb_put_str(b, "Tailscale-User-Profile-Pic", identity_get(id, IDENTITY_PROFILE_PIC));
}

int identity_build_headers(const struct identity *id, unsigned what, struct identity_headers *out)
{
    out->n = 0;
    out->used = 0;
    struct hb b = {out, false};
    if ((what & IDENTITY_SEND_TAILSCALED) && id->source != IDENTITY_NONE)
        put_tailscaled(&b, id);
    /* tsnsrv sets its headers only from a successful whois, which has the
     * user and node IDs; portico keeps Funnel callers anonymous. */
    if ((what & IDENTITY_SEND_TSNSRV) && id->source == IDENTITY_WHOIS && !id->funnel &&
        id->has_user_id && id->has_node_id)
        put_tsnsrv(&b, id);
    if (b.over) {
        out->n = 0;
        return -1;
    }
    return (int)out->n;
}

bool identity_header_reserved(struct http_slice name)
{
    static const char *const prefixes[] = {"x-tailscale-", "tailscale-"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        size_t n = strlen(prefixes[i]);
        if (name.len >= n && headers_name_alias_eq((struct http_slice){name.p, n}, prefixes[i]))
            return true;
    }
    return false;
}

/* The last comma-separated element of v, trimmed of blanks. */
static struct http_slice last_element(struct http_slice v)
{
    size_t end = v.len;
    while (end > 0 && (v.p[end - 1] == ' ' || v.p[end - 1] == '\t'))
        end--;
    size_t start = end;
    while (start > 0 && v.p[start - 1] != ',')
        start--;
    while (start < end && (v.p[start] == ' ' || v.p[start] == '\t'))
        start++;
    return (struct http_slice){v.p + start, end - start};
}

/* s as a canonical IP address text, or "" when it is not one. */
static void canonical_ip(struct http_slice s, char *out, size_t cap)
{
    char tmp[INET6_ADDRSTRLEN + 1];
    unsigned char bin[sizeof(struct in6_addr)];
    out[0] = '\0';
    if (s.len == 0 || s.len >= sizeof tmp || cap < INET6_ADDRSTRLEN)
        return;
    memcpy(tmp, s.p, s.len);
    tmp[s.len] = '\0';
    if (inet_pton(AF_INET, tmp, bin) == 1) {
        inet_ntop(AF_INET, bin, out, (socklen_t)cap);
    } else if (inet_pton(AF_INET6, tmp, bin) == 1) {
        struct in6_addr a;
        memcpy(&a, bin, sizeof a);
        if (IN6_IS_ADDR_V4MAPPED(&a))
            inet_ntop(AF_INET, bin + 12, out, (socklen_t)cap);
        else
            inet_ntop(AF_INET6, bin, out, (socklen_t)cap);
    }
}

enum identity_forward identity_forwarded(const struct http_request *req, struct http_slice *host,
                                         char *addr, size_t cap)
{
    const struct http_header *xfh = NULL, *xff = NULL;
    size_t nhosts = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct http_header *h = &req->headers[i];
        if (headers_name_alias_eq(h->name, "x-forwarded-host")) {
            xfh = h;
            nhosts++;
        } else if (headers_name_alias_eq(h->name, "x-forwarded-for")) {
            xff = h;
        }
    }
    addr[0] = '\0';
    if (xff)
        canonical_ip(last_element(xff->value), addr, cap);
    if (nhosts > 1)
        return IDENTITY_FWD_MANY_HOSTS;
    if (!xfh || xfh->value.len == 0)
        return IDENTITY_FWD_NO_HOST;
    *host = xfh->value;
    return IDENTITY_FWD_OK;
}

const char *identity_strerror(int err)
{
    switch (err) {
    case IDENTITY_ERR_TOO_LONG:
        return "identity too long";
    case IDENTITY_ERR_TOO_MANY:
        return "too many tags or capabilities";
    case IDENTITY_ERR_TEXT:
        return "identity value is not UTF-8 or contains a control character";
    case IDENTITY_ERR_ENCODING:
        return "identity header value not encoded as tailscaled encodes it";
    case IDENTITY_ERR_DUPLICATE:
        return "identity header sent twice or under another spelling";
    case IDENTITY_ERR_EMPTY:
        return "empty tag or capability name";
    default:
        return "invalid identity";
    }
}
